//! Each domain's DKIM keys (issue 13), private halves included, in the `model` tree. Keys are
//! made elsewhere (`crate::dkim`: generating an RSA key takes a while, not under the lock);
//! the store names them, keeps one active per algorithm and walks them through rotation.

use super::codec::{self, key_str};
use super::error::{StoreError, StoreResult};
use super::interface::*;
use super::{Changes, SledStore};
use crate::model::*;
use serde::{Deserialize, Serialize};

/// A DKIM key with its private half (PKCS#8 DER), as the signer needs it.
#[derive(Clone, Serialize, Deserialize)]
pub struct DkimSecret {
    pub key: DkimKey,
    pub private_der: Vec<u8>,
}

impl std::fmt::Debug for DkimSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimSecret")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// A key just made, not yet named.
pub struct NewDkimKey {
    pub algorithm: DkimAlgorithm,
    pub public_key: String,
    pub private_der: Vec<u8>,
}

/// Names keys made for `domain`, beside its `existing` ones: a selector of the algorithm and
/// the day, numbered when taken. A key is active at once when the domain has no active key of
/// its algorithm, otherwise it is the next one. Every backend names keys this way.
pub(super) fn name_new_keys(
    domain: &str,
    existing: &[DkimKey],
    made: Vec<NewDkimKey>,
) -> Vec<DkimSecret> {
    let day = chrono::Utc::now().format("%Y%m%d").to_string();
    let mut keys: Vec<DkimKey> = existing.to_vec();
    let mut named = Vec::new();
    for new in made {
        let stem = match new.algorithm {
            DkimAlgorithm::Ed25519 => format!("ed{day}"),
            DkimAlgorithm::Rsa => format!("rsa{day}"),
        };
        let taken = |s: &str| keys.iter().any(|k| k.selector == s);
        let selector = (1..)
            .map(|n| match n {
                1 => stem.clone(),
                n => format!("{stem}-{n}"),
            })
            .find(|s| !taken(s))
            .unwrap_or(stem);
        let has_active = keys
            .iter()
            .any(|k| k.algorithm == new.algorithm && k.state == DkimState::Active);
        let key = DkimKey {
            domain: domain.to_string(),
            selector,
            algorithm: new.algorithm,
            state: if has_active {
                DkimState::Next
            } else {
                DkimState::Active
            },
            created: now_millis(),
            public_key: new.public_key,
        };
        keys.push(key.clone());
        named.push(DkimSecret {
            key,
            private_der: new.private_der,
        });
    }
    named
}

/// Each of `keys`' state once `selector` is activated: it signs for its algorithm, the one
/// that did retires (kept for the mail it signed), the others stay as they were.
pub(super) fn activation<'k>(
    domain: &str,
    keys: impl Iterator<Item = &'k DkimKey> + Clone,
    selector: &str,
) -> StoreResult<Vec<DkimState>> {
    let algorithm = keys
        .clone()
        .find(|k| k.selector == selector)
        .map(|k| k.algorithm)
        .ok_or_else(|| StoreError::not_found(format!("DKIM key {selector} of {domain}")))?;
    Ok(keys
        .map(|k| match (k.selector == selector, k.state) {
            _ if k.algorithm != algorithm => k.state,
            (true, _) => DkimState::Active,
            (false, DkimState::Active) => DkimState::Retiring,
            (false, other) => other,
        })
        .collect())
}

fn prefix(domain: &str) -> Vec<u8> {
    key_str(codec::DKIM_KEY, &[], &format!("{domain}/"))
}

fn record_key(domain: &str, selector: &str) -> Vec<u8> {
    key_str(codec::DKIM_KEY, &[], &format!("{domain}/{selector}"))
}

impl DkimStore for SledStore {
    fn add_dkim_keys(&self, domain: &str, made: Vec<NewDkimKey>) -> StoreResult<Vec<DkimKey>> {
        let domain = crate::model::normalize_address(domain);
        let _guard = self.lock();
        if self.domain(&domain)?.is_none() {
            return Err(StoreError::not_found(format!("domain {domain}")));
        }
        let existing = self.dkim_secrets(&domain)?;
        let existing: Vec<DkimKey> = existing.into_iter().map(|s| s.key).collect();
        let mut changes = Changes::default();
        let mut added = Vec::new();
        for secret in name_new_keys(&domain, &existing, made) {
            changes.put_model(record_key(&domain, &secret.key.selector), &secret)?;
            added.push(secret.key);
        }
        self.commit(changes)?;
        Ok(added)
    }

    fn dkim_secrets(&self, domain: &str) -> StoreResult<Vec<DkimSecret>> {
        let domain = crate::model::normalize_address(domain);
        self.scan_model(&prefix(&domain), "DKIM key")
    }

    fn activate_dkim_key(&self, domain: &str, selector: &str) -> StoreResult<Vec<DkimKey>> {
        let domain = crate::model::normalize_address(domain);
        let _guard = self.lock();
        let mut keys = self.dkim_secrets(&domain)?;
        let states = activation(&domain, keys.iter().map(|s| &s.key), selector)?;
        let mut changes = Changes::default();
        for (secret, state) in keys.iter_mut().zip(states) {
            if state != secret.key.state {
                secret.key.state = state;
                changes.put_model(record_key(&domain, &secret.key.selector), secret)?;
            }
        }
        self.commit(changes)?;
        Ok(keys.into_iter().map(|s| s.key).collect())
    }

    fn retire_dkim_key(&self, domain: &str, selector: &str) -> StoreResult<()> {
        let domain = crate::model::normalize_address(domain);
        let _guard = self.lock();
        let k = record_key(&domain, selector);
        let secret: DkimSecret = self
            .get_model(&k, "DKIM key")?
            .ok_or_else(|| StoreError::not_found(format!("DKIM key {selector} of {domain}")))?;
        if secret.key.state == DkimState::Active {
            return Err(StoreError::ActiveDkimKey(selector.to_string()));
        }
        let mut changes = Changes::default();
        changes.del_model(k);
        self.commit(changes)
    }
}

impl SledStore {
    /// Removals of every key of `domain`, for the change that removes the domain.
    pub(super) fn drop_dkim_keys(&self, domain: &str, changes: &mut Changes) -> StoreResult<()> {
        for item in self.inner.model.scan_prefix(prefix(domain)) {
            changes.del_model(item?.0.to_vec());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{organization, temp_store};

    fn made(algorithm: DkimAlgorithm) -> NewDkimKey {
        NewDkimKey {
            algorithm,
            public_key: "cHVibGlj".into(),
            private_der: vec![1, 2, 3],
        }
    }

    #[test]
    fn keys_rotate_next_then_active_then_retiring_then_gone() {
        let (store, _dir) = temp_store();
        let org = organization(&store, "Acme", "owner@acme.example");
        store.add_domain(org, "acme.example").unwrap();
        let both = || vec![made(DkimAlgorithm::Ed25519), made(DkimAlgorithm::Rsa)];
        let first = store.add_dkim_keys("acme.example", both()).unwrap();
        assert!(first.iter().all(|k| k.state == DkimState::Active));
        assert!(first[0].selector.starts_with("ed") && first[1].selector.starts_with("rsa"));
        let second = store.add_dkim_keys("ACME.example", both()).unwrap();
        assert!(second.iter().all(|k| k.state == DkimState::Next));
        assert!(second[0].selector.ends_with("-2"), "{:?}", second[0]);
        // The active one cannot go.
        let err = store
            .retire_dkim_key("acme.example", &first[0].selector)
            .unwrap_err();
        assert!(matches!(err, StoreError::ActiveDkimKey(_)), "{err}");
        let keys = store
            .activate_dkim_key("acme.example", &second[0].selector)
            .unwrap();
        let state = |sel: &str| keys.iter().find(|k| k.selector == sel).unwrap().state;
        assert_eq!(state(&second[0].selector), DkimState::Active);
        assert_eq!(state(&first[0].selector), DkimState::Retiring);
        // RSA's rotation is its own.
        assert_eq!(state(&first[1].selector), DkimState::Active);
        assert_eq!(state(&second[1].selector), DkimState::Next);
        store
            .retire_dkim_key("acme.example", &first[0].selector)
            .unwrap();
        assert_eq!(store.dkim_keys("acme.example").unwrap().len(), 3);
        let secret = &store.dkim_secrets("acme.example").unwrap()[0];
        assert_eq!(secret.private_der, vec![1, 2, 3]);
        assert!(!format!("{secret:?}").contains("private_der"));
        store.remove_domain(org, "acme.example").unwrap();
        assert!(store.dkim_keys("acme.example").unwrap().is_empty());
    }

    #[test]
    fn keys_need_a_domain() {
        let (store, _dir) = temp_store();
        let err = store
            .add_dkim_keys("nowhere.example", vec![made(DkimAlgorithm::Rsa)])
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    }
}
