//! Invitations: an owner or admin invites someone by email with a role, teams and grants;
//! the email carries a single-use link that expires; accepting it creates the user (or, with
//! the existing user's password, attaches them) and applies what the invitation carried.

use super::auth::{Caller, token_hash};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use super::page::{Page, PageQuery, paginate};
use super::{ClientAddr, audit};
use crate::access::Action;
use crate::model::*;
use crate::services::Services;
use crate::store::{AddressEntry, NewUser};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How long an invitation link works.
const VALID_FOR_MS: Millis = 7 * 24 * 3600 * 1000;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationRequest {
    pub email: String,
    pub role: Role,
    #[serde(default)]
    pub teams: Vec<TeamId>,
    #[serde(default)]
    pub grants: Vec<InvitedGrant>,
}

/// A grant the invited person gets on acceptance.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitedGrant {
    pub target: GrantTarget,
    pub rights: Option<String>,
    pub preset: Option<String>,
    pub send: Option<SendMode>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InvitationView {
    /// Names the invitation in this API (not the secret of the link).
    pub id: String,
    pub email: String,
    pub role: Role,
    pub teams: Vec<TeamId>,
    pub expires: Millis,
    /// Only when the invitation mail could not be delivered: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undelivered: Option<String>,
    /// Only when the invitation mail could not be delivered, and only in this answer: the
    /// acceptance path, for the inviter to hand over another way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_path: Option<String>,
}

fn view(i: &Invitation) -> InvitationView {
    InvitationView {
        id: invitation_id(&i.token_hash),
        email: i.email.clone(),
        role: i.role,
        teams: i.teams.clone(),
        expires: i.expires,
        undelivered: None,
        accept_path: None,
    }
}

/// The view of a just-issued invitation: with the link when its mail did not go out.
fn issued_view(issued: &Issued) -> InvitationView {
    InvitationView {
        undelivered: issued.undelivered.as_ref().map(|u| u.reason.clone()),
        accept_path: issued.undelivered.as_ref().map(|u| u.accept_path.clone()),
        ..view(&issued.invitation)
    }
}

/// An invitation stored, and whether its mail went out.
struct Issued {
    invitation: Invitation,
    undelivered: Option<Undelivered>,
}

struct Undelivered {
    reason: String,
    accept_path: String,
}

fn invitation_id(hash: &[u8; 32]) -> String {
    hex::encode(&hash[..8])
}

pub async fn create(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
    ApiJson(req): ApiJson<InvitationRequest>,
) -> ApiResult<(StatusCode, Json<InvitationView>)> {
    caller.require(org, &Action::InviteMember { role: req.role })?;
    let email = super::parse_address(&services, &req.email)?.key();
    for team in &req.teams {
        match services.store.team(*team)? {
            Some(t) if t.org == org => {}
            _ => return Err(ApiError::NotFound(format!("team {team} not found"))),
        }
    }
    let grants = invited_grants(&services, &caller, org, &req.grants)?;
    check_login_namespace(&services, &email, &grants)?;
    let invitation = Invitation {
        token_hash: [0; 32],
        org,
        email,
        role: req.role,
        teams: req.teams,
        grants,
        invited_by: caller.user.id,
        expires: now_millis() + VALID_FOR_MS,
    };
    let issued = issue(&services, invitation, None).await?;
    let invitation = &issued.invitation;
    audit::entry("invitation.create", &invitation.email)
        .org(org)
        .actor(caller.actor())
        .detail(format!("role {}", invitation.role))
        .record(&services, client);
    Ok((StatusCode::CREATED, Json(issued_view(&issued))))
}

/// A login opens exactly one thing (`login::authenticate`): an invitation to an address that is
/// a mailbox's must grant that mailbox (her own mailbox, reached with either password); one to
/// an alias's cannot be. An existing user keeps her login, whatever it is.
fn check_login_namespace(services: &Services, email: &str, grants: &[NewGrant]) -> ApiResult<()> {
    if services.store.user_by_login(email)?.is_some() {
        return Ok(());
    }
    match services.store.resolve_address(email)? {
        None => Ok(()),
        Some(AddressEntry::Mailbox(id)) if grants_mailbox(grants, id) => Ok(()),
        Some(AddressEntry::Mailbox(_)) => Err(ApiError::Conflict(format!(
            "{email} is a mailbox's address: invite with a grant on that mailbox (her own), or use another login"
        ))),
        Some(AddressEntry::Alias(_)) => Err(ApiError::Conflict(format!(
            "{email} is an alias: nobody can log in with it; invite another address"
        ))),
    }
}

/// Each grant checked as if the caller made it now: nobody invites with more than they hold.
fn invited_grants(
    services: &Services,
    caller: &Caller,
    org: OrgId,
    grants: &[InvitedGrant],
) -> ApiResult<Vec<NewGrant>> {
    let mut out = Vec::new();
    for g in grants {
        let (rights, send) =
            super::grants::rights_of(g.rights.as_deref(), g.preset.as_deref(), g.send)?;
        if let GrantTarget::Mailbox(m) = g.target {
            match services.store.mailbox(m)? {
                Some(mb) if mb.org == org => {}
                _ => return Err(ApiError::NotFound(format!("mailbox {m} not found"))),
            }
        }
        caller.require(
            org,
            &Action::Grant {
                target: g.target,
                rights,
                send,
            },
        )?;
        out.push(NewGrant {
            org,
            // Replaced by the new user on acceptance.
            grantee: Grantee::User(UserId(0)),
            target: g.target,
            rights,
            send,
        });
    }
    Ok(out)
}

/// Stores the invitation under a fresh secret and mails the link; the link is never shown
/// to the inviter.
/// Stores `invitation` with a new token, in the place of the one whose token hash is
/// `replacing` if any, and mails the token.
async fn issue(
    services: &Services,
    mut invitation: Invitation,
    replacing: Option<[u8; 32]>,
) -> ApiResult<Issued> {
    let token = hex::encode(rand::random::<[u8; 32]>());
    invitation.token_hash = token_hash(&token);
    match replacing {
        Some(old) => services
            .store
            .renew_invitation(invitation.org, &old, invitation.clone())?,
        None => services.store.create_invitation(invitation.clone())?,
    }
    let org_name = services
        .store
        .organization(invitation.org)?
        .map(|o| o.name)
        .unwrap_or_default();
    let host = services
        .config
        .public
        .hostname
        .clone()
        .unwrap_or_else(|| services.config.hostname.clone());
    let text = format!(
        "You are invited to join {org_name} as {role}.\n\n\
         To accept within 7 days, open this single-use link in a browser:\n\n\
         https://{host}/console/invitations/{token}\n\n\
         Or send your new password (or, if you already have an account here, your\n\
         current one) to this single-use address:\n\n\
         POST https://{host}/api/v1/invitations/{token}/accept\n\
         {{\"password\": \"...\"}}\n\n\
         With the mailgate command line: mailgate admin invitations accept {token}\n",
        role = invitation.role,
    );
    let subject = format!("Invitation to {org_name}");
    // A mail that cannot be delivered (an address of a hosted domain with no mailbox yet, a
    // full mailbox) leaves the invitation valid: the inviter is told, and given the link once.
    let undelivered =
        match crate::smtp::notice::send(services, &invitation.email, &subject, &text).await {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(error = %e, "an invitation email could not be delivered");
                Some(Undelivered {
                    reason: format!("the invitation mail could not be delivered: {e}"),
                    accept_path: format!("/api/v1/invitations/{token}/accept"),
                })
            }
        };
    Ok(Issued {
        invitation,
        undelivered,
    })
}

pub async fn list(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<InvitationView>>> {
    caller.require(org, &Action::ListDirectory)?;
    let views: Vec<InvitationView> = services.store.invitations(org)?.iter().map(view).collect();
    Ok(Json(paginate(views, |v| v.id.clone(), &page)))
}

fn find(services: &Services, org: OrgId, id: &str) -> ApiResult<Invitation> {
    services
        .store
        .invitations(org)?
        .into_iter()
        .find(|i| invitation_id(&i.token_hash) == id)
        .ok_or_else(|| ApiError::NotFound(format!("invitation {id} not found")))
}

/// `POST …/invitations/{id}/resend`: a new link (the old one stops working) and a new week.
pub async fn resend(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(OrgId, String)>,
) -> ApiResult<Json<InvitationView>> {
    caller.see_org(org)?;
    let old = find(&services, org, &id)?;
    caller.require(org, &Action::InviteMember { role: old.role })?;
    let replacing = old.token_hash;
    let renewed = Invitation {
        expires: now_millis() + VALID_FOR_MS,
        ..old
    };
    let issued = issue(&services, renewed, Some(replacing)).await?;
    audit::entry("invitation.resend", &issued.invitation.email)
        .org(org)
        .actor(caller.actor())
        .record(&services, client);
    Ok(Json(issued_view(&issued)))
}

pub async fn withdraw(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(OrgId, String)>,
) -> ApiResult<StatusCode> {
    caller.see_org(org)?;
    let invitation = find(&services, org, &id)?;
    caller.require(
        org,
        &Action::InviteMember {
            role: invitation.role,
        },
    )?;
    services
        .store
        .delete_invitation(org, &invitation.token_hash)?;
    audit::entry("invitation.withdraw", &invitation.email)
        .org(org)
        .actor(caller.actor())
        .record(&services, client);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Acceptance {
    pub password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub user_id: UserId,
    pub login: String,
    pub org_id: OrgId,
    pub role: Role,
    /// Whether the account was made now (or an existing one was attached).
    pub created: bool,
}

/// `POST /api/v1/invitations/{token}/accept`, without a session: the link is the credential.
pub async fn accept(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    ApiPath(token): ApiPath<String>,
    ApiJson(req): ApiJson<Acceptance>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let hash = token_hash(token.trim());
    let pending = services
        .store
        .all_invitations()?
        .into_iter()
        .find(|i| i.token_hash == hash && i.expires >= now_millis())
        .ok_or_else(|| ApiError::NotFound("the invitation is unknown, used or expired".into()))?;
    // Check the password before the link is spent, so a typo does not burn it.
    let (user, created) = match services.store.user_by_login(&pending.email)? {
        Some(user) => {
            let ip = super::session::client_ip(client);
            crate::login::confirm_password(&services, ip, &user, &req.password)
                .await
                .map_err(|refusal| {
                    let wrong = "an account with this address exists: give its current password";
                    ApiError::from_login(refusal, wrong)
                })?;
            (user, false)
        }
        None => {
            super::session::check_new_password(&req.password, "")?;
            let hash = services.passwords.hash(&req.password).await?;
            let user = services.store.create_user(NewUser {
                login: pending.email.clone(),
                display_name: String::new(),
                password: hash,
                must_change_password: false,
                own_mailbox: own_mailbox(&services, &pending)?,
            })?;
            (user, true)
        }
    };
    let invitation = services.store.take_invitation(&hash)?;
    apply(&services, &invitation, user.id)?;
    services.store.flush().await?;
    audit::entry("invitation.accept", &invitation.email)
        .org(invitation.org)
        .actor(Actor::User(user.id))
        .detail(if created { "new user" } else { "existing user" })
        .record(&services, client);
    Ok((
        StatusCode::CREATED,
        Json(Accepted {
            user_id: user.id,
            login: user.login,
            org_id: invitation.org,
            role: invitation.role,
            created,
        }),
    ))
}

/// Membership, teams and grants the invitation carried.
fn apply(services: &Services, invitation: &Invitation, user: UserId) -> ApiResult<()> {
    let org = invitation.org;
    // An existing member keeps a higher role; the invitation does not demote.
    let keep = services
        .store
        .role_in(org, user)?
        .is_some_and(|r| r.rank() >= invitation.role.rank());
    if !keep {
        services.store.set_member(org, user, invitation.role)?;
    }
    for team in &invitation.teams {
        services.store.add_team_member(org, *team, user)?;
    }
    for grant in &invitation.grants {
        services.store.add_grant(NewGrant {
            grantee: Grantee::User(user),
            ..grant.clone()
        })?;
    }
    Ok(())
}

/// The mailbox at the invited address, when the invitation grants it: her own.
fn own_mailbox(services: &Services, invitation: &Invitation) -> ApiResult<Option<MailboxId>> {
    Ok(match services.store.resolve_address(&invitation.email)? {
        Some(AddressEntry::Mailbox(id)) if grants_mailbox(&invitation.grants, id) => Some(id),
        _ => None,
    })
}

fn grants_mailbox(grants: &[NewGrant], mailbox: MailboxId) -> bool {
    grants
        .iter()
        .any(|g| g.target == GrantTarget::Mailbox(mailbox))
}
