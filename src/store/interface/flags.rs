//! The store's interface for flag and keyword changes.

use crate::model::*;
use crate::store::*;

/// Flag and keyword changes on messages.
pub trait FlagStore {
    /// Changes the flags of `uids` in one transaction. Every message changed gets the same new
    /// MODSEQ (RFC 7162 §3.1: it only has to grow); a change of a user's own `\Seen` counts as
    /// a change of the message too, so that the user's other devices hear of it.
    fn change_flags(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        uids: &[u32],
        change: FlagChange<'_>,
    ) -> StoreResult<FlagOutcome>;
}
