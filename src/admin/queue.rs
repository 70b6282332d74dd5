//! `GET /api/v1/orgs/{org}/queue`: the organization's outbound mail not yet delivered, with
//! why the last attempt failed and when the next one is due.

use super::auth::Caller;
use super::error::{ApiPath, ApiQuery, ApiResult};
use super::page::{Page, PageQuery, paginate};
use crate::access::Action;
use crate::model::*;
use crate::services::Services;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use std::sync::Arc;

#[derive(Serialize, utoipa::ToSchema)]
pub struct QueuedView {
    pub id: String,
    pub sender: String,
    pub domain: String,
    pub recipients: Vec<String>,
    pub created: Millis,
    pub attempts: u32,
    /// None while held.
    pub next_attempt: Option<Millis>,
    /// `held` while the message is still being accepted, `pending` before the first
    /// attempt, `deferred` after a temporary failure.
    pub state: &'static str,
    pub last_error: Option<String>,
    /// Each recipient deferred by the last attempt, with its own reason.
    pub deferred: Vec<DeferredRecipient>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeferredRecipient {
    pub recipient: String,
    pub reason: String,
}

pub async fn list(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<QueuedView>>> {
    caller.require(org, &Action::ViewAudit)?;
    let domains: Vec<String> = services
        .store
        .domains(org)?
        .into_iter()
        .map(|d| d.name)
        .collect();
    // An entry belongs to the organization whose domain sent it (bounces, with no sender,
    // to none).
    let views: Vec<QueuedView> = services
        .store
        .queue()?
        .into_iter()
        .filter(|e| {
            domain_of(&e.sender).is_some_and(|d| domains.iter().any(|o| o.eq_ignore_ascii_case(d)))
        })
        .map(|e| QueuedView {
            deferred: e
                .recipients
                .iter()
                .zip(&e.reasons)
                .map(|(recipient, reason)| DeferredRecipient {
                    recipient: recipient.clone(),
                    reason: reason.clone(),
                })
                .collect(),
            id: e.id.to_string(),
            next_attempt: (!e.is_held()).then_some(e.next_attempt),
            state: if e.is_held() {
                "held"
            } else if e.attempts == 0 {
                "pending"
            } else {
                "deferred"
            },
            sender: e.sender,
            domain: e.domain,
            recipients: e.recipients,
            created: e.created,
            attempts: e.attempts,
            last_error: e.last_error,
        })
        .collect();
    Ok(Json(paginate(views, |v| v.id.clone(), &page)))
}
