//! The grant editor: giving a member or a work team access to a mailbox, with one of the
//! API's presets and an optional end. The API decides (a grant above the editor's own rights
//! is refused, and the page says why).

use super::session::Visitor;
use super::{ConsoleResult, Layout, back_to, every, refusal, render};
use crate::admin::error::{ApiJson, ApiPath};
use crate::admin::grants::{self, GrantRequest};
use crate::admin::{ClientAddr, mailboxes, teams};
use crate::model::*;
use crate::services::Services;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

/// One of the API's presets, in words.
pub struct Preset {
    pub name: &'static str,
    pub label: &'static str,
    pub help: &'static str,
}

pub const PRESETS: [Preset; 5] = [
    Preset {
        name: "read",
        label: "Read",
        help: "Read the mail and mark it read; nothing is changed or sent.",
    },
    Preset {
        name: "read-write",
        label: "Read and write",
        help: "Also file, flag, delete and add messages and folders.",
    },
    Preset {
        name: "send-as",
        label: "Send as",
        help: "Send from the mailbox's address: recipients see the mailbox as the sender.",
    },
    Preset {
        name: "send-on-behalf",
        label: "Send on behalf",
        help: "Recipients see 'Lucie on behalf of Contact': the person and the mailbox.",
    },
    Preset {
        name: "manage",
        label: "Manage",
        help: "Give and take away others' access to this mailbox.",
    },
];

/// A person or team the editor can choose.
struct Choice {
    /// `user:ID` or `team:ID`.
    value: String,
    label: String,
}

#[derive(askama::Template)]
#[template(path = "grant.html", config = "src/console/askama.toml")]
struct GrantPage {
    layout: Layout,
    csrf: String,
    org: OrgId,
    mailbox: MailboxId,
    address: String,
    grantees: Vec<Choice>,
    presets: &'static [Preset],
    problem: Option<String>,
}

pub async fn editor(
    State(services): State<Arc<Services>>,
    visitor: Visitor,
    Path((org, mailbox)): Path<(OrgId, MailboxId)>,
) -> ConsoleResult<Response> {
    editor_page(&services, visitor, org, mailbox, None, StatusCode::OK).await
}

async fn editor_page(
    services: &Arc<Services>,
    visitor: Visitor,
    org: OrgId,
    mailbox: MailboxId,
    problem: Option<String>,
    status: StatusCode,
) -> ConsoleResult<Response> {
    // The mailbox as the API shows it to this user: one she may not see is not found.
    let path = ApiPath((org, mailbox));
    let address = mailboxes::get(State(services.clone()), visitor.caller.clone(), path)
        .await?
        .0
        .address;
    let page = GrantPage {
        grantees: grantees(services, &visitor, org).await?,
        layout: Layout::with(visitor.bar(services, Some(org)).await?),
        csrf: visitor.csrf,
        org,
        mailbox,
        address,
        presets: &PRESETS,
        problem,
    };
    Ok((status, render(&page)?).into_response())
}

/// The organization's members and work teams, as the API lists them to this user.
async fn grantees(
    services: &Arc<Services>,
    visitor: &Visitor,
    org: OrgId,
) -> ConsoleResult<Vec<Choice>> {
    let state = || State(services.clone());
    let caller = || visitor.caller.clone();
    let members = every(|q| grants::members(state(), caller(), ApiPath(org), q)).await?;
    // Teams are the directory's, which some who may grant (a partner limited to some
    // mailboxes) do not see: they choose among the people.
    let teams = every(|q| teams::list(state(), caller(), ApiPath(org), q))
        .await
        .unwrap_or_default();
    let people = members.into_iter().map(|m| Choice {
        value: format!("user:{}", m.user_id),
        label: format!("{} ({})", m.login, m.role),
    });
    let teams = teams.into_iter().map(|t| Choice {
        value: format!("team:{}", t.id),
        label: format!("work team {}", t.name),
    });
    Ok(people.chain(teams).collect())
}

#[derive(Deserialize)]
pub struct GrantForm {
    csrf: String,
    grantee: String,
    preset: String,
    #[serde(default)]
    until: String,
}

/// Gives the access through the API; back to the access page, or the form again with the
/// API's refusal.
pub async fn give(
    State(services): State<Arc<Services>>,
    client: ClientAddr,
    visitor: Visitor,
    Path((org, mailbox)): Path<(OrgId, MailboxId)>,
    Form(form): Form<GrantForm>,
) -> ConsoleResult<Response> {
    visitor.check(&form.csrf)?;
    let request = match request(&form, mailbox) {
        Ok(request) => request,
        Err(problem) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return editor_page(&services, visitor, org, mailbox, Some(problem), status).await;
        }
    };
    let made = grants::create(
        State(services.clone()),
        client,
        visitor.caller.clone(),
        ApiPath(org),
        ApiJson(request),
    )
    .await;
    match made {
        Ok(_) => Ok(back_to(format!(
            "/console/orgs/{org}/mailboxes/{mailbox}/access"
        ))),
        // The API's refusal, shown with the form (`refusal`).
        Err(e) => {
            let (status, message) = refusal(e);
            editor_page(&services, visitor, org, mailbox, Some(message), status).await
        }
    }
}

/// The API's request for what the form says.
fn request(form: &GrantForm, mailbox: MailboxId) -> Result<GrantRequest, String> {
    let grantee = match form.grantee.split_once(':') {
        Some(("user", id)) => id.parse().map(|id| Grantee::User(UserId(id))),
        Some(("team", id)) => id.parse().map(|id| Grantee::Team(TeamId(id))),
        _ => return Err("Choose a person or a team.".into()),
    }
    .map_err(|_| "Choose a person or a team.".to_string())?;
    let until = match form.until.trim() {
        "" => None,
        day => Some(
            chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .map_err(|_| format!("{day:?} is not a date (YYYY-MM-DD)."))?
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc().timestamp_millis())
                .ok_or("That date cannot be used.")?,
        ),
    };
    Ok(GrantRequest {
        grantee,
        target: GrantTarget::Mailbox(mailbox),
        rights: None,
        preset: Some(form.preset.clone()),
        send: None,
        valid_from: None,
        valid_until: until,
    })
}
