//! The change notification hub: every open session of a folder hears of new messages, flag
//! changes and expunges there, and every session hears when access may have changed
//! (ARCHITECTURE.md §5). Events are published after the change is committed.

use crate::model::{FolderId, MailboxId, OrgId, UserId};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::broadcast;

/// Backlog per folder; a session that falls further behind resynchronizes from the store.
const FOLDER_BACKLOG: usize = 256;
const ACCESS_BACKLOG: usize = 1024;

/// Something changed in one folder.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FolderEvent {
    /// A message was added with this UID.
    Appended { uid: u32 },
    /// The flags of this message changed, at this MODSEQ.
    FlagsChanged { uid: u32, modseq: u64 },
    /// These messages were expunged.
    Expunged { uids: Vec<u32> },
    /// The folder was deleted or renamed away.
    Gone,
    /// Changes may have been missed (another node's, while this node could not hear them):
    /// the folder's sessions read it again.
    Resync,
}

/// Rights may have changed for whoever these concern: sessions re-ask `access`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessChange {
    /// A user's password, membership, teams or disabled state changed.
    User(UserId),
    /// A mailbox's password changed, or it was deleted.
    Mailbox(MailboxId),
    /// Grants, teams or partnerships of an organization changed.
    Organization(OrgId),
    /// Changes may have been missed (another node's, while this one could not hear them):
    /// every session re-asks.
    Anything,
}

/// Something server-wide changed that a node's own jobs act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerChange {
    /// The names that need certificates (a domain added or verified), or the certificates
    /// kept (one obtained or renewed): the ACME client looks again, and whichever node orders,
    /// every node serves what was obtained.
    Certificates,
}

/// Backlog of server-wide changes; one that falls behind looks again all the same.
const SERVER_BACKLOG: usize = 16;

pub struct Hub {
    folders: Mutex<HashMap<(MailboxId, FolderId), broadcast::Sender<FolderEvent>>>,
    access: broadcast::Sender<AccessChange>,
    server: broadcast::Sender<ServerChange>,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub {
            folders: Mutex::new(HashMap::new()),
            access: broadcast::channel(ACCESS_BACKLOG).0,
            server: broadcast::channel(SERVER_BACKLOG).0,
        }
    }
}

impl Hub {
    pub fn subscribe_folder(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
    ) -> broadcast::Receiver<FolderEvent> {
        let mut map = self.folders.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((mailbox, folder))
            .or_insert_with(|| broadcast::channel(FOLDER_BACKLOG).0)
            .subscribe()
    }

    pub fn publish_folder(&self, mailbox: MailboxId, folder: FolderId, event: FolderEvent) {
        let mut map = self.folders.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = map.get(&(mailbox, folder))
            && sender.send(event).is_err()
        {
            // Nobody listens any more: forget the channel.
            map.remove(&(mailbox, folder));
        }
    }

    /// The folders some session of this node is watching.
    pub fn watched_folders(&self) -> Vec<(MailboxId, FolderId)> {
        let map = self.folders.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|(_, sender)| sender.receiver_count() > 0)
            .map(|(place, _)| *place)
            .collect()
    }

    pub fn subscribe_access(&self) -> broadcast::Receiver<AccessChange> {
        self.access.subscribe()
    }

    pub fn publish_access(&self, change: AccessChange) {
        let _ = self.access.send(change);
    }

    pub fn subscribe_server(&self) -> broadcast::Receiver<ServerChange> {
        self.server.subscribe()
    }

    pub fn publish_server(&self, change: ServerChange) {
        let _ = self.server.send(change);
    }
}

/// Empties a receiver without waiting; whether anything had arrived (a lagged receiver
/// missed events, which counts as something).
pub fn drain<T: Clone>(rx: &mut broadcast::Receiver<T>) -> bool {
    let mut any = false;
    while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = rx.try_recv() {
        any = true;
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_events_reach_subscribers_of_that_folder_only() {
        let hub = Hub::default();
        let mut a = hub.subscribe_folder(MailboxId(1), FolderId(1));
        let mut b = hub.subscribe_folder(MailboxId(1), FolderId(2));
        hub.publish_folder(MailboxId(1), FolderId(1), FolderEvent::Appended { uid: 7 });
        assert_eq!(a.try_recv().unwrap(), FolderEvent::Appended { uid: 7 });
        assert!(b.try_recv().is_err());
    }
}
