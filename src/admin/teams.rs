//! `/api/v1/orgs/{org}/teams`: work teams, their members, and (through grants) their access.

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
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Serialize, utoipa::ToSchema)]
pub struct TeamView {
    pub id: TeamId,
    pub name: String,
    pub members: Vec<UserId>,
}

fn view(services: &Services, team: Team) -> ApiResult<TeamView> {
    Ok(TeamView {
        members: services.store.team_members(team.id)?,
        id: team.id,
        name: team.name,
    })
}

pub async fn list(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<TeamView>>> {
    // Teams are part of the directory: externals do not see them.
    caller.require(org, &Action::ListDirectory)?;
    let mut views = Vec::new();
    for team in services.store.teams(org)? {
        views.push(view(&services, team)?);
    }
    // Names may repeat: the id makes the cursor exact.
    let key = |t: &TeamView| format!("{}\u{0}{:020}", t.name.to_lowercase(), t.id.0);
    Ok(Json(paginate(views, key, &page)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamName {
    pub name: String,
}

pub async fn create(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
    ApiJson(req): ApiJson<TeamName>,
) -> ApiResult<(StatusCode, Json<TeamView>)> {
    caller.require(org, &Action::ManageTeams)?;
    let team = services.store.create_team(org, &req.name)?;
    audit::entry("team.create", &team.name)
        .org(org)
        .actor(caller.actor())
        .record(&services, client);
    Ok((StatusCode::CREATED, Json(view(&services, team)?)))
}

/// The team, if it is this organization's and the caller may see the directory.
fn find(services: &Services, caller: &Caller, org: OrgId, id: TeamId) -> ApiResult<Team> {
    caller.require(org, &Action::ListDirectory)?;
    match services.store.team(id)? {
        Some(t) if t.org == org => Ok(t),
        _ => Err(ApiError::NotFound(format!("team {id} not found"))),
    }
}

pub async fn rename(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(OrgId, TeamId)>,
    ApiJson(req): ApiJson<TeamName>,
) -> ApiResult<Json<TeamView>> {
    find(&services, &caller, org, id)?;
    caller.require(org, &Action::ManageTeams)?;
    let team = services.store.rename_team(org, id, &req.name)?;
    audit::entry("team.rename", format!("team {id}"))
        .org(org)
        .actor(caller.actor())
        .detail(&team.name)
        .record(&services, client);
    Ok(Json(view(&services, team)?))
}

pub async fn delete(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(OrgId, TeamId)>,
) -> ApiResult<StatusCode> {
    let team = find(&services, &caller, org, id)?;
    caller.require(org, &Action::ManageTeams)?;
    services.store.delete_team(org, id)?;
    audit::entry("team.delete", &team.name)
        .org(org)
        .actor(caller.actor())
        .record(&services, client);
    Ok(StatusCode::NO_CONTENT)
}

pub async fn add_member(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, id, user)): ApiPath<(OrgId, TeamId, UserId)>,
) -> ApiResult<StatusCode> {
    find(&services, &caller, org, id)?;
    caller.require(org, &Action::ManageTeams)?;
    services.store.add_team_member(org, id, user)?;
    audit::entry("team.member.add", format!("team {id}"))
        .org(org)
        .actor(caller.actor())
        .detail(format!("user {user}"))
        .record(&services, client);
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove_member(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, id, user)): ApiPath<(OrgId, TeamId, UserId)>,
) -> ApiResult<StatusCode> {
    find(&services, &caller, org, id)?;
    caller.require(org, &Action::ManageTeams)?;
    services.store.remove_team_member(org, id, user)?;
    audit::entry("team.member.remove", format!("team {id}"))
        .org(org)
        .actor(caller.actor())
        .detail(format!("user {user}"))
        .record(&services, client);
    Ok(StatusCode::NO_CONTENT)
}
