//! Changes heard across nodes (ARCHITECTURE.md §6): a node that commits a change others must
//! act on sends a notice with it (`pg_notify`, delivered only if the transaction commits),
//! and every node keeps one connection of its own, outside the pool, listening. Notices are
//! hints, tiny, and carry no state: a node that lost its listening connection tells every
//! session to re-ask ([`AccessChange::Anything`]) once it listens again, since PostgreSQL
//! keeps nothing for a listener that was away.

use super::rows::Prepared;
use crate::model::{FolderId, MailboxId};
use crate::store::error::StoreResult;
use crate::store::hub::{AccessChange, FolderEvent, Hub, ServerChange};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::AsyncMessage;

const CHANNEL: &str = "mailgate_changes";
/// Between two attempts to listen again.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// UIDs per notice of an expunge: a notice's payload must stay under 8000 bytes.
const UIDS_PER_NOTICE: usize = 500;

/// What one notice says; `node` is its sender's, so that a node skips its own.
#[derive(Serialize, Deserialize)]
struct Notice {
    node: u64,
    change: Change,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Change {
    Access(AccessChange),
    Folder {
        mailbox: MailboxId,
        folder: FolderId,
        event: FolderEvent,
    },
    Server(ServerChange),
}

/// Sends `change` to the other nodes when `client`'s transaction commits.
pub async fn send(
    client: &impl deadpool_postgres::GenericClient,
    node: u64,
    change: AccessChange,
) -> StoreResult<()> {
    send_all(client, node, vec![Change::Access(change)]).await
}

/// Sends a server-wide `change` to the other nodes (at once, or when `client`'s transaction
/// commits).
pub async fn send_server(
    client: &impl deadpool_postgres::GenericClient,
    node: u64,
    change: ServerChange,
) -> StoreResult<()> {
    send_all(client, node, vec![Change::Server(change)]).await
}

/// Sends a folder's `events` to the other nodes when `client`'s transaction commits, so that
/// their sessions of the folder (IDLE among them) hear of them as this node's do.
pub async fn send_folder(
    client: &impl deadpool_postgres::GenericClient,
    node: u64,
    (mailbox, folder): (MailboxId, FolderId),
    events: Vec<FolderEvent>,
) -> StoreResult<()> {
    let mut changes = Vec::new();
    for event in events {
        let parts = match event {
            FolderEvent::Expunged { uids } => uids
                .chunks(UIDS_PER_NOTICE)
                .map(|part| FolderEvent::Expunged {
                    uids: part.to_vec(),
                })
                .collect(),
            other => vec![other],
        };
        changes.extend(parts.into_iter().map(|event| Change::Folder {
            mailbox,
            folder,
            event,
        }));
    }
    send_all(client, node, changes).await
}

/// One statement for all of them, however many.
async fn send_all(
    client: &impl deadpool_postgres::GenericClient,
    node: u64,
    changes: Vec<Change>,
) -> StoreResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let payloads = changes
        .into_iter()
        .map(|change| Ok(super::rows::json(&Notice { node, change })?.to_string()))
        .collect::<StoreResult<Vec<String>>>()?;
    client
        .execute_cached(
            "SELECT pg_notify($1, p) FROM unnest($2::text[]) p",
            &[&CHANNEL, &payloads],
        )
        .await?;
    Ok(())
}

/// Listens for the other nodes' notices and publishes them in this node's hub, for as long as
/// the backend's runtime runs; reconnects after a failure.
pub async fn listen(config: tokio_postgres::Config, node: u64, hub: Arc<Hub>) {
    let mut missed = false;
    loop {
        if let Err(e) = listen_once(&config, node, &hub, missed).await {
            tracing::warn!(error = %e, "not hearing the other nodes' changes; trying again");
        }
        missed = true;
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    node: u64,
    hub: &Hub,
    missed: bool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
    let (heard, mut notices) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            if let AsyncMessage::Notification(n) = message? {
                let _ = heard.send(n.payload().to_string());
            }
        }
        Ok::<(), tokio_postgres::Error>(())
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    if missed {
        hub.publish_access(AccessChange::Anything);
        hub.publish_server(ServerChange::Certificates);
        for (mailbox, folder) in hub.watched_folders() {
            hub.publish_folder(mailbox, folder, FolderEvent::Resync);
        }
    }
    while let Some(payload) = notices.recv().await {
        match serde_json::from_str::<Notice>(&payload) {
            Ok(notice) if notice.node != node => match notice.change {
                Change::Access(change) => hub.publish_access(change),
                Change::Folder {
                    mailbox,
                    folder,
                    event,
                } => hub.publish_folder(mailbox, folder, event),
                Change::Server(change) => hub.publish_server(change),
            },
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, payload, "a notice not understood"),
        }
    }
    // The connection ended: its driver says why.
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

/// Between two looks at the watched folders' counters (the unit tests look more often).
const POLL_EVERY: Duration = match cfg!(test) {
    true => Duration::from_millis(200),
    false => Duration::from_secs(20),
};

/// The safety net under the notices: every `POLL_EVERY`, the UIDNEXT and HIGHESTMODSEQ of
/// the folders this node's sessions watch; a folder whose counters moved since the last look
/// is read again by its sessions (`FolderEvent::Resync`), in case a notice went astray. Most
/// such moves were heard already; reading a folder again costs a session little.
pub async fn poll(pool: deadpool_postgres::Pool, hub: Arc<Hub>) {
    let mut last: HashMap<(MailboxId, FolderId), (i64, i64)> = HashMap::new();
    loop {
        tokio::time::sleep(POLL_EVERY).await;
        let watched = hub.watched_folders();
        last.retain(|place, _| watched.contains(place));
        if watched.is_empty() {
            continue;
        }
        match counters(&pool, &watched).await {
            Ok(now) => {
                for (place, counters) in now {
                    if last
                        .insert(place, counters)
                        .is_some_and(|before| before != counters)
                    {
                        hub.publish_folder(place.0, place.1, FolderEvent::Resync);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "polling the watched folders failed"),
        }
    }
}

async fn counters(
    pool: &deadpool_postgres::Pool,
    watched: &[(MailboxId, FolderId)],
) -> StoreResult<Vec<((MailboxId, FolderId), (i64, i64))>> {
    let ids: Vec<i64> = watched
        .iter()
        .map(|(_, folder)| super::rows::id(folder.0))
        .collect::<StoreResult<_>>()?;
    let client = pool.get().await?;
    let rows = client
        .query_cached(
            "SELECT mailbox, id, uidnext, highestmodseq FROM folders WHERE id = ANY($1)",
            &[&ids],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let mailbox = MailboxId(super::rows::from_id(row.try_get(0)?, "mailbox")?);
            let folder = FolderId(super::rows::from_id(row.try_get(1)?, "folder")?);
            Ok(((mailbox, folder), (row.try_get(2)?, row.try_get(3)?)))
        })
        .collect()
}
