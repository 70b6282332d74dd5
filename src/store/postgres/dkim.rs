//! Domain claims and DKIM keys on PostgreSQL. Naming and rotation are the store's shared rules
//! (`store::dkim`); here they run in one transaction holding the domain's row.

use super::PgStore;
use super::rows::Prepared;
use super::rows::{from_word, word};
use crate::model::*;
use crate::store::dkim::{activation, name_new_keys};
use crate::store::error::{StoreError, StoreResult};
use crate::store::interface::{ClaimStore, DkimStore};
use crate::store::{DkimSecret, DomainClaim, NewDkimKey};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

const KEY_COLUMNS: &str = "domain, selector, algorithm, state, created, public_key, private_der";

impl ClaimStore for PgStore {
    fn domain_claim(&self, domain: &str) -> StoreResult<Option<DomainClaim>> {
        let domain = normalize_address(domain);
        let row = self.query_opt(
            "SELECT token, verified FROM domain_claims WHERE domain = $1",
            &[&domain],
        )?;
        row.map(|row| claim(&row)).transpose()
    }

    fn mark_domain_verified(&self, domain: &str) -> StoreResult<DomainClaim> {
        let domain = normalize_address(domain);
        // The first verification's time stays.
        let row = self
            .query_opt(
                "UPDATE domain_claims SET verified = coalesce(verified, $2) \
                     WHERE domain = $1 RETURNING token, verified",
                &[&domain, &now_millis()],
            )?
            .ok_or_else(|| StoreError::not_found(format!("claim of domain {domain}")))?;
        claim(&row)
    }
}

impl DkimStore for PgStore {
    fn add_dkim_keys(&self, domain: &str, made: Vec<NewDkimKey>) -> StoreResult<Vec<DkimKey>> {
        let domain = normalize_address(domain);
        // Once: the new keys are moved into the rows.
        self.transaction_once(async |tx| {
            lock_domain(tx, &domain).await?;
            let existing = secrets(tx, &domain).await?;
            let existing: Vec<DkimKey> = existing.into_iter().map(|s| s.key).collect();
            let mut added = Vec::new();
            for secret in name_new_keys(&domain, &existing, made) {
                insert_key(tx, &secret).await?;
                added.push(secret.key);
            }
            Ok(added)
        })
    }

    fn dkim_secrets(&self, domain: &str) -> StoreResult<Vec<DkimSecret>> {
        let domain = normalize_address(domain);
        self.block(async { secrets(&self.client().await?, &domain).await })
    }

    fn activate_dkim_key(&self, domain: &str, selector: &str) -> StoreResult<Vec<DkimKey>> {
        let domain = normalize_address(domain);
        // Once: the new keys are moved into the rows.
        self.transaction_once(async |tx| {
            lock_domain(tx, &domain).await?;
            let mut keys: Vec<DkimKey> = secrets(tx, &domain)
                .await?
                .into_iter()
                .map(|s| s.key)
                .collect();
            let states = activation(&domain, keys.iter(), selector)?;
            let mut changed: Vec<(usize, DkimState)> = states
                .into_iter()
                .enumerate()
                .filter(|(i, state)| keys[*i].state != *state)
                .collect();
            // One active key per algorithm is a unique index, checked row by row: the key
            // that signed retires before the new one takes over.
            changed.sort_by_key(|(_, state)| *state == DkimState::Active);
            for (i, state) in changed {
                tx.execute_cached(
                    "UPDATE dkim_keys SET state = $3 WHERE domain = $1 AND selector = $2",
                    &[&domain, &keys[i].selector, &word(&state)?],
                )
                .await?;
                keys[i].state = state;
            }
            Ok(keys)
        })
    }

    fn retire_dkim_key(&self, domain: &str, selector: &str) -> StoreResult<()> {
        let domain = normalize_address(domain);
        self.block(async {
            let client = self.client().await?;
            let state: Option<String> = client
                .query_opt_cached(
                    "DELETE FROM dkim_keys WHERE domain = $1 AND selector = $2 AND state <> 'active' \
                     RETURNING state",
                    &[&domain, &selector],
                )
                .await?
                .map(|row| row.try_get(0))
                .transpose()?;
            if state.is_some() {
                return Ok(());
            }
            let exists = client
                .query_opt_cached(
                    "SELECT 1 FROM dkim_keys WHERE domain = $1 AND selector = $2",
                    &[&domain, &selector],
                )
                .await?
                .is_some();
            Err(match exists {
                true => StoreError::ActiveDkimKey(selector.to_string()),
                false => StoreError::not_found(format!("DKIM key {selector} of {domain}")),
            })
        })
    }
}

/// Holds the domain's row until the transaction ends: its keys change one change at a time.
async fn lock_domain(client: &impl GenericClient, domain: &str) -> StoreResult<()> {
    client
        .query_opt_cached(
            "SELECT 1 FROM domains WHERE name = $1 FOR UPDATE",
            &[&domain],
        )
        .await?
        .ok_or_else(|| StoreError::not_found(format!("domain {domain}")))?;
    Ok(())
}

/// Writes one DKIM key with its private half.
pub(super) async fn insert_key(
    client: &impl GenericClient,
    secret: &DkimSecret,
) -> StoreResult<()> {
    let key = &secret.key;
    client
        .execute_cached(
            &format!("INSERT INTO dkim_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
            &[
                &key.domain,
                &key.selector,
                &word(&key.algorithm)?,
                &word(&key.state)?,
                &key.created,
                &key.public_key,
                &secret.private_der,
            ],
        )
        .await?;
    Ok(())
}

async fn secrets(client: &impl GenericClient, domain: &str) -> StoreResult<Vec<DkimSecret>> {
    let rows = client
        .query_cached(
            &format!("SELECT {KEY_COLUMNS} FROM dkim_keys WHERE domain = $1 ORDER BY selector"),
            &[&domain],
        )
        .await?;
    rows.iter().map(secret).collect()
}

fn secret(row: &Row) -> StoreResult<DkimSecret> {
    Ok(DkimSecret {
        key: DkimKey {
            domain: row.try_get(0)?,
            selector: row.try_get(1)?,
            algorithm: from_word(row.try_get::<_, &str>(2)?, "DKIM algorithm")?,
            state: from_word(row.try_get::<_, &str>(3)?, "DKIM state")?,
            created: row.try_get(4)?,
            public_key: row.try_get(5)?,
        },
        private_der: row.try_get(6)?,
    })
}

fn claim(row: &Row) -> StoreResult<DomainClaim> {
    Ok(DomainClaim {
        token: row.try_get(0)?,
        verified: row.try_get(1)?,
    })
}
