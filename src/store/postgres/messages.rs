//! Messages on PostgreSQL: stored, read, flagged and expunged, each change one transaction
//! holding its folder's row, so that UIDs and MODSEQs are given in commit order (the schema's
//! note on `folders`). The rules are sled's (`store::folders`, `store::flags`,
//! `store::expunges`); references on message bytes are taken and dropped in the same
//! transaction as the records (`blobs`).

use super::PgStore;
use super::blobs;
use super::folders::find_folder;
use super::rows::Prepared;
use super::rows::{from_id, hash32, id};
use crate::mail::MessageSummary;
use crate::model::*;
use crate::store::codec;
use crate::store::error::{StoreError, StoreResult};
use crate::store::expunges::REMEMBERED;
use crate::store::hub::FolderEvent;
use crate::store::interface::{ExpungeStore, FlagStore, ServerStore};
use crate::store::{
    AppendMessage, BlobId, ExpungedSince, FlagChange, FlagOutcome, Flags, Import, MessageRecord,
    SeenFlags,
};
use deadpool_postgres::GenericClient;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tokio_postgres::Row;

const RECORD_COLUMNS: &str = "m.uid, m.flags, m.keywords, m.internal_date, m.size, m.modseq, \
                              m.blob, m.saved";

/// One message to store: the folders it goes to, its bytes, and what came with it.
pub type NewMessage<'a> = (&'a [(MailboxId, FolderId)], &'a [u8], AppendMessage);

impl PgStore {
    /// Stores messages, each in its folders, all in one transaction (with `import`'s progress,
    /// when given: both or neither); their records in order.
    pub(super) fn store_messages(
        &self,
        items: &[NewMessage<'_>],
        import: Option<&Import>,
    ) -> StoreResult<Vec<MessageRecord>> {
        let now = now_millis();
        // Parsing is the slow part: done before the transaction, for bytes not yet stored.
        let mut summaries = Vec::with_capacity(items.len());
        let mut ids = Vec::with_capacity(items.len());
        for (_, raw, _) in items {
            let blob = BlobId::of(raw);
            ids.push(blob);
            // A summary this node holds is stored too: no need to ask.
            let known = self.inner.summaries.contains_key(&blob)
                || self
                    .query_opt(
                        "SELECT 1 FROM blobs WHERE id = $1 AND summary IS NOT NULL",
                        &[&blob.0.as_slice()],
                    )?
                    .is_some();
            let summary = match known {
                true => None,
                false => Some(codec::encode(&MessageSummary::parse(raw))?),
            };
            summaries.push(summary);
        }
        let records = self.transaction(async |tx| {
            lock_targets(tx, items).await?;
            if let Some(import) = import {
                super::lifecycle::write_import(tx, import, Some(self.inner.home)).await?;
            }
            let mut records = Vec::new();
            for (((targets, raw, meta), summary), blob) in items.iter().zip(&summaries).zip(&ids) {
                let blob = blobs::hold(tx, *blob, raw, targets.len() as u64).await?;
                if let Some(summary) = summary {
                    tx.execute_cached(
                        "UPDATE blobs SET summary = $2 WHERE id = $1 AND summary IS NULL",
                        &[&blob.0.as_slice(), summary],
                    )
                    .await?;
                }
                let meta = AppendMessage {
                    internal_date: Some(meta.internal_date.unwrap_or(now)),
                    ..meta.clone()
                };
                for &target in targets.iter() {
                    let record = insert_record(tx, target, raw.len() as u64, blob, &meta).await?;
                    records.push((target, record));
                }
            }
            for (target, record) in &records {
                let event = FolderEvent::Appended { uid: record.uid };
                self.tell_folder(tx, *target, vec![event]).await?;
            }
            Ok(records)
        })?;
        // Clients fetch new mail as it arrives: its bytes are at hand.
        for ((_, raw, _), blob) in items.iter().zip(ids) {
            if fits_body_cache(raw.len()) {
                self.keep_body(blob, &bytes::Bytes::copy_from_slice(raw));
            }
        }
        for ((mailbox, folder), record) in &records {
            let event = FolderEvent::Appended { uid: record.uid };
            self.hub().publish_folder(*mailbox, *folder, event);
        }
        Ok(records.into_iter().map(|(_, r)| r).collect())
    }

    /// The messages of a folder with UIDs in `first..=last`, in UID order.
    pub(super) fn records(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        first: u32,
        last: u32,
    ) -> StoreResult<Vec<MessageRecord>> {
        let rows = self.query(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM messages m JOIN folders f ON f.id = m.folder \
                 WHERE m.folder = $1 AND f.mailbox = $2 AND m.uid BETWEEN $3 AND $4 \
                 ORDER BY m.uid"
            ),
            &[
                &id(folder.0)?,
                &id(mailbox.0)?,
                &i64::from(first),
                &i64::from(last),
            ],
        )?;
        rows.iter().map(record).collect()
    }

    /// Removes those of `uids` still there (and, with `only_deleted`, still flagged
    /// `\Deleted` when the folder's row is held); returns them, in the order asked.
    pub(super) fn expunge_where(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        uids: &[u32],
        only_deleted: bool,
    ) -> StoreResult<Vec<u32>> {
        let wanted: Vec<i64> = uids.iter().map(|u| i64::from(*u)).collect();
        let gone = self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_mailboxes(&tx, &[mailbox]).await?;
            find_folder(&tx, mailbox, folder, "FOR UPDATE")
                .await?
                .ok_or_else(|| StoreError::not_found(format!("folder {folder}")))?;
            let rows = tx
                .query_cached(
                    "DELETE FROM messages WHERE folder = $1 AND uid = ANY($2) \
                     AND (NOT $3 OR flags & $4 <> 0) RETURNING blob, size, uid",
                    &[
                        &id(folder.0)?,
                        &wanted,
                        &only_deleted,
                        &i16::from(Flags::DELETED.0),
                    ],
                )
                .await?;
            if rows.is_empty() {
                return Ok(BTreeSet::new());
            }
            release_messages(&tx, mailbox, &rows).await?;
            let gone = rows
                .iter()
                .map(|row| uid(row.try_get(2)?))
                .collect::<StoreResult<BTreeSet<u32>>>()?;
            let freed = blob_ids(&rows)?;
            log_expunges(&tx, folder, &gone).await?;
            let event = FolderEvent::Expunged {
                uids: gone.iter().copied().collect(),
            };
            self.tell_folder(&tx, (mailbox, folder), vec![event])
                .await?;
            tx.commit().await?;
            self.forget_bodies(freed);
            Ok(gone)
        })?;
        let mut seen = BTreeSet::new();
        let ordered: Vec<u32> = uids
            .iter()
            .copied()
            .filter(|u| gone.contains(u) && seen.insert(*u))
            .collect();
        if !ordered.is_empty() {
            let event = FolderEvent::Expunged {
                uids: ordered.clone(),
            };
            self.hub().publish_folder(mailbox, folder, event);
        }
        Ok(ordered)
    }

    pub(super) fn read_blob(&self, blob: &BlobId) -> StoreResult<bytes::Bytes> {
        if let Some(body) = self.inner.bodies.get(blob) {
            return Ok(body);
        }
        let body = self.block(async { blobs::read(&self.client().await?, blob).await })?;
        self.keep_body(*blob, &body);
        Ok(body)
    }

    fn keep_body(&self, blob: BlobId, body: &bytes::Bytes) {
        if fits_body_cache(body.len()) {
            self.inner.bodies.insert(blob, body.clone());
        }
    }

    /// What delivery parsed of the message; made again from the bytes if missing.
    pub(super) fn blob_summary(&self, blob: &BlobId) -> StoreResult<MessageSummary> {
        if let Some(summary) = self.inner.summaries.get(blob) {
            return Ok(summary);
        }
        let summary = self.stored_summary(blob)?;
        self.inner.summaries.insert(*blob, summary.clone());
        Ok(summary)
    }

    fn stored_summary(&self, blob: &BlobId) -> StoreResult<MessageSummary> {
        let row = self
            .query_opt(
                "SELECT summary FROM blobs WHERE id = $1",
                &[&blob.0.as_slice()],
            )?
            .ok_or_else(|| StoreError::not_found(format!("summary of {blob:?}")))?;
        if let Some(bytes) = row.try_get::<_, Option<&[u8]>>(0)?
            && let Ok(summary) = codec::decode(bytes, "summary")
        {
            return Ok(summary);
        }
        // A summary is a cache of its bytes: one of another layout is made again.
        let summary = MessageSummary::parse(&self.read_blob(blob)?);
        self.execute(
            "UPDATE blobs SET summary = $2 WHERE id = $1",
            &[&blob.0.as_slice(), &codec::encode(&summary)?],
        )?;
        Ok(summary)
    }
}

impl FlagStore for PgStore {
    fn change_flags(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        uids: &[u32],
        change: FlagChange<'_>,
    ) -> StoreResult<FlagOutcome> {
        let (outcome, changed, modseq) = self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let f = find_folder(&tx, mailbox, folder, "FOR UPDATE")
                .await?
                .ok_or_else(|| StoreError::not_found(format!("folder {folder}")))?;
            let modseq = f.highestmodseq + 1;
            let wanted: Vec<i64> = uids.iter().map(|u| i64::from(*u)).collect();
            let current: HashMap<u32, MessageRecord> = tx
                .query_cached(
                    &format!(
                        "SELECT {RECORD_COLUMNS} FROM messages m \
                         WHERE m.folder = $1 AND m.uid = ANY($2)"
                    ),
                    &[&id(folder.0)?, &wanted],
                )
                .await?
                .iter()
                .map(|row| record(row).map(|r| (r.uid, r)))
                .collect::<StoreResult<_>>()?;
            let seen_by_user: Option<BTreeSet<u32>> = match change.seen_user {
                Some(user) => Some(user_seen_among(&tx, folder, user, &wanted).await?),
                None => None,
            };
            let mut outcome = FlagOutcome::default();
            let mut changed = Vec::new();
            for &uid in uids {
                let Some(mut record) = current.get(&uid).cloned() else {
                    continue;
                };
                if change.unchanged_since.is_some_and(|n| record.modseq > n) {
                    outcome.modified.push(uid);
                    continue;
                }
                let user_seen = seen_by_user.as_ref().map(|s| s.contains(&uid));
                let before = SeenFlags {
                    flags: record.flags.with(
                        Flags::SEEN,
                        user_seen.unwrap_or(record.flags.contains(Flags::SEEN)),
                    ),
                    keywords: record.keywords.clone(),
                };
                let after = (change.apply)(&before);
                if after != before && !changed.contains(&uid) {
                    let seen = after.flags.contains(Flags::SEEN);
                    if let (Some(user), Some(was)) = (change.seen_user, user_seen) {
                        if was != seen {
                            set_user_seen(&tx, folder, uid, user, seen).await?;
                        }
                        // The shared \Seen stays as the others left it.
                        record.flags = after
                            .flags
                            .with(Flags::SEEN, record.flags.contains(Flags::SEEN));
                    } else {
                        record.flags = after.flags;
                    }
                    record.keywords = after.keywords.clone();
                    record.modseq = modseq;
                    tx.execute_cached(
                        "UPDATE messages SET flags = $3, keywords = $4, modseq = $5 \
                         WHERE folder = $1 AND uid = $2",
                        &[
                            &id(folder.0)?,
                            &i64::from(uid),
                            &i16::from(record.flags.0),
                            &record.keywords,
                            &id(modseq)?,
                        ],
                    )
                    .await?;
                    changed.push(uid);
                }
                outcome.messages.push((record, after.flags));
            }
            if !changed.is_empty() {
                tx.execute_cached(
                    "UPDATE folders SET highestmodseq = $2 WHERE id = $1",
                    &[&id(folder.0)?, &id(modseq)?],
                )
                .await?;
                let events = changed
                    .iter()
                    .map(|&uid| FolderEvent::FlagsChanged { uid, modseq })
                    .collect();
                self.tell_folder(&tx, (mailbox, folder), events).await?;
                tx.commit().await?;
            }
            Ok((outcome, changed, modseq))
        })?;
        for uid in changed {
            let event = FolderEvent::FlagsChanged { uid, modseq };
            self.hub().publish_folder(mailbox, folder, event);
        }
        Ok(outcome)
    }
}

impl ExpungeStore for PgStore {
    fn expunged_since(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        modseq: u64,
    ) -> StoreResult<ExpungedSince> {
        let forgotten: i64 = self
            .query_opt(
                "SELECT expunges_forgotten_through FROM folders WHERE id = $1 AND mailbox = $2",
                &[&id(folder.0)?, &id(mailbox.0)?],
            )?
            .map(|row| row.try_get(0))
            .transpose()?
            .unwrap_or(0);
        if modseq < forgotten.max(0) as u64 {
            return Ok(ExpungedSince::Forgotten);
        }
        let rows = self.query(
            "SELECT e.uid FROM expunges e JOIN folders f ON f.id = e.folder \
             WHERE e.folder = $1 AND f.mailbox = $2 AND e.modseq > $3 ORDER BY e.modseq, e.uid",
            &[&id(folder.0)?, &id(mailbox.0)?, &id(modseq)?],
        )?;
        let uids = rows
            .iter()
            .map(|row| uid(row.try_get(0)?))
            .collect::<StoreResult<_>>()?;
        Ok(ExpungedSince::Exactly(uids))
    }
}

/// Holds `mailboxes`' rows, in id order. Every change that holds a mailbox's row and a
/// folder's takes the mailbox's first (deliveries, expunges, COPY and MOVE, deletions), so
/// that no two wait on each other in a circle.
pub(super) async fn lock_mailboxes(
    client: &impl GenericClient,
    mailboxes: &[MailboxId],
) -> StoreResult<()> {
    let mut ids = mailboxes
        .iter()
        .map(|m| id(m.0))
        .collect::<StoreResult<Vec<i64>>>()?;
    ids.sort_unstable();
    client
        .execute_cached(
            "SELECT 1 FROM mailboxes WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            &[&ids],
        )
        .await?;
    Ok(())
}

/// Holds the rows of every mailbox and folder `items` go to, mailboxes first, each kind in
/// id order (see `lock_mailboxes`).
async fn lock_targets(client: &impl GenericClient, items: &[NewMessage<'_>]) -> StoreResult<()> {
    let mut mailboxes = Vec::new();
    let mut folders = BTreeSet::new();
    for (targets, _, _) in items {
        for (mailbox, folder) in targets.iter() {
            mailboxes.push(*mailbox);
            folders.insert(id(folder.0)?);
        }
    }
    lock_mailboxes(client, &mailboxes).await?;
    let folders: Vec<i64> = folders.into_iter().collect();
    client
        .execute_cached(
            "SELECT 1 FROM folders WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            &[&folders],
        )
        .await?;
    Ok(())
}

/// Writes one message's record in one folder, with its usage and its user's `\Seen`.
async fn insert_record(
    client: &impl GenericClient,
    (mailbox, folder): (MailboxId, FolderId),
    size: u64,
    blob: BlobId,
    meta: &AppendMessage,
) -> StoreResult<MessageRecord> {
    add_usage(client, mailbox, size).await?;
    let row = client
        .query_opt_cached(
            "UPDATE folders SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 \
             WHERE id = $1 AND mailbox = $2 RETURNING uidnext - 1, highestmodseq",
            &[&id(folder.0)?, &id(mailbox.0)?],
        )
        .await?
        .ok_or_else(|| StoreError::not_found(format!("folder {folder}")))?;
    let (uid_value, modseq): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    let seen_by = meta.seen_by.filter(|_| meta.flags.contains(Flags::SEEN));
    let record = MessageRecord {
        uid: uid(uid_value)?,
        flags: match seen_by {
            Some(_) => meta.flags.with(Flags::SEEN, false),
            None => meta.flags,
        },
        keywords: meta.keywords.clone(),
        internal_date: meta.internal_date.unwrap_or_default(),
        size,
        modseq: modseq.max(0) as u64,
        blob,
        saved: now_millis(),
    };
    write_record(client, folder, &record).await?;
    if let Some(user) = seen_by {
        set_user_seen(client, folder, record.uid, user, true).await?;
    }
    Ok(record)
}

/// Writes `record` into `folder` (whose row the caller holds and has moved on).
pub(super) async fn write_record(
    client: &impl GenericClient,
    folder: FolderId,
    record: &MessageRecord,
) -> StoreResult<()> {
    client
        .execute_cached(
            "INSERT INTO messages (folder, uid, flags, keywords, internal_date, size, modseq, \
             blob, saved) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &id(folder.0)?,
                &i64::from(record.uid),
                &i16::from(record.flags.0),
                &record.keywords,
                &record.internal_date,
                &id(record.size)?,
                &id(record.modseq)?,
                &record.blob.0.as_slice(),
                &record.saved,
            ],
        )
        .await?;
    Ok(())
}

/// Adds `bytes` to a mailbox's usage, refusing past its quota (0: none).
pub(super) async fn add_usage(
    client: &impl GenericClient,
    mailbox: MailboxId,
    bytes: u64,
) -> StoreResult<()> {
    let row = client
        .query_opt_cached(
            "UPDATE mailboxes SET usage_bytes = usage_bytes + $2 WHERE id = $1 \
             RETURNING usage_bytes, quota_bytes",
            &[&id(mailbox.0)?, &id(bytes)?],
        )
        .await?
        .ok_or_else(|| StoreError::not_found(format!("mailbox {mailbox}")))?;
    let (usage, quota): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    if quota > 0 && usage > quota {
        return Err(StoreError::OverQuota {
            quota: quota as u64,
        });
    }
    Ok(())
}

/// After records of `mailbox` were deleted (rows of `blob, size`): their usage goes, and
/// their references on their bytes.
pub(super) async fn release_messages(
    client: &impl GenericClient,
    mailbox: MailboxId,
    gone: &[Row],
) -> StoreResult<()> {
    let mut bytes: i64 = 0;
    let mut references: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    for row in gone {
        *references
            .entry(hash32(row.try_get(0)?, "message blob")?)
            .or_default() += 1;
        bytes += row.try_get::<_, i64>(1)?;
    }
    client
        .execute_cached(
            "UPDATE mailboxes SET usage_bytes = greatest(usage_bytes - $2, 0) WHERE id = $1",
            &[&id(mailbox.0)?, &bytes],
        )
        .await?;
    for (blob, n) in references {
        blobs::release_n(client, &BlobId(blob), n).await?;
    }
    Ok(())
}

/// Records `uids` as expunged from `folder` at its next MODSEQ (the caller holds its row),
/// forgetting the oldest whole MODSEQs once the folder keeps more than `REMEMBERED`.
pub(super) async fn log_expunges(
    client: &impl GenericClient,
    folder: FolderId,
    uids: &BTreeSet<u32>,
) -> StoreResult<()> {
    let folder_id = id(folder.0)?;
    let row = client
        .query_one_cached(
            "UPDATE folders SET highestmodseq = highestmodseq + 1 WHERE id = $1 \
             RETURNING highestmodseq, expunges_forgotten_through",
            &[&folder_id],
        )
        .await?;
    let (modseq, forgotten): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    let uids: Vec<i64> = uids.iter().map(|u| i64::from(*u)).collect();
    client
        .execute_cached(
            "INSERT INTO expunges (folder, uid, modseq) SELECT $1, u, $3 FROM unnest($2::bigint[]) u",
            &[&folder_id, &uids, &modseq],
        )
        .await?;
    let counts = client
        .query_cached(
            "SELECT modseq, count(*) FROM expunges WHERE folder = $1 GROUP BY modseq ORDER BY modseq",
            &[&folder_id],
        )
        .await?;
    let kept: i64 = counts
        .iter()
        .map(|row| row.try_get::<_, i64>(1))
        .sum::<Result<i64, _>>()?;
    if kept as u64 <= REMEMBERED {
        return Ok(());
    }
    let mut excess = kept as u64 - REMEMBERED / 2;
    let mut through = forgotten;
    for row in &counts {
        if excess == 0 {
            break;
        }
        through = row.try_get(0)?;
        excess = excess.saturating_sub(row.try_get::<_, i64>(1)? as u64);
    }
    client
        .execute_cached(
            "DELETE FROM expunges WHERE folder = $1 AND modseq <= $2",
            &[&folder_id, &through],
        )
        .await?;
    client
        .execute_cached(
            "UPDATE folders SET expunges_forgotten_through = $2 WHERE id = $1",
            &[&folder_id, &through],
        )
        .await?;
    Ok(())
}

async fn user_seen_among(
    client: &impl GenericClient,
    folder: FolderId,
    user: UserId,
    uids: &[i64],
) -> StoreResult<BTreeSet<u32>> {
    let rows = client
        .query_cached(
            "SELECT uid FROM user_seen WHERE folder = $1 AND user_id = $2 AND uid = ANY($3)",
            &[&id(folder.0)?, &id(user.0)?, &uids],
        )
        .await?;
    rows.iter().map(|row| uid(row.try_get(0)?)).collect()
}

pub(super) async fn set_user_seen(
    client: &impl GenericClient,
    folder: FolderId,
    message: u32,
    user: UserId,
    seen: bool,
) -> StoreResult<()> {
    let sql = match seen {
        true => {
            "INSERT INTO user_seen (folder, uid, user_id) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING"
        }
        false => "DELETE FROM user_seen WHERE folder = $1 AND uid = $2 AND user_id = $3",
    };
    client
        .execute_cached(sql, &[&id(folder.0)?, &i64::from(message), &id(user.0)?])
        .await?;
    Ok(())
}

/// A record from `RECORD_COLUMNS`.
pub(super) fn record(row: &Row) -> StoreResult<MessageRecord> {
    let flags: i16 = row.try_get(1)?;
    let size: i64 = row.try_get(4)?;
    let modseq: i64 = row.try_get(5)?;
    Ok(MessageRecord {
        uid: uid(row.try_get(0)?)?,
        flags: Flags(
            u8::try_from(flags).map_err(|_| StoreError::Corrupt(format!("flags {flags}")))?,
        ),
        keywords: row.try_get(2)?,
        internal_date: row.try_get(3)?,
        size: from_id(size, "message size")?,
        modseq: from_id(modseq, "modseq")?,
        blob: BlobId(hash32(row.try_get(6)?, "message blob")?),
        saved: row.try_get(7)?,
    })
}

/// The message bytes named in the first column of `rows`.
pub(super) fn blob_ids(rows: &[Row]) -> StoreResult<Vec<BlobId>> {
    rows.iter()
        .map(|row| Ok(BlobId(hash32(row.try_get(0)?, "message blob")?)))
        .collect()
}

/// A UID column's value.
pub(super) fn uid(value: i64) -> StoreResult<u32> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("uid {value}")))
}

/// Whether a body of `len` bytes is kept in the node's memory: none over a sixteenth of it.
fn fits_body_cache(len: usize) -> bool {
    len as u64 <= super::BODY_CACHE_BYTES / 16
}
