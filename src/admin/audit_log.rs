//! Reading the audit log: `GET /api/v1/orgs/{org}/audit` for those who may (owners and
//! admins), `GET /api/v1/me/audit` for anyone's own activity, `GET /api/v1/audit` for the
//! server's own events (operators: organizations created and deleted, operators named);
//! JSON pages, or CSV.

use super::auth::Caller;
use super::error::{ApiError, ApiPath, ApiQuery, ApiResult};
use super::page::{PageQuery, paginate};
use crate::access::Action;
use crate::model::*;
use crate::services::Services;
use crate::store::AuditQuery;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

/// The filters of an audit query; times are RFC 3339 or milliseconds since the epoch.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// A user id: events that user did, on their own or as a delegate.
    pub actor: Option<u64>,
    /// An action or a prefix of one: `imap.` for every IMAP event.
    pub action: Option<String>,
    pub target: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// `json` (the default) or `csv`.
    pub format: Option<String>,
    #[schema(value_type = Option<usize>, minimum = 1, maximum = 1000)]
    pub limit: Option<super::page::Limit>,
    pub cursor: Option<String>,
}

pub async fn org_log(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
    ApiQuery(filter): ApiQuery<AuditFilter>,
) -> ApiResult<Response> {
    caller.require(org, &Action::ViewAudit)?;
    respond(&services, &filter, Log::Org(org), filter.actor.map(UserId))
}

/// The server's own events, those of no organization (operators only).
pub async fn server_log(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<AuditFilter>,
) -> ApiResult<Response> {
    crate::access::may_operate(&caller.principal()).map_err(ApiError::Forbidden)?;
    respond(&services, &filter, Log::Server, filter.actor.map(UserId))
}

/// Whose events a query reads.
#[derive(Clone, Copy)]
enum Log {
    Org(OrgId),
    /// Those of no organization.
    Server,
    /// Every organization's (one actor's own activity).
    Any,
}

pub async fn own_log(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<AuditFilter>,
) -> ApiResult<Response> {
    if filter.actor.is_some_and(|a| a != caller.user.id.0) {
        return Err(ApiError::BadRequest(
            "`actor` is always yourself here; use the organization's audit log".into(),
        ));
    }
    respond(&services, &filter, Log::Any, Some(caller.user.id))
}

/// One page of the organization's events that `filter` selects, newest first (the console's
/// audit page): the same rights and selection as `GET /api/v1/orgs/{org}/audit`.
pub(crate) fn org_page(
    services: &Services,
    caller: &Caller,
    org: OrgId,
    filter: &AuditFilter,
) -> ApiResult<super::page::Page<AuditEvent>> {
    caller.require(org, &Action::ViewAudit)?;
    let events = select(services, filter, Log::Org(org), filter.actor.map(UserId))?;
    Ok(page_of(events, filter))
}

/// The events of `log` that `filter` (and `actor`) select, newest first.
fn select(
    services: &Services,
    filter: &AuditFilter,
    log: Log,
    actor: Option<UserId>,
) -> ApiResult<Vec<AuditEvent>> {
    let query = AuditQuery {
        org: match log {
            Log::Org(org) => Some(org),
            Log::Server | Log::Any => None,
        },
        actor: None,
        action_prefix: filter.action.clone(),
        target: filter.target.clone(),
        since: filter
            .since
            .as_deref()
            .map(|t| time(t, "since"))
            .transpose()?,
        until: filter
            .until
            .as_deref()
            .map(|t| time(t, "until"))
            .transpose()?,
        limit: 0,
    };
    Ok(services
        .store
        .audit_events(&query)?
        .into_iter()
        .filter(|e| actor.is_none_or(|u| acted_by(&e.actor, u)))
        .filter(|e| !matches!(log, Log::Server) || e.org.is_none())
        .collect())
}

fn page_of(events: Vec<AuditEvent>, filter: &AuditFilter) -> super::page::Page<AuditEvent> {
    let page = PageQuery {
        limit: filter.limit,
        cursor: filter.cursor.clone(),
    };
    // Newest first: the key runs down with time.
    paginate(
        events,
        |e| format!("{:020}-{:020}", i64::MAX - e.at, u64::MAX - e.id.0),
        &page,
    )
}

fn respond(
    services: &Services,
    filter: &AuditFilter,
    log: Log,
    actor: Option<UserId>,
) -> ApiResult<Response> {
    let events = select(services, filter, log, actor)?;
    let csv_wanted = filter.format.as_deref() == Some("csv");
    if csv_wanted {
        // A CSV export is the whole selection, not one page of it.
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            csv(&events),
        )
            .into_response());
    }
    let page = page_of(events, filter);
    match filter.format.as_deref() {
        None | Some("json") => Ok(Json(page).into_response()),
        Some("csv") => Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            csv(&page.items),
        )
            .into_response()),
        Some(other) => Err(ApiError::BadRequest(format!(
            "format {other:?}: use json or csv"
        ))),
    }
}

fn acted_by(actor: &Actor, user: UserId) -> bool {
    match actor {
        Actor::User(u) | Actor::Delegate { user: u, .. } | Actor::Partner { user: u, .. } => {
            *u == user
        }
        _ => false,
    }
}

fn time(text: &str, what: &str) -> ApiResult<Millis> {
    if let Ok(ms) = text.parse::<Millis>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "`{what}` must be RFC 3339 (2026-11-25T10:00:00Z) or milliseconds"
            ))
        })
}

/// RFC 4180 CSV with a header row.
fn csv(events: &[AuditEvent]) -> String {
    let mut out = String::from("at,org,actor,action,target,client,outcome,detail\r\n");
    for e in events {
        let at = chrono::DateTime::from_timestamp_millis(e.at)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        let fields = [
            at,
            e.org.map(|o| o.0.to_string()).unwrap_or_default(),
            actor_text(&e.actor),
            e.action.clone(),
            e.target.clone(),
            e.client.clone().unwrap_or_default(),
            format!("{:?}", e.outcome).to_lowercase(),
            e.detail.clone(),
        ];
        let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

pub(crate) fn actor_text(actor: &Actor) -> String {
    match actor {
        Actor::System => "system".into(),
        Actor::Anonymous => "anonymous".into(),
        Actor::User(u) => format!("user:{}", u.0),
        Actor::Mailbox(m) => format!("mailbox:{}", m.0),
        Actor::Delegate { user, mailbox } => format!("user:{} as mailbox:{}", user.0, mailbox.0),
        Actor::Partner { user, .. } => format!("partner user:{}", user.0),
    }
}

/// A field quoted when it needs to be; a leading `=`, `+`, `-` or `@` is prefixed with `'` so
/// that a spreadsheet never runs client-supplied text as a formula.
pub(super) fn csv_field(text: &str) -> String {
    let safe = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if safe.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", safe.replace('"', "\"\""))
    } else {
        safe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }
}
