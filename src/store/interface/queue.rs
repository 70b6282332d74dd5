//! The store's interface for the outbound queue.

use crate::model::*;
use crate::store::*;

/// The outbound queue.
pub trait QueueStore {
    /// Queues `raw` from `sender` for remote `recipients`, one entry per domain (each with
    /// the part of `dsn` that concerns its recipients), in one transaction with its blob.
    /// The caller flushes before acknowledging.
    fn enqueue(
        &self,
        raw: &[u8],
        sender: &str,
        recipients: &[String],
        dsn: &DsnRequest,
        hold: Hold,
    ) -> StoreResult<Vec<QueueEntry>>;

    /// Lets held entries leave: the message they belong to is accepted. An entry no longer
    /// there, or not held, is an error: the message must not be acknowledged.
    fn release(&self, ids: &[QueueId]) -> StoreResult<()>;

    /// Drops the entries still held: at start, they belong to messages never acknowledged.
    fn drop_held(&self) -> StoreResult<usize>;

    /// Every queued entry, oldest first.
    fn queue(&self) -> StoreResult<Vec<QueueEntry>>;

    /// Records a failed attempt: the entry waits until `next_attempt`, with only the
    /// recipients still to do.
    fn defer(&self, entry: &QueueEntry) -> StoreResult<()>;

    /// Removes a finished entry (delivered, or bounced) and its reference on the blob.
    fn dequeue(&self, id: QueueId) -> StoreResult<()>;
}
