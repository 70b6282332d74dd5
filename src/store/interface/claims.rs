//! The store's interface for domain claims and their verification.

use crate::store::*;

/// Domain claims, and their verification through DNS.
pub trait ClaimStore {
    /// The domain's claim, if it was added to be verified.
    fn domain_claim(&self, domain: &str) -> StoreResult<Option<DomainClaim>>;

    /// Whether the domain may receive and send mail: verified, or never asked to be.
    fn is_domain_verified(&self, domain: &str) -> StoreResult<bool> {
        Ok(self
            .domain_claim(domain)?
            .is_none_or(|claim| claim.verified.is_some()))
    }

    /// Records that the domain's TXT record showed its token.
    fn mark_domain_verified(&self, domain: &str) -> StoreResult<DomainClaim>;
}
