//! The audit log of an organization, filtered by who, action, target and days, a page at a
//! time, and exported as CSV: the API's own selection and rights (`admin::audit_log`).

use super::session::Visitor;
use super::{ConsoleError, ConsoleResult, Layout, date, every, render, url_encoded};
use crate::admin::audit_log::{self, AuditFilter};
use crate::admin::error::{ApiPath, ApiQuery};
use crate::admin::grants;
use crate::admin::mailboxes;
use crate::admin::page::Limit;
use crate::model::*;
use crate::services::Services;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

/// Events per page.
const PER_PAGE: usize = 100;

/// The filters as the form sends them: empty means none.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct Filters {
    actor: String,
    action: String,
    target: String,
    since: String,
    until: String,
    cursor: String,
}

impl Filters {
    /// The API's filter; a day that is not one is the visitor's mistake, said on the page.
    fn api(&self, format: Option<&str>) -> Result<AuditFilter, String> {
        let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        let actor = match some(&self.actor) {
            Some(a) => Some(
                a.parse()
                    .map_err(|_| "Choose who from the list.".to_string())?,
            ),
            None => None,
        };
        Ok(AuditFilter {
            actor,
            action: some(&self.action),
            target: some(&self.target),
            since: some(&self.since).map(|d| day_start(&d, 0)).transpose()?,
            // Through the whole of the last day.
            until: some(&self.until).map(|d| day_start(&d, 1)).transpose()?,
            format: format.map(str::to_string),
            limit: Limit::try_from(PER_PAGE).ok(),
            cursor: some(&self.cursor),
        })
    }

    /// The filters (not the cursor) as a query string, for the CSV link and the next page.
    fn query(&self) -> String {
        [
            ("actor", &self.actor),
            ("action", &self.action),
            ("target", &self.target),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .iter()
        .map(|(k, v)| format!("{k}={}", url_encoded(v)))
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// Midnight (UTC) starting the day `days` after `day` (YYYY-MM-DD), in RFC 3339.
fn day_start(day: &str, days: u64) -> Result<String, String> {
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.checked_add_days(chrono::Days::new(days)))
        .map(|d| format!("{}T00:00:00Z", d.format("%Y-%m-%d")))
        .ok_or_else(|| format!("{day:?} is not a day (YYYY-MM-DD)."))
}

/// One person the \"who\" filter offers.
struct ActorChoice {
    id: UserId,
    login: String,
    selected: bool,
}

struct Row {
    at: String,
    who: String,
    action: String,
    target: String,
    client: String,
    outcome: String,
    detail: String,
}

#[derive(askama::Template)]
#[template(path = "audit.html", config = "src/console/askama.toml")]
struct AuditPage {
    layout: Layout,
    org: OrgId,
    people: Vec<ActorChoice>,
    filters: Filters,
    query: String,
    events: Vec<Row>,
    next_cursor: Option<String>,
    problem: Option<String>,
}

pub async fn log(
    State(services): State<Arc<Services>>,
    visitor: Visitor,
    Path(org): Path<OrgId>,
    Query(filters): Query<Filters>,
) -> ConsoleResult<Response> {
    let (page, problem) = match filters.api(None) {
        Ok(filter) => (
            audit_log::org_page(&services, &visitor.caller, org, &filter)?,
            None,
        ),
        Err(problem) => (
            crate::admin::page::Page {
                items: Vec::new(),
                next_cursor: None,
            },
            Some(problem),
        ),
    };
    let status = match problem {
        Some(_) => StatusCode::UNPROCESSABLE_ENTITY,
        None => StatusCode::OK,
    };
    let state = || State(services.clone());
    let caller = || visitor.caller.clone();
    let members = every(|q| grants::members(state(), caller(), ApiPath(org), q)).await?;
    let boxes = every(|q| mailboxes::list(state(), caller(), ApiPath(org), q)).await?;
    // Names for the actors: the organization's members and mailboxes, as the API shows them
    // to this user; anyone else (a partner's user, one who left) as the API's export names
    // them.
    let names = Names {
        logins: members
            .iter()
            .map(|m| (m.user_id, m.login.clone()))
            .collect(),
        addresses: boxes.into_iter().map(|m| (m.id, m.address)).collect(),
    };
    let people = members
        .into_iter()
        .map(|m| ActorChoice {
            selected: filters.actor == m.user_id.to_string(),
            id: m.user_id,
            login: m.login,
        })
        .collect();
    let events = page.items.into_iter().map(|e| names.row(e)).collect();
    let page = AuditPage {
        layout: Layout::with(visitor.bar(&services, Some(org)).await?),
        org,
        people,
        query: filters.query(),
        filters,
        events,
        next_cursor: page.next_cursor,
        problem,
    };
    Ok((status, render(&page)?).into_response())
}

/// The organization's members' logins and mailboxes' addresses.
struct Names {
    logins: HashMap<UserId, String>,
    addresses: HashMap<MailboxId, String>,
}

impl Names {
    fn row(&self, e: AuditEvent) -> Row {
        Row {
            at: date(e.at),
            who: self.who(&e.actor),
            action: e.action,
            target: e.target,
            client: e.client.unwrap_or_default(),
            outcome: format!("{:?}", e.outcome).to_lowercase(),
            detail: e.detail,
        }
    }

    /// An actor in words: a member's login, a mailbox's address, or as the API's export
    /// names it.
    fn who(&self, actor: &Actor) -> String {
        let login = |user: &UserId| self.logins.get(user).cloned();
        let address = |mailbox: &MailboxId| self.addresses.get(mailbox).cloned();
        let named = match actor {
            Actor::User(user) => login(user),
            Actor::Mailbox(mailbox) => address(mailbox),
            Actor::Delegate { user, mailbox } => login(user)
                .zip(address(mailbox))
                .map(|(who, of)| format!("{who} as {of}")),
            _ => None,
        };
        named.unwrap_or_else(|| audit_log::actor_text(actor))
    }
}

/// The same selection, whole, as CSV (the API's export), to save.
pub async fn csv(
    State(services): State<Arc<Services>>,
    visitor: Visitor,
    Path(org): Path<OrgId>,
    Query(filters): Query<Filters>,
) -> ConsoleResult<Response> {
    let filter = filters
        .api(Some("csv"))
        .map_err(|problem| ConsoleError::from(crate::admin::ApiError::BadRequest(problem)))?;
    let mut answer = audit_log::org_log(
        State(services),
        visitor.caller,
        ApiPath(org),
        ApiQuery(filter),
    )
    .await?;
    let disposition = format!("attachment; filename=\"audit-{org}.csv\"");
    if let Ok(value) = disposition.parse() {
        answer
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(answer)
}
