//! Work teams: their members, the access each carries, and (for those who may) creating a
//! team and adding or removing its members, each through the API's handler.

use super::session::{CsrfOnly, Visitor};
use super::{ConsoleResult, Layout, abilities, date, render};
use crate::access::{self, Action};
use crate::admin::error::{ApiJson, ApiPath, ApiQuery};
use crate::admin::page::{Limit, PageQuery};
use crate::admin::teams::{self, TeamName};
use crate::admin::{ClientAddr, grants, mailboxes};
use crate::model::*;
use crate::services::Services;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

struct Person {
    id: UserId,
    login: String,
}

struct Carried {
    mailbox: MailboxId,
    address: String,
    can: String,
    until: String,
}

struct TeamSection {
    id: TeamId,
    name: String,
    members: Vec<Person>,
    /// Members of the organization not in the team: whom "add" offers.
    others: Vec<Person>,
    grants: Vec<Carried>,
}

#[derive(askama::Template)]
#[template(path = "teams.html", config = "src/console/askama.toml")]
struct TeamsPage {
    layout: Layout,
    csrf: String,
    org: OrgId,
    teams: Vec<TeamSection>,
    may_manage: bool,
}

fn all() -> ApiQuery<PageQuery> {
    ApiQuery(PageQuery {
        limit: Limit::try_from(1000).ok(),
        cursor: None,
    })
}

pub async fn list(
    State(services): State<Arc<Services>>,
    visitor: Visitor,
    Path(org): Path<OrgId>,
) -> ConsoleResult<Response> {
    let state = || State(services.clone());
    let caller = || visitor.caller.clone();
    let found = teams::list(state(), caller(), ApiPath(org), all()).await?.0;
    let members = grants::members(state(), caller(), ApiPath(org), all())
        .await?
        .0;
    let logins: HashMap<UserId, String> = members
        .items
        .iter()
        .map(|m| (m.user_id, m.login.clone()))
        .collect();
    // The grants this user may see (those on mailboxes she manages), by team.
    let visible = grants::list(state(), caller(), ApiPath(org), all())
        .await?
        .0;
    let boxes = mailboxes::list(state(), caller(), ApiPath(org), all())
        .await?
        .0;
    let addresses: HashMap<MailboxId, String> =
        boxes.items.into_iter().map(|m| (m.id, m.address)).collect();
    let sections = found
        .items
        .into_iter()
        .map(|team| {
            let person = |id: &UserId| Person {
                id: *id,
                login: logins.get(id).cloned().unwrap_or_else(|| format!("#{id}")),
            };
            let grants = visible
                .items
                .iter()
                .filter(|g| g.grantee == Grantee::Team(team.id))
                .filter_map(|g| match g.target {
                    GrantTarget::Mailbox(m) => Some(Carried {
                        mailbox: m,
                        address: addresses
                            .get(&m)
                            .cloned()
                            .unwrap_or_else(|| format!("#{m}")),
                        can: abilities(&g.rights, g.send),
                        until: g.valid_until.map_or("no end".into(), date),
                    }),
                    GrantTarget::AllMailboxes => None,
                })
                .collect();
            let by_login = |mut people: Vec<Person>| {
                people.sort_by(|a, b| a.login.cmp(&b.login));
                people
            };
            TeamSection {
                others: by_login(
                    logins
                        .keys()
                        .filter(|u| !team.members.contains(u))
                        .map(person)
                        .collect(),
                ),
                members: by_login(team.members.iter().map(person).collect()),
                id: team.id,
                name: team.name,
                grants,
            }
        })
        .collect();
    let page = TeamsPage {
        layout: Layout::with(visitor.bar(&services, Some(org)).await?),
        may_manage: access::may(&visitor.caller.principal(), org, &Action::ManageTeams).is_ok(),
        csrf: visitor.csrf,
        org,
        teams: sections,
    };
    Ok(render(&page)?.into_response())
}

fn back(org: OrgId) -> Response {
    Redirect::to(&format!("/console/orgs/{org}/teams")).into_response()
}

#[derive(Deserialize)]
pub struct NewTeam {
    csrf: String,
    name: String,
}

pub async fn create(
    State(services): State<Arc<Services>>,
    client: ClientAddr,
    visitor: Visitor,
    Path(org): Path<OrgId>,
    Form(form): Form<NewTeam>,
) -> ConsoleResult<Response> {
    visitor.check(&form.csrf)?;
    let name = TeamName { name: form.name };
    let _made = teams::create(
        State(services),
        client,
        visitor.caller,
        ApiPath(org),
        ApiJson(name),
    )
    .await?;
    Ok(back(org))
}

#[derive(Deserialize)]
pub struct NewMember {
    csrf: String,
    user: UserId,
}

pub async fn add_member(
    State(services): State<Arc<Services>>,
    client: ClientAddr,
    visitor: Visitor,
    Path((org, team)): Path<(OrgId, TeamId)>,
    Form(form): Form<NewMember>,
) -> ConsoleResult<Response> {
    visitor.check(&form.csrf)?;
    let path = ApiPath((org, team, form.user));
    teams::add_member(State(services), client, visitor.caller, path).await?;
    Ok(back(org))
}

pub async fn remove_member(
    State(services): State<Arc<Services>>,
    client: ClientAddr,
    visitor: Visitor,
    Path((org, team, user)): Path<(OrgId, TeamId, UserId)>,
    Form(form): Form<CsrfOnly>,
) -> ConsoleResult<Response> {
    visitor.check(&form.csrf)?;
    let path = ApiPath((org, team, user));
    teams::remove_member(State(services), client, visitor.caller, path).await?;
    Ok(back(org))
}
