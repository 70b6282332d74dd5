//! The audit log: append-only, keyed by time so that a time range is a range scan.

use super::SledStore;
use super::codec::{decode, encode};
use super::error::StoreResult;
use super::interface::*;
use crate::model::*;

/// Which events to return; `None` fields do not filter.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub org: Option<OrgId>,
    pub actor: Option<Actor>,
    /// Events whose action starts with this (`imap.` for every IMAP event).
    pub action_prefix: Option<String>,
    pub target: Option<String>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    /// Newest first, at most this many; 0 means no limit.
    pub limit: usize,
}

impl AuditQuery {
    fn matches(&self, e: &AuditEvent) -> bool {
        self.org.is_none_or(|o| e.org == Some(o))
            && self.actor.as_ref().is_none_or(|a| *a == e.actor)
            && self
                .action_prefix
                .as_ref()
                .is_none_or(|p| e.action.starts_with(p.as_str()))
            && self.target.as_ref().is_none_or(|t| *t == e.target)
    }
}

impl AuditStore for SledStore {
    fn record_audit(&self, mut event: AuditEvent) -> StoreResult<AuditEvent> {
        event.id = AuditId(self.next_id()?);
        if event.at == 0 {
            event.at = now_millis();
        }
        self.inner
            .audit
            .insert(audit_key(event.at, event.id), encode(&event)?)?;
        Ok(event)
    }

    fn audit_events(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let start = audit_key(query.since.unwrap_or(0), AuditId(0));
        let end = audit_key(query.until.unwrap_or(Millis::MAX), AuditId(u64::MAX));
        let mut out = Vec::new();
        for item in self.inner.audit.range(start..=end).rev() {
            let event: AuditEvent = decode(&item?.1, "audit event")?;
            if query.matches(&event) {
                out.push(event);
                if query.limit > 0 && out.len() >= query.limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn prune_audit(&self, before: Millis) -> StoreResult<usize> {
        let end = audit_key(before, AuditId(0));
        let mut removed = 0;
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for item in self.inner.audit.range(..end.clone()).take(10_000) {
                batch.remove(item?.0);
                n += 1;
            }
            if n == 0 {
                return Ok(removed);
            }
            self.inner.audit.apply_batch(batch)?;
            removed += n;
        }
    }
}

fn audit_key(at: Millis, id: AuditId) -> Vec<u8> {
    let mut k = Vec::with_capacity(16);
    k.extend_from_slice(&(at.max(0) as u64).to_be_bytes());
    k.extend_from_slice(&id.0.to_be_bytes());
    k
}
