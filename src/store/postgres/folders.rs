//! Folders on PostgreSQL: made, found, renamed and deleted; subscriptions by name, the
//! `\Recent` floor and quota usage. Messages are `messages`.

use super::PgStore;
use super::directory::require_mailbox;
use super::messages::release_messages;
use super::rows::Prepared;
use super::rows::{from_id, from_word, id, word};
use crate::mail::MessageSummary;
use crate::model::*;
use crate::store::Subscriber;
use crate::store::error::{StoreError, StoreResult};
use crate::store::folders::{Folder, SEPARATOR, SpecialUse, canonical_name, valid_folder_name};
use crate::store::hub::FolderEvent;
use crate::store::interface::{FolderStore, ServerStore};
use crate::store::spool::Loaded;
use crate::store::{AppendMessage, BlobId, MessageRecord};
use deadpool_postgres::GenericClient;
use std::collections::BTreeMap;
use tokio_postgres::Row;

pub const FOLDER_COLUMNS: &str =
    "id, mailbox, name, special_use, uidvalidity, uidnext, highestmodseq";

impl FolderStore for PgStore {
    fn create_folder(
        &self,
        mailbox: MailboxId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> StoreResult<Folder> {
        let name = valid_folder_name(name)?;
        self.transaction(async |tx| {
            require_mailbox(tx, mailbox, "FOR SHARE").await?;
            let folder = make_folder(tx, mailbox, &name, special_use).await?;
            Ok(folder)
        })
    }

    fn folder(&self, mailbox: MailboxId, folder: FolderId) -> StoreResult<Option<Folder>> {
        self.block(async { find_folder(&self.client().await?, mailbox, folder, "").await })
    }

    fn folder_by_name(&self, mailbox: MailboxId, name: &str) -> StoreResult<Option<Folder>> {
        let row = self.query_opt(
            &format!("SELECT {FOLDER_COLUMNS} FROM folders WHERE mailbox = $1 AND name_key = $2"),
            &[&id(mailbox.0)?, &canonical_name(name)],
        )?;
        row.as_ref().map(folder).transpose()
    }

    fn folders(&self, mailbox: MailboxId) -> StoreResult<Vec<Folder>> {
        let rows = self.query(
            &format!("SELECT {FOLDER_COLUMNS} FROM folders WHERE mailbox = $1 ORDER BY id"),
            &[&id(mailbox.0)?],
        )?;
        rows.iter().map(folder).collect()
    }

    /// Renames `from` and its children, as sled's store does (`store::folders`).
    fn rename_folder(&self, mailbox: MailboxId, from: &str, to: &str) -> StoreResult<()> {
        let from = canonical_name(from);
        let to = valid_folder_name(to)?;
        let moved = self.transaction(async |tx| {
            // All the mailbox's folders, held: a rename sees and moves a consistent tree.
            let folders = tx
                .query_cached(
                    &format!(
                        "SELECT {FOLDER_COLUMNS} FROM folders WHERE mailbox = $1 ORDER BY id \
                         FOR UPDATE"
                    ),
                    &[&id(mailbox.0)?],
                )
                .await?
                .iter()
                .map(folder)
                .collect::<StoreResult<Vec<Folder>>>()?;
            let taken = |name: &str| {
                folders
                    .iter()
                    .any(|f| canonical_name(&f.name) == canonical_name(name))
            };
            if taken(&to) {
                return Err(StoreError::FolderExists(to.clone()));
            }
            let prefix = format!("{from}{SEPARATOR}");
            let mut moved = Vec::new();
            for f in &folders {
                let new_name = if f.name == from {
                    to.clone()
                } else if let Some(rest) = f.name.strip_prefix(&prefix) {
                    format!("{to}{SEPARATOR}{rest}")
                } else {
                    continue;
                };
                // A child may not land on a folder that exists (`to/x` made before).
                if new_name != to && taken(&new_name) {
                    return Err(StoreError::FolderExists(new_name));
                }
                moved.push((f.id, new_name));
            }
            if moved.is_empty() {
                return Err(StoreError::not_found(format!("folder {from:?}")));
            }
            // Through names no folder has, so that a rename never collides with itself.
            for (folder, _) in &moved {
                tx.execute_cached(
                    "UPDATE folders SET name_key = '\u{1}' || id::text WHERE id = $1",
                    &[&id(folder.0)?],
                )
                .await?;
            }
            for (folder, name) in &moved {
                tx.execute_cached(
                    "UPDATE folders SET name = $2, name_key = $3 WHERE id = $1",
                    &[&id(folder.0)?, name, &canonical_name(name)],
                )
                .await?;
            }
            for (folder, _) in &moved {
                self.tell_folder(tx, (mailbox, *folder), vec![FolderEvent::Gone])
                    .await?;
            }
            Ok(moved)
        })?;
        for (folder, _) in moved {
            self.hub()
                .publish_folder(mailbox, folder, FolderEvent::Gone);
        }
        Ok(())
    }

    /// Deletes one folder with its messages; their bytes go when nothing else holds them.
    fn delete_folder(&self, mailbox: MailboxId, folder: FolderId) -> StoreResult<()> {
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            super::messages::lock_mailboxes(&tx, &[mailbox]).await?;
            find_folder(&tx, mailbox, folder, "FOR UPDATE")
                .await?
                .ok_or_else(|| StoreError::not_found(format!("folder {folder}")))?;
            let gone = tx
                .query_cached(
                    "DELETE FROM messages WHERE folder = $1 RETURNING blob, size",
                    &[&id(folder.0)?],
                )
                .await?;
            release_messages(&tx, mailbox, &gone).await?;
            // Its expunges and per-user \Seen go with it (ON DELETE CASCADE).
            tx.execute_cached("DELETE FROM folders WHERE id = $1", &[&id(folder.0)?])
                .await?;
            self.tell_folder(&tx, (mailbox, folder), vec![FolderEvent::Gone])
                .await?;
            tx.commit().await?;
            self.forget_bodies(super::messages::blob_ids(&gone)?);
            Ok(())
        })?;
        self.hub()
            .publish_folder(mailbox, folder, FolderEvent::Gone);
        Ok(())
    }

    /// RFC 3501 §2.3.2 `\Recent`, as sled's store: the old floor, raised to `uidnext`.
    fn claim_recent(&self, mailbox: MailboxId, folder: FolderId, uidnext: u32) -> StoreResult<u32> {
        let row = self.query_opt(
            "UPDATE folders f SET recent_floor = greatest(f.recent_floor, $3) \
             FROM (SELECT id, recent_floor AS old FROM folders \
                   WHERE id = $1 AND mailbox = $2 FOR UPDATE) o \
             WHERE f.id = o.id RETURNING o.old",
            &[&id(folder.0)?, &id(mailbox.0)?, &i64::from(uidnext)],
        )?;
        floor(row)
    }

    fn recent_floor(&self, mailbox: MailboxId, folder: FolderId) -> StoreResult<u32> {
        let row = self.query_opt(
            "SELECT recent_floor FROM folders WHERE id = $1 AND mailbox = $2",
            &[&id(folder.0)?, &id(mailbox.0)?],
        )?;
        floor(row)
    }

    fn append(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        raw: &[u8],
        meta: AppendMessage,
    ) -> StoreResult<MessageRecord> {
        let mut records = self.store_messages(&[(&[(mailbox, folder)], raw, meta)], None)?;
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
        self.store_messages(&[(targets, raw, meta)], None)
    }

    fn deliver_loaded(
        &self,
        targets: &[(MailboxId, FolderId)],
        message: &Loaded,
        meta: AppendMessage,
    ) -> StoreResult<Vec<MessageRecord>> {
        self.store_messages(&[(targets, message.bytes(), meta)], None)
    }

    fn append_loaded(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        message: &Loaded,
        meta: AppendMessage,
    ) -> StoreResult<MessageRecord> {
        self.append(mailbox, folder, message.bytes(), meta)
    }

    fn append_all(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        messages: &[(&Loaded, AppendMessage)],
    ) -> StoreResult<Vec<MessageRecord>> {
        let targets = [(mailbox, folder)];
        let items: Vec<_> = messages
            .iter()
            .map(|(m, meta)| (&targets[..], m.bytes(), meta.clone()))
            .collect();
        self.store_messages(&items, None)
    }

    fn messages(&self, mailbox: MailboxId, folder: FolderId) -> StoreResult<Vec<MessageRecord>> {
        self.records(mailbox, folder, 1, u32::MAX)
    }

    fn messages_between(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        first: u32,
        last: u32,
    ) -> StoreResult<Vec<MessageRecord>> {
        self.records(mailbox, folder, first, last)
    }

    fn message(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        uid: u32,
    ) -> StoreResult<Option<MessageRecord>> {
        Ok(self.records(mailbox, folder, uid, uid)?.pop())
    }

    fn expunge(&self, mailbox: MailboxId, folder: FolderId, uids: &[u32]) -> StoreResult<Vec<u32>> {
        self.expunge_where(mailbox, folder, uids, false)
    }

    fn expunge_deleted(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        uids: &[u32],
    ) -> StoreResult<Vec<u32>> {
        self.expunge_where(mailbox, folder, uids, true)
    }

    /// Bytes go in the transaction that drops their last reference: nothing is left to sweep.
    fn sweep_freed_blobs(&self) -> StoreResult<usize> {
        Ok(0)
    }

    fn read_message(&self, blob: &BlobId) -> StoreResult<bytes::Bytes> {
        self.read_blob(blob)
    }

    fn read_message_range(
        &self,
        blob: &BlobId,
        range: std::ops::Range<u64>,
    ) -> StoreResult<bytes::Bytes> {
        if let Some(body) = self.inner.bodies.get(blob) {
            return Ok(crate::store::blobs::slice_of(&body, range));
        }
        self.block(async { super::blobs::read_range(&self.client().await?, blob, range).await })
    }

    fn summary(&self, blob: &BlobId) -> StoreResult<MessageSummary> {
        self.blob_summary(blob)
    }

    fn user_seen(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        user: UserId,
    ) -> StoreResult<Vec<u32>> {
        let rows = self.query(
            "SELECT s.uid FROM user_seen s JOIN folders f ON f.id = s.folder \
             WHERE s.folder = $1 AND f.mailbox = $2 AND s.user_id = $3 ORDER BY s.uid",
            &[&id(folder.0)?, &id(mailbox.0)?, &id(user.0)?],
        )?;
        rows.iter()
            .map(|row| super::messages::uid(row.try_get(0)?))
            .collect()
    }

    fn usage(&self, mailbox: MailboxId) -> StoreResult<u64> {
        let row = self.query_opt(
            "SELECT usage_bytes FROM mailboxes WHERE id = $1",
            &[&id(mailbox.0)?],
        )?;
        let bytes: i64 = row.map(|row| row.try_get(0)).transpose()?.unwrap_or(0);
        Ok(bytes.max(0) as u64)
    }

    fn set_subscription(
        &self,
        who: Subscriber,
        mailbox: MailboxId,
        name: &str,
        on: bool,
    ) -> StoreResult<()> {
        self.execute(
            "INSERT INTO subscriptions (mailbox, subscriber, name, subscribed) \
             SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM mailboxes WHERE id = $1) \
             ON CONFLICT (mailbox, subscriber, name) DO UPDATE SET subscribed = $4",
            &[&id(mailbox.0)?, &id(who.id())?, &canonical_name(name), &on],
        )?;
        Ok(())
    }

    fn subscriptions(
        &self,
        who: Subscriber,
        mailbox: MailboxId,
    ) -> StoreResult<BTreeMap<String, bool>> {
        let rows = self.query(
            "SELECT name, subscribed FROM subscriptions WHERE mailbox = $1 AND subscriber = $2",
            &[&id(mailbox.0)?, &id(who.id())?],
        )?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }
}

/// Makes a folder in `mailbox`, with a UIDVALIDITY larger than any given before; a name the
/// mailbox has already is refused.
pub async fn make_folder(
    client: &impl GenericClient,
    mailbox: MailboxId,
    name: &str,
    special_use: Option<SpecialUse>,
) -> StoreResult<Folder> {
    // The one row serialises folder creation across nodes; folders are made rarely.
    let uidvalidity: i64 = client
        .query_one_cached(
            "UPDATE uidvalidity SET last = greatest(last + 1, $1, 1) RETURNING last",
            &[&((now_millis() / 1000) as i64)],
        )
        .await?
        .try_get(0)?;
    let special = special_use.as_ref().map(word).transpose()?;
    let row = client
        .query_opt_cached(
            &format!(
                "INSERT INTO folders (id, mailbox, name, name_key, special_use, uidvalidity, \
                 uidnext, highestmodseq) VALUES (nextval('ids'), $1, $2, $3, $4, $5, 1, 1) \
                 ON CONFLICT (mailbox, name_key) DO NOTHING RETURNING {FOLDER_COLUMNS}"
            ),
            &[
                &id(mailbox.0)?,
                &name,
                &canonical_name(name),
                &special,
                &uidvalidity,
            ],
        )
        .await?
        .ok_or_else(|| StoreError::FolderExists(name.to_string()))?;
    folder(&row)
}

/// The folder `folder` of `mailbox`; `lock` is a row-locking clause or empty.
pub async fn find_folder(
    client: &impl GenericClient,
    mailbox: MailboxId,
    folder_id: FolderId,
    lock: &str,
) -> StoreResult<Option<Folder>> {
    let row = client
        .query_opt_cached(
            &format!("SELECT {FOLDER_COLUMNS} FROM folders WHERE id = $1 AND mailbox = $2 {lock}"),
            &[&id(folder_id.0)?, &id(mailbox.0)?],
        )
        .await?;
    row.as_ref().map(folder).transpose()
}

pub fn folder(row: &Row) -> StoreResult<Folder> {
    let special: Option<&str> = row.try_get(3)?;
    let number = |i: usize, what: &str| -> StoreResult<u32> {
        let value: i64 = row.try_get(i)?;
        u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value}")))
    };
    let highestmodseq: i64 = row.try_get(6)?;
    Ok(Folder {
        id: FolderId(from_id(row.try_get(0)?, "folder")?),
        mailbox: MailboxId(from_id(row.try_get(1)?, "mailbox")?),
        name: row.try_get(2)?,
        special_use: special.map(|s| from_word(s, "special use")).transpose()?,
        uidvalidity: number(4, "uidvalidity")?,
        uidnext: number(5, "uidnext")?,
        highestmodseq: u64::try_from(highestmodseq)
            .map_err(|_| StoreError::Corrupt(format!("highestmodseq {highestmodseq}")))?,
        subscribed: false,
    })
}

fn floor(row: Option<Row>) -> StoreResult<u32> {
    let value: i64 = row.map(|row| row.try_get(0)).transpose()?.unwrap_or(1);
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("recent floor {value}")))
}
