//! The store's interface for what was expunged since a MODSEQ (QRESYNC).

use crate::model::{FolderId, MailboxId};
use crate::store::*;

/// What was expunged from a folder since a MODSEQ (QRESYNC).
pub trait ExpungeStore {
    /// UIDs expunged from a folder after `modseq` (RFC 7162 §3.2.5.1, VANISHED (EARLIER)).
    fn expunged_since(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        modseq: u64,
    ) -> StoreResult<ExpungedSince>;
}
