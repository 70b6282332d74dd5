//! Work teams: their members, the access each carries, and (for those who may) creating a
//! team and adding or removing its members, each through the API's handler.

use super::session::{Pressed, Visitor};
use super::{ConsoleResult, Layout, abilities, back_to, date, every, render};
use crate::access::{self, Action};
use crate::admin::error::{ApiJson, ApiPath};
use crate::admin::grants::GrantView;
use crate::admin::teams::{self, TeamName, TeamView};
use crate::admin::{ClientAddr, grants, mailboxes};
use crate::model::*;
use crate::services::Services;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Response};
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

pub async fn list(
    State(services): State<Arc<Services>>,
    visitor: Visitor,
    Path(org): Path<OrgId>,
) -> ConsoleResult<Response> {
    let state = || State(services.clone());
    let caller = || visitor.caller.clone();
    let found = every(|q| teams::list(state(), caller(), ApiPath(org), q)).await?;
    let members = every(|q| grants::members(state(), caller(), ApiPath(org), q)).await?;
    // The grants this user may see (those on mailboxes she manages), by team.
    let visible = every(|q| grants::list(state(), caller(), ApiPath(org), q)).await?;
    let boxes = every(|q| mailboxes::list(state(), caller(), ApiPath(org), q)).await?;
    let known = Known {
        logins: members.into_iter().map(|m| (m.user_id, m.login)).collect(),
        addresses: boxes.into_iter().map(|m| (m.id, m.address)).collect(),
    };
    let sections = found
        .into_iter()
        .map(|team| known.section(team, &visible))
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

/// The names the API let this user see: members' logins, mailboxes' addresses.
struct Known {
    logins: HashMap<UserId, String>,
    addresses: HashMap<MailboxId, String>,
}

impl Known {
    fn person(&self, id: &UserId) -> Person {
        Person {
            id: *id,
            login: self
                .logins
                .get(id)
                .cloned()
                .unwrap_or_else(|| format!("#{id}")),
        }
    }

    /// People sorted by login.
    fn people<'a>(&self, ids: impl Iterator<Item = &'a UserId>) -> Vec<Person> {
        let mut people: Vec<Person> = ids.map(|id| self.person(id)).collect();
        people.sort_by(|a, b| a.login.cmp(&b.login));
        people
    }

    fn section(&self, team: TeamView, visible: &[GrantView]) -> TeamSection {
        let grants = visible
            .iter()
            .filter(|g| g.grantee == Grantee::Team(team.id))
            .filter_map(|g| match g.target {
                GrantTarget::Mailbox(m) => Some(Carried {
                    mailbox: m,
                    address: self
                        .addresses
                        .get(&m)
                        .cloned()
                        .unwrap_or_else(|| format!("#{m}")),
                    can: abilities(&g.rights, g.send),
                    until: g.valid_until.map_or("no end".into(), date),
                }),
                GrantTarget::AllMailboxes => None,
            })
            .collect();
        let others = self.logins.keys().filter(|u| !team.members.contains(u));
        TeamSection {
            others: self.people(others),
            members: self.people(team.members.iter()),
            id: team.id,
            name: team.name,
            grants,
        }
    }
}

fn back(org: OrgId) -> Response {
    back_to(format!("/console/orgs/{org}/teams"))
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
    Path((org, team, user)): Path<(OrgId, TeamId, UserId)>,
    Pressed(visitor): Pressed,
) -> ConsoleResult<Response> {
    let path = ApiPath((org, team, user));
    teams::remove_member(State(services), client, visitor.caller, path).await?;
    Ok(back(org))
}
