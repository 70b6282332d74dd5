//! The store's interface for the audit log of logins and changes.

use crate::model::*;
use crate::store::*;

/// The audit log of logins and changes.
pub trait AuditStore {
    /// Records an event (its `id` and `at` are set here). Audit writes are flushed with the
    /// change they describe, by the caller's next flush.
    fn record_audit(&self, event: AuditEvent) -> StoreResult<AuditEvent>;

    /// Events matching `query`, newest first.
    fn audit_events(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>>;

    /// Removes the events recorded before `before`; returns how many went. The log is keyed
    /// by time, so they are the first keys; they go in batches, so that a large backlog does
    /// not make one huge write.
    fn prune_audit(&self, before: Millis) -> StoreResult<usize>;
}
