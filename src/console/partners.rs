//! Partner organizations (a partner's owners and admins manage this organization, wholly or
//! some mailboxes) and a mailbox's client settings. Through the API's handlers.

use super::session::{Pressed, Visitor};
use super::{ConsoleResult, Layout, back_to, date, every, refusal, render};
use crate::access::{self, Action};
use crate::admin::error::{ApiJson, ApiPath};
use crate::admin::partnerships::{self, Confirmation, PartnerInvitation, PartnershipView};
use crate::admin::{ClientAddr, autoconfig, mailboxes};
use crate::model::*;
use crate::services::Services;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

struct Row {
    id: PartnershipId,
    other: String,
    direction: &'static str,
    scope: String,
    status: String,
    since: String,
    /// An invitation to this organization, waiting for its answer.
    may_answer: bool,
    may_end: bool,
}

#[derive(askama::Template)]
#[template(path = "partners.html", config = "src/console/askama.toml")]
struct PartnersPage {
    layout: Layout,
    csrf: String,
    org: OrgId,
    rows: Vec<Row>,
    mailboxes: Vec<(MailboxId, String)>,
    may_manage: bool,
    problem: Option<String>,
}

fn row(org: OrgId, p: PartnershipView, addresses: &[(MailboxId, String)]) -> Row {
    let we_are_client = p.client == org;
    let other = match (we_are_client, p.partner_name.is_empty()) {
        (true, true) => format!("organization #{} (its name once it accepts)", p.partner),
        (true, false) => p.partner_name,
        (false, _) => p.client_name,
    };
    let scope = match &p.scope {
        PartnerScope::Full => "the whole organization".to_string(),
        PartnerScope::Limited(ids) => ids
            .iter()
            .map(|id| {
                addresses
                    .iter()
                    .find(|(m, _)| m == id)
                    .map_or_else(|| format!("mailbox #{id}"), |(_, a)| a.clone())
            })
            .collect::<Vec<_>>()
            .join(", "),
    };
    Row {
        id: p.id,
        other,
        direction: if we_are_client {
            "they manage us"
        } else {
            "we manage them"
        },
        scope,
        status: format!("{:?}", p.status).to_lowercase(),
        since: date(p.created),
        may_answer: !we_are_client && p.status == PartnershipStatus::Invited,
        may_end: matches!(
            p.status,
            PartnershipStatus::Accepted | PartnershipStatus::Invited
        ),
    }
}

pub async fn list(
    State(services): State<Arc<Services>>,
    visitor: Visitor,
    Path(org): Path<OrgId>,
) -> ConsoleResult<Response> {
    partners_page(&services, visitor, org, None, StatusCode::OK).await
}

async fn partners_page(
    services: &Arc<Services>,
    visitor: Visitor,
    org: OrgId,
    problem: Option<String>,
    status: StatusCode,
) -> ConsoleResult<Response> {
    let state = || State(services.clone());
    let caller = || visitor.caller.clone();
    let found = every(|q| partnerships::list(state(), caller(), ApiPath(org), q)).await?;
    let boxes = every(|q| mailboxes::list(state(), caller(), ApiPath(org), q)).await?;
    let addresses: Vec<(MailboxId, String)> =
        boxes.into_iter().map(|m| (m.id, m.address)).collect();
    let rows = found.into_iter().map(|p| row(org, p, &addresses)).collect();
    let page = PartnersPage {
        may_manage: access::may(
            &visitor.caller.principal(),
            org,
            &Action::ManagePartnerships,
        )
        .is_ok(),
        layout: Layout::with(visitor.bar(services, Some(org)).await?),
        csrf: visitor.csrf,
        org,
        rows,
        mailboxes: addresses,
        problem,
    };
    Ok((status, render(&page)?).into_response())
}

fn back(org: OrgId) -> Response {
    back_to(format!("/console/orgs/{org}/partners"))
}

/// The invitation form: a partner's id, the whole organization or some mailboxes. Checkboxes
/// repeat a name, which a plain form's decoding keeps as pairs.
pub async fn invite(
    State(services): State<Arc<Services>>,
    client: ClientAddr,
    visitor: Visitor,
    Path(org): Path<OrgId>,
    axum::extract::RawForm(body): axum::extract::RawForm,
) -> ConsoleResult<Response> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    visitor.check(field("csrf").unwrap_or_default())?;
    let refuse = |problem: &str| problem.to_string();
    let request = match field("partner").map(str::parse::<u64>) {
        Some(Ok(id)) => {
            let chosen: std::collections::BTreeSet<MailboxId> = pairs
                .iter()
                .filter(|(k, _)| k == "mailbox")
                .filter_map(|(_, v)| v.parse().ok().map(MailboxId))
                .collect();
            let scope = match (field("all"), chosen.is_empty()) {
                (Some(_), _) => Ok(PartnerScope::Full),
                (None, false) => Ok(PartnerScope::Limited(chosen)),
                (None, true) => Err(refuse("Choose the whole organization or some mailboxes.")),
            };
            scope.map(|scope| PartnerInvitation {
                partner: OrgId(id),
                scope,
            })
        }
        _ => Err(refuse("Give the partner organization's id (a number).")),
    };
    let request = match request {
        Ok(request) => request,
        Err(problem) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return partners_page(&services, visitor, org, Some(problem), status).await;
        }
    };
    let made = partnerships::invite(
        State(services.clone()),
        client,
        visitor.caller.clone(),
        ApiPath(org),
        ApiJson(request),
    )
    .await;
    // The API's refusal, shown with the form (`refusal`).
    match made {
        Ok(_) => Ok(back(org)),
        Err(e) => {
            let (status, message) = refusal(e);
            partners_page(&services, visitor, org, Some(message), status).await
        }
    }
}

pub async fn accept(
    State(services): State<Arc<Services>>,
    client: ClientAddr,
    Path((org, id)): Path<(OrgId, PartnershipId)>,
    Pressed(visitor): Pressed,
) -> ConsoleResult<Response> {
    let _accepted =
        partnerships::accept(State(services), client, visitor.caller, ApiPath((org, id))).await?;
    Ok(back(org))
}

pub async fn refuse(
    State(services): State<Arc<Services>>,
    client: ClientAddr,
    Path((org, id)): Path<(OrgId, PartnershipId)>,
    Pressed(visitor): Pressed,
) -> ConsoleResult<Response> {
    let _refused =
        partnerships::refuse(State(services), client, visitor.caller, ApiPath((org, id))).await?;
    Ok(back(org))
}

#[derive(serde::Deserialize)]
pub struct EndForm {
    csrf: String,
    password: String,
}

/// Ends a partnership, the caller's password confirming it (as the API asks).
pub async fn end(
    State(services): State<Arc<Services>>,
    client: ClientAddr,
    visitor: Visitor,
    Path((org, id)): Path<(OrgId, PartnershipId)>,
    axum::extract::Form(form): axum::extract::Form<EndForm>,
) -> ConsoleResult<Response> {
    visitor.check(&form.csrf)?;
    let confirmation = Confirmation {
        password: form.password,
    };
    let ended = partnerships::end(
        State(services.clone()),
        client,
        visitor.caller.clone(),
        ApiPath((org, id)),
        ApiJson(confirmation),
    )
    .await;
    // The API's refusal, shown with the form (`refusal`).
    match ended {
        Ok(_) => Ok(back(org)),
        Err(e) => {
            let (status, message) = refusal(e);
            partners_page(&services, visitor, org, Some(message), status).await
        }
    }
}

#[derive(askama::Template)]
#[template(path = "setup.html", config = "src/console/askama.toml")]
struct SetupPage {
    layout: Layout,
    org: OrgId,
    address: String,
    host: String,
    imap_port: u16,
    submission_port: u16,
}

/// What a mail client needs for a mailbox the user may see (the autoconfig answer's values).
pub async fn setup(
    State(services): State<Arc<Services>>,
    visitor: Visitor,
    Path((org, id)): Path<(OrgId, MailboxId)>,
) -> ConsoleResult<Response> {
    let path = ApiPath((org, id));
    let mailbox = mailboxes::get(State(services.clone()), visitor.caller.clone(), path).await?;
    let settings = autoconfig::settings(&services, Some(&mailbox.0.address))?;
    let page = SetupPage {
        layout: Layout::with(visitor.bar(&services, Some(org)).await?),
        org,
        address: settings.address,
        host: settings.host,
        imap_port: settings.imap_port,
        submission_port: settings.submission_port,
    };
    Ok(render(&page)?.into_response())
}
