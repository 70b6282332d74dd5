//! The store's interface for the DKIM keys of each domain.

use crate::model::*;
use crate::store::*;

/// The DKIM keys of each domain, and their rotation.
pub trait DkimStore {
    /// Names and keeps keys made for `domain`. A key is active at once when the domain has no
    /// active key of its algorithm (a new domain's first keys), otherwise it is the next one,
    /// to be published before it is activated.
    fn add_dkim_keys(&self, domain: &str, made: Vec<NewDkimKey>) -> StoreResult<Vec<DkimKey>>;

    /// The domain's keys, private halves included.
    fn dkim_secrets(&self, domain: &str) -> StoreResult<Vec<DkimSecret>>;

    /// The domain's keys as the API shows them.
    fn dkim_keys(&self, domain: &str) -> StoreResult<Vec<DkimKey>> {
        Ok(self
            .dkim_secrets(domain)?
            .into_iter()
            .map(|s| s.key)
            .collect())
    }

    /// Makes `selector` the key that signs for its algorithm; the one that did is kept,
    /// retiring, for the mail it signed.
    fn activate_dkim_key(&self, domain: &str, selector: &str) -> StoreResult<Vec<DkimKey>>;

    /// Forgets a key that no longer signs (the one that does cannot go: mail would leave
    /// unsigned).
    fn retire_dkim_key(&self, domain: &str, selector: &str) -> StoreResult<()>;
}
