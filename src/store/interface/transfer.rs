//! The store's interface for copying and moving messages between folders.

use crate::store::*;

/// Copying and moving messages between folders.
pub trait TransferStore {
    /// Copies (or, with `remove_source`, moves) the messages `uids` of one folder into
    /// another in one transaction, with new UIDs in the target; messages no longer there are
    /// skipped.
    fn transfer(&self, t: Transfer<'_>) -> StoreResult<Transferred>;
}
