//! The outbound queue on PostgreSQL, shared by the nodes: one row per message and recipient
//! domain, holding a reference on the message's bytes until it leaves.

use super::PgStore;
use super::blobs;
use super::rows::{from_id, from_json, hash32, id, json};
use crate::model::*;
use crate::store::error::{StoreError, StoreResult};
use crate::store::interface::QueueStore;
use crate::store::queue::{HELD, by_domain};
use crate::store::{BlobId, Hold, QueueEntry, QueueId};
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
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let blob = blobs::hold(&tx, raw, by_domain.len() as u64).await?;
            let mut entries = Vec::new();
            for (domain, recipients) in by_domain {
                let dsn = dsn.only_for(&recipients);
                let row = tx
                    .query_one(
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
            tx.commit().await?;
            Ok(entries)
        })
    }

    fn release(&self, ids: &[QueueId]) -> StoreResult<()> {
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            for queued in ids {
                let released = tx
                    .execute(
                        "UPDATE queue SET held = false, next_attempt = $2 WHERE id = $1 AND held",
                        &[&id(queued.0)?, &now_millis()],
                    )
                    .await?;
                if released == 0 {
                    let there = tx
                        .query_opt("SELECT 1 FROM queue WHERE id = $1", &[&id(queued.0)?])
                        .await?
                        .is_some();
                    // Nothing released: the message must not be acknowledged.
                    return Err(match there {
                        true => StoreError::Corrupt(format!("queue entry {queued} was not held")),
                        false => StoreError::not_found(format!("queue entry {queued}")),
                    });
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn drop_held(&self) -> StoreResult<usize> {
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let dropped = tx
                .query("DELETE FROM queue WHERE held RETURNING blob", &[])
                .await?;
            for row in &dropped {
                blobs::release(&tx, &BlobId(hash32(row.try_get(0)?, "blob")?)).await?;
            }
            tx.commit().await?;
            Ok(dropped.len())
        })
    }

    fn queue(&self) -> StoreResult<Vec<QueueEntry>> {
        let rows = self.query(&format!("SELECT {COLUMNS} FROM queue ORDER BY id"), &[])?;
        rows.iter().map(entry).collect()
    }

    fn defer(&self, entry: &QueueEntry) -> StoreResult<()> {
        let updated = self.execute(
            "UPDATE queue SET recipients = $2, attempts = $3, next_attempt = $4, \
                     last_error = $5, reasons = $6, dsn = $7 WHERE id = $1",
            &[
                &id(entry.id.0)?,
                &entry.recipients,
                &i32::try_from(entry.attempts).unwrap_or(i32::MAX),
                &entry.next_attempt,
                &entry.last_error,
                &entry.reasons,
                &json(&entry.dsn)?,
            ],
        )?;
        match updated {
            0 => Err(StoreError::not_found(format!("queue entry {}", entry.id))),
            _ => Ok(()),
        }
    }

    fn dequeue(&self, queued: QueueId) -> StoreResult<()> {
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let gone = tx
                .query_opt(
                    "DELETE FROM queue WHERE id = $1 RETURNING blob",
                    &[&id(queued.0)?],
                )
                .await?;
            if let Some(row) = gone {
                blobs::release(&tx, &BlobId(hash32(row.try_get(0)?, "blob")?)).await?;
            }
            tx.commit().await?;
            Ok(())
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
