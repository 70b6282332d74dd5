//! The store's interface for server-wide state: secrets, the change hub, durability.

use crate::store::*;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;

/// What [`ServerStore::server_secret_while`] asks whether a kept secret is still good with.
pub type SecretCheck<'a> = Box<dyn FnOnce(&[u8]) -> bool + 'a>;
/// What [`ServerStore::server_secret_while`] makes a new secret with.
pub type SecretMaker<'a> = Box<dyn FnOnce() -> Result<Vec<u8>, String> + 'a>;

/// Server-wide state: secrets, the change hub, durability.
pub trait ServerStore {
    /// The data directory.
    fn dir(&self) -> &Path;

    /// The change notification hub of this store.
    fn hub(&self) -> &Hub;

    /// Whether nothing has been created yet (no organization exists).
    fn is_empty(&self) -> StoreResult<bool>;

    /// Flushes every pending write to disk; the future ends once it is durable.
    fn flush(&self) -> Pin<Box<dyn Future<Output = StoreResult<()>> + Send + '_>>;

    /// Flushes from synchronous code.
    fn flush_blocking(&self) -> StoreResult<()>;

    /// A server secret kept in the store (such as the generated TLS certificate): returned if
    /// present and still `good` (a certificate not near its end), otherwise made by `make`,
    /// stored durably and returned. [`Store::server_secret_while`] takes plain closures.
    fn server_secret_while(
        &self,
        name: &str,
        good: SecretCheck<'_>,
        make: SecretMaker<'_>,
    ) -> StoreResult<Vec<u8>>;

    /// The server secret `name`, if one is kept (ACME certificates and the account).
    fn secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Keeps `value` as the server secret `name`, durably, in place of any before.
    fn set_secret(&self, name: &str, value: &[u8]) -> StoreResult<()>;

    /// Removes the server secret `name`, if kept.
    fn remove_secret(&self, name: &str) -> StoreResult<()>;

    /// Whether this node is the one to run the server-wide job `name` (ordering ACME
    /// certificates, ending time-limited grants, deleting organizations…) until `until`: the
    /// job is taken when nobody holds it or its holder's time ran out, and kept by asking
    /// again before `until`. A node that dies leaves it to another once `until` has passed
    /// (as told by the nodes' clocks, which must agree to well under the hold). With one
    /// node (sled): always.
    fn hold_job(&self, name: &str, until: crate::model::Millis) -> StoreResult<bool>;

    /// Tells this node's jobs of `change`, and every other node's: a hint, carrying no state
    /// (what changed is in the store), lost by a node that was not listening, which then
    /// looks again all the same (ARCHITECTURE.md §6).
    fn announce(&self, change: ServerChange) -> StoreResult<()>;
}

/// A new server secret from `make`, its failure as the store reports it; every backend's
/// [`ServerStore::server_secret_while`] makes one this way.
pub(crate) fn make_secret(make: SecretMaker<'_>) -> StoreResult<Vec<u8>> {
    make().map_err(|why| StoreError::Invalid {
        what: "server secret",
        why,
    })
}
