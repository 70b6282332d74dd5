//! The audit log of an organization, filtered by who, action, target and days, a page at a
//! time, and exported as CSV: the API's own selection and rights (`admin::audit_log`).

use super::session::Visitor;
use super::{ConsoleError, ConsoleResult, Layout, date, render, store_error, url_encoded};
use crate::admin::audit_log::{self, AuditFilter};
use crate::admin::error::{ApiPath, ApiQuery};
use crate::admin::grants;
use crate::admin::page::{Limit, PageQuery};
use crate::model::*;
use crate::services::Services;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
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

struct Person {
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
    people: Vec<Person>,
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
    let members = grants::members(
        State(services.clone()),
        visitor.caller.clone(),
        ApiPath(org),
        ApiQuery(PageQuery {
            limit: Limit::try_from(1000).ok(),
            cursor: None,
        }),
    )
    .await?
    .0;
    let people = members
        .items
        .into_iter()
        .map(|m| Person {
            selected: filters.actor == m.user_id.to_string(),
            id: m.user_id,
            login: m.login,
        })
        .collect();
    let events = page
        .items
        .into_iter()
        .map(|e| row(&services, e))
        .collect::<ConsoleResult<_>>()?;
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

fn row(services: &Services, e: AuditEvent) -> ConsoleResult<Row> {
    Ok(Row {
        at: date(e.at),
        who: who(services, &e.actor)?,
        action: e.action,
        target: e.target,
        client: e.client.unwrap_or_default(),
        outcome: format!("{:?}", e.outcome).to_lowercase(),
        detail: e.detail,
    })
}

/// An actor in words: a login, a mailbox's address, or the server.
fn who(services: &Services, actor: &Actor) -> ConsoleResult<String> {
    let login = |user: &UserId| -> ConsoleResult<String> {
        let found = services.store.user(*user).map_err(store_error)?;
        Ok(found.map_or_else(|| format!("user #{user}"), |u| u.login))
    };
    let address = |mailbox: &MailboxId| -> ConsoleResult<String> {
        let found = services.store.mailbox(*mailbox).map_err(store_error)?;
        Ok(found.map_or_else(|| format!("mailbox #{mailbox}"), |m| m.address))
    };
    Ok(match actor {
        Actor::User(user) => login(user)?,
        Actor::Mailbox(mailbox) => address(mailbox)?,
        Actor::Delegate { user, mailbox } => format!("{} as {}", login(user)?, address(mailbox)?),
        Actor::Partner { user, .. } => format!("{} (partner)", login(user)?),
        other => audit_log::actor_text(other),
    })
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
