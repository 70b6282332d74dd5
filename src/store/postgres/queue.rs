//! The outbound queue on PostgreSQL, shared by the nodes: one row per message and recipient
//! domain, holding a reference on the message's bytes until it leaves.

use super::PgStore;
use super::blobs;
use super::rows::Prepared;
use super::rows::{from_id, from_json, hash32, id, json};
use crate::model::*;
use crate::store::error::{StoreError, StoreResult};
use crate::store::interface::QueueStore;
use crate::store::queue::{HELD, by_domain};
use crate::store::{BlobId, Hold, Lease, QueueEntry, QueueId};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

const COLUMNS: &str = "id, blob, sender, domain, recipients, created, attempts, next_attempt, \
                       last_error, reasons, dsn";

impl QueueStore for PgStore {
    fn enqueue(
        &self,
        raw: &[u8],
        sender: &str,
        recipients: &[String],
        dsn: &DsnRequest,
        hold: Hold,
    ) -> StoreResult<Vec<QueueEntry>> {
        let by_domain = by_domain(recipients)?;
        let now = now_millis();
        let next_attempt = if hold == Hold::No { now } else { HELD };
        self.transaction(async |tx| {
            let blob = blobs::hold(tx, BlobId::of(raw), raw, by_domain.len() as u64).await?;
            let mut entries = Vec::new();
            for (domain, recipients) in by_domain.clone() {
                let dsn = dsn.only_for(&recipients);
                let row = tx
                    .query_one_cached(
                        "INSERT INTO queue (id, blob, sender, domain, recipients, created, \
                         next_attempt, reasons, dsn, held) \
                         VALUES (nextval('ids'), $1, $2, $3, $4, $5, $6, '{}', $7, $8) RETURNING id",
                        &[
                            &blob.0.as_slice(),
                            &sender,
                            &domain,
                            &recipients,
                            &now,
                            &next_attempt,
                            &json(&dsn)?,
                            &(hold == Hold::UntilReleased),
                        ],
                    )
                    .await?;
                entries.push(QueueEntry {
                    id: QueueId(from_id(row.try_get(0)?, "queue entry")?),
                    blob,
                    sender: sender.to_string(),
                    domain,
                    recipients,
                    created: now,
                    attempts: 0,
                    next_attempt,
                    last_error: None,
                    reasons: Vec::new(),
                    dsn,
                });
            }
            Ok(entries)
        })
    }

    fn release(&self, ids: &[QueueId]) -> StoreResult<()> {
        self.transaction(async |tx| {
            for queued in ids {
                let released = tx
                    .execute_cached(
                        "UPDATE queue SET held = false, next_attempt = $2 WHERE id = $1 AND held",
                        &[&id(queued.0)?, &now_millis()],
                    )
                    .await?;
                if released == 0 {
                    let there = tx
                        .query_opt_cached("SELECT 1 FROM queue WHERE id = $1", &[&id(queued.0)?])
                        .await?
                        .is_some();
                    // Nothing released: the message must not be acknowledged.
                    return Err(match there {
                        true => StoreError::Corrupt(format!("queue entry {queued} was not held")),
                        false => StoreError::not_found(format!("queue entry {queued}")),
                    });
                }
            }
            Ok(())
        })
    }

    fn drop_held(&self, before: Millis) -> StoreResult<usize> {
        self.transaction(async |tx| {
            let dropped = tx
                .query_cached(
                    "DELETE FROM queue WHERE held AND created < $1 RETURNING blob",
                    &[&before],
                )
                .await?;
            for row in &dropped {
                blobs::release(tx, &BlobId(hash32(row.try_get(0)?, "blob")?)).await?;
            }
            Ok(dropped.len())
        })
    }

    fn queue(&self) -> StoreResult<Vec<QueueEntry>> {
        let rows = self.query(&format!("SELECT {COLUMNS} FROM queue ORDER BY id"), &[])?;
        rows.iter().map(entry).collect()
    }

    fn lease(&self, queued: QueueId, until: Millis) -> StoreResult<Option<Lease>> {
        let token: i64 = rand::random();
        // SKIP LOCKED: an entry another node is leasing right now is that node's.
        let row = self.query_opt(
            "UPDATE queue SET lease_token = $2, lease_until = $3 WHERE id = \
             (SELECT id FROM queue WHERE id = $1 AND NOT held AND next_attempt <= $4 \
              AND (lease_until IS NULL OR lease_until < $4) FOR UPDATE SKIP LOCKED) \
             RETURNING id",
            &[&id(queued.0)?, &token, &until, &now_millis()],
        )?;
        Ok(row.map(|_| Lease { id: queued, token }))
    }

    fn renew_lease(&self, lease: &Lease, until: Millis) -> StoreResult<bool> {
        let renewed = self.execute(
            "UPDATE queue SET lease_until = $3 WHERE id = $1 AND lease_token = $2",
            &[&id(lease.id.0)?, &lease.token, &until],
        )?;
        Ok(renewed > 0)
    }

    fn defer(&self, entry: &QueueEntry, lease: &Lease) -> StoreResult<bool> {
        let updated = self.execute(
            "UPDATE queue SET recipients = $2, attempts = $3, next_attempt = $4, \
             last_error = $5, reasons = $6, dsn = $7, lease_token = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_token = $8",
            &[
                &id(entry.id.0)?,
                &entry.recipients,
                &i32::try_from(entry.attempts).unwrap_or(i32::MAX),
                &entry.next_attempt,
                &entry.last_error,
                &entry.reasons,
                &json(&entry.dsn)?,
                &lease.token,
            ],
        )?;
        Ok(updated > 0)
    }

    fn record_progress(&self, entry: &QueueEntry, lease: &Lease) -> StoreResult<bool> {
        let updated = self.execute(
            "UPDATE queue SET recipients = $2, reasons = $3 WHERE id = $1 AND lease_token = $4",
            &[
                &id(entry.id.0)?,
                &entry.recipients,
                &entry.reasons,
                &lease.token,
            ],
        )?;
        Ok(updated > 0)
    }

    fn finish(&self, lease: &Lease) -> StoreResult<bool> {
        self.remove_entry(lease.id, Some(lease.token))
    }

    fn dequeue(&self, queued: QueueId) -> StoreResult<()> {
        self.remove_entry(queued, None).map(|_| ())
    }
}

impl PgStore {
    /// Deletes an entry (only under the lease `token`, when given) with its reference on the
    /// message's bytes; whether it was there to delete.
    fn remove_entry(&self, queued: QueueId, token: Option<i64>) -> StoreResult<bool> {
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let gone = tx
                .query_opt_cached(
                    "DELETE FROM queue WHERE id = $1 AND ($2::bigint IS NULL OR lease_token = $2) \
                     RETURNING blob",
                    &[&id(queued.0)?, &token],
                )
                .await?;
            let Some(row) = gone else {
                return Ok(false);
            };
            let blob = BlobId(hash32(row.try_get(0)?, "blob")?);
            blobs::release(&tx, &blob).await?;
            tx.commit().await?;
            self.forget_bodies([blob]);
            Ok(true)
        })
    }
}

fn entry(row: &Row) -> StoreResult<QueueEntry> {
    let attempts: i32 = row.try_get(6)?;
    Ok(QueueEntry {
        id: QueueId(from_id(row.try_get(0)?, "queue entry")?),
        blob: BlobId(hash32(row.try_get(1)?, "blob")?),
        sender: row.try_get(2)?,
        domain: row.try_get(3)?,
        recipients: row.try_get(4)?,
        created: row.try_get(5)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt: row.try_get(7)?,
        last_error: row.try_get(8)?,
        reasons: row.try_get(9)?,
        dsn: from_json(row.try_get(10)?, "delivery status request")?,
    })
}
