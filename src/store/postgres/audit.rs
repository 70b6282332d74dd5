//! The audit log on PostgreSQL: one row per event, read newest first by time.

use super::PgStore;
use super::rows::Prepared;
use super::rows::{from_id, from_json, from_word, id, json, word};
use crate::model::*;
use crate::store::AuditQuery;
use crate::store::error::StoreResult;
use crate::store::interface::AuditStore;

const COLUMNS: &str = "id, at, org, actor, action, target, client, outcome, detail";

impl AuditStore for PgStore {
    fn record_audit(&self, mut event: AuditEvent) -> StoreResult<AuditEvent> {
        if event.at == 0 {
            event.at = now_millis();
        }
        let row = self.query_one(
            &format!(
                "INSERT INTO audit ({COLUMNS}) \
                         VALUES (nextval('ids'), $1, $2, $3, $4, $5, $6, $7, $8) RETURNING id"
            ),
            &[
                &event.at,
                &event.org.map(|o| id(o.0)).transpose()?,
                &json(&event.actor)?,
                &event.action,
                &event.target,
                &event.client,
                &word(&event.outcome)?,
                &event.detail,
            ],
        )?;
        event.id = AuditId(from_id(row.try_get(0)?, "audit")?);
        Ok(event)
    }

    fn audit_events(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let actor = query.actor.as_ref().map(json).transpose()?;
        let limit = (query.limit > 0).then(|| i64::try_from(query.limit).unwrap_or(i64::MAX));
        let rows = self.query(
                    &format!(
                        "SELECT {COLUMNS} FROM audit \
                         WHERE ($1::bigint IS NULL OR org = $1) AND ($2::jsonb IS NULL OR actor = $2) \
                         AND ($3::text IS NULL OR starts_with(action, $3)) \
                         AND ($4::text IS NULL OR target = $4) \
                         AND ($5::bigint IS NULL OR at >= $5) AND ($6::bigint IS NULL OR at <= $6) \
                         ORDER BY at DESC, id DESC LIMIT $7"
                    ),
                    &[
                        &query.org.map(|o| id(o.0)).transpose()?,
                        &actor,
                        &query.action_prefix,
                        &query.target,
                        &query.since,
                        &query.until,
                        &limit,
                    ],
                )?;
        rows.iter().map(event).collect()
    }

    /// In batches, as sled's: years of events do not go in one transaction.
    fn prune_audit(&self, before: Millis) -> StoreResult<usize> {
        self.block(async {
            let client = self.client().await?;
            let mut removed = 0;
            loop {
                let n = client
                    .execute_cached(
                        "DELETE FROM audit WHERE id IN \
                         (SELECT id FROM audit WHERE at < $1 LIMIT 10000)",
                        &[&before],
                    )
                    .await?;
                if n == 0 {
                    return Ok(removed);
                }
                removed += usize::try_from(n).unwrap_or(usize::MAX);
            }
        })
    }
}

fn event(row: &tokio_postgres::Row) -> StoreResult<AuditEvent> {
    let org: Option<i64> = row.try_get(2)?;
    Ok(AuditEvent {
        id: AuditId(from_id(row.try_get(0)?, "audit")?),
        at: row.try_get(1)?,
        org: org
            .map(|o| from_id(o, "organization").map(OrgId))
            .transpose()?,
        actor: from_json(row.try_get(3)?, "audit actor")?,
        action: row.try_get(4)?,
        target: row.try_get(5)?,
        client: row.try_get(6)?,
        outcome: from_word(row.try_get::<_, &str>(7)?, "audit outcome")?,
        detail: row.try_get(8)?,
    })
}
