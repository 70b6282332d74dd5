//! The outbound queue: mail for other servers, one entry per message and recipient domain,
//! kept until delivered or bounced. An entry holds a reference on its message's blob, so the
//! bytes stay until the last attempt.

use super::codec::{self, key};
use super::error::{StoreError, StoreResult};
use super::folders::blob_key;
use super::interface::*;
use super::{BlobId, Changes, SledStore};
use crate::model::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueueId(pub u64);

/// When a queued entry may leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// At once: the message is already accepted (a bounce, the server's own mail).
    No,
    /// Only once [`Store::release`]d: the message is still being accepted (its local copies
    /// are being written). An entry still held when the server starts belongs to an answer
    /// never given, and is dropped: the client sends the message again.
    UntilReleased,
}

/// The `next_attempt` of a held entry: never, until released.
pub(super) const HELD: Millis = Millis::MAX;

/// Recipients by their domain, in the domains' order: one queue entry each, in every backend.
pub(super) fn by_domain(
    recipients: &[String],
) -> StoreResult<std::collections::BTreeMap<String, Vec<String>>> {
    let mut by_domain: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for r in recipients {
        let domain = domain_of(r)
            .ok_or_else(|| StoreError::Invalid {
                what: "recipient",
                why: format!("{r:?} has no domain"),
            })?
            .to_ascii_lowercase();
        by_domain.entry(domain).or_default().push(r.clone());
    }
    Ok(by_domain)
}

impl std::fmt::Display for QueueId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A node's hold on a queue entry for one delivery attempt (`QueueStore::lease`): the
/// entry's id and a token the node's status writes must show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub id: QueueId,
    pub token: i64,
}

/// A message waiting for one domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub id: QueueId,
    pub blob: BlobId,
    /// The envelope sender (reverse-path); empty for a bounce, which never bounces again.
    pub sender: String,
    pub domain: String,
    pub recipients: Vec<String>,
    pub created: Millis,
    pub attempts: u32,
    pub next_attempt: Millis,
    /// Why the last attempt failed, for admins and for the bounce.
    pub last_error: Option<String>,
    /// Why the last attempt failed for each recipient, in the order of `recipients` (empty
    /// before the first attempt): several recipients of one domain may be deferred for
    /// different reasons. Late in the record, so that older entries decode (`decode_entry`).
    pub reasons: Vec<String>,
    /// What the sender asked to be told (RFC 3461), for these recipients. Last in the record.
    pub dsn: DsnRequest,
}

/// The fields of every layout of an entry, in their order: an older layout is these, then
/// what it had of the later fields (postcard writes a struct as its fields in a row, so a
/// tuple of this and the rest reads the same bytes).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct Common {
    id: QueueId,
    blob: BlobId,
    sender: String,
    domain: String,
    recipients: Vec<String>,
    created: Millis,
    attempts: u32,
    next_attempt: Millis,
    last_error: Option<String>,
}

impl Common {
    fn with(self, reasons: Vec<String>) -> QueueEntry {
        QueueEntry {
            id: self.id,
            blob: self.blob,
            sender: self.sender,
            domain: self.domain,
            recipients: self.recipients,
            created: self.created,
            attempts: self.attempts,
            next_attempt: self.next_attempt,
            last_error: self.last_error,
            reasons,
            dsn: DsnRequest::default(),
        }
    }
}

/// An entry of this layout, of the one before `dsn`, or of the one before `reasons`.
fn decode_entry(bytes: &[u8]) -> StoreResult<QueueEntry> {
    let what = "queue entry";
    let before_dsn = |(common, reasons): (Common, Vec<String>)| common.with(reasons);
    codec::decode_either(bytes, what, before_dsn).or_else(|e| {
        let before_reasons = codec::decode::<Common>(bytes, what);
        before_reasons
            .map(|common| common.with(Vec::new()))
            .map_err(|_| e)
    })
}

impl QueueEntry {
    /// Whether the entry waits for a release rather than for a time.
    pub fn is_held(&self) -> bool {
        self.next_attempt == HELD
    }
}

impl QueueStore for SledStore {
    fn enqueue(
        &self,
        raw: &[u8],
        sender: &str,
        recipients: &[String],
        dsn: &DsnRequest,
        hold: Hold,
    ) -> StoreResult<Vec<QueueEntry>> {
        let by_domain = by_domain(recipients)?;
        let removals = self.inner.blobs.removals();
        let blob = self.inner.blobs.write(raw)?;
        let _guard = self.lock();
        if self.inner.blobs.removals() != removals {
            self.inner.blobs.ensure(&blob, raw, None)?;
        }
        let now = now_millis();
        let mut changes = Changes::default();
        let mut entries = Vec::new();
        for (domain, recipients) in by_domain {
            let entry = QueueEntry {
                id: QueueId(self.next_id()?),
                blob,
                sender: sender.to_string(),
                domain,
                dsn: dsn.only_for(&recipients),
                recipients,
                created: now,
                attempts: 0,
                next_attempt: if hold == Hold::No { now } else { HELD },
                last_error: None,
                reasons: Vec::new(),
            };
            changes.put_mail(key(codec::QUEUE, &[entry.id.0]), &entry)?;
            entries.push(entry);
        }
        let refs = self.blob_refs(&blob)? + entries.len() as u64;
        changes.put_mail_raw(
            blob_key(codec::BLOB_REFS, &blob),
            refs.to_be_bytes().to_vec(),
        );
        self.commit(changes)?;
        Ok(entries)
    }

    fn release(&self, ids: &[QueueId]) -> StoreResult<()> {
        let _guard = self.lock();
        let mut changes = Changes::default();
        for id in ids {
            let k = key(codec::QUEUE, &[id.0]);
            let entry = self.inner.mail.get(&k)?;
            let mut entry: QueueEntry = match entry {
                Some(v) => decode_entry(&v)?,
                None => return Err(StoreError::not_found(format!("queue entry {id}"))),
            };
            if !entry.is_held() {
                return Err(StoreError::Corrupt(format!(
                    "queue entry {id} was not held"
                )));
            }
            entry.next_attempt = now_millis();
            changes.put_mail(k, &entry)?;
        }
        self.commit(changes)
    }

    fn drop_held(&self, before: Millis) -> StoreResult<usize> {
        let held: Vec<QueueId> = self
            .queue()?
            .into_iter()
            .filter(|e| e.is_held() && e.created < before)
            .map(|e| e.id)
            .collect();
        for id in &held {
            self.dequeue(*id)?;
        }
        Ok(held.len())
    }

    fn queue(&self) -> StoreResult<Vec<QueueEntry>> {
        self.inner
            .mail
            .scan_prefix([codec::QUEUE])
            .map(|item| decode_entry(&item?.1))
            .collect()
    }

    /// One node: the outbound loop's claims keep two attempts of one entry apart; the lease
    /// only checks that the entry is there to attempt.
    fn lease(&self, id: QueueId, _until: Millis) -> StoreResult<Option<Lease>> {
        let there = self.inner.mail.get(key(codec::QUEUE, &[id.0]))?;
        let due = match there {
            Some(v) => decode_entry(&v)?.next_attempt <= now_millis(),
            None => false,
        };
        Ok(due.then_some(Lease { id, token: 0 }))
    }

    fn renew_lease(&self, _lease: &Lease, _until: Millis) -> StoreResult<bool> {
        Ok(true)
    }

    fn defer(&self, entry: &QueueEntry, _lease: &Lease) -> StoreResult<bool> {
        self.rewrite_entry(entry)
    }

    fn record_progress(&self, entry: &QueueEntry, _lease: &Lease) -> StoreResult<bool> {
        self.rewrite_entry(entry)
    }

    fn finish(&self, lease: &Lease) -> StoreResult<bool> {
        self.dequeue(lease.id)?;
        Ok(true)
    }

    fn dequeue(&self, id: QueueId) -> StoreResult<()> {
        let guard = self.lock();
        let k = key(codec::QUEUE, &[id.0]);
        let Some(v) = self.inner.mail.get(&k)? else {
            return Ok(());
        };
        let entry: QueueEntry = decode_entry(&v)?;
        let mut changes = Changes::default();
        changes.del_mail(k);
        self.drop_blob_reference(&mut changes, &entry.blob)?;
        self.commit(changes)?;
        drop(guard);
        Ok(())
    }
}

impl SledStore {
    /// Writes `entry` over the one queued under its id; `false` if that one is gone. One
    /// node, so no lease to check.
    fn rewrite_entry(&self, entry: &QueueEntry) -> StoreResult<bool> {
        let _guard = self.lock();
        let k = key(codec::QUEUE, &[entry.id.0]);
        if !self.inner.mail.contains_key(&k)? {
            return Ok(false);
        }
        let mut changes = Changes::default();
        changes.put_mail(k, entry)?;
        self.commit(changes)?;
        Ok(true)
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    /// Entries written before `reasons` and before `dsn` existed decode, with none.
    #[test]
    fn entries_of_every_layout_decode() {
        let common = |id| Common {
            id: QueueId(id),
            blob: BlobId::of(b"x"),
            sender: "s@a.example".into(),
            domain: "b.example".into(),
            recipients: vec!["r@b.example".into()],
            created: 1,
            attempts: 2,
            next_attempt: 3,
            last_error: Some("451 later".into()),
        };
        let old = codec::encode(&common(7)).unwrap();
        let entry = decode_entry(&old).unwrap();
        assert_eq!(entry.recipients, ["r@b.example"]);
        assert_eq!(entry.last_error.as_deref(), Some("451 later"));
        assert!(entry.reasons.is_empty());
        assert!(entry.dsn.is_empty());

        let before_dsn = codec::encode(&(common(8), vec!["451 later"])).unwrap();
        let entry = decode_entry(&before_dsn).unwrap();
        assert_eq!(entry.reasons, ["451 later"]);
        assert!(entry.dsn.is_empty());

        let mut now = entry.clone();
        now.dsn = DsnRequest {
            ret: Some(DsnReturn::Full),
            envid: Some("e1".into()),
            recipients: vec![RecipientDsn {
                address: "r@b.example".into(),
                notify: Some(Notify::default()),
                orcpt: None,
            }],
        };
        assert_eq!(decode_entry(&codec::encode(&now).unwrap()).unwrap(), now);
    }
}
