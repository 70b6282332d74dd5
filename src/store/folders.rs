//! The mail side: folders, messages, per-user `\Seen`, subscriptions and quota usage.

use super::blobs::BlobId;
use super::codec::{self, decode, id_at, key, key_str};
use super::error::{StoreError, StoreResult};
use super::hub::FolderEvent;
use super::interface::*;
use super::spool::{Loaded, SpooledFile};
use super::{Changes, SledStore};
use crate::mail::MessageSummary;
use crate::model::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One message to store, in each of `targets`.
pub(super) struct Delivery<'a> {
    targets: &'a [(MailboxId, FolderId)],
    raw: &'a [u8],
    spooled: Option<&'a SpooledFile>,
    meta: AppendMessage,
}

impl<'a> Delivery<'a> {
    /// The internal date, when not given, is now: the same in every target.
    pub(super) fn new(
        targets: &'a [(MailboxId, FolderId)],
        raw: &'a [u8],
        spooled: Option<&'a SpooledFile>,
        mut meta: AppendMessage,
    ) -> Delivery<'a> {
        meta.internal_date = Some(meta.internal_date.unwrap_or_else(now_millis));
        Delivery {
            targets,
            raw,
            spooled,
            meta,
        }
    }
}

/// The hierarchy separator of folder names.
pub const SEPARATOR: char = '/';

/// RFC 6154 special-use attributes of the standard folders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpecialUse {
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
}

impl SpecialUse {
    /// The attribute as LIST shows it.
    pub fn attribute(self) -> &'static str {
        match self {
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Archive => "\\Archive",
        }
    }
}

/// The folders every new mailbox starts with (ARCHITECTURE.md §2).
pub const STANDARD_FOLDERS: [(&str, Option<SpecialUse>); 6] = [
    ("INBOX", None),
    ("Sent", Some(SpecialUse::Sent)),
    ("Drafts", Some(SpecialUse::Drafts)),
    ("Trash", Some(SpecialUse::Trash)),
    ("Junk", Some(SpecialUse::Junk)),
    ("Archive", Some(SpecialUse::Archive)),
];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Folder {
    pub id: FolderId,
    pub mailbox: MailboxId,
    pub name: String,
    pub special_use: Option<SpecialUse>,
    /// RFC 3501 §2.3.1.1: never reused for a folder of the same name.
    pub uidvalidity: u32,
    pub uidnext: u32,
    /// RFC 7162: the MODSEQ of the last change in this folder.
    pub highestmodseq: u64,
    /// No longer read: subscriptions are kept by name (`Store::subscriptions`). Kept so that
    /// records written before still decode.
    pub subscribed: bool,
}

/// Whose subscriptions: the mailbox's own login, or a user's on that mailbox (as herself or
/// as its delegate: the same list either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscriber {
    MailboxLogin,
    User(UserId),
}

impl Subscriber {
    /// Ids start at 1: 0 stands for the mailbox's own login.
    pub(super) fn id(self) -> u64 {
        match self {
            Subscriber::MailboxLogin => 0,
            Subscriber::User(user) => user.0,
        }
    }
}

/// The system flags of RFC 3501 §2.3.2 (`\Recent` is per session, not stored).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Flags(pub u8);

impl Flags {
    pub const SEEN: Flags = Flags(1);
    pub const ANSWERED: Flags = Flags(2);
    pub const FLAGGED: Flags = Flags(4);
    pub const DELETED: Flags = Flags(8);
    pub const DRAFT: Flags = Flags(16);

    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn with(self, other: Flags, on: bool) -> Flags {
        if on {
            Flags(self.0 | other.0)
        } else {
            Flags(self.0 & !other.0)
        }
    }
}

/// One message in one folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub uid: u32,
    pub flags: Flags,
    pub keywords: Vec<String>,
    pub internal_date: Millis,
    pub size: u64,
    pub modseq: u64,
    pub blob: BlobId,
    /// RFC 8514: when the message was saved in this folder (delivered, appended, copied or
    /// moved here). Last, so that a record written before it existed still decodes
    /// (`decode_record`).
    pub saved: Millis,
}

/// A message record as written before `saved` existed.
#[derive(Deserialize)]
struct MessageRecordV1 {
    uid: u32,
    flags: Flags,
    keywords: Vec<String>,
    internal_date: Millis,
    size: u64,
    modseq: u64,
    blob: BlobId,
}

/// Decodes a message record, of this layout or the one before `saved` (whose save date is
/// taken to be its internal date, the best there is: RFC 8514 §3 lets a server choose).
fn decode_record(bytes: &[u8]) -> StoreResult<MessageRecord> {
    codec::decode_either(bytes, "message", |old: MessageRecordV1| MessageRecord {
        uid: old.uid,
        flags: old.flags,
        keywords: old.keywords,
        internal_date: old.internal_date,
        size: old.size,
        modseq: old.modseq,
        blob: old.blob,
        saved: old.internal_date,
    })
}

/// What APPEND (or delivery) gives besides the bytes.
#[derive(Clone, Debug, Default)]
pub struct AppendMessage {
    pub flags: Flags,
    pub keywords: Vec<String>,
    /// `None`: now.
    pub internal_date: Option<Millis>,
    /// In a mailbox that keeps `\Seen` per user, the user whose own `\Seen` the flags carry.
    pub seen_by: Option<UserId>,
}

impl FolderStore for SledStore {
    fn create_folder(
        &self,
        mailbox: MailboxId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> StoreResult<Folder> {
        let name = valid_folder_name(name)?;
        let _guard = self.lock();
        self.require_mailbox(mailbox)?;
        if self.folder_id(mailbox, &name)?.is_some() {
            return Err(StoreError::FolderExists(name));
        }
        let mut changes = Changes::default();
        let folder = self.new_folder_changes(&mut changes, mailbox, &name, special_use)?;
        self.commit(changes)?;
        Ok(folder)
    }

    fn folder(&self, mailbox: MailboxId, id: FolderId) -> StoreResult<Option<Folder>> {
        self.inner
            .mail
            .get(key(codec::FOLDER, &[mailbox.0, id.0]))?
            .map(|v| decode(&v, "folder"))
            .transpose()
    }

    fn folder_by_name(&self, mailbox: MailboxId, name: &str) -> StoreResult<Option<Folder>> {
        match self.folder_id(mailbox, name)? {
            Some(id) => self.folder(mailbox, id),
            None => Ok(None),
        }
    }

    fn folders(&self, mailbox: MailboxId) -> StoreResult<Vec<Folder>> {
        self.inner
            .mail
            .scan_prefix(key(codec::FOLDER, &[mailbox.0]))
            .map(|item| decode(&item?.1, "folder"))
            .collect()
    }

    fn rename_folder(&self, mailbox: MailboxId, from: &str, to: &str) -> StoreResult<()> {
        let from = canonical_name(from);
        let to = valid_folder_name(to)?;
        let _guard = self.lock();
        if self.folder_id(mailbox, &to)?.is_some() {
            return Err(StoreError::FolderExists(to));
        }
        let prefix = format!("{from}{SEPARATOR}");
        let mut changes = Changes::default();
        let mut moved = Vec::new();
        for mut folder in self.folders(mailbox)? {
            let new_name = if folder.name == from {
                to.clone()
            } else if let Some(rest) = folder.name.strip_prefix(&prefix) {
                format!("{to}{SEPARATOR}{rest}")
            } else {
                continue;
            };
            // A child may not land on a folder that exists (`to/x` made before).
            if new_name != to && self.folder_id(mailbox, &new_name)?.is_some() {
                return Err(StoreError::FolderExists(new_name));
            }
            changes.del_mail(key_str(codec::FOLDER_NAME, &[mailbox.0], &folder.name));
            changes.put_mail(
                key_str(codec::FOLDER_NAME, &[mailbox.0], &new_name),
                &folder.id,
            )?;
            folder.name = new_name;
            changes.put_mail(key(codec::FOLDER, &[mailbox.0, folder.id.0]), &folder)?;
            moved.push(folder.id);
        }
        if moved.is_empty() {
            return Err(StoreError::not_found(format!("folder {from:?}")));
        }
        self.commit(changes)?;
        for id in moved {
            self.hub().publish_folder(mailbox, id, FolderEvent::Gone);
        }
        Ok(())
    }

    fn delete_folder(&self, mailbox: MailboxId, id: FolderId) -> StoreResult<()> {
        let guard = self.lock();
        let folder = self.require_folder(mailbox, id)?;
        let mut changes = Changes::default();
        changes.del_mail(key(codec::FOLDER, &[mailbox.0, id.0]));
        changes.del_mail(key_str(codec::FOLDER_NAME, &[mailbox.0], &folder.name));
        let mut bytes = 0;
        for record in self.messages(mailbox, id)? {
            bytes += record.size;
            self.unlink_message(&mut changes, mailbox, id, &record)?;
        }
        self.adjust_usage(&mut changes, mailbox, -(bytes as i128))?;
        self.tombstone_removal(&mut changes, mailbox, id)?;
        self.commit(changes)?;
        drop(guard);
        self.hub().publish_folder(mailbox, id, FolderEvent::Gone);
        Ok(())
    }

    fn append(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        raw: &[u8],
        meta: AppendMessage,
    ) -> StoreResult<MessageRecord> {
        let mut records = self.deliver(&[(mailbox, folder)], raw, meta)?;
        records
            .pop()
            .ok_or_else(|| StoreError::Corrupt("append stored nothing".into()))
    }

    fn deliver(
        &self,
        targets: &[(MailboxId, FolderId)],
        raw: &[u8],
        meta: AppendMessage,
    ) -> StoreResult<Vec<MessageRecord>> {
        self.deliver_body(targets, raw, None, meta)
    }

    fn deliver_loaded(
        &self,
        targets: &[(MailboxId, FolderId)],
        message: &Loaded,
        meta: AppendMessage,
    ) -> StoreResult<Vec<MessageRecord>> {
        self.deliver_body(targets, message.bytes(), message.spooled(), meta)
    }

    fn append_loaded(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        message: &Loaded,
        meta: AppendMessage,
    ) -> StoreResult<MessageRecord> {
        let mut records = self.deliver_loaded(&[(mailbox, folder)], message, meta)?;
        records
            .pop()
            .ok_or_else(|| StoreError::Corrupt("append stored nothing".into()))
    }

    fn append_all(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        messages: &[(&Loaded, AppendMessage)],
    ) -> StoreResult<Vec<MessageRecord>> {
        let targets = [(mailbox, folder)];
        let items: Vec<Delivery<'_>> = messages
            .iter()
            .map(|(m, meta)| Delivery::new(&targets, m.bytes(), m.spooled(), meta.clone()))
            .collect();
        self.deliver_all(&items, Changes::default())
    }

    fn messages(&self, mailbox: MailboxId, folder: FolderId) -> StoreResult<Vec<MessageRecord>> {
        self.inner
            .mail
            .scan_prefix(key(codec::MESSAGE, &[mailbox.0, folder.0]))
            .map(|item| decode_record(&item?.1))
            .collect()
    }

    fn messages_between(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        first: u32,
        last: u32,
    ) -> StoreResult<Vec<MessageRecord>> {
        let start = key(codec::MESSAGE, &[mailbox.0, folder.0, first as u64]);
        let end = key(codec::MESSAGE, &[mailbox.0, folder.0, last as u64]);
        self.inner
            .mail
            .range(start..=end)
            .map(|item| decode_record(&item?.1))
            .collect()
    }

    fn message(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        uid: u32,
    ) -> StoreResult<Option<MessageRecord>> {
        self.inner
            .mail
            .get(key(codec::MESSAGE, &[mailbox.0, folder.0, uid as u64]))?
            .map(|v| decode_record(&v))
            .transpose()
    }

    fn expunge(&self, mailbox: MailboxId, folder: FolderId, uids: &[u32]) -> StoreResult<Vec<u32>> {
        self.expunge_where(mailbox, folder, uids, |_| true)
    }

    fn expunge_deleted(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        uids: &[u32],
    ) -> StoreResult<Vec<u32>> {
        self.expunge_where(mailbox, folder, uids, |r| r.flags.contains(Flags::DELETED))
    }

    fn claim_recent(&self, mailbox: MailboxId, folder: FolderId, uidnext: u32) -> StoreResult<u32> {
        let k = key(codec::RECENT, &[mailbox.0, folder.0]);
        let mut old = 1;
        self.inner.mail.update_and_fetch(&k, |current| {
            old = current
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
                .unwrap_or(1);
            Some(old.max(uidnext).to_be_bytes().to_vec())
        })?;
        Ok(old)
    }

    fn recent_floor(&self, mailbox: MailboxId, folder: FolderId) -> StoreResult<u32> {
        Ok(self
            .inner
            .mail
            .get(key(codec::RECENT, &[mailbox.0, folder.0]))?
            .and_then(|b| <[u8; 4]>::try_from(b.as_ref()).ok())
            .map(u32::from_be_bytes)
            .unwrap_or(1))
    }

    fn sweep_freed_blobs(&self) -> StoreResult<usize> {
        if self.inner.mail.scan_prefix([codec::FREED]).next().is_none() {
            return Ok(0);
        }
        self.inner.db.flush()?;
        let _guard = self.lock();
        self.inner.db.flush()?;
        let mut changes = Changes::default();
        let mut removed = 0;
        for item in self.inner.mail.scan_prefix([codec::FREED]) {
            let (k, _) = item?;
            let blob = BlobId(
                k.get(1..)
                    .and_then(|id| <[u8; 32]>::try_from(id).ok())
                    .ok_or_else(|| StoreError::Corrupt("a freed blob's key".into()))?,
            );
            if self.blob_refs(&blob)? == 0 {
                self.inner.blobs.remove(&blob);
                removed += 1;
            }
            changes.del_mail(k.to_vec());
        }
        self.commit(changes)?;
        Ok(removed)
    }

    fn read_message(&self, blob: &BlobId) -> StoreResult<bytes::Bytes> {
        self.inner.blobs.read(blob)
    }

    fn read_message_range(
        &self,
        blob: &BlobId,
        range: std::ops::Range<u64>,
    ) -> StoreResult<bytes::Bytes> {
        self.inner.blobs.read_range(blob, range)
    }

    fn summary(&self, blob: &BlobId) -> StoreResult<MessageSummary> {
        let k = blob_key(codec::SUMMARY, blob);
        if let Some(v) = self.inner.mail.get(&k)? {
            return decode(&v, "summary");
        }
        // A summary is a cache of its blob: one an older version wrote in another layout is
        // made again. No blob: the message is gone.
        let raw = self
            .inner
            .blobs
            .read(blob)
            .map_err(|_| StoreError::not_found(format!("summary of {blob:?}")))?;
        let summary = MessageSummary::parse(&raw);
        let _guard = self.lock();
        // Not for a blob an expunge dropped meanwhile, whose summary went with it.
        if self.blob_refs(blob)? > 0 {
            let mut changes = Changes::default();
            changes.put_mail_raw(k, codec::encode(&summary)?);
            self.commit(changes)?;
        }
        Ok(summary)
    }

    fn usage(&self, mailbox: MailboxId) -> StoreResult<u64> {
        Ok(self
            .inner
            .mail
            .get(key(codec::USAGE, &[mailbox.0]))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    fn user_seen(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        user: UserId,
    ) -> StoreResult<Vec<u32>> {
        let mut uids = Vec::new();
        for item in self
            .inner
            .mail
            .scan_prefix(key(codec::USER_SEEN, &[mailbox.0, folder.0]))
        {
            let (k, _) = item?;
            if id_at(&k, 3)? == user.0 {
                uids.push(id_at(&k, 2)? as u32);
            }
        }
        Ok(uids)
    }

    fn set_subscription(
        &self,
        who: Subscriber,
        mailbox: MailboxId,
        name: &str,
        on: bool,
    ) -> StoreResult<()> {
        let k = key_str(
            codec::SUBSCRIPTION,
            &[who.id(), mailbox.0],
            &canonical_name(name),
        );
        let _guard = self.lock();
        let mut changes = Changes::default();
        changes.put_mail_raw(k, vec![u8::from(on)]);
        self.commit(changes)
    }

    fn subscriptions(
        &self,
        who: Subscriber,
        mailbox: MailboxId,
    ) -> StoreResult<BTreeMap<String, bool>> {
        let prefix = key(codec::SUBSCRIPTION, &[who.id(), mailbox.0]);
        self.inner
            .mail
            .scan_prefix(&prefix)
            .map(|item| {
                let (k, v) = item?;
                let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                // Records written before choices were kept hold nothing: subscribed.
                Ok((name, v.first() != Some(&0)))
            })
            .collect()
    }
}

impl SledStore {
    /// Where a blob's file is, for tests that damage the store on purpose; the body leaves
    /// the memory cache, so that what they do to the file is what is read.
    #[cfg(test)]
    pub(crate) fn blob_path(&self, blob: &BlobId) -> std::path::PathBuf {
        self.inner.blobs.forget_cached(blob);
        self.inner.blobs.path(blob)
    }

    // ----- folders -----

    /// Adds to `changes` a new folder of `mailbox`; the caller holds the write lock.
    pub(super) fn new_folder_changes(
        &self,
        changes: &mut Changes,
        mailbox: MailboxId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> StoreResult<Folder> {
        let folder = Folder {
            id: FolderId(self.next_id()?),
            mailbox,
            name: name.to_string(),
            special_use,
            uidvalidity: self.next_uidvalidity()?,
            uidnext: 1,
            highestmodseq: 1,
            subscribed: false,
        };
        changes.put_mail(key(codec::FOLDER, &[mailbox.0, folder.id.0]), &folder)?;
        changes.put_mail(key_str(codec::FOLDER_NAME, &[mailbox.0], name), &folder.id)?;
        Ok(folder)
    }

    /// A UIDVALIDITY larger than any given before: the time in seconds, or one more than the
    /// last one when several are made in one second.
    fn next_uidvalidity(&self) -> StoreResult<u32> {
        let now = (now_millis() / 1000) as u32;
        let next = self.inner.meta.update_and_fetch("uidvalidity", |old| {
            let last = old
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
                .unwrap_or(0);
            Some(now.max(last.wrapping_add(1)).max(1).to_be_bytes().to_vec())
        })?;
        next.and_then(|b| <[u8; 4]>::try_from(b.as_ref()).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| StoreError::Corrupt("uidvalidity counter".into()))
    }

    fn folder_id(&self, mailbox: MailboxId, name: &str) -> StoreResult<Option<FolderId>> {
        let k = key_str(codec::FOLDER_NAME, &[mailbox.0], &canonical_name(name));
        self.inner
            .mail
            .get(k)?
            .map(|v| decode(&v, "folder name"))
            .transpose()
    }

    pub(super) fn require_folder(&self, mailbox: MailboxId, id: FolderId) -> StoreResult<Folder> {
        self.folder(mailbox, id)?
            .ok_or_else(|| StoreError::not_found(format!("folder {id}")))
    }

    fn deliver_body(
        &self,
        targets: &[(MailboxId, FolderId)],
        raw: &[u8],
        spooled: Option<&SpooledFile>,
        meta: AppendMessage,
    ) -> StoreResult<Vec<MessageRecord>> {
        let delivery = Delivery::new(targets, raw, spooled, meta);
        self.deliver_all(std::slice::from_ref(&delivery), Changes::default())
    }

    /// Stores messages, each in its folders, in one transaction with `changes` (an import's
    /// progress, say: written with the messages or not at all).
    pub(super) fn deliver_all(
        &self,
        deliveries: &[Delivery<'_>],
        mut changes: Changes,
    ) -> StoreResult<Vec<MessageRecord>> {
        // Parsing is the slow part: done before taking the lock, when it looks needed.
        let removals = self.inner.blobs.removals();
        let mut blobs = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            let blob = d.spooled.map_or_else(|| BlobId::of(d.raw), |s| s.blob);
            let parsed = if self
                .inner
                .mail
                .contains_key(blob_key(codec::SUMMARY, &blob))?
            {
                None
            } else {
                Some(codec::encode(&MessageSummary::parse(d.raw))?)
            };
            self.inner.blobs.ensure(&blob, d.raw, d.spooled)?;
            blobs.push((blob, parsed));
        }
        // Under the lock: the sweep that removes a freed blob's file does so under the lock
        // too, so what is checked here holds until the commit; with no removal since the
        // writes above, the files they made durable are still there.
        let _guard = self.lock();
        let recheck = self.inner.blobs.removals() != removals;
        let mut folders = BTreeMap::new();
        let mut records = Vec::new();
        for (d, (blob, parsed)) in deliveries.iter().zip(blobs) {
            if recheck {
                self.inner.blobs.ensure(&blob, d.raw, None)?;
            }
            let summary_key = blob_key(codec::SUMMARY, &blob);
            if !self.inner.mail.contains_key(&summary_key)? {
                let summary = match parsed {
                    Some(p) => p,
                    None => codec::encode(&MessageSummary::parse(d.raw))?,
                };
                changes.put_mail_raw(summary_key, summary);
            }
            for target in d.targets {
                let record = self.stage_record(&mut changes, &mut folders, *target, d, blob)?;
                records.push((*target, record));
            }
            let refs = self.blob_refs_in(&changes, &blob)? + d.targets.len() as u64;
            changes.put_mail_raw(
                blob_key(codec::BLOB_REFS, &blob),
                refs.to_be_bytes().to_vec(),
            );
        }
        for ((mailbox, folder), record) in &folders {
            changes.put_mail(key(codec::FOLDER, &[mailbox.0, folder.0]), record)?;
        }
        self.commit(changes)?;
        for ((mailbox, folder), record) in &records {
            let event = FolderEvent::Appended { uid: record.uid };
            self.hub().publish_folder(*mailbox, *folder, event);
        }
        Ok(records.into_iter().map(|(_, r)| r).collect())
    }

    /// Adds to `changes` one message's record in one folder (as `folders` has it so far in
    /// this change), with its usage and its user's `\Seen`.
    fn stage_record(
        &self,
        changes: &mut Changes,
        folders: &mut BTreeMap<(MailboxId, FolderId), Folder>,
        (mailbox_id, folder_id): (MailboxId, FolderId),
        d: &Delivery<'_>,
        blob: BlobId,
    ) -> StoreResult<MessageRecord> {
        let mailbox = self.require_mailbox(mailbox_id)?;
        self.check_quota_in(changes, &mailbox, d.raw.len() as u64)?;
        let folder = match folders.entry((mailbox_id, folder_id)) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(self.require_folder(mailbox_id, folder_id)?)
            }
        };
        let meta = &d.meta;
        let flags = match meta.seen_by {
            Some(user) if meta.flags.contains(Flags::SEEN) => {
                let uid = folder.uidnext as u64;
                let k = key(codec::USER_SEEN, &[mailbox.id.0, folder.id.0, uid, user.0]);
                changes.put_mail(k, &())?;
                meta.flags.with(Flags::SEEN, false)
            }
            _ => meta.flags,
        };
        let record = MessageRecord {
            uid: folder.uidnext,
            flags,
            keywords: meta.keywords.clone(),
            internal_date: meta.internal_date.unwrap_or_default(),
            size: d.raw.len() as u64,
            modseq: folder.highestmodseq + 1,
            blob,
            saved: now_millis(),
        };
        folder.uidnext += 1;
        folder.highestmodseq += 1;
        let k = key(
            codec::MESSAGE,
            &[mailbox.id.0, folder.id.0, record.uid as u64],
        );
        changes.put_mail(k, &record)?;
        self.adjust_usage(changes, mailbox.id, d.raw.len() as i128)?;
        Ok(record)
    }

    pub(super) fn check_quota(&self, mailbox: &Mailbox, adding: u64) -> StoreResult<()> {
        self.check_quota_in(&Changes::default(), mailbox, adding)
    }

    /// [`Store::check_quota`] with the usage as `changes` leave it.
    pub(super) fn check_quota_in(
        &self,
        changes: &Changes,
        mailbox: &Mailbox,
        adding: u64,
    ) -> StoreResult<()> {
        let usage = self.usage_in(changes, mailbox.id)?;
        if mailbox.quota_bytes > 0 && usage + adding > mailbox.quota_bytes {
            return Err(StoreError::OverQuota {
                quota: mailbox.quota_bytes,
            });
        }
        Ok(())
    }

    fn expunge_where(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        uids: &[u32],
        wanted: impl Fn(&MessageRecord) -> bool,
    ) -> StoreResult<Vec<u32>> {
        let guard = self.lock();
        let mut f = self.require_folder(mailbox, folder)?;
        let mut changes = Changes::default();
        let mut gone = Vec::new();
        let mut bytes = 0;
        for uid in uids {
            if let Some(record) = self.message(mailbox, folder, *uid)?
                && wanted(&record)
            {
                bytes += record.size;
                self.unlink_message(&mut changes, mailbox, folder, &record)?;
                gone.push(*uid);
            }
        }
        if gone.is_empty() {
            return Ok(gone);
        }
        f.highestmodseq += 1;
        self.log_expunges(&mut changes, (mailbox, folder), f.highestmodseq, &gone)?;
        changes.put_mail(key(codec::FOLDER, &[mailbox.0, folder.0]), &f)?;
        self.adjust_usage(&mut changes, mailbox, -(bytes as i128))?;
        self.commit(changes)?;
        drop(guard);
        let event = FolderEvent::Expunged { uids: gone.clone() };
        self.hub().publish_folder(mailbox, folder, event);
        Ok(gone)
    }

    /// Adds to `changes` the removal of one message record and its per-user state, and one
    /// reference fewer on its blob.
    fn unlink_message(
        &self,
        changes: &mut Changes,
        mailbox: MailboxId,
        folder: FolderId,
        record: &MessageRecord,
    ) -> StoreResult<()> {
        let uid = record.uid as u64;
        changes.del_mail(key(codec::MESSAGE, &[mailbox.0, folder.0, uid]));
        for item in self
            .inner
            .mail
            .scan_prefix(key(codec::USER_SEEN, &[mailbox.0, folder.0, uid]))
        {
            changes.del_mail(item?.0.to_vec());
        }
        self.drop_blob_reference(changes, &record.blob)
    }

    /// Adds to `changes` one reference fewer on `blob`. Its last one goes with its summary,
    /// and marks the file for the next sweep ([`Store::sweep_freed_blobs`]): removing it here
    /// would need this change flushed first, and an expunge would wait on the disk.
    pub(super) fn drop_blob_reference(
        &self,
        changes: &mut Changes,
        blob: &BlobId,
    ) -> StoreResult<()> {
        let refs = self.blob_refs_in(changes, blob)?.saturating_sub(1);
        if refs == 0 {
            changes.del_mail(blob_key(codec::BLOB_REFS, blob));
            changes.del_mail(blob_key(codec::SUMMARY, blob));
            changes.put_mail_raw(blob_key(codec::FREED, blob), Vec::new());
        } else {
            changes.put_mail_raw(
                blob_key(codec::BLOB_REFS, blob),
                refs.to_be_bytes().to_vec(),
            );
        }
        Ok(())
    }

    /// A blob's references as `changes` leave them: several records of one change may share
    /// a blob, and an earlier one's count comes first.
    pub(super) fn blob_refs_in(&self, changes: &Changes, blob: &BlobId) -> StoreResult<u64> {
        match changes.latest_counter(&blob_key(codec::BLOB_REFS, blob)) {
            Some(n) => Ok(n),
            None => self.blob_refs(blob),
        }
    }

    /// A mailbox's usage as `changes` leave it.
    fn usage_in(&self, changes: &Changes, mailbox: MailboxId) -> StoreResult<u64> {
        match changes.latest_counter(&key(codec::USAGE, &[mailbox.0])) {
            Some(n) => Ok(n),
            None => self.usage(mailbox),
        }
    }

    pub(super) fn blob_refs(&self, blob: &BlobId) -> StoreResult<u64> {
        Ok(self
            .inner
            .mail
            .get(blob_key(codec::BLOB_REFS, blob))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    pub(super) fn adjust_usage(
        &self,
        changes: &mut Changes,
        mailbox: MailboxId,
        delta: i128,
    ) -> StoreResult<()> {
        let k = key(codec::USAGE, &[mailbox.0]);
        let current = self.usage_in(changes, mailbox)?;
        let next = (current as i128 + delta).max(0) as u64;
        changes.put_mail_raw(k, next.to_be_bytes().to_vec());
        Ok(())
    }

    /// Adds to `changes` the removal of everything mail-side of a mailbox.
    pub(super) fn mailbox_mail_removal(
        &self,
        changes: &mut Changes,
        mailbox: MailboxId,
    ) -> StoreResult<()> {
        for folder in self.folders(mailbox)? {
            for record in self.messages(mailbox, folder.id)? {
                self.unlink_message(changes, mailbox, folder.id, &record)?;
            }
            changes.del_mail(key(codec::FOLDER, &[mailbox.0, folder.id.0]));
            changes.del_mail(key_str(codec::FOLDER_NAME, &[mailbox.0], &folder.name));
            self.tombstone_removal(changes, mailbox, folder.id)?;
        }
        changes.del_mail(key(codec::USAGE, &[mailbox.0]));
        for item in self.inner.mail.scan_prefix([codec::SUBSCRIPTION]) {
            let (k, _) = item?;
            if id_at(&k, 1)? == mailbox.0 {
                changes.del_mail(k.to_vec());
            }
        }
        Ok(())
    }
}

impl SledStore {
    fn tombstone_removal(
        &self,
        changes: &mut Changes,
        mailbox: MailboxId,
        folder: FolderId,
    ) -> StoreResult<()> {
        changes.del_mail(key(codec::RECENT, &[mailbox.0, folder.0]));
        self.expunge_log_removal(changes, mailbox, folder)
    }
}

pub(super) fn blob_key(prefix: u8, blob: &BlobId) -> Vec<u8> {
    let mut k = vec![prefix];
    k.extend_from_slice(&blob.0);
    k
}

/// `INBOX` is case-insensitive (RFC 3501 §5.1); every other name is kept as given.
pub(super) fn canonical_name(name: &str) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        "INBOX".to_string()
    } else {
        name.to_string()
    }
}

pub(super) fn valid_folder_name(name: &str) -> StoreResult<String> {
    let bad = |why: &str| StoreError::Invalid {
        what: "folder name",
        why: format!("{name:?} {why}"),
    };
    if name.is_empty() || name.len() > 512 {
        return Err(bad("is empty or longer than 512 bytes"));
    }
    if name.starts_with(SEPARATOR) || name.ends_with(SEPARATOR) || name.contains("//") {
        return Err(bad("has an empty hierarchy level"));
    }
    if name.chars().any(|c| c.is_control() || c == '*' || c == '%') {
        return Err(bad("contains a control character or a wildcard"));
    }
    Ok(canonical_name(name))
}

#[cfg(test)]
mod record_tests {
    use super::*;

    /// A record written before `saved` existed still decodes, its save date its internal
    /// date; a current one decodes as it was.
    #[test]
    fn records_of_both_layouts_decode() {
        let blob = BlobId::of(b"x");
        let old = (
            7u32,
            Flags::SEEN,
            vec!["$Junk".to_string()],
            1_000i64,
            1u64,
            3u64,
            blob,
        );
        let record = decode_record(&codec::encode(&old).unwrap()).unwrap();
        assert_eq!((record.uid, record.saved, record.blob), (7, 1_000, blob));
        assert_eq!(record.keywords, ["$Junk"]);
        let now = MessageRecord {
            saved: 2_000,
            ..record
        };
        assert_eq!(decode_record(&codec::encode(&now).unwrap()).unwrap(), now);
        assert!(decode_record(b"\x01").is_err());
    }
}
