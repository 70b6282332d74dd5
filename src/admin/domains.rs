//! `/api/v1/orgs/{org}/domains`

use super::auth::Caller;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
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
) -> ApiResult<Json<Page<DomainView>>> {
    caller.see_org(org)?;
    let domains = services
        .store
        .domains(org)?
        .into_iter()
        .map(|d| DomainView::of(&services, d))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(paginate(domains, |d| d.name.clone(), &page)))
}

/// A domain with whether it may take mail yet, and the record that proves it is the
/// organization's.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct DomainView {
    pub name: String,
    pub org: OrgId,
    /// Whether it receives and sends mail (its ownership token was seen, or never asked).
    pub verified: bool,
    /// The TXT record to publish, while it is not verified.
    pub verification: Option<VerificationRecord>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct VerificationRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub record_type: String,
    pub value: String,
}

impl DomainView {
    pub fn of(services: &Services, domain: Domain) -> ApiResult<DomainView> {
        let claim = services.store.domain_claim(&domain.name)?;
        let verified = claim.as_ref().is_none_or(|c| c.verified.is_some());
        let verification = claim.filter(|_| !verified).map(|c| VerificationRecord {
            name: crate::domain_records::verification_name(&domain.name),
            record_type: "TXT".into(),
            value: crate::domain_records::verification_value(&c.token),
        });
        Ok(DomainView {
            name: domain.name,
            org: domain.org,
            verified,
            verification,
        })
    }
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
) -> ApiResult<(StatusCode, Json<DomainView>)> {
    caller.require(org, &Action::ManageDomains)?;
    let token = services
        .config
        .admin
        .verify_domains
        .then(|| hex::encode(rand::random::<[u8; 16]>()));
    let domain = services.store.add_domain_claimed(org, &req.name, token)?;
    audit::entry("domain.create", &domain.name)
        .org(org)
        .actor(caller.actor())
        .record(&services, client);
    // Its DKIM keys, so that its first message leaves signed. Should this fail, the domain
    // stays and the keys are made at the next start (`dkim::keep_keys`).
    if let Err(e) = crate::dkim::add_keys(&services.store, &domain.name).await {
        tracing::error!(domain = %domain.name, error = %e, "making DKIM keys failed");
    }
    // A domain that takes mail at once (no ownership check) wants its certificates now.
    crate::tls::acme::announce(&services);
    Ok((
        StatusCode::CREATED,
        Json(DomainView::of(&services, domain)?),
    ))
}

/// The domain, if it is `org`'s (another organization's domain is as unknown as a missing one).
pub(super) fn own_domain(services: &Services, org: OrgId, name: &str) -> ApiResult<Domain> {
    match services.store.domain(name)? {
        Some(d) if d.org == org => Ok(d),
        _ => Err(ApiError::NotFound(format!("domain {name} not found"))),
    }
}

/// A DKIM key with where and what to publish.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct DkimKeyView {
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    pub state: DkimState,
    pub created: Millis,
    /// The TXT record's name.
    pub dns_name: String,
    /// The TXT record's text.
    pub dns_value: String,
}

/// Keys a rotation step made or changed.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct DkimKeys {
    pub keys: Vec<DkimKeyView>,
}

fn view(key: DkimKey) -> DkimKeyView {
    DkimKeyView {
        dns_name: key.dns_name(),
        dns_value: key.dns_value(),
        selector: key.selector,
        algorithm: key.algorithm,
        state: key.state,
        created: key.created,
    }
}

fn views(keys: Vec<DkimKey>) -> Json<DkimKeys> {
    Json(DkimKeys {
        keys: keys.into_iter().map(view).collect(),
    })
}

pub async fn dkim_keys(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiPath((org, name)): ApiPath<(OrgId, String)>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<DkimKeyView>>> {
    caller.see_org(org)?;
    let domain = own_domain(&services, org, &name)?;
    let keys = services.store.dkim_keys(&domain.name)?;
    let keys: Vec<DkimKeyView> = keys.into_iter().map(view).collect();
    Ok(Json(paginate(keys, |k| k.selector.clone(), &page)))
}

/// Rotation's first step: a new pair of keys, to publish before activating them.
pub async fn new_dkim_keys(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, name)): ApiPath<(OrgId, String)>,
) -> ApiResult<(StatusCode, Json<DkimKeys>)> {
    caller.require(org, &Action::ManageDomains)?;
    let domain = own_domain(&services, org, &name)?;
    let keys = crate::dkim::add_keys(&services.store, &domain.name)
        .await
        .map_err(|e| match e {
            crate::dkim::DkimError::Store(e) => e.into(),
            e => {
                tracing::error!(error = %e, "making DKIM keys failed");
                ApiError::Internal
            }
        })?;
    let selectors: Vec<&str> = keys.iter().map(|k| k.selector.as_str()).collect();
    audit::entry("domain.dkim.create", &domain.name)
        .org(org)
        .actor(caller.actor())
        .detail(selectors.join(" "))
        .record(&services, client);
    Ok((StatusCode::CREATED, views(keys)))
}

/// Rotation's second step: `selector` signs from now on; the key it replaces is kept,
/// retiring, until deleted.
pub async fn activate_dkim_key(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, name, selector)): ApiPath<(OrgId, String, String)>,
) -> ApiResult<Json<DkimKeys>> {
    caller.require(org, &Action::ManageDomains)?;
    let domain = own_domain(&services, org, &name)?;
    let keys = services.store.activate_dkim_key(&domain.name, &selector)?;
    audit::entry("domain.dkim.activate", &domain.name)
        .org(org)
        .actor(caller.actor())
        .detail(selector)
        .record(&services, client);
    Ok(views(keys))
}

/// Rotation's last step: a key that no longer signs is forgotten (its DNS record can go).
pub async fn delete_dkim_key(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, name, selector)): ApiPath<(OrgId, String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(org, &Action::ManageDomains)?;
    let domain = own_domain(&services, org, &name)?;
    services.store.retire_dkim_key(&domain.name, &selector)?;
    audit::entry("domain.dkim.delete", &domain.name)
        .org(org)
        .actor(caller.actor())
        .detail(selector)
        .record(&services, client);
    Ok(StatusCode::NO_CONTENT)
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
