//! The store's interface for mailbox imports and their progress.

use crate::model::*;
use crate::store::*;

/// Mailbox imports and their progress.
pub trait ImportStore {
    /// A new import of `mailbox`, running.
    fn create_import(&self, mailbox: MailboxId, source: ImportSource) -> StoreResult<Import>;

    fn import(&self, id: ImportId) -> StoreResult<Option<Import>>;

    fn imports_of(&self, mailbox: MailboxId) -> StoreResult<Vec<Import>>;

    /// Every import, of every mailbox.
    fn imports(&self) -> StoreResult<Vec<Import>>;

    /// Writes an import's record (its state, its folders) as it is now.
    fn save_import(&self, import: &Import) -> StoreResult<()>;

    /// Stores `messages` in `folder` of the import's mailbox together with `import` (whose
    /// progress the caller has advanced past them): both or neither. No flush: a batch lost
    /// to a crash is lost with the progress that counted it, and imported again.
    fn import_batch(
        &self,
        import: &Import,
        folder: FolderId,
        messages: &[(Vec<u8>, AppendMessage)],
    ) -> StoreResult<Vec<MessageRecord>>;

    /// At start, before any import can run: one left running by this node's process that
    /// ended is interrupted (never one another node sharing the store runs now); one whose
    /// mailbox is gone is forgotten.
    fn interrupt_running_imports(&self) -> StoreResult<usize>;

    /// Forgets an import's record; the mail it moved stays.
    fn delete_import(&self, id: ImportId) -> StoreResult<()>;
}
