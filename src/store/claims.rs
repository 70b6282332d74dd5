//! Proof that an organization holds a domain (issue 13): a domain added through the admin
//! API waits for a TXT record with its token before it receives or sends mail, so that one
//! tenant of a shared server cannot take another's domain. A domain without a claim record
//! (added by the operator's tools, or before verification existed) counts as verified.

use super::codec::{self, key_str};
use super::error::{StoreError, StoreResult};
use super::interface::*;
use super::{Changes, SledStore};
use crate::model::*;
use serde::{Deserialize, Serialize};

/// The token a domain's TXT record must show, and when it was seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainClaim {
    pub token: String,
    pub verified: Option<Millis>,
}

pub(super) fn claim_key(domain: &str) -> Vec<u8> {
    key_str(codec::DOMAIN_CLAIM, &[], domain)
}

impl ClaimStore for SledStore {
    fn domain_claim(&self, domain: &str) -> StoreResult<Option<DomainClaim>> {
        self.get_model(&claim_key(&normalize_address(domain)), "domain claim")
    }

    fn mark_domain_verified(&self, domain: &str) -> StoreResult<DomainClaim> {
        let domain = normalize_address(domain);
        let _guard = self.lock();
        let mut claim = self
            .domain_claim(&domain)?
            .ok_or_else(|| StoreError::not_found(format!("claim of domain {domain}")))?;
        if claim.verified.is_none() {
            claim.verified = Some(now_millis());
            let mut changes = Changes::default();
            changes.put_model(claim_key(&domain), &claim)?;
            self.commit(changes)?;
        }
        Ok(claim)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::interface::*;
    use crate::store::testing::{organization, temp_store};

    #[test]
    fn a_claimed_domain_is_verified_once_marked_and_its_claim_goes_with_it() {
        let (store, _dir) = temp_store();
        let org = organization(&store, "Acme", "owner@acme.example");
        store.add_domain(org, "old.example").unwrap();
        assert!(store.is_domain_verified("old.example").unwrap());
        store
            .add_domain_claimed(org, "new.example", Some("t0ken".into()))
            .unwrap();
        assert!(!store.is_domain_verified("NEW.example").unwrap());
        let claim = store.mark_domain_verified("new.example").unwrap();
        assert_eq!(claim.token, "t0ken");
        assert!(claim.verified.is_some());
        assert!(store.is_domain_verified("new.example").unwrap());
        store.remove_domain(org, "new.example").unwrap();
        assert_eq!(store.domain_claim("new.example").unwrap(), None);
        assert!(store.mark_domain_verified("new.example").is_err());
    }
}
