//! `/api/v1/orgs/{org}/domains`

use super::auth::Caller;
use super::error::{ApiJson, ApiPath, ApiQuery, ApiResult};
use super::page::{Page, PageQuery, paginate};
use super::{ClientAddr, audit};
use crate::access::Action;
use crate::model::*;
use crate::services::Services;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;

pub async fn list(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<Domain>>> {
    caller.see_org(org)?;
    let domains = services.store.domains(org)?;
    Ok(Json(paginate(domains, |d| d.name.clone(), &page)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    pub name: String,
}

pub async fn create(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
    ApiJson(req): ApiJson<NewDomain>,
) -> ApiResult<(StatusCode, Json<Domain>)> {
    caller.require(org, &Action::ManageDomains)?;
    let domain = services.store.add_domain(org, &req.name)?;
    audit::entry("domain.create", &domain.name)
        .org(org)
        .actor(caller.actor())
        .record(&services, client);
    Ok((StatusCode::CREATED, Json(domain)))
}

pub async fn delete(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, name)): ApiPath<(OrgId, String)>,
) -> ApiResult<StatusCode> {
    caller.require(org, &Action::ManageDomains)?;
    services.store.remove_domain(org, &name)?;
    audit::entry("domain.delete", &name)
        .org(org)
        .actor(caller.actor())
        .record(&services, client);
    Ok(StatusCode::NO_CONTENT)
}
