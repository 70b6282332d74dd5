//! `/api/v1/orgs/{org}/mailboxes/{id}/imports`: moving mail into a mailbox (issue 12), from
//! another IMAP server in the background (resumable, its progress read here), or from an
//! mbox upload. For those who manage the mailbox; the source password is used for one run and
//! never kept or logged.

use super::auth::Caller;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use super::page::{Page, PageQuery, paginate};
use super::{ClientAddr, audit};
use crate::access::Action;
use crate::import::{self, ImportError, Secret};
use crate::model::*;
use crate::services::Services;
use crate::store::{Import, ImportSource, SourceTls};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The largest mbox one upload takes; the CLI sends bigger ones in parts.
pub const MBOX_UPLOAD_LIMIT: usize = 64 * 1024 * 1024;

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> ApiError {
        match e {
            ImportError::AlreadyRunning | ImportError::Cancelled => {
                ApiError::Conflict(e.to_string())
            }
            ImportError::Busy(_) => ApiError::Unavailable(
                "as many imports run as this server allows; try again when one has ended",
            ),
            ImportError::Refused(m) | ImportError::Source(m) => ApiError::Invalid(m),
            ImportError::Store(e) => e.into(),
        }
    }
}

/// An import with its rate and whether it runs now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ImportView {
    #[serde(flatten)]
    pub import: Import,
    pub running: bool,
    /// This run's (or the last run's) messages and bytes per second.
    pub messages_per_second: f64,
    pub bytes_per_second: f64,
}

fn view(services: &Services, import: Import) -> ImportView {
    let end = import.finished.unwrap_or_else(now_millis);
    let seconds = ((end - import.run_started).max(1) as f64) / 1000.0;
    let (messages, bytes) = import.run_base;
    ImportView {
        running: services.imports.is_running(import.id),
        messages_per_second: import.messages.saturating_sub(messages) as f64 / seconds,
        bytes_per_second: import.bytes.saturating_sub(bytes) as f64 / seconds,
        import,
    }
}

/// Checks that the caller manages the mailbox; 404 for one she may not learn of.
fn managed(services: &Services, caller: &Caller, org: OrgId, id: MailboxId) -> ApiResult<Mailbox> {
    caller.see_org(org)?;
    let mailbox = match services.store.mailbox(id)? {
        Some(m) if m.org == org => m,
        _ => return Err(ApiError::NotFound(format!("mailbox {id} not found"))),
    };
    caller.require(org, &Action::ManageMailbox(id))?;
    Ok(mailbox)
}

fn find(services: &Services, id: MailboxId, import: ImportId) -> ApiResult<Import> {
    match services.store.import(import)? {
        Some(i) if i.mailbox == id => Ok(i),
        _ => Err(ApiError::NotFound(format!("import {import} not found"))),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewImport {
    pub host: String,
    pub port: u16,
    pub tls: SourceTls,
    #[serde(default)]
    pub accept_invalid_certificates: bool,
    pub login: String,
    /// Used for this run only: never stored or logged.
    pub password: String,
}

/// `POST …/imports`: starts copying every folder of the source mailbox; 202 with the import,
/// whose progress `GET …/imports/{import}` shows.
pub async fn create(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(OrgId, MailboxId)>,
    ApiJson(req): ApiJson<NewImport>,
) -> ApiResult<(StatusCode, Json<ImportView>)> {
    let mailbox = managed(&services, &caller, org, id)?;
    let host = req.host.trim().to_ascii_lowercase();
    if host.is_empty() || req.port == 0 || req.login.is_empty() {
        return Err(ApiError::Invalid("host, port and login are needed".into()));
    }
    // Refused before anything is recorded: a source this server may not reach.
    import::imap::resolve(&services, &host, req.port).await?;
    let source = ImportSource::Imap {
        host: host.clone(),
        port: req.port,
        tls: req.tls,
        accept_invalid_certificates: req.accept_invalid_certificates,
        login: req.login.clone(),
    };
    let created = services.store.create_import(id, source)?;
    let started = match import::start(&services, created.clone(), Secret(req.password)) {
        Ok(started) => started,
        Err(e) => {
            // Not started: the record says why rather than lying about a run.
            let mut stopped = created;
            stopped.interrupt(e.to_string());
            services.store.save_import(&stopped)?;
            return Err(e.into());
        }
    };
    audit::entry("mailbox.import", &mailbox.address)
        .org(org)
        .actor(caller.actor())
        .detail(format!(
            "import {} from {} at {host}:{} ({:?})",
            started.id, req.login, req.port, req.tls
        ))
        .record(&services, client);
    Ok((StatusCode::ACCEPTED, Json(view(&services, started))))
}

/// `GET …/imports`.
pub async fn list(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(OrgId, MailboxId)>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<ImportView>>> {
    managed(&services, &caller, org, id)?;
    let views = services
        .store
        .imports_of(id)?
        .into_iter()
        .map(|i| view(&services, i))
        .collect();
    Ok(Json(paginate(
        views,
        |v| format!("{:020}", v.import.id.0),
        &page,
    )))
}

/// `GET …/imports/{import}`: its progress.
pub async fn show(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiPath((org, id, import)): ApiPath<(OrgId, MailboxId, ImportId)>,
) -> ApiResult<Json<ImportView>> {
    managed(&services, &caller, org, id)?;
    let found = find(&services, id, import)?;
    Ok(Json(view(&services, found)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeImport {
    pub password: String,
}

/// `POST …/imports/{import}/resume`: goes on after what an interrupted run stored.
pub async fn resume(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, id, import)): ApiPath<(OrgId, MailboxId, ImportId)>,
    ApiJson(req): ApiJson<ResumeImport>,
) -> ApiResult<(StatusCode, Json<ImportView>)> {
    let mailbox = managed(&services, &caller, org, id)?;
    let found = find(&services, id, import)?;
    if !matches!(found.source, ImportSource::Imap { .. }) {
        return Err(ApiError::Conflict(
            "an upload is not resumed; upload the rest".into(),
        ));
    }
    let started = import::start(&services, found, Secret(req.password))?;
    audit::entry("mailbox.import.resume", &mailbox.address)
        .org(org)
        .actor(caller.actor())
        .detail(format!("import {import}"))
        .record(&services, client);
    Ok((StatusCode::ACCEPTED, Json(view(&services, started))))
}

/// `DELETE …/imports/{import}`: stops a running import after its current batch (resumable
/// later), or forgets a stopped one (the mail it moved stays).
pub async fn delete(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, id, import)): ApiPath<(OrgId, MailboxId, ImportId)>,
) -> ApiResult<StatusCode> {
    let mailbox = managed(&services, &caller, org, id)?;
    let found = find(&services, id, import)?;
    let action = if services.imports.cancel(import) {
        "mailbox.import.cancel"
    } else {
        services.store.delete_import(found.id)?;
        "mailbox.import.forget"
    };
    audit::entry(action, &mailbox.address)
        .org(org)
        .actor(caller.actor())
        .detail(format!("import {import}"))
        .record(&services, client);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MboxQuery {
    /// Where messages go that name no folder (`X-Mailgate-Folder:`); INBOX when left out.
    pub folder: Option<String>,
}

/// `POST …/imports/mbox` (body: an mbox, up to 64 MiB): stores its messages now, each with
/// its date and flags; the answer counts them.
pub async fn mbox(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(OrgId, MailboxId)>,
    ApiQuery(query): ApiQuery<MboxQuery>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ImportView>)> {
    let mailbox = managed(&services, &caller, org, id)?;
    let folder = query.folder.unwrap_or_else(|| "INBOX".into());
    let created = services.store.create_import(id, ImportSource::Mbox)?;
    let store = services.store.clone();
    let max = u64::from(services.config.imap.max_message_bytes);
    let done = tokio::task::spawn_blocking(move || {
        import::store_mbox(&store, created, &folder, &body, max)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "mbox import task failed");
        ApiError::Internal
    })??;
    audit::entry("mailbox.import.mbox", &mailbox.address)
        .org(org)
        .actor(caller.actor())
        .detail(format!(
            "import {}: {} messages, {} bytes, {} failed",
            done.id, done.messages, done.bytes, done.failed
        ))
        .record(&services, client);
    Ok((StatusCode::CREATED, Json(view(&services, done))))
}
