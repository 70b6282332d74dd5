//! COPY, MOVE and RENAME INBOX on PostgreSQL: one transaction holding both folders' rows,
//! by sled's rules (`store::transfer`): a failure (an over-quota target) leaves no partial
//! copy (RFC 3501 §6.4.7).

use super::PgStore;
use super::folders::find_folder;
use super::messages::{add_usage, log_expunges, record, set_user_seen, write_record};
use super::rows::Prepared;
use super::rows::id;
use crate::model::*;
use crate::store::error::{StoreError, StoreResult};
use crate::store::hub::FolderEvent;
use crate::store::interface::{ServerStore, TransferStore};
use crate::store::{Flags, Folder, MessageRecord, Transfer, Transferred};
use deadpool_postgres::GenericClient;
use std::collections::{BTreeMap, BTreeSet};

impl TransferStore for PgStore {
    fn transfer(&self, t: Transfer<'_>) -> StoreResult<Transferred> {
        let pairs = self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            super::messages::lock_mailboxes(&tx, &[t.from.mailbox, t.to.mailbox]).await?;
            let (mut target, _) = lock_folders(&tx, &t).await?;
            let target_modseq = target.highestmodseq + 1;
            // A UID named twice is one message.
            let uids: BTreeSet<u32> = t.uids.iter().copied().collect();
            let wanted: Vec<i64> = uids.iter().map(|u| i64::from(*u)).collect();
            let records = tx
                .query_cached(
                    "SELECT m.uid, m.flags, m.keywords, m.internal_date, m.size, m.modseq, \
                     m.blob, m.saved FROM messages m WHERE m.folder = $1 AND m.uid = ANY($2) \
                     ORDER BY m.uid",
                    &[&id(t.from.folder.0)?, &wanted],
                )
                .await?
                .iter()
                .map(record)
                .collect::<StoreResult<Vec<MessageRecord>>>()?;
            if records.is_empty() {
                return Ok(Vec::new());
            }
            let mut pairs = Vec::new();
            let mut bytes = 0u64;
            for source in &records {
                let copy = copy_record(&tx, &t, source, &mut target, target_modseq).await?;
                bytes += source.size;
                pairs.push((source.uid, copy.uid));
            }
            tx.execute_cached(
                "UPDATE folders SET uidnext = $2, highestmodseq = $3 WHERE id = $1",
                &[
                    &id(t.to.folder.0)?,
                    &i64::from(target.uidnext),
                    &id(target_modseq)?,
                ],
            )
            .await?;
            let stays_in_mailbox = t.remove_source && t.from.mailbox == t.to.mailbox;
            if !stays_in_mailbox {
                add_usage(&tx, t.to.mailbox, bytes).await?;
            }
            if t.remove_source {
                remove_moved(&tx, &t, &records, bytes, stays_in_mailbox).await?;
            } else {
                let mut added: BTreeMap<BlobId32, i64> = BTreeMap::new();
                for r in &records {
                    *added.entry(r.blob.0).or_default() += 1;
                }
                for (blob, n) in added {
                    tx.execute_cached(
                        "UPDATE blobs SET refs = refs + $2 WHERE id = $1",
                        &[&blob.as_slice(), &n],
                    )
                    .await?;
                }
            }
            let (to, from) = transfer_events(&t, &pairs);
            self.tell_folder(&tx, (t.to.mailbox, t.to.folder), to)
                .await?;
            self.tell_folder(&tx, (t.from.mailbox, t.from.folder), from)
                .await?;
            tx.commit().await?;
            Ok(pairs)
        })?;
        let (to, from) = transfer_events(&t, &pairs);
        for event in to {
            self.hub().publish_folder(t.to.mailbox, t.to.folder, event);
        }
        for event in from {
            self.hub()
                .publish_folder(t.from.mailbox, t.from.folder, event);
        }
        Ok(pairs)
    }
}

type BlobId32 = [u8; 32];

/// What a transfer's target and source folders hear: the copies appended, and with a move
/// the originals expunged.
fn transfer_events(t: &Transfer<'_>, pairs: &Transferred) -> (Vec<FolderEvent>, Vec<FolderEvent>) {
    let to = pairs
        .iter()
        .map(|(_, uid)| FolderEvent::Appended { uid: *uid })
        .collect();
    let from = match t.remove_source && !pairs.is_empty() {
        true => vec![FolderEvent::Expunged {
            uids: pairs.iter().map(|(uid, _)| *uid).collect(),
        }],
        false => Vec::new(),
    };
    (to, from)
}

/// Holds the source's and the target's rows, in id order; returns (target, source).
async fn lock_folders(
    client: &impl GenericClient,
    t: &Transfer<'_>,
) -> StoreResult<(Folder, Folder)> {
    let mut both = [(t.from.mailbox, t.from.folder), (t.to.mailbox, t.to.folder)];
    both.sort_by_key(|(_, f)| *f);
    let mut found = Vec::new();
    for (mailbox, folder) in both {
        let f = find_folder(client, mailbox, folder, "FOR UPDATE")
            .await?
            .ok_or_else(|| StoreError::not_found(format!("folder {folder}")))?;
        found.push(f);
    }
    let pick = |folder: FolderId| found.iter().find(|f| f.id == folder).cloned();
    match (pick(t.to.folder), pick(t.from.folder)) {
        (Some(target), Some(source)) => Ok((target, source)),
        _ => Err(StoreError::not_found("folder")),
    }
}

/// Writes the copy of `source` in the target, with the flags the session carries over.
async fn copy_record(
    client: &impl GenericClient,
    t: &Transfer<'_>,
    source: &MessageRecord,
    target: &mut Folder,
    modseq: u64,
) -> StoreResult<MessageRecord> {
    let uid = target.uidnext;
    target.uidnext = target
        .uidnext
        .checked_add(1)
        .ok_or_else(|| StoreError::Corrupt("the folder's UIDs are used up".into()))?;
    let from_folder = id(t.from.folder.0)?;
    let seen_by: Vec<UserId> = client
        .query_cached(
            "SELECT user_id FROM user_seen WHERE folder = $1 AND uid = $2",
            &[&from_folder, &i64::from(source.uid)],
        )
        .await?
        .iter()
        .map(|row| Ok(UserId(super::rows::from_id(row.try_get(0)?, "user")?)))
        .collect::<StoreResult<_>>()?;
    let relocation = t.remove_source && t.from.mailbox == t.to.mailbox;
    let mut users_seen = Vec::new();
    let (flags, keywords) = if relocation {
        // A move inside one mailbox keeps everyone's \Seen: the shared flag, and each user's
        // own, for the new UID.
        users_seen = seen_by;
        let (flags, keywords) = (t.permit)(source.flags, source.keywords.clone());
        (
            flags.with(Flags::SEEN, source.flags.contains(Flags::SEEN)),
            keywords,
        )
    } else {
        let seen = match t.from.seen_user {
            Some(user) => seen_by.contains(&user),
            None => source.flags.contains(Flags::SEEN),
        };
        let (flags, keywords) = (t.permit)(
            source.flags.with(Flags::SEEN, seen),
            source.keywords.clone(),
        );
        if let (Some(user), true) = (t.to.seen_user, flags.contains(Flags::SEEN)) {
            users_seen.push(user);
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
        saved: now_millis(),
        ..source.clone()
    };
    write_record(client, t.to.folder, &copy).await?;
    for user in users_seen {
        set_user_seen(client, t.to.folder, uid, user, true).await?;
    }
    Ok(copy)
}

/// Removes moved messages from their folder; their bytes stay, now held by the copies.
async fn remove_moved(
    client: &impl GenericClient,
    t: &Transfer<'_>,
    moved: &[MessageRecord],
    bytes: u64,
    stays_in_mailbox: bool,
) -> StoreResult<()> {
    let uids: BTreeSet<u32> = moved.iter().map(|r| r.uid).collect();
    let wanted: Vec<i64> = uids.iter().map(|u| i64::from(*u)).collect();
    client
        .execute_cached(
            "DELETE FROM messages WHERE folder = $1 AND uid = ANY($2)",
            &[&id(t.from.folder.0)?, &wanted],
        )
        .await?;
    log_expunges(client, t.from.folder, &uids).await?;
    if !stays_in_mailbox {
        client
            .execute_cached(
                "UPDATE mailboxes SET usage_bytes = greatest(usage_bytes - $2, 0) WHERE id = $1",
                &[&id(t.from.mailbox.0)?, &id(bytes)?],
            )
            .await?;
    }
    Ok(())
}
