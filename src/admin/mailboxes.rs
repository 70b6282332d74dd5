//! `/api/v1/orgs/{org}/mailboxes` and `/api/v1/orgs/{org}/aliases`

use super::auth::Caller;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use super::page::{Page, PageQuery, paginate};
use super::{ClientAddr, audit};
use crate::access::{self, Action, MailboxRef};
use crate::model::*;
use crate::password;
use crate::services::Services;
use crate::store::{AddressEntry, NewMailbox};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A mailbox as the API shows it: never its password hash.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MailboxView {
    pub id: MailboxId,
    pub address: String,
    pub display_name: String,
    /// 0: no limit.
    pub quota_bytes: u64,
    pub used_bytes: u64,
    pub seen_policy: SeenPolicy,
    pub aliases: Vec<String>,
    /// Present only in the answer that created the mailbox with a generated password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

fn view(services: &Services, m: Mailbox) -> ApiResult<MailboxView> {
    Ok(MailboxView {
        used_bytes: services.store.usage(m.id)?,
        aliases: services
            .store
            .aliases_of(m.id)?
            .into_iter()
            .map(|a| a.address)
            .collect(),
        id: m.id,
        address: m.address,
        display_name: m.display_name,
        quota_bytes: m.quota_bytes,
        seen_policy: m.seen,
        password: None,
    })
}

/// Whether the caller may know of this mailbox: managers, and whoever holds rights on it.
fn visible(caller: &Caller, m: &Mailbox) -> bool {
    let principal = caller.principal();
    access::may(&principal, m.org, &Action::ManageMailbox(m.id)).is_ok()
        || !access::mailbox_access(
            &principal,
            MailboxRef {
                id: m.id,
                org: m.org,
            },
        )
        .rights
        .is_empty()
}

/// The mailbox `id` of `org`, or 404 when it is elsewhere or not the caller's to know of.
fn find(services: &Services, caller: &Caller, org: OrgId, id: MailboxId) -> ApiResult<Mailbox> {
    caller.see_org(org)?;
    match services.store.mailbox(id)? {
        Some(m) if m.org == org && visible(caller, &m) => Ok(m),
        _ => Err(ApiError::NotFound(format!("mailbox {id} not found"))),
    }
}

pub async fn list(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<MailboxView>>> {
    caller.see_org(org)?;
    let mut views = Vec::new();
    for m in services.store.mailboxes(org)? {
        if visible(&caller, &m) {
            views.push(view(&services, m)?);
        }
    }
    Ok(Json(paginate(views, |m| m.address.clone(), &page)))
}

pub async fn get(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(OrgId, MailboxId)>,
) -> ApiResult<Json<MailboxView>> {
    let m = find(&services, &caller, org, id)?;
    Ok(Json(view(&services, m)?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMailbox {
    pub address: String,
    #[serde(default)]
    pub display_name: String,
    /// Generated (and shown once) when absent.
    pub password: Option<String>,
    #[serde(default)]
    pub quota_bytes: u64,
    #[serde(default)]
    pub seen_policy: SeenPolicy,
}

pub async fn create(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
    ApiJson(req): ApiJson<CreateMailbox>,
) -> ApiResult<(StatusCode, Json<MailboxView>)> {
    caller.require(org, &Action::CreateMailbox)?;
    let address = super::parse_address(&services, &req.address)?;
    if let Some(chosen) = &req.password {
        super::session::check_new_password(chosen, "")?;
    }
    let generated = req.password.is_none().then(password::generate);
    let plain = req
        .password
        .as_deref()
        .or(generated.as_deref())
        .unwrap_or_default();
    let hash = services.passwords.hash(plain).await?;
    let mailbox = services.store.create_mailbox(NewMailbox {
        org,
        address: address.key(),
        display_name: req.display_name,
        password: hash,
        quota_bytes: req.quota_bytes,
        seen: req.seen_policy,
    })?;
    audit::entry("mailbox.create", &mailbox.address)
        .org(org)
        .actor(caller.actor())
        .record(&services, client);
    let mut shown = view(&services, mailbox)?;
    shown.password = generated;
    Ok((StatusCode::CREATED, Json(shown)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMailbox {
    pub display_name: Option<String>,
    pub password: Option<String>,
    pub quota_bytes: Option<u64>,
    pub seen_policy: Option<SeenPolicy>,
}

pub async fn update(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(OrgId, MailboxId)>,
    ApiJson(req): ApiJson<UpdateMailbox>,
) -> ApiResult<Json<MailboxView>> {
    find(&services, &caller, org, id)?;
    caller.require(org, &Action::ManageMailbox(id))?;
    if req.password.is_some() {
        caller.require(org, &Action::SetMailboxPassword(id))?;
    }
    if let Some(chosen) = &req.password {
        super::session::check_new_password(chosen, "")?;
    }
    let hash = match req.password.as_deref() {
        Some(chosen) => Some(services.passwords.hash(chosen).await?),
        None => None,
    };
    let changed_password = hash.is_some();
    let mailbox = services.store.update_mailbox(id, |m| {
        if let Some(name) = req.display_name {
            m.display_name = name;
        }
        if let Some(hash) = hash {
            m.password = hash;
        }
        if let Some(q) = req.quota_bytes {
            m.quota_bytes = q;
        }
        if let Some(s) = req.seen_policy {
            m.seen = s;
        }
    })?;
    let action = if changed_password {
        "mailbox.password"
    } else {
        "mailbox.update"
    };
    audit::entry(action, &mailbox.address)
        .org(org)
        .actor(caller.actor())
        .record(&services, client);
    Ok(Json(view(&services, mailbox)?))
}

pub async fn delete(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(OrgId, MailboxId)>,
) -> ApiResult<StatusCode> {
    let mailbox = find(&services, &caller, org, id)?;
    // Deleting a box and its mail is the organization's decision, not a delegate's.
    caller.require(org, &Action::CreateMailbox)?;
    services.store.delete_mailbox(id)?;
    audit::entry("mailbox.delete", &mailbox.address)
        .org(org)
        .actor(caller.actor())
        .record(&services, client);
    Ok(StatusCode::NO_CONTENT)
}

// ----- aliases -----

#[derive(Serialize, utoipa::ToSchema)]
pub struct AliasView {
    pub address: String,
    pub mailbox_id: MailboxId,
    pub mailbox: String,
}

pub async fn list_aliases(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<AliasView>>> {
    caller.see_org(org)?;
    let mut views = Vec::new();
    for alias in services.store.aliases(org)? {
        if let Some(m) = services.store.mailbox(alias.mailbox)?
            && visible(&caller, &m)
        {
            views.push(AliasView {
                address: alias.address,
                mailbox_id: m.id,
                mailbox: m.address,
            });
        }
    }
    Ok(Json(paginate(views, |a| a.address.clone(), &page)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAlias {
    pub address: String,
    pub mailbox_id: MailboxId,
}

pub async fn create_alias(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
    ApiJson(req): ApiJson<CreateAlias>,
) -> ApiResult<(StatusCode, Json<AliasView>)> {
    let mailbox = find(&services, &caller, org, req.mailbox_id)?;
    caller.require(org, &Action::ManageMailbox(mailbox.id))?;
    let address = super::parse_address(&services, &req.address)?;
    let alias = services
        .store
        .create_alias(org, &address.key(), mailbox.id)?;
    audit::entry("alias.create", &alias.address)
        .org(org)
        .actor(caller.actor())
        .detail(format!("to {}", mailbox.address))
        .record(&services, client);
    Ok((
        StatusCode::CREATED,
        Json(AliasView {
            address: alias.address,
            mailbox_id: mailbox.id,
            mailbox: mailbox.address,
        }),
    ))
}

pub async fn delete_alias(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, address)): ApiPath<(OrgId, String)>,
) -> ApiResult<StatusCode> {
    caller.see_org(org)?;
    let not_found = || ApiError::NotFound(format!("alias {address} not found"));
    let alias = match services.store.resolve_address(&address)? {
        Some(AddressEntry::Alias(a)) if a.org == org => a,
        _ => return Err(not_found()),
    };
    find(&services, &caller, org, alias.mailbox).map_err(|_| not_found())?;
    caller.require(org, &Action::ManageMailbox(alias.mailbox))?;
    services.store.delete_alias(org, &alias.address)?;
    audit::entry("alias.delete", &alias.address)
        .org(org)
        .actor(caller.actor())
        .record(&services, client);
    Ok(StatusCode::NO_CONTENT)
}
