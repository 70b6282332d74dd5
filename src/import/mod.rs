//! Moving mail in (issue 12): a mailbox copied from another IMAP server, in the background and
//! resumable (`imap`), or from an mbox upload (`mbox`). The store keeps each import's
//! progress with the messages it counts; this module runs the copies and bounds how many run.

pub mod imap;
pub mod mbox;

use crate::model::*;
use crate::services::Services;
use crate::store::{AppendMessage, Flags, Import, ImportState, StoreError};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// A source password: held for one run, never written, never shown in a log.
#[derive(Clone)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why an import could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("this import is already running")]
    AlreadyRunning,
    #[error("{0} imports are running, the most this server runs at once; try again later")]
    Busy(usize),
    #[error("{0}")]
    Refused(String),
    #[error("the source server: {0}")]
    Source(String),
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The imports running now, each with the token that cancels it; `stop_all` at shutdown.
#[derive(Default)]
pub struct Running {
    jobs: Mutex<HashMap<ImportId, CancellationToken>>,
    shutdown: CancellationToken,
}

impl Running {
    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<ImportId, CancellationToken>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims a slot for `id`: refused when it runs already or the server runs its most.
    fn claim(&self, id: ImportId, most: usize) -> Result<CancellationToken, ImportError> {
        let mut jobs = self.jobs();
        if jobs.contains_key(&id) {
            return Err(ImportError::AlreadyRunning);
        }
        if jobs.len() >= most {
            return Err(ImportError::Busy(jobs.len()));
        }
        let token = self.shutdown.child_token();
        jobs.insert(id, token.clone());
        Ok(token)
    }

    fn release(&self, id: ImportId) {
        self.jobs().remove(&id);
    }

    pub fn is_running(&self, id: ImportId) -> bool {
        self.jobs().contains_key(&id)
    }

    /// Stops every import (the server is stopping); each is left interrupted, resumable.
    pub fn stop_all(&self) {
        self.shutdown.cancel();
    }

    /// Asks a running import to stop after its current batch; false when none runs.
    pub fn cancel(&self, id: ImportId) -> bool {
        self.jobs().get(&id).map(|t| t.cancel()).is_some()
    }
}

/// Starts (or resumes) an IMAP import in the background; it runs until done, cancelled,
/// the source fails, or the server stops.
pub fn start(
    services: &Arc<Services>,
    mut import: Import,
    password: Secret,
) -> Result<Import, ImportError> {
    let token = services
        .imports
        .claim(import.id, services.config.import.max_running)?;
    // The record as the store has it now: a run that ended since the caller read it may
    // have stored more batches, and its progress must not go back.
    match services.store.import(import.id) {
        Ok(Some(current)) => import = current,
        Ok(None) => {
            services.imports.release(import.id);
            return Err(ImportError::Refused(format!(
                "import {} is gone",
                import.id
            )));
        }
        Err(e) => {
            services.imports.release(import.id);
            return Err(e.into());
        }
    }
    import.state = ImportState::Running;
    import.stopped_because = None;
    import.finished = None;
    import.run_started = now_millis();
    import.run_base = (import.messages, import.bytes);
    if let Err(e) = services.store.save_import(&import) {
        services.imports.release(import.id);
        return Err(e.into());
    }
    let services = services.clone();
    let started = import.clone();
    tokio::spawn(async move {
        let id = import.id;
        // Cancellation is checked between batches, so a batch is stored whole or not at all.
        let result = imap::copy(&services, &mut import, &password, &token).await;
        finish(&services, import, result);
        services.imports.release(id);
    });
    Ok(started)
}

/// Records how a run ended. The progress of every stored batch is already in the store;
/// what is written here is the state, from the store's copy, so that a batch's count is
/// never overwritten by an older one.
fn finish(services: &Services, import: Import, result: Result<(), ImportError>) {
    let mut saved = match services.store.import(import.id) {
        Ok(Some(saved)) => saved,
        _ => import,
    };
    match result {
        Ok(()) => {
            saved.complete();
            tracing::info!(import = %saved.id, messages = saved.messages, "import done");
        }
        Err(e) => {
            saved.interrupt(e.to_string());
            tracing::warn!(import = %saved.id, error = %e, "import stopped");
        }
    }
    if let Err(e) = services.store.save_import(&saved) {
        tracing::error!(import = %saved.id, error = %e, "recording the end of an import failed");
    }
}

/// A message's flags and keywords as IMAP names them (`\Seen`, `$Forwarded`), into what the
/// store keeps; `\Recent` and what cannot be a keyword are dropped.
pub fn append_meta<'a>(
    names: impl IntoIterator<Item = &'a str>,
    date: Option<Millis>,
) -> AppendMessage {
    let mut flags = Flags::default();
    let mut keywords = Vec::new();
    for name in names {
        match name.to_ascii_lowercase().as_str() {
            "\\seen" => flags = flags.with(Flags::SEEN, true),
            "\\answered" => flags = flags.with(Flags::ANSWERED, true),
            "\\flagged" => flags = flags.with(Flags::FLAGGED, true),
            "\\deleted" => flags = flags.with(Flags::DELETED, true),
            "\\draft" => flags = flags.with(Flags::DRAFT, true),
            _ if is_keyword(name) => keywords.push(name.to_string()),
            _ => {}
        }
    }
    AppendMessage {
        flags,
        keywords,
        internal_date: date,
        seen_by: None,
    }
}

/// RFC 3501 §9: a keyword is an atom (no specials, no `\`).
fn is_keyword(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b))
}

/// Stores an uploaded mbox into the import's mailbox: each message in the folder its
/// `X-Mailgate-Folder:` line names, else in `folder` (made when missing), in batches that
/// carry the import's counts; a message over `max` bytes is recorded as failed. Returns the
/// import as it ends; one that stops on a store error is recorded as interrupted, with the
/// messages stored before it counted.
pub fn store_mbox(
    store: &crate::store::Store,
    mut import: Import,
    folder: &str,
    mbox: &[u8],
    max: u64,
) -> Result<Import, ImportError> {
    match store_messages(store, &mut import, folder, mbox, max) {
        Ok(()) => {
            for f in &mut import.folders {
                f.done = true;
                f.total = f.last_uid;
            }
            import.complete();
            store.save_import(&import)?;
            Ok(import)
        }
        Err(e) => {
            let mut saved = store.import(import.id)?.unwrap_or(import);
            saved.interrupt(e.to_string());
            store.save_import(&saved)?;
            Err(e)
        }
    }
}

/// A batch of an upload: at most this many messages, or about this many bytes.
const MBOX_BATCH: (usize, u64) = (200, 8 * 1024 * 1024);

fn store_messages(
    store: &crate::store::Store,
    import: &mut Import,
    folder: &str,
    mbox: &[u8],
    max: u64,
) -> Result<(), ImportError> {
    let mut pending: Vec<(Vec<u8>, AppendMessage)> = Vec::new();
    let mut pending_bytes = 0;
    let mut pending_folder: Option<crate::store::Folder> = None;
    for message in mbox::messages(mbox) {
        let name = message.folder.as_deref().unwrap_or(folder);
        let bytes = message.raw.len() as u64;
        if bytes > max {
            import.fail(
                name,
                None,
                format!("larger than this server's limit of {max} bytes"),
            );
            continue;
        }
        let target = match store.folder_by_name(import.mailbox, name)? {
            Some(f) => f,
            None => match store.create_folder(import.mailbox, name, None) {
                Ok(f) => f,
                Err(e) => {
                    import.fail(name, None, format!("folder not made: {e}"));
                    continue;
                }
            },
        };
        let full = pending.len() >= MBOX_BATCH.0 || pending_bytes + bytes > MBOX_BATCH.1;
        if pending_folder.as_ref().is_some_and(|f| f.id != target.id) || full {
            flush_mbox_batch(store, import, pending_folder.as_ref(), &mut pending)?;
            pending_bytes = 0;
        }
        let index = import.folder_progress(&target.name, &target.name);
        let progress = &mut import.folders[index];
        progress.last_uid = progress.last_uid.saturating_add(1);
        progress.messages += 1;
        progress.bytes += bytes;
        import.messages += 1;
        import.bytes += bytes;
        pending.push((message.raw, message.meta));
        pending_bytes += bytes;
        pending_folder = Some(target);
    }
    flush_mbox_batch(store, import, pending_folder.as_ref(), &mut pending)
}

fn flush_mbox_batch(
    store: &crate::store::Store,
    import: &mut Import,
    folder: Option<&crate::store::Folder>,
    pending: &mut Vec<(Vec<u8>, AppendMessage)>,
) -> Result<(), ImportError> {
    if let Some(folder) = folder
        && !pending.is_empty()
    {
        store.import_batch(import, folder.id, pending)?;
        pending.clear();
    }
    Ok(())
}
