//! Least-privilege review: who can read a mailbox and why, and everything one user can
//! reach. The answers come from `access` (the same rules the protocols apply) and the audit
//! log (last logins).

use super::auth::Caller;
use super::error::{ApiError, ApiPath, ApiResult};
use crate::access::{self, Action, MailboxRef, ManagedThrough};
use crate::model::*;
use crate::services::Services;
use crate::store::AuditQuery;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Serialize, utoipa::ToSchema)]
pub struct MailboxAccessReview {
    pub mailbox: MailboxId,
    pub address: String,
    pub principals: Vec<Holder>,
}

/// One principal with effective access to a mailbox.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Holder {
    /// `mailbox_password` (whoever knows the mailbox's own password) or `user`.
    pub kind: &'static str,
    pub user: Option<UserId>,
    pub login: Option<String>,
    /// RFC 4314 letters of the mail rights.
    pub rights: String,
    pub send: Option<SendMode>,
    /// Each path that gives access.
    pub through: Vec<Path>,
    /// Milliseconds since the epoch of the last successful IMAP or SMTP login, if any.
    pub last_login: Option<Millis>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Path {
    Password,
    /// `valid_from`/`valid_until`: the grant's window, null where it has no bound.
    DirectGrant {
        grant: GrantId,
        rights: String,
        valid_from: Option<Millis>,
        valid_until: Option<Millis>,
    },
    TeamGrant {
        grant: GrantId,
        team: TeamId,
        rights: String,
        valid_from: Option<Millis>,
        valid_until: Option<Millis>,
    },
    AllMailboxesGrant {
        grant: GrantId,
        rights: String,
        valid_from: Option<Millis>,
        valid_until: Option<Millis>,
    },
    /// Owners and admins may reset the password, and so read the mail.
    Role {
        role: Role,
    },
    Partnership {
        partner: OrgId,
    },
}

/// `GET /api/v1/orgs/{org}/mailboxes/{id}/access`
pub async fn mailbox(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(OrgId, MailboxId)>,
) -> ApiResult<Json<MailboxAccessReview>> {
    caller.require(org, &Action::ViewAudit)?;
    let mailbox = match services.store.mailbox(id)? {
        Some(m) if m.org == org => m,
        _ => return Err(ApiError::NotFound(format!("mailbox {id} not found"))),
    };
    let logins = last_logins(&services)?;
    let target = MailboxRef { id, org };
    let mut principals = vec![Holder {
        kind: "mailbox_password",
        user: None,
        login: Some(mailbox.address.clone()),
        rights: Rights::ALL.letters(),
        send: Some(SendMode::As),
        through: vec![Path::Password],
        last_login: logins.get(&Actor::Mailbox(id)).copied(),
    }];
    for user in candidates(&services, org)? {
        if let Some(holder) = holder(&services, user, target, &logins)? {
            principals.push(holder);
        }
    }
    Ok(Json(MailboxAccessReview {
        mailbox: id,
        address: mailbox.address,
        principals,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserReach {
    pub user: UserId,
    pub login: String,
    pub mailboxes: Vec<Reached>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Reached {
    pub mailbox: MailboxId,
    pub address: String,
    pub rights: String,
    pub send: Option<SendMode>,
    pub through: Vec<Path>,
}

/// `GET /api/v1/orgs/{org}/members/{user}/access`: every mailbox of the organization the
/// member can reach, and how.
pub async fn user(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiPath((org, user)): ApiPath<(OrgId, UserId)>,
) -> ApiResult<Json<UserReach>> {
    caller.require(org, &Action::ViewAudit)?;
    let found = services.store.user(user)?;
    let known = services.store.role_in(org, user)?.is_some();
    let Some(found) = found.filter(|_| known) else {
        return Err(ApiError::NotFound(format!("member {user} not found")));
    };
    let facts = services.store.user_facts(user)?;
    let mut mailboxes = Vec::new();
    for m in services.store.mailboxes(org)? {
        let target = MailboxRef { id: m.id, org };
        let access = access::mailbox_access(&access::Principal::User(facts.clone()), target);
        let through = paths(&facts, target);
        if !through.is_empty() {
            mailboxes.push(Reached {
                mailbox: m.id,
                address: m.address,
                rights: access.rights.letters(),
                send: access.send,
                through,
            });
        }
    }
    Ok(Json(UserReach {
        user,
        login: found.login,
        mailboxes,
    }))
}

/// Members of the organization, and managers of partner organizations that manage it.
fn candidates(services: &Services, org: OrgId) -> ApiResult<Vec<UserId>> {
    let mut users: Vec<UserId> = services
        .store
        .members(org)?
        .iter()
        .map(|m| m.user)
        .collect();
    for p in services.store.partnerships_of(org)? {
        if p.client == org && p.status == PartnershipStatus::Accepted {
            users.extend(services.store.members(p.partner)?.iter().map(|m| m.user));
        }
    }
    users.sort();
    users.dedup();
    Ok(users)
}

fn holder(
    services: &Services,
    user: UserId,
    target: MailboxRef,
    logins: &HashMap<Actor, Millis>,
) -> ApiResult<Option<Holder>> {
    let Some(found) = services.store.user(user)? else {
        return Ok(None);
    };
    let facts = services.store.user_facts(user)?;
    let through = paths(&facts, target);
    if through.is_empty() {
        return Ok(None);
    }
    let access = access::mailbox_access(&access::Principal::User(facts), target);
    let last_login = logins
        .iter()
        .filter(|(actor, _)| match actor {
            Actor::User(u) | Actor::Delegate { user: u, .. } => *u == user,
            _ => false,
        })
        .map(|(_, at)| *at)
        .max();
    Ok(Some(Holder {
        kind: "user",
        user: Some(user),
        login: Some(found.login),
        rights: access.rights.letters(),
        send: access.send,
        through,
        last_login,
    }))
}

fn paths(facts: &access::UserFacts, target: MailboxRef) -> Vec<Path> {
    let mut out: Vec<Path> = access::granting(facts, target)
        .into_iter()
        .map(|g| {
            let rights = g.rights.letters();
            let Validity { from, until } = g.validity;
            match (g.grantee, g.target) {
                (_, GrantTarget::AllMailboxes) => Path::AllMailboxesGrant {
                    grant: g.id,
                    rights,
                    valid_from: from,
                    valid_until: until,
                },
                (Grantee::Team(team), _) => Path::TeamGrant {
                    grant: g.id,
                    team,
                    rights,
                    valid_from: from,
                    valid_until: until,
                },
                (Grantee::User(_), _) => Path::DirectGrant {
                    grant: g.id,
                    rights,
                    valid_from: from,
                    valid_until: until,
                },
            }
        })
        .collect();
    match access::manages(facts, target) {
        Some(ManagedThrough::Role(role)) => out.push(Path::Role { role }),
        Some(ManagedThrough::Partnership(partner)) => out.push(Path::Partnership { partner }),
        None => {}
    }
    out
}

/// The last successful login of each actor, from the audit log.
fn last_logins(services: &Services) -> ApiResult<HashMap<Actor, Millis>> {
    let query = AuditQuery::default();
    let mut out = HashMap::new();
    for e in services.store.audit_events(&query)? {
        let login = e.action == "imap.login" || e.action == "smtp.login";
        if login && e.outcome == Outcome::Success {
            out.entry(e.actor).or_insert(e.at);
        }
    }
    Ok(out)
}
