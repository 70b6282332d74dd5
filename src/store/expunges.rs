//! What a folder remembers of its expunges, for QRESYNC's VANISHED (RFC 7162).
//!
//! Remembering every expunge forever grows the store with the mail that passed through it,
//! not the mail it holds: a busy folder would carry millions of them. RFC 7162 §3.2.6 lets a
//! server forget ("a server implementation that doesn't remember mod-sequences associated
//! with expunged messages can be considered compliant"), at the price of longer VANISHED
//! answers. So each folder keeps its newest expunges (at most `REMEMBERED`) and the MODSEQ up
//! to which it forgot; a client resynchronising from before that is told, instead, every UID
//! the folder no longer holds.

use super::codec::{self, decode, id_at, key};
use super::error::StoreResult;
use super::interface::*;
use super::{Changes, SledStore};
use crate::model::{FolderId, MailboxId};
use serde::{Deserialize, Serialize};

/// Expunges kept per folder: about 50 bytes each on disk. Past this, the oldest half goes.
pub(super) const REMEMBERED: u64 = 1000;

/// What the store can say about a folder's expunges since a MODSEQ.
#[derive(Debug, PartialEq, Eq)]
pub enum ExpungedSince {
    /// Exactly these UIDs were expunged after it.
    Exactly(Vec<u32>),
    /// The store forgot expunges from around then: any UID the folder no longer holds may
    /// have been expunged after it.
    Forgotten,
}

/// The per-folder bookkeeping: how many expunges are kept, and up to which MODSEQ (inclusive)
/// the older ones were forgotten.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct ExpungeLog {
    pub(super) forgotten_through: u64,
    kept: u64,
}

impl ExpungeStore for SledStore {
    fn expunged_since(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        modseq: u64,
    ) -> StoreResult<ExpungedSince> {
        if modseq < self.expunge_log(mailbox, folder)?.forgotten_through {
            return Ok(ExpungedSince::Forgotten);
        }
        let prefix = key(codec::EXPUNGES, &[mailbox.0, folder.0]);
        let start = key(
            codec::EXPUNGES,
            &[mailbox.0, folder.0, modseq.saturating_add(1)],
        );
        let mut uids = Vec::new();
        for item in self.inner.mail.range(start..) {
            let (k, _) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            uids.push(id_at(&k, 3)? as u32);
        }
        Ok(ExpungedSince::Exactly(uids))
    }
}

impl SledStore {
    /// Adds to `changes` the record of `uids` expunged from a folder at `modseq`, forgetting
    /// the oldest records when the folder keeps too many. Called under the write lock.
    pub(super) fn log_expunges(
        &self,
        changes: &mut Changes,
        (mailbox, folder): (MailboxId, FolderId),
        modseq: u64,
        uids: &[u32],
    ) -> StoreResult<()> {
        let mut log = self.expunge_log(mailbox, folder)?;
        for uid in uids {
            let k = key(codec::EXPUNGES, &[mailbox.0, folder.0, modseq, *uid as u64]);
            changes.put_mail_raw(k, Vec::new());
        }
        log.kept += uids.len() as u64;
        if log.kept > REMEMBERED {
            self.forget_oldest(changes, (mailbox, folder), &mut log)?;
        }
        changes.put_mail(key(codec::EXPUNGE_LOG, &[mailbox.0, folder.0]), &log)
    }

    /// Forgets the oldest committed records down to half of `REMEMBERED`, whole MODSEQs at a
    /// time (forgetting part of one would make "through this MODSEQ" untrue).
    fn forget_oldest(
        &self,
        changes: &mut Changes,
        (mailbox, folder): (MailboxId, FolderId),
        log: &mut ExpungeLog,
    ) -> StoreResult<()> {
        let mut excess = log.kept.saturating_sub(REMEMBERED / 2);
        let prefix = key(codec::EXPUNGES, &[mailbox.0, folder.0]);
        for item in self.inner.mail.scan_prefix(&prefix) {
            let (k, _) = item?;
            let modseq = id_at(&k, 2)?;
            if excess == 0 && modseq != log.forgotten_through {
                break;
            }
            changes.del_mail(k.to_vec());
            log.forgotten_through = modseq;
            log.kept = log.kept.saturating_sub(1);
            excess = excess.saturating_sub(1);
        }
        Ok(())
    }

    pub(super) fn expunge_log(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
    ) -> StoreResult<ExpungeLog> {
        let k = key(codec::EXPUNGE_LOG, &[mailbox.0, folder.0]);
        match self.inner.mail.get(k)? {
            Some(v) => decode(&v, "expunge log"),
            None => Ok(ExpungeLog::default()),
        }
    }

    /// Adds to `changes` the removal of everything a folder remembers of its expunges.
    pub(super) fn expunge_log_removal(
        &self,
        changes: &mut Changes,
        mailbox: MailboxId,
        folder: FolderId,
    ) -> StoreResult<()> {
        changes.del_mail(key(codec::EXPUNGE_LOG, &[mailbox.0, folder.0]));
        for item in self
            .inner
            .mail
            .scan_prefix(key(codec::EXPUNGES, &[mailbox.0, folder.0]))
        {
            changes.del_mail(item?.0.to_vec());
        }
        Ok(())
    }

    /// Before, every expunge was kept forever, by UID (`codec::OLD_EXPUNGED`): each folder's
    /// are rewritten by MODSEQ, the newest `REMEMBERED` of them, one folder per commit.
    pub(super) fn upgrade_expunge_records(&self) -> StoreResult<()> {
        let _guard = self.lock();
        let mut folder: Option<(u64, u64)> = None;
        let mut records: Vec<(u64, u64)> = Vec::new();
        for item in self.inner.mail.scan_prefix([codec::OLD_EXPUNGED]) {
            let (k, v) = item?;
            let here = (id_at(&k, 0)?, id_at(&k, 1)?);
            if folder.is_some_and(|f| f != here) {
                self.rewrite_expunges(folder, std::mem::take(&mut records))?;
            }
            folder = Some(here);
            records.push((decode::<u64>(&v, "expunge record")?, id_at(&k, 2)?));
        }
        self.rewrite_expunges(folder, records)?;
        Ok(())
    }

    /// One folder's old records, as (MODSEQ, UID), into the new layout.
    fn rewrite_expunges(
        &self,
        folder: Option<(u64, u64)>,
        mut records: Vec<(u64, u64)>,
    ) -> StoreResult<()> {
        let Some((m, f)) = folder else {
            return Ok(());
        };
        let mut changes = Changes::default();
        for (_, uid) in &records {
            changes.del_mail(key(codec::OLD_EXPUNGED, &[m, f, *uid]));
        }
        records.sort_unstable();
        let mut log = self.expunge_log(MailboxId(m), FolderId(f))?;
        let cut = records.len().saturating_sub(REMEMBERED as usize);
        if let Some((modseq, _)) = cut.checked_sub(1).and_then(|i| records.get(i)) {
            let modseq = *modseq;
            log.forgotten_through = log.forgotten_through.max(modseq);
        }
        for (modseq, uid) in records.into_iter().skip(cut) {
            if modseq > log.forgotten_through {
                changes.put_mail_raw(key(codec::EXPUNGES, &[m, f, modseq, uid]), Vec::new());
                log.kept += 1;
            }
        }
        changes.put_mail(key(codec::EXPUNGE_LOG, &[m, f]), &log)?;
        self.commit(changes)
    }
}
