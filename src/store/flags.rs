//! Flag changes, applied under the write lock so that concurrent sessions never lose one
//! another's changes (two `+FLAGS` at once both land) and RFC 7162's UNCHANGEDSINCE test is
//! made against the record that is then written.

use super::codec::{self, key};
use super::error::StoreResult;
use super::folders::{Flags, MessageRecord};
use super::hub::FolderEvent;
use super::interface::*;
use super::{Changes, SledStore};
use crate::model::*;

/// The flags of a message as one reader sees them: where the mailbox keeps `\Seen` per user,
/// `\Seen` is that user's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenFlags {
    pub flags: Flags,
    pub keywords: Vec<String>,
}

/// What a flag change asks.
pub struct FlagChange<'a> {
    /// The user whose own `\Seen` counts, in a mailbox that keeps `\Seen` per user.
    pub seen_user: Option<UserId>,
    /// RFC 7162 §3.1.3: leave alone (and report) messages changed after this MODSEQ.
    pub unchanged_since: Option<u64>,
    /// The new flags, from the current ones.
    pub apply: &'a dyn Fn(&SeenFlags) -> SeenFlags,
}

/// What a flag change did.
#[derive(Debug, Default)]
pub struct FlagOutcome {
    /// Every message of the request still there and not refused by UNCHANGEDSINCE: its record
    /// now, and its flags as the requesting reader sees them.
    pub messages: Vec<(MessageRecord, Flags)>,
    /// UIDs left alone because they changed after UNCHANGEDSINCE.
    pub modified: Vec<u32>,
}

impl FlagStore for SledStore {
    fn change_flags(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        uids: &[u32],
        change: FlagChange<'_>,
    ) -> StoreResult<FlagOutcome> {
        let _guard = self.lock();
        let mut f = self.require_folder(mailbox, folder)?;
        let modseq = f.highestmodseq + 1;
        let mut changes = Changes::default();
        let mut outcome = FlagOutcome::default();
        let mut changed = Vec::new();
        for &uid in uids {
            let Some(mut record) = self.message(mailbox, folder, uid)? else {
                continue;
            };
            if change.unchanged_since.is_some_and(|n| record.modseq > n) {
                outcome.modified.push(uid);
                continue;
            }
            let user_seen = match change.seen_user {
                Some(user) => Some(self.has_user_seen(mailbox, folder, uid, user)?),
                None => None,
            };
            let before = SeenFlags {
                flags: record.flags.with(
                    Flags::SEEN,
                    user_seen.unwrap_or(record.flags.contains(Flags::SEEN)),
                ),
                keywords: record.keywords.clone(),
            };
            let after = (change.apply)(&before);
            if after != before {
                let seen = after.flags.contains(Flags::SEEN);
                if let (Some(user), Some(was)) = (change.seen_user, user_seen) {
                    if was != seen {
                        let k = key(codec::USER_SEEN, &[mailbox.0, folder.0, uid as u64, user.0]);
                        if seen {
                            changes.put_mail(k, &())?;
                        } else {
                            changes.del_mail(k);
                        }
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
                changes.put_mail(
                    key(codec::MESSAGE, &[mailbox.0, folder.0, uid as u64]),
                    &record,
                )?;
                changed.push(uid);
            }
            outcome.messages.push((record, after.flags));
        }
        if changed.is_empty() {
            return Ok(outcome);
        }
        f.highestmodseq = modseq;
        changes.put_mail(key(codec::FOLDER, &[mailbox.0, folder.0]), &f)?;
        self.commit(changes)?;
        for uid in changed {
            let event = FolderEvent::FlagsChanged { uid, modseq };
            self.hub().publish_folder(mailbox, folder, event);
        }
        Ok(outcome)
    }
}

impl SledStore {
    pub(super) fn has_user_seen(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        uid: u32,
        user: UserId,
    ) -> StoreResult<bool> {
        let k = key(codec::USER_SEEN, &[mailbox.0, folder.0, uid as u64, user.0]);
        Ok(self.inner.mail.contains_key(k)?)
    }
}
