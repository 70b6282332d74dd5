//! `/api/v1/orgs/{org}/grants` and `/api/v1/orgs/{org}/members`: who may use which mailbox,
//! and who belongs to the organization with which role.

use super::auth::Caller;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use super::page::{Page, PageQuery, paginate};
use super::{ClientAddr, audit};
use crate::access::{self, Action};
use crate::model::*;
use crate::services::Services;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

#[derive(Serialize, utoipa::ToSchema)]
pub struct GrantView {
    pub id: GrantId,
    pub grantee: Grantee,
    pub target: GrantTarget,
    /// RFC 4314 letters; `a` is the manage right.
    pub rights: String,
    pub send: Option<SendMode>,
    /// Milliseconds since the epoch when the grant starts counting; null: from its creation.
    pub valid_from: Option<Millis>,
    /// Milliseconds since the epoch when it ends by itself; null: never.
    pub valid_until: Option<Millis>,
}

impl From<Grant> for GrantView {
    fn from(g: Grant) -> GrantView {
        GrantView {
            id: g.id,
            grantee: g.grantee,
            target: g.target,
            rights: g.rights.letters(),
            send: g.send,
            valid_from: g.validity.from,
            valid_until: g.validity.until,
        }
    }
}

/// The named presets of the API, as rights and send mode.
fn preset(name: &str) -> Option<(Rights, Option<SendMode>)> {
    let r = |letters| Rights::parse(letters).unwrap_or_default();
    Some(match name {
        "read" => (r("lrs"), None),
        "read-write" => (r("lrswipkxte"), None),
        "send-as" => (r("l"), Some(SendMode::As)),
        "send-on-behalf" => (r("l"), Some(SendMode::OnBehalf)),
        "manage" => (r("la"), None),
        _ => return None,
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    pub grantee: Grantee,
    pub target: GrantTarget,
    /// RFC 4314 letters, or leave out and name a `preset`.
    pub rights: Option<String>,
    pub preset: Option<String>,
    pub send: Option<SendMode>,
    /// Milliseconds since the epoch when the grant starts counting (default: at once).
    pub valid_from: Option<Millis>,
    /// Milliseconds since the epoch when it ends by itself (default: never); open sessions
    /// that use it are ended then, and the audit log records `grant.expire`.
    pub valid_until: Option<Millis>,
}

pub(super) fn rights_of(
    rights: Option<&str>,
    preset_name: Option<&str>,
    send: Option<SendMode>,
) -> ApiResult<(Rights, Option<SendMode>)> {
    match (rights, preset_name) {
        (Some(letters), None) => {
            let rights = Rights::parse(letters).map_err(|e| ApiError::Invalid(e.to_string()))?;
            // A grant that allows nothing is a mistake, never what anyone meant.
            if rights.is_empty() && send.is_none() {
                return Err(ApiError::Invalid(
                    "a grant needs at least one right (RFC 4314 letters lrswipkxtea) or send"
                        .into(),
                ));
            }
            Ok((rights, send))
        }
        (None, Some(name)) => {
            let (rights, preset_send) = preset(name).ok_or_else(|| {
                ApiError::Invalid(format!(
                    "unknown preset {name:?}: read, read-write, send-as, send-on-behalf, manage"
                ))
            })?;
            Ok((rights, send.or(preset_send)))
        }
        _ => Err(ApiError::Invalid("give either rights or preset".into())),
    }
}

/// Whether the caller may see (and so list) this grant: whoever may manage its target.
fn may_see(caller: &Caller, org: OrgId, grant: &Grant) -> bool {
    let action = match grant.target {
        GrantTarget::Mailbox(m) => Action::ManageMailbox(m),
        GrantTarget::AllMailboxes => Action::CreateMailbox,
    };
    access::may(&caller.principal(), org, &action).is_ok()
}

pub async fn list(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<GrantView>>> {
    caller.see_org(org)?;
    let grants: Vec<GrantView> = services
        .store
        .grants(org)?
        .into_iter()
        .filter(|g| may_see(&caller, org, g))
        .map(GrantView::from)
        .collect();
    Ok(Json(paginate(grants, |g| format!("{:020}", g.id.0), &page)))
}

pub async fn create(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
    ApiJson(req): ApiJson<GrantRequest>,
) -> ApiResult<(StatusCode, Json<GrantView>)> {
    let (rights, send) = rights_of(req.rights.as_deref(), req.preset.as_deref(), req.send)?;
    if let GrantTarget::Mailbox(m) = req.target {
        match services.store.mailbox(m)? {
            Some(mb) if mb.org == org => {}
            _ => return Err(ApiError::NotFound(format!("mailbox {m} not found"))),
        }
    }
    let action = Action::Grant {
        target: req.target,
        rights,
        send,
    };
    caller.require(org, &action)?;
    let validity = Validity {
        from: req.valid_from,
        until: req.valid_until,
    };
    validity.check(now_millis()).map_err(ApiError::Invalid)?;
    let new = NewGrant {
        org,
        grantee: req.grantee,
        target: req.target,
        rights,
        send,
    };
    let grant = services.store.add_grant_within(new, validity)?;
    audit::entry("grant.create", format!("grant {}", grant.id))
        .org(org)
        .actor(caller.actor())
        .detail(format!(
            "{:?} on {:?}: {} send={:?} from {:?} until {:?}",
            grant.grantee, grant.target, grant.rights, grant.send, validity.from, validity.until
        ))
        .record(&services, client);
    Ok((StatusCode::CREATED, Json(grant.into())))
}

fn find(services: &Services, caller: &Caller, org: OrgId, id: GrantId) -> ApiResult<Grant> {
    caller.see_org(org)?;
    match services.store.grant(org, id)? {
        Some(g) if may_see(caller, org, &g) => Ok(g),
        _ => Err(ApiError::NotFound(format!("grant {id} not found"))),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantChange {
    pub rights: Option<String>,
    pub preset: Option<String>,
    pub send: Option<SendMode>,
}

pub async fn update(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(OrgId, GrantId)>,
    ApiJson(req): ApiJson<GrantChange>,
) -> ApiResult<Json<GrantView>> {
    let grant = find(&services, &caller, org, id)?;
    let (rights, send) = rights_of(req.rights.as_deref(), req.preset.as_deref(), req.send)?;
    caller.require(
        org,
        &Action::Grant {
            target: grant.target,
            rights,
            send,
        },
    )?;
    let grant = services.store.update_grant(org, id, rights, send)?;
    audit::entry("grant.update", format!("grant {id}"))
        .org(org)
        .actor(caller.actor())
        .detail(format!("now {} send={:?}", grant.rights, grant.send))
        .record(&services, client);
    Ok(Json(grant.into()))
}

pub async fn delete(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(OrgId, GrantId)>,
) -> ApiResult<StatusCode> {
    find(&services, &caller, org, id)?;
    services.store.remove_grant(org, id)?;
    audit::entry("grant.delete", format!("grant {id}"))
        .org(org)
        .actor(caller.actor())
        .record(&services, client);
    Ok(StatusCode::NO_CONTENT)
}

// ----- members -----

#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberView {
    pub user_id: UserId,
    pub login: String,
    pub display_name: String,
    pub role: Role,
    pub disabled: bool,
}

pub async fn members(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<MemberView>>> {
    caller.see_org(org)?;
    // External members do not see the directory: only themselves (ARCHITECTURE.md §2).
    let whole = access::may(&caller.principal(), org, &Action::ListDirectory).is_ok();
    let mut views = Vec::new();
    for m in services.store.members(org)? {
        if !whole && m.user != caller.user.id {
            continue;
        }
        if let Some(user) = services.store.user(m.user)? {
            views.push(MemberView {
                user_id: user.id,
                login: user.login,
                display_name: user.display_name,
                role: m.role,
                disabled: user.disabled,
            });
        }
    }
    Ok(Json(paginate(views, |m| m.login.to_lowercase(), &page)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    pub role: Option<Role>,
    /// Disables (or enables again) the user's logins everywhere: only for a user who belongs
    /// to this organization alone.
    pub disabled: Option<bool>,
}

fn member_role(services: &Services, caller: &Caller, org: OrgId, user: UserId) -> ApiResult<Role> {
    caller.see_org(org)?;
    services
        .store
        .role_in(org, user)?
        .ok_or_else(|| ApiError::NotFound(format!("member {user} not found")))
}

pub async fn change_role(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, user)): ApiPath<(OrgId, UserId)>,
    ApiJson(req): ApiJson<RoleChange>,
) -> ApiResult<Json<serde_json::Value>> {
    let from = member_role(&services, &caller, org, user)?;
    let to = req.role.unwrap_or(from);
    caller.require(org, &Action::ChangeRole { from, to })?;
    if let Some(disabled) = req.disabled {
        set_disabled(&services, &caller, client, org, user, from, disabled)?;
    }
    if req.role.is_some() {
        services.store.set_member(org, user, to)?;
        audit::entry("member.role", format!("user {user}"))
            .org(org)
            .actor(caller.actor())
            .detail(format!("{from} -> {to}"))
            .record(&services, client);
    }
    if from != to {
        role_change_notice(&services, org, user, from, to).await;
    }
    let disabled = services.store.user(user)?.is_some_and(|u| u.disabled);
    Ok(Json(
        serde_json::json!({"user_id": user, "role": to, "disabled": disabled}),
    ))
}

/// Disabling ends the user's open IMAP and SMTP sessions at once (the store tells them).
fn set_disabled(
    services: &Services,
    caller: &Caller,
    client: Option<std::net::SocketAddr>,
    org: OrgId,
    user: UserId,
    role: Role,
    disabled: bool,
) -> ApiResult<()> {
    caller.require(org, &Action::RemoveMember { role })?;
    if user == caller.user.id {
        return Err(ApiError::Invalid("you cannot disable yourself".into()));
    }
    if services
        .store
        .memberships_of(user)?
        .iter()
        .any(|m| m.org != org)
    {
        return Err(ApiError::Conflict(
            "the user belongs to other organizations too: remove them from this one instead".into(),
        ));
    }
    services
        .store
        .update_user(user, |u| u.disabled = disabled)?;
    let action = if disabled {
        "member.disable"
    } else {
        "member.enable"
    };
    audit::entry(action, format!("user {user}"))
        .org(org)
        .actor(caller.actor())
        .record(services, client);
    Ok(())
}

/// Tells the user, by email, what their new role lets them do. A notice that cannot be sent
/// is logged: the change itself stands.
async fn role_change_notice(services: &Services, org: OrgId, user: UserId, from: Role, to: Role) {
    let (Ok(Some(account)), Ok(Some(organization))) =
        (services.store.user(user), services.store.organization(org))
    else {
        return;
    };
    let can = match to {
        Role::Owner => "run the organization, including its owners and its partnerships",
        Role::Admin => "manage members, mailboxes, aliases, grants and teams",
        Role::Collaborator => "see the directory and use the mailboxes granted to you",
        Role::External => "use only the mailboxes granted to you by name",
    };
    let text = format!(
        "Your role in {name} changed from {from} to {to}.\n\nAs {to} you can {can}.\n\n\
         Your access to mailboxes is listed in the admin API: GET /api/v1/me.\n",
        name = organization.name,
    );
    let subject = format!("Your role in {} is now {to}", organization.name);
    if let Err(e) = crate::smtp::notice::send(services, &account.login, &subject, &text).await {
        tracing::warn!(%user, error = %e, "the role change notice could not be sent");
    }
}

pub async fn remove_member(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, user)): ApiPath<(OrgId, UserId)>,
) -> ApiResult<StatusCode> {
    let role = member_role(&services, &caller, org, user)?;
    caller.require(org, &Action::RemoveMember { role })?;
    services.store.remove_member(org, user)?;
    audit::entry("member.remove", format!("user {user}"))
        .org(org)
        .actor(caller.actor())
        .record(&services, client);
    Ok(StatusCode::NO_CONTENT)
}

/// Ends time-limited grants when their time comes, and lets sessions see those that start:
/// at each start or end (or once a second, for grants given meanwhile) the store's
/// `grant_clock` runs; open sessions of a grant that ended get BYE as on a revocation, and
/// the audit log records each end.
pub async fn keep_time(services: Arc<Services>, shutdown: tokio_util::sync::CancellationToken) {
    let mut since = now_millis();
    loop {
        let next = if services.runs(crate::services::Job::GrantClock).await {
            clock_round(&services, &mut since).await
        } else {
            // Another node keeps the time; its notices reach this node's sessions.
            since = now_millis();
            None
        };
        let wait = next.map_or(1000, |t| (t - now_millis()).clamp(0, 1000));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
        }
    }
}

/// One round of the grant clock from `since`: ends what is due, records it; the next time
/// something starts or ends.
async fn clock_round(services: &Services, since: &mut Millis) -> Option<Millis> {
    let from = *since;
    let now = now_millis();
    let store = services.store.clone();
    let clock = tokio::task::spawn_blocking(move || store.grant_clock(from, now))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    match clock {
        Ok(clock) => {
            for grant in clock.ended {
                audit::entry("grant.expire", format!("grant {}", grant.id))
                    .org(grant.org)
                    .detail(format!(
                        "{:?} on {:?}: {} send={:?}, valid until {:?}",
                        grant.grantee, grant.target, grant.rights, grant.send, grant.validity.until
                    ))
                    .record(services, None);
            }
            *since = now;
            clock.next
        }
        Err(e) => {
            tracing::error!(error = %e, "ending time-limited grants failed");
            None
        }
    }
}
