//! `/api/v1/orgs/{org}/domains/{name}/dns` and `…/verify`: the records a domain needs with
//! their live state, and the check of its ownership token (issue 13).

use super::auth::Caller;
use super::domains::{DomainView, own_domain};
use super::error::{ApiError, ApiPath, ApiQuery, ApiResult};
use super::{ClientAddr, audit};
use crate::access::Action;
use crate::domain_records::{self, DnsRecord, RecordState};
use crate::model::*;
use crate::services::Services;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

/// The records as JSON, or as a zone-file snippet.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsQuery {
    /// `zone` for a zone-file snippet (text/plain).
    pub format: Option<String>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct DomainRecords {
    pub domain: String,
    pub records: Vec<DnsRecord>,
}

pub async fn records(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiPath((org, name)): ApiPath<(OrgId, String)>,
    ApiQuery(query): ApiQuery<DnsQuery>,
) -> ApiResult<Response> {
    caller.see_org(org)?;
    let domain = own_domain(&services, org, &name)?;
    let records = domain_records::records(&services, &domain.name).await;
    match query.format.as_deref() {
        None | Some("json") => Ok(Json(DomainRecords {
            domain: domain.name,
            records,
        })
        .into_response()),
        Some("zone") => Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            domain_records::zone_file(&records),
        )
            .into_response()),
        Some(other) => Err(ApiError::BadRequest(format!(
            "format must be json or zone, not {other:?}"
        ))),
    }
}

/// Looks for the domain's ownership token in the DNS; once seen, the domain receives and
/// sends mail.
pub async fn verify(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, name)): ApiPath<(OrgId, String)>,
) -> ApiResult<Json<DomainView>> {
    caller.require(org, &Action::ManageDomains)?;
    let domain = own_domain(&services, org, &name)?;
    if services.store.is_domain_verified(&domain.name)? {
        return Ok(Json(DomainView::of(&services, domain)?));
    }
    let records = domain_records::records(&services, &domain.name).await;
    let Some(token) = records.iter().find(|r| r.purpose == "verification") else {
        return Ok(Json(DomainView::of(&services, domain)?));
    };
    match token.state {
        RecordState::Ok => {}
        RecordState::Unknown => {
            return Err(ApiError::Unavailable(
                "the DNS could not be asked; try again",
            ));
        }
        _ => {
            let found = if token.found.is_empty() {
                "nothing".to_string()
            } else {
                token.found.join(" | ")
            };
            return Err(ApiError::Invalid(format!(
                "the TXT record {} must read {:?}; the DNS has {found}",
                token.name, token.value
            )));
        }
    }
    services.store.mark_domain_verified(&domain.name)?;
    crate::tls::acme::announce(&services);
    audit::entry("domain.verify", &domain.name)
        .org(org)
        .actor(caller.actor())
        .record(&services, client);
    Ok(Json(DomainView::of(&services, domain)?))
}
