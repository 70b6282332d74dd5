//! Data export: a mailbox as mbox (for whoever may read its mail), and a user's own data as
//! JSON (what the store holds about them).

use super::auth::Caller;
use super::error::{ApiError, ApiPath, ApiQuery, ApiResult};
use crate::access::{self, MailboxRef};
use crate::import::mbox;
use crate::model::*;
use crate::services::Services;
use crate::store::AuditQuery;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// One folder; all of them when left out (each message then says its folder in an
    /// `X-Mailgate-Folder:` line before its own header).
    pub folder: Option<String>,
}

/// `GET /api/v1/orgs/{org}/mailboxes/{id}/export`: mboxrd (RFC 4155), each message's folder
/// and flags on `X-Mailgate-` lines after its `From ` line, so that `…/imports/mbox` takes it
/// back whole. Reading mail takes the
/// `r` right, as over IMAP: owners and admins manage mailboxes but read them only through a
/// grant (ARCHITECTURE.md §2).
pub async fn mailbox(
    State(services): State<Arc<Services>>,
    super::ClientAddr(client): super::ClientAddr,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(OrgId, MailboxId)>,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    caller.see_org(org)?;
    let mailbox = match services.store.mailbox(id)? {
        Some(m) if m.org == org => m,
        _ => return Err(ApiError::NotFound(format!("mailbox {id} not found"))),
    };
    let rights = access::mailbox_access(&caller.principal(), MailboxRef { id, org }).rights;
    if !rights.contains(Right::Read) {
        return Err(ApiError::Forbidden(access::Denied::MissingRight(
            Right::Read,
        )));
    }
    // Issue 12: reading a mailbox through the API is an opening like IMAP's.
    super::audit::entry("mailbox.export", &mailbox.address)
        .org(org)
        .actor(caller.actor())
        .detail(format!(
            "mailbox {id} folder {}",
            query.folder.as_deref().unwrap_or("*")
        ))
        .record(&services, client);
    let store = services.store.clone();
    let folder = query.folder;
    let body = tokio::task::spawn_blocking(move || mbox(&store, &mailbox, folder.as_deref()))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "export task failed");
            ApiError::Internal
        })??;
    Ok((
        [
            (header::CONTENT_TYPE, "application/mbox".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.mbox\""),
            ),
        ],
        body,
    )
        .into_response())
}

pub(super) fn mbox(
    store: &crate::store::Store,
    mailbox: &Mailbox,
    only: Option<&str>,
) -> ApiResult<Vec<u8>> {
    let mut folders = store.folders(mailbox.id)?;
    if let Some(name) = only {
        folders.retain(|f| f.name == name);
        if folders.is_empty() {
            return Err(ApiError::NotFound(format!("folder {name:?} not found")));
        }
    }
    let mut out = Vec::new();
    write_folders(store, mailbox, &folders, only.is_none(), &mut out)?;
    Ok(out)
}

/// Writes the messages of `folders` as mboxrd to `out`, one message in memory at a time;
/// `name_them`: each with its folder's name (an export of them all).
pub(super) fn write_folders(
    store: &crate::store::Store,
    mailbox: &Mailbox,
    folders: &[crate::store::Folder],
    name_them: bool,
    out: &mut dyn std::io::Write,
) -> crate::store::StoreResult<()> {
    let mut one = Vec::new();
    for folder in folders {
        let shown = name_them.then_some(folder.name.as_str());
        for record in store.messages(mailbox.id, folder.id)? {
            let raw = store.read_message(&record.blob)?;
            let flags = mbox::flag_names(record.flags, &record.keywords);
            one.clear();
            let date = record.internal_date;
            mbox::write_message(&mut one, &mailbox.address, date, shown, &flags, &raw);
            out.write_all(&one)
                .map_err(|e| crate::store::StoreError::io(std::path::Path::new("export"), e))?;
        }
    }
    Ok(())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MyData {
    pub user: UserExport,
    pub memberships: Vec<Membership>,
    pub teams: Vec<Team>,
    pub grants: Vec<Grant>,
    pub tokens: Vec<String>,
    pub activity: Vec<AuditEvent>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserExport {
    pub id: UserId,
    pub login: String,
    pub display_name: String,
    pub disabled: bool,
}

/// `GET /api/v1/me/export`: everything the store holds about the caller, the password hash
/// and token secrets excepted.
pub async fn me(State(services): State<Arc<Services>>, caller: Caller) -> ApiResult<Json<MyData>> {
    let user = &caller.user;
    let tokens = services
        .store
        .api_tokens_of(user.id)?
        .into_iter()
        .filter_map(|t| match t.kind {
            crate::store::TokenKind::Personal { name } => Some(name),
            crate::store::TokenKind::Session => None,
        })
        .collect();
    let activity = services
        .store
        .audit_events(&AuditQuery::default())?
        .into_iter()
        .filter(|e| match e.actor {
            Actor::User(u) | Actor::Delegate { user: u, .. } | Actor::Partner { user: u, .. } => {
                u == user.id
            }
            _ => false,
        })
        .collect();
    Ok(Json(MyData {
        user: UserExport {
            id: user.id,
            login: user.login.clone(),
            display_name: user.display_name.clone(),
            disabled: user.disabled,
        },
        memberships: services.store.memberships_of(user.id)?,
        teams: services.store.teams_of(user.id)?,
        grants: caller.facts.grants.clone(),
        tokens,
        activity,
    }))
}
