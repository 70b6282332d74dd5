//! Imports (issue 12): mail moved into a mailbox from another IMAP server or an mbox file.
//! An import's record holds, per source folder, the last UID stored; each batch of messages
//! is committed in one transaction with the record that counts it, so an interrupted import
//! resumes after exactly what was stored, without duplicates.

use super::codec::{self, key};
use super::error::{StoreError, StoreResult};
use super::folders::{AppendMessage, Delivery, MessageRecord};
use super::interface::*;
use super::{Changes, SledStore};
use crate::model::*;
use serde::{Deserialize, Serialize};

/// How the source server's connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceTls {
    /// TLS from the first byte (port 993).
    Tls,
    /// STARTTLS before the login (port 143).
    Starttls,
    /// No TLS: for a server on a trusted network only.
    None,
}

/// Where the mail comes from. No password: it is given for each run and never kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportSource {
    Imap {
        host: String,
        port: u16,
        tls: SourceTls,
        /// Whether a certificate the machine does not trust is accepted (a self-signed one).
        accept_invalid_certificates: bool,
        login: String,
    },
    /// An uploaded mbox (or Maildir, turned into mbox by the CLI).
    Mbox,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportState {
    Running,
    /// Stopped before the end (the connection lost, the server restarted, cancelled):
    /// resumable with the source password.
    Interrupted,
    Done,
}

/// One source folder's progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FolderProgress {
    /// The folder's name on the source, as the source wrote it.
    pub source: String,
    /// The folder it goes to here.
    pub target: String,
    pub uidvalidity: u32,
    /// Every source message up to this UID is stored (or listed in `failures`).
    pub last_uid: u32,
    /// Messages the source holds, as counted when the run reached this folder.
    pub total: u32,
    pub messages: u64,
    pub bytes: u64,
    pub done: bool,
}

/// A message or folder that could not be moved, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportFailure {
    pub folder: String,
    pub uid: Option<u32>,
    pub reason: String,
}

/// At most this many failures are kept with an import (the count goes on).
pub const KEPT_FAILURES: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Import {
    pub id: ImportId,
    pub org: OrgId,
    pub mailbox: MailboxId,
    pub source: ImportSource,
    pub state: ImportState,
    /// Why the last run stopped, when it did not finish.
    pub stopped_because: Option<String>,
    pub created: Millis,
    /// When the current (or last) run began, and the messages and bytes stored before it:
    /// the rate is this run's.
    pub run_started: Millis,
    pub run_base: (u64, u64),
    pub finished: Option<Millis>,
    pub folders: Vec<FolderProgress>,
    pub failed: u64,
    pub failures: Vec<ImportFailure>,
    pub messages: u64,
    pub bytes: u64,
}

impl Import {
    /// The index of `source`'s entry in `folders`, made (going to `target`) on first use.
    pub fn folder_progress(&mut self, source: &str, target: &str) -> usize {
        if let Some(i) = self.folders.iter().position(|f| f.source == source) {
            return i;
        }
        self.folders.push(FolderProgress {
            source: source.to_string(),
            target: target.to_string(),
            uidvalidity: 0,
            last_uid: 0,
            total: 0,
            messages: 0,
            bytes: 0,
            done: false,
        });
        self.folders.len() - 1
    }

    /// Stopped before the end, resumable, with why.
    pub fn interrupt(&mut self, why: impl Into<String>) {
        self.state = ImportState::Interrupted;
        self.stopped_because = Some(why.into());
    }

    /// Every folder read to its end.
    pub fn complete(&mut self) {
        self.state = ImportState::Done;
        self.finished = Some(now_millis());
    }

    /// Counts a failure, keeping the first `KEPT_FAILURES` of them.
    pub fn fail(&mut self, folder: &str, uid: Option<u32>, reason: impl Into<String>) {
        self.failed += 1;
        if self.failures.len() < KEPT_FAILURES {
            self.failures.push(ImportFailure {
                folder: folder.to_string(),
                uid,
                reason: reason.into(),
            });
        }
    }
}

impl ImportStore for SledStore {
    fn create_import(&self, mailbox: MailboxId, source: ImportSource) -> StoreResult<Import> {
        let _guard = self.lock();
        let m = self.require_mailbox(mailbox)?;
        let now = now_millis();
        let import = Import {
            id: ImportId(self.next_id()?),
            org: m.org,
            mailbox,
            source,
            state: ImportState::Running,
            stopped_because: None,
            created: now,
            run_started: now,
            run_base: (0, 0),
            finished: None,
            folders: Vec::new(),
            failed: 0,
            failures: Vec::new(),
            messages: 0,
            bytes: 0,
        };
        let mut changes = Changes::default();
        changes.put_model(key(codec::IMPORT, &[import.id.0]), &import)?;
        self.commit(changes)?;
        Ok(import)
    }

    fn import(&self, id: ImportId) -> StoreResult<Option<Import>> {
        self.get_model(&key(codec::IMPORT, &[id.0]), "import")
    }

    fn imports_of(&self, mailbox: MailboxId) -> StoreResult<Vec<Import>> {
        let all: Vec<Import> = self.scan_model(&[codec::IMPORT], "import")?;
        Ok(all.into_iter().filter(|i| i.mailbox == mailbox).collect())
    }

    fn imports(&self) -> StoreResult<Vec<Import>> {
        self.scan_model(&[codec::IMPORT], "import")
    }

    fn save_import(&self, import: &Import) -> StoreResult<()> {
        let _guard = self.lock();
        self.require_mailbox(import.mailbox)?;
        let mut changes = Changes::default();
        changes.put_model(key(codec::IMPORT, &[import.id.0]), import)?;
        self.commit(changes)
    }

    fn import_batch(
        &self,
        import: &Import,
        folder: FolderId,
        messages: &[(Vec<u8>, AppendMessage)],
    ) -> StoreResult<Vec<MessageRecord>> {
        let targets = [(import.mailbox, folder)];
        let deliveries: Vec<Delivery<'_>> = messages
            .iter()
            .map(|(raw, meta)| Delivery::new(&targets, raw, None, meta.clone()))
            .collect();
        let mut changes = Changes::default();
        changes.put_model(key(codec::IMPORT, &[import.id.0]), import)?;
        if self.mailbox(import.mailbox)?.is_none() {
            return Err(StoreError::not_found(format!("mailbox {}", import.mailbox)));
        }
        self.deliver_all(&deliveries, changes)
    }

    fn interrupt_running_imports(&self) -> StoreResult<usize> {
        let mut n = 0;
        for mut import in self.imports()? {
            if self.mailbox(import.mailbox)?.is_none() {
                self.delete_import(import.id)?;
            } else if import.state == ImportState::Running {
                import.interrupt("the server stopped during the import");
                self.save_import(&import)?;
                n += 1;
            }
        }
        Ok(n)
    }

    fn delete_import(&self, id: ImportId) -> StoreResult<()> {
        let _guard = self.lock();
        let mut changes = Changes::default();
        changes.del_model(key(codec::IMPORT, &[id.0]));
        self.commit(changes)
    }
}
