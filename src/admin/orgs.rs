//! `/api/v1/orgs` and `/api/v1/operators`: the server's operators create, rename, suspend
//! and delete organizations, and name other operators (issue 12). The first start's owner is
//! the first operator; an organization's owners rename their own.

use super::auth::Caller;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use super::page::{Page, PageQuery, paginate};
use super::{ClientAddr, audit};
use crate::access::{self, Action};
use crate::model::*;
use crate::password;
use crate::services::Services;
use crate::store::{NewUser, Store, StoreResult};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

fn require_operator(caller: &Caller) -> ApiResult<()> {
    access::may_operate(&caller.principal()).map_err(ApiError::Forbidden)
}

/// An organization with its state.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OrganizationView {
    #[serde(flatten)]
    pub organization: Organization,
    /// Set while it is suspended (and, with `deletion_due`, set for deletion).
    pub suspension: Option<Suspension>,
}

fn view(services: &Services, organization: Organization) -> ApiResult<OrganizationView> {
    let suspension = services.store.suspension(organization.id)?;
    Ok(OrganizationView {
        organization,
        suspension,
    })
}

/// `GET /api/v1/orgs`: every organization of the server (operators only).
pub async fn list(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<OrganizationView>>> {
    require_operator(&caller)?;
    let orgs = services.store.organizations()?;
    let views = orgs
        .into_iter()
        .map(|o| view(&services, o))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(paginate(
        views,
        |o| format!("{:020}", o.organization.id.0),
        &page,
    )))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganization {
    pub name: String,
    /// The login of its first owner: an existing user (who keeps her password), or a new
    /// one, whose generated password the answer shows once.
    pub owner: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedOrganization {
    #[serde(flatten)]
    pub organization: Organization,
    pub owner: UserId,
    /// Only when the owner was created: her first password, to be changed at first login.
    pub initial_password: Option<String>,
}

/// `POST /api/v1/orgs`: by an operator; or, where `[admin] self_service_organizations` is
/// on, by any signed-in user for herself as the owner.
pub async fn create(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiJson(req): ApiJson<NewOrganization>,
) -> ApiResult<(StatusCode, Json<CreatedOrganization>)> {
    let login = req.owner.trim().to_ascii_lowercase();
    if let Err(refused) = require_operator(&caller) {
        let own = login == caller.user.login.to_ascii_lowercase();
        if !(services.config.admin.self_service_organizations && own) {
            return Err(refused);
        }
    }
    let (owner, initial_password) = match services.store.user_by_login(&login)? {
        Some(user) => (user, None),
        None => {
            let initial = password::generate();
            let hash = services.passwords.hash(&initial).await?;
            let user = services.store.create_user(NewUser {
                login,
                display_name: String::new(),
                password: hash,
                must_change_password: true,
                own_mailbox: None,
            })?;
            (user, Some(initial))
        }
    };
    let organization = services.store.create_organization(&req.name, owner.id)?;
    audit::entry("org.create", &organization.name)
        .org(organization.id)
        .actor(caller.actor())
        .detail(format!("owner {} ({})", owner.login, owner.id))
        .record(&services, client);
    let created = CreatedOrganization {
        organization,
        owner: owner.id,
        initial_password,
    };
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganizationChange {
    pub name: Option<String>,
    /// `true` suspends (operators only): mail kept, logins and deliveries refused with
    /// temporary answers, open sessions ended. `false` resumes, and cancels a deletion.
    pub suspended: Option<bool>,
}

/// `PATCH /api/v1/orgs/{org}`: a new name, by an operator or the organization's own managers;
/// a suspension or its end, by an operator.
pub async fn change(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
    ApiJson(req): ApiJson<OrganizationChange>,
) -> ApiResult<Json<OrganizationView>> {
    if req.name.is_none() && req.suspended.is_none() {
        return Err(ApiError::Invalid(
            "nothing to change: give name or suspended".into(),
        ));
    }
    if req.suspended.is_some() {
        require_operator(&caller)?;
    } else if require_operator(&caller).is_err() {
        caller.require(org, &Action::EditOrganization)?;
    }
    let before = services
        .store
        .organization(org)?
        .ok_or_else(|| ApiError::NotFound(format!("organization {org} not found")))?;
    let mut after = before.clone();
    if let Some(name) = &req.name {
        after = services.store.rename_organization(org, name)?;
        audit::entry("org.rename", &after.name)
            .org(org)
            .actor(caller.actor())
            .detail(format!("was {}", before.name))
            .record(&services, client);
    }
    match req.suspended {
        Some(true) => {
            // Suspended again: a deletion already set stays set.
            let due = services.store.suspension(org)?.and_then(|s| s.deletion_due);
            services.store.suspend_organization(org, due)?;
            cancel_imports(&services, org)?;
            audit::entry("org.suspend", &after.name)
                .org(org)
                .actor(caller.actor())
                .record(&services, client);
        }
        Some(false) if services.store.is_suspended(org)? => {
            services.store.resume_organization(org)?;
            audit::entry("org.resume", &after.name)
                .org(org)
                .actor(caller.actor())
                .record(&services, client);
        }
        _ => {}
    }
    Ok(Json(view(&services, after)?))
}

/// `DELETE /api/v1/orgs/{org}` (operators): suspends the organization at once and deletes it
/// when `[admin] organization_deletion_grace_days` have passed, each mailbox exported first
/// (`keep_deletions`). Until then `PATCH {"suspended": false}` takes it back.
pub async fn delete(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
) -> ApiResult<(StatusCode, Json<OrganizationView>)> {
    require_operator(&caller)?;
    let organization = services
        .store
        .organization(org)?
        .ok_or_else(|| ApiError::NotFound(format!("organization {org} not found")))?;
    let grace = services.config.admin.organization_deletion_grace_days;
    let due = now_millis().saturating_add(grace.saturating_mul(DAY_MILLIS));
    services.store.suspend_organization(org, Some(due))?;
    cancel_imports(&services, org)?;
    audit::entry("org.delete.scheduled", &organization.name)
        .org(org)
        .actor(caller.actor())
        .detail(format!("deleted after {grace} days, at {due} ms"))
        .record(&services, client);
    Ok((StatusCode::ACCEPTED, Json(view(&services, organization)?)))
}

const DAY_MILLIS: i64 = 24 * 60 * 60 * 1000;

/// Stops the imports running into a suspended organization's mailboxes (resumable later).
fn cancel_imports(services: &Services, org: OrgId) -> ApiResult<()> {
    for import in services.store.imports()? {
        if import.org == org {
            services.imports.cancel(import.id);
        }
    }
    Ok(())
}

/// Deletes the organizations whose grace period is over, each mailbox first exported as
/// mboxrd to `exports/org-<id>/` in the data directory; checked every few seconds.
pub async fn keep_deletions(services: Arc<Services>, shutdown: CancellationToken) {
    // A deletion that failed (a full disk, say) is tried again later, not every check.
    let mut retry_at: RetryAt = Default::default();
    loop {
        if services.runs(crate::services::Job::Deletions).await {
            deletion_round(&services, &mut retry_at).await;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(DELETION_CHECK) => {}
        }
    }
}

/// When each organization whose deletion failed is tried again.
type RetryAt = std::collections::HashMap<OrgId, std::time::Instant>;

/// Deletes the organizations due, but not those that failed within `DELETION_RETRY`.
async fn deletion_round(services: &Arc<Services>, retry_at: &mut RetryAt) {
    let store = services.store.clone();
    let due = tokio::task::spawn_blocking(move || due_deletions(&store))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let orgs = match due {
        Ok(orgs) => orgs,
        Err(e) => {
            tracing::error!(error = %e, "reading organization suspensions failed");
            return;
        }
    };
    let now = std::time::Instant::now();
    for org in orgs {
        if retry_at.get(&org).is_some_and(|at| *at > now) {
            continue;
        }
        if delete_now(services, org).await {
            retry_at.remove(&org);
        } else {
            retry_at.insert(org, now + DELETION_RETRY);
        }
    }
}

const DELETION_CHECK: std::time::Duration = std::time::Duration::from_secs(2);
const DELETION_RETRY: std::time::Duration = std::time::Duration::from_secs(600);

fn due_deletions(store: &Store) -> StoreResult<Vec<OrgId>> {
    let now = now_millis();
    Ok(store
        .suspensions()?
        .into_iter()
        .filter(|(_, s)| s.deletion_due.is_some_and(|due| due <= now))
        .map(|(org, _)| org)
        .collect())
}

/// Whether the organization went.
async fn delete_now(services: &Arc<Services>, org: OrgId) -> bool {
    let store = services.store.clone();
    let done = tokio::task::spawn_blocking(move || export_and_delete(&store, org)).await;
    let failure = match done {
        Ok(Ok((name, folder))) => {
            audit::entry("org.delete", &name)
                .detail(format!("organization {org}; its mail exported to {folder}"))
                .record(services, None);
            tracing::info!(%org, %name, export = %folder, "organization deleted");
            return true;
        }
        Ok(Err(e)) => format!("{e:?}"),
        Err(e) => e.to_string(),
    };
    tracing::error!(%org, error = %failure, "deleting an organization failed; tried again in 10 minutes");
    false
}

/// Exports every mailbox, then deletes; a failed export leaves the organization in place
/// (to be tried again at the next check).
fn export_and_delete(store: &Store, org: OrgId) -> ApiResult<(String, String)> {
    let organization = store
        .organization(org)?
        .ok_or_else(|| ApiError::NotFound(format!("organization {org} not found")))?;
    let folder = format!("org-{}", org.0);
    let mut path = None;
    for mailbox in store.mailboxes(org)? {
        let folders = store.folders(mailbox.id)?;
        let name = format!(
            "{}-{}.mbox",
            mailbox.id.0,
            mailbox.address.replace('/', "_")
        );
        path = Some(store.save_export(&folder, &name, |out| {
            super::export::write_folders(store, &mailbox, &folders, true, out)
        })?);
    }
    store.delete_organization(org)?;
    let shown = path
        .and_then(|p| p.parent().map(|d| d.display().to_string()))
        .unwrap_or_else(|| format!("exports/{folder} (no mailboxes)"));
    Ok((organization.name, shown))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OperatorView {
    pub user: UserId,
    pub login: String,
}

/// `GET /api/v1/operators`.
pub async fn operators(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<OperatorView>>> {
    require_operator(&caller)?;
    let mut out = Vec::new();
    for id in services.store.operators()? {
        if let Some(user) = services.store.user(id)? {
            out.push(OperatorView {
                user: id,
                login: user.login,
            });
        }
    }
    Ok(Json(paginate(out, |o| format!("{:020}", o.user.0), &page)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOperator {
    /// The login of an existing user.
    pub login: String,
}

/// `POST /api/v1/operators`: names another operator.
pub async fn add_operator(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiJson(req): ApiJson<NewOperator>,
) -> ApiResult<(StatusCode, Json<OperatorView>)> {
    require_operator(&caller)?;
    let user = services
        .store
        .user_by_login(&req.login.trim().to_ascii_lowercase())?
        .ok_or_else(|| ApiError::NotFound(format!("no user {:?}", req.login)))?;
    services.store.set_operator(user.id, true)?;
    audit::entry("operator.add", &user.login)
        .actor(caller.actor())
        .record(&services, client);
    let view = OperatorView {
        user: user.id,
        login: user.login,
    };
    Ok((StatusCode::CREATED, Json(view)))
}

/// `DELETE /api/v1/operators/{user}`: the last operator stays (409).
pub async fn remove_operator(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath(user): ApiPath<UserId>,
) -> ApiResult<StatusCode> {
    require_operator(&caller)?;
    if !services.store.is_operator(user)? {
        return Err(ApiError::NotFound(format!("user {user} is no operator")));
    }
    services.store.set_operator(user, false)?;
    audit::entry("operator.remove", format!("user {user}"))
        .actor(caller.actor())
        .record(&services, client);
    Ok(StatusCode::NO_CONTENT)
}
