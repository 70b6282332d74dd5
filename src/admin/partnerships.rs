//! Partnerships: a client organization's owner invites a partner organization to manage it,
//! with a full or a limited (chosen mailboxes) scope; the partner's owner accepts or refuses;
//! the client changes the scope; either side ends it, confirming with a password. The
//! partner lists its clients, as JSON or CSV.

use super::auth::Caller;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use super::page::{Page, PageQuery, paginate};
use super::{ClientAddr, audit};
use crate::access::Action;
use crate::model::*;
use crate::services::Services;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Serialize, utoipa::ToSchema)]
pub struct PartnershipView {
    pub id: PartnershipId,
    pub client: OrgId,
    pub client_name: String,
    pub partner: OrgId,
    pub partner_name: String,
    pub scope: PartnerScope,
    pub status: PartnershipStatus,
    pub created: Millis,
}

fn view(services: &Services, p: Partnership) -> ApiResult<PartnershipView> {
    let name = |org| -> ApiResult<String> {
        Ok(services
            .store
            .organization(org)?
            .map(|o| o.name)
            .unwrap_or_default())
    };
    // An organization's name is told to the other side only once the partner accepted: an
    // invitation to a guessed id must not reveal whose it is.
    let partner_name = match p.status {
        PartnershipStatus::Accepted | PartnershipStatus::Ended => name(p.partner)?,
        PartnershipStatus::Invited | PartnershipStatus::Refused => String::new(),
    };
    Ok(PartnershipView {
        id: p.id,
        client_name: name(p.client)?,
        partner_name,
        client: p.client,
        partner: p.partner,
        scope: p.scope,
        status: p.status,
        created: p.created,
    })
}

/// The partnership, if `org` is one of its two sides; otherwise 404.
fn find(services: &Services, org: OrgId, id: PartnershipId) -> ApiResult<Partnership> {
    match services.store.partnership(id)? {
        Some(p) if p.client == org || p.partner == org => Ok(p),
        _ => Err(ApiError::NotFound(format!("partnership {id} not found"))),
    }
}

pub async fn list(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<PartnershipView>>> {
    caller.require(org, &Action::ViewAudit)?;
    let mut views = Vec::new();
    for p in services.store.partnerships_of(org)? {
        views.push(view(&services, p)?);
    }
    Ok(Json(paginate(views, |v| format!("{:020}", v.id.0), &page)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerInvitation {
    /// The partner organization's id, as its owner gives it.
    pub partner: OrgId,
    pub scope: PartnerScope,
}

pub async fn invite(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
    ApiJson(req): ApiJson<PartnerInvitation>,
) -> ApiResult<(StatusCode, Json<PartnershipView>)> {
    caller.require(org, &Action::ManagePartnerships)?;
    if services.store.organization(req.partner)?.is_none() {
        return Err(ApiError::NotFound(format!(
            "organization {} not found",
            req.partner
        )));
    }
    let p = services.store.invite_partner(org, req.partner, req.scope)?;
    audit::entry("partnership.invite", format!("partnership {}", p.id))
        .org(org)
        .actor(caller.actor())
        .detail(format!("partner {}", p.partner))
        .record(&services, client);
    Ok((StatusCode::CREATED, Json(view(&services, p)?)))
}

/// `POST …/partnerships/{id}/accept`: the partner's owner takes the invitation.
pub async fn accept(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(OrgId, PartnershipId)>,
) -> ApiResult<Json<PartnershipView>> {
    answer(
        &services,
        client,
        &caller,
        org,
        id,
        PartnershipStatus::Accepted,
    )
    .await
}

/// `POST …/partnerships/{id}/refuse`
pub async fn refuse(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(OrgId, PartnershipId)>,
) -> ApiResult<Json<PartnershipView>> {
    answer(
        &services,
        client,
        &caller,
        org,
        id,
        PartnershipStatus::Refused,
    )
    .await
}

async fn answer(
    services: &Services,
    client: Option<std::net::SocketAddr>,
    caller: &Caller,
    org: OrgId,
    id: PartnershipId,
    status: PartnershipStatus,
) -> ApiResult<Json<PartnershipView>> {
    caller.require(org, &Action::ManagePartnerships)?;
    let p = find(services, org, id)?;
    let verb = if status == PartnershipStatus::Accepted {
        "accept"
    } else {
        "refuse"
    };
    if p.partner != org {
        let why = "only the invited partner answers an invitation";
        return Err(ApiError::Forbidden(crate::access::Denied::OtherSide(why)));
    }
    if p.status != PartnershipStatus::Invited {
        return Err(ApiError::Conflict(format!(
            "the partnership is {:?}, not invited",
            p.status
        )));
    }
    let p = services.store.update_partnership(id, status, None)?;
    audit::entry(&format!("partnership.{verb}"), format!("partnership {id}"))
        .org(org)
        .actor(caller.actor())
        .record(services, client);
    Ok(Json(view(services, p)?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeChange {
    pub scope: PartnerScope,
}

/// `PATCH …/partnerships/{id}`: the client changes what the partner may manage.
pub async fn rescope(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(OrgId, PartnershipId)>,
    ApiJson(req): ApiJson<ScopeChange>,
) -> ApiResult<Json<PartnershipView>> {
    caller.require(org, &Action::ManagePartnerships)?;
    let p = find(&services, org, id)?;
    if p.client != org {
        let why = "only the client changes the scope";
        return Err(ApiError::Forbidden(crate::access::Denied::OtherSide(why)));
    }
    if matches!(
        p.status,
        PartnershipStatus::Ended | PartnershipStatus::Refused
    ) {
        return Err(ApiError::Conflict("the partnership is over".into()));
    }
    let p = services
        .store
        .update_partnership(id, p.status, Some(req.scope))?;
    audit::entry("partnership.scope", format!("partnership {id}"))
        .org(org)
        .actor(caller.actor())
        .record(&services, client);
    Ok(Json(view(&services, p)?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    pub password: String,
}

/// `POST …/partnerships/{id}/end`: either side, with the caller's password.
pub async fn end(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(OrgId, PartnershipId)>,
    ApiJson(req): ApiJson<Confirmation>,
) -> ApiResult<Json<PartnershipView>> {
    caller.require(org, &Action::ManagePartnerships)?;
    let p = find(&services, org, id)?;
    let ip = super::session::client_ip(client);
    crate::login::confirm_password(&services, ip, &caller.user, &req.password)
        .await
        .map_err(|refusal| ApiError::from_login(refusal, "the password is wrong"))?;
    if p.status == PartnershipStatus::Ended {
        return Err(ApiError::Conflict(
            "the partnership has already ended".into(),
        ));
    }
    let p = services
        .store
        .update_partnership(id, PartnershipStatus::Ended, None)?;
    audit::entry("partnership.end", format!("partnership {id}"))
        .org(org)
        .actor(caller.actor())
        .record(&services, client);
    Ok(Json(view(&services, p)?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientsQuery {
    pub format: Option<String>,
    #[schema(value_type = Option<usize>, minimum = 1, maximum = 1000)]
    pub limit: Option<super::page::Limit>,
    pub cursor: Option<String>,
}

/// `GET /api/v1/orgs/{org}/clients`: the organizations this one manages as a partner.
pub async fn clients(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
    ApiQuery(q): ApiQuery<ClientsQuery>,
) -> ApiResult<Response> {
    caller.require(org, &Action::ViewAudit)?;
    let mut views = Vec::new();
    for p in services.store.partnerships_of(org)? {
        if p.partner == org && p.status == PartnershipStatus::Accepted {
            views.push(view(&services, p)?);
        }
    }
    views.sort_by_key(|v| (v.client.0, v.id.0));
    match q.format.as_deref() {
        None | Some("json") => {
            let page = PageQuery {
                limit: q.limit,
                cursor: q.cursor,
            };
            let key = |v: &PartnershipView| format!("{:020}-{:020}", v.client.0, v.id.0);
            Ok(Json(paginate(views, key, &page)).into_response())
        }
        // A CSV export is the whole list, not one page of it.
        Some("csv") => Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            clients_csv(&views),
        )
            .into_response()),
        Some(other) => Err(ApiError::BadRequest(format!(
            "format {other:?}: use json or csv"
        ))),
    }
}

fn clients_csv(views: &[PartnershipView]) -> String {
    let mut csv = String::from("client_id,client_name,scope,since\r\n");
    for v in views {
        let scope = match &v.scope {
            PartnerScope::Full => "full".to_string(),
            PartnerScope::Limited(m) => {
                let ids: Vec<String> = m.iter().map(|id| id.0.to_string()).collect();
                format!("limited:{}", ids.join(" "))
            }
        };
        let name = super::audit_log::csv_field(&v.client_name);
        csv.push_str(&format!("{},{name},{scope},{}\r\n", v.client.0, v.created));
    }
    csv
}
