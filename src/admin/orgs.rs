//! `/api/v1/orgs` and `/api/v1/operators`: the server's operators create and rename
//! organizations, and name other operators (issue 12). The first start's owner is the
//! first operator; an organization's owners rename their own.

use super::auth::Caller;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use super::page::{Page, PageQuery, paginate};
use super::{ClientAddr, audit};
use crate::access::{self, Action};
use crate::model::*;
use crate::password;
use crate::services::Services;
use crate::store::NewUser;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

fn require_operator(caller: &Caller) -> ApiResult<()> {
    access::may_operate(&caller.principal()).map_err(ApiError::Forbidden)
}

/// `GET /api/v1/orgs`: every organization of the server (operators only).
pub async fn list(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<Organization>>> {
    require_operator(&caller)?;
    let orgs = services.store.organizations()?;
    Ok(Json(paginate(orgs, |o| format!("{:020}", o.id.0), &page)))
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
    pub name: String,
}

/// `PATCH /api/v1/orgs/{org}`: a new name, by an operator or the organization's own managers.
pub async fn rename(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
    ApiJson(req): ApiJson<OrganizationChange>,
) -> ApiResult<Json<Organization>> {
    if require_operator(&caller).is_err() {
        caller.require(org, &Action::EditOrganization)?;
    }
    let before = services
        .store
        .organization(org)?
        .ok_or_else(|| ApiError::NotFound(format!("organization {org} not found")))?;
    let renamed = services.store.rename_organization(org, &req.name)?;
    audit::entry("org.rename", &renamed.name)
        .org(org)
        .actor(caller.actor())
        .detail(format!("was {}", before.name))
        .record(&services, client);
    Ok(Json(renamed))
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
