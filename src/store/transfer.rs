//! COPY, MOVE and RENAME INBOX: messages pass from one folder to another in one transaction,
//! sharing their stored bytes. RFC 3501 §6.4.7: "If the COPY command is unsuccessful for any
//! reason, server implementations MUST restore the destination mailbox to its state before
//! the COPY attempt" — an over-quota target leaves no partial copy.

use super::blobs::BlobId;
use super::codec::{self, key};
use super::error::StoreResult;
use super::folders::{Flags, Folder, MessageRecord};
use super::hub::FolderEvent;
use super::interface::*;
use super::{Changes, SledStore};
use crate::model::*;
use std::collections::HashMap;

/// One folder of one mailbox, with the user whose own `\Seen` counts there (where the mailbox
/// keeps `\Seen` per user).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FolderView {
    pub mailbox: MailboxId,
    pub folder: FolderId,
    pub seen_user: Option<UserId>,
}

/// What a COPY or MOVE asks.
pub struct Transfer<'a> {
    pub from: FolderView,
    pub to: FolderView,
    pub uids: &'a [u32],
    /// Drops the flags the session may not set in the target (RFC 4314 §4).
    pub permit: &'a dyn Fn(Flags, Vec<String>) -> (Flags, Vec<String>),
    /// MOVE (RFC 6851): the source messages go in the same transaction.
    pub remove_source: bool,
}

/// (source UID, target UID) for every message that was there, in the order asked.
pub type Transferred = Vec<(u32, u32)>;

impl TransferStore for SledStore {
    fn transfer(&self, t: Transfer<'_>) -> StoreResult<Transferred> {
        let _guard = self.lock();
        let mut target = self.require_folder(t.to.mailbox, t.to.folder)?;
        let same_folder = (t.from.mailbox, t.from.folder) == (t.to.mailbox, t.to.folder);
        let mut changes = Changes::default();
        let mut pairs = Vec::new();
        let mut moved = Vec::new();
        let mut bytes = 0u64;
        let target_modseq = target.highestmodseq + 1;
        // A UID named twice is one message: copying it twice would count its blob once.
        let mut uids = t.uids.to_vec();
        uids.sort_unstable();
        uids.dedup();
        for uid in uids {
            let Some(record) = self.message(t.from.mailbox, t.from.folder, uid)? else {
                continue;
            };
            let copy = self.copied_record(&mut changes, &t, &record, &mut target, target_modseq)?;
            bytes += record.size;
            pairs.push((uid, copy.uid));
            moved.push(record);
        }
        if pairs.is_empty() {
            return Ok(pairs);
        }
        target.highestmodseq = target_modseq;
        let stays_in_mailbox = t.remove_source && t.from.mailbox == t.to.mailbox;
        if !stays_in_mailbox {
            let mailbox = self.require_mailbox(t.to.mailbox)?;
            self.check_quota(&mailbox, bytes)?;
            self.adjust_usage(&mut changes, t.to.mailbox, bytes as i128)?;
        }
        if t.remove_source {
            let source = if same_folder {
                &mut target
            } else {
                &mut self.require_folder(t.from.mailbox, t.from.folder)?
            };
            self.remove_moved(&mut changes, t.from, source, &moved)?;
            if !stays_in_mailbox {
                self.adjust_usage(&mut changes, t.from.mailbox, -(bytes as i128))?;
            }
            if !same_folder {
                changes.put_mail(
                    key(codec::FOLDER, &[t.from.mailbox.0, t.from.folder.0]),
                    source,
                )?;
            }
        } else {
            self.add_blob_refs(&mut changes, &moved)?;
        }
        changes.put_mail(
            key(codec::FOLDER, &[t.to.mailbox.0, t.to.folder.0]),
            &target,
        )?;
        self.commit(changes)?;
        self.publish_transfer(&t, &pairs);
        Ok(pairs)
    }
}

impl SledStore {
    /// Adds to `changes` the copy of `record` in `target`, with the flags the session carries
    /// over; returns the new record.
    fn copied_record(
        &self,
        changes: &mut Changes,
        t: &Transfer<'_>,
        record: &MessageRecord,
        target: &mut Folder,
        modseq: u64,
    ) -> StoreResult<MessageRecord> {
        let (m, f) = (t.to.mailbox.0, t.to.folder.0);
        let uid = target.uidnext;
        target.uidnext += 1;
        let relocation = t.remove_source && t.from.mailbox == t.to.mailbox;
        let (flags, keywords) = if relocation {
            // A move inside one mailbox keeps everyone's \Seen: the shared flag, and each
            // user's own, re-keyed to the new UID.
            let (m0, f0) = (t.from.mailbox.0, t.from.folder.0);
            for item in self
                .inner
                .mail
                .scan_prefix(key(codec::USER_SEEN, &[m0, f0, record.uid as u64]))
            {
                let user = super::codec::id_at(&item?.0, 3)?;
                changes.put_mail(key(codec::USER_SEEN, &[m, f, uid as u64, user]), &())?;
            }
            let (flags, keywords) = (t.permit)(record.flags, record.keywords.clone());
            (
                flags.with(Flags::SEEN, record.flags.contains(Flags::SEEN)),
                keywords,
            )
        } else {
            let seen = match t.from.seen_user {
                Some(user) => {
                    self.has_user_seen(t.from.mailbox, t.from.folder, record.uid, user)?
                }
                None => record.flags.contains(Flags::SEEN),
            };
            let (flags, keywords) = (t.permit)(
                record.flags.with(Flags::SEEN, seen),
                record.keywords.clone(),
            );
            if let (Some(user), true) = (t.to.seen_user, flags.contains(Flags::SEEN)) {
                changes.put_mail(key(codec::USER_SEEN, &[m, f, uid as u64, user.0]), &())?;
            }
            // Where the target keeps \Seen per user, the copy is unseen for everyone else.
            let shared_seen = flags.contains(Flags::SEEN) && t.to.seen_user.is_none();
            (flags.with(Flags::SEEN, shared_seen), keywords)
        };
        let copy = MessageRecord {
            uid,
            flags,
            keywords,
            modseq,
            saved: crate::model::now_millis(),
            ..record.clone()
        };
        changes.put_mail(key(codec::MESSAGE, &[m, f, uid as u64]), &copy)?;
        Ok(copy)
    }

    /// Adds to `changes` the removal of moved messages from their folder: their bytes stay,
    /// now referenced by the copies.
    fn remove_moved(
        &self,
        changes: &mut Changes,
        from: FolderView,
        source: &mut Folder,
        moved: &[MessageRecord],
    ) -> StoreResult<()> {
        let (m, f) = (from.mailbox.0, from.folder.0);
        source.highestmodseq += 1;
        for record in moved {
            let uid = record.uid as u64;
            changes.del_mail(key(codec::MESSAGE, &[m, f, uid]));
            for item in self
                .inner
                .mail
                .scan_prefix(key(codec::USER_SEEN, &[m, f, uid]))
            {
                changes.del_mail(item?.0.to_vec());
            }
        }
        let uids: Vec<u32> = moved.iter().map(|r| r.uid).collect();
        self.log_expunges(
            changes,
            (from.mailbox, from.folder),
            source.highestmodseq,
            &uids,
        )
    }

    /// Adds to `changes` one more reference per copy on each copied blob.
    fn add_blob_refs(&self, changes: &mut Changes, copied: &[MessageRecord]) -> StoreResult<()> {
        let mut added: HashMap<BlobId, u64> = HashMap::new();
        for record in copied {
            *added.entry(record.blob).or_default() += 1;
        }
        for (blob, n) in added {
            let refs = self.blob_refs(&blob)? + n;
            changes.put_mail_raw(
                super::folders::blob_key(codec::BLOB_REFS, &blob),
                refs.to_be_bytes().to_vec(),
            );
        }
        Ok(())
    }

    fn publish_transfer(&self, t: &Transfer<'_>, pairs: &Transferred) {
        for (_, uid) in pairs {
            let event = FolderEvent::Appended { uid: *uid };
            self.hub().publish_folder(t.to.mailbox, t.to.folder, event);
        }
        if t.remove_source {
            let uids = pairs.iter().map(|(uid, _)| *uid).collect();
            let event = FolderEvent::Expunged { uids };
            self.hub()
                .publish_folder(t.from.mailbox, t.from.folder, event);
        }
    }
}
