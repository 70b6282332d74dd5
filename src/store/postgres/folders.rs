//! Folders on PostgreSQL. So far what the directory needs: a new mailbox's standard folders.

use super::rows::{from_id, id, word};
use crate::model::*;
use crate::store::error::{StoreError, StoreResult};
use crate::store::folders::{Folder, SpecialUse, canonical_name};
use deadpool_postgres::GenericClient;

/// Makes a folder in `mailbox`, with a UIDVALIDITY larger than any given before.
pub async fn make_folder(
    client: &impl GenericClient,
    mailbox: MailboxId,
    name: &str,
    special_use: Option<SpecialUse>,
) -> StoreResult<Folder> {
    // The one row serialises folder creation across nodes; folders are made rarely.
    let uidvalidity: i64 = client
        .query_one(
            "UPDATE uidvalidity SET last = greatest(last + 1, $1, 1) RETURNING last",
            &[&((now_millis() / 1000) as i64)],
        )
        .await?
        .try_get(0)?;
    let uidvalidity = u32::try_from(uidvalidity)
        .map_err(|_| StoreError::Corrupt(format!("uidvalidity {uidvalidity}")))?;
    let special = special_use.as_ref().map(word).transpose()?;
    let row = client
        .query_one(
            "INSERT INTO folders (id, mailbox, name, name_key, special_use, uidvalidity, \
             uidnext, highestmodseq) VALUES (nextval('ids'), $1, $2, $3, $4, $5, 1, 1) \
             RETURNING id",
            &[
                &id(mailbox.0)?,
                &name,
                &canonical_name(name),
                &special,
                &i64::from(uidvalidity),
            ],
        )
        .await?;
    Ok(Folder {
        id: FolderId(from_id(row.try_get(0)?, "folder")?),
        mailbox,
        name: name.to_string(),
        special_use,
        uidvalidity,
        uidnext: 1,
        highestmodseq: 1,
        subscribed: false,
    })
}
