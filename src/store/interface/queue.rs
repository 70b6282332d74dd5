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

    /// Drops the entries still held that were queued before `before`: they belong to messages
    /// never acknowledged (their clients send them again). Younger ones may be a running
    /// SMTP transaction's, on this node or another.
    fn drop_held(&self, before: Millis) -> StoreResult<usize>;

    /// Every queued entry, oldest first.
    fn queue(&self) -> StoreResult<Vec<QueueEntry>>;

    /// Takes the entry `id`, due and not held, for one delivery attempt until `until`: no
    /// other node attempts it meanwhile. `None`: another node holds it, or it is no longer
    /// due, or gone. A node that dies mid-attempt leaves the entry to the others once `until`
    /// has passed (sent twice only if the remote server's answer was lost, as RFC 5321 §6.1
    /// accepts). With one node (sled), the outbound loop's own claims are what count.
    fn lease(&self, id: QueueId, until: Millis) -> StoreResult<Option<Lease>>;

    /// Extends a lease still held; `false` if it ran out and another node took the entry.
    fn renew_lease(&self, lease: &Lease, until: Millis) -> StoreResult<bool>;

    /// Records a failed attempt under `lease`: the entry waits until `next_attempt`, with only
    /// the recipients still to do, and is free for any node then. `false` (nothing written):
    /// the lease was lost, and another node's attempt decides.
    fn defer(&self, entry: &QueueEntry, lease: &Lease) -> StoreResult<bool>;

    /// Records under `lease`, as soon as an attempt's answers are in, that the recipients no
    /// longer in `entry.recipients` are done (the remote server took the message for them):
    /// a node that dies before the attempt ends leaves only the rest to the next, so that
    /// nobody gets the message twice. The entry stays leased; `false` as for
    /// [`QueueStore::defer`].
    fn record_progress(&self, entry: &QueueEntry, lease: &Lease) -> StoreResult<bool>;

    /// Removes an entry finished under `lease` (delivered, or bounced) and its reference on
    /// the blob; `false` as for [`QueueStore::defer`].
    fn finish(&self, lease: &Lease) -> StoreResult<bool>;

    /// Removes an entry (one just queued for a message that will not be acknowledged) and its
    /// reference on the blob.
    fn dequeue(&self, id: QueueId) -> StoreResult<()>;
}
