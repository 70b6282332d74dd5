//! Members (role and status, a role changed in place), what each can reach and why, and
//! invitations: sent, sent again, withdrawn, and accepted in the browser. Every change goes
//! through the API's handler.

use super::pages::{Names, reason_row};
use super::session::{Pressed, Secure, Visitor, check_form_token, form_token, signed_in};
use super::{
    ConsoleError, ConsoleResult, Layout, abilities, back_to, date, every, refusal, render,
};
use crate::access::{self, Action};
use crate::admin::error::{ApiJson, ApiPath};
use crate::admin::grants::{self, MemberView, RoleChange};
use crate::admin::invitations::{self, Acceptance, InvitationRequest, InvitationView};
use crate::admin::session::LoginRequest;
use crate::admin::{ClientAddr, review, session};
use crate::model::*;
use crate::services::Services;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

struct MemberRow {
    id: UserId,
    login: String,
    name: String,
    role: String,
    disabled: bool,
    may_change_role: bool,
    /// Why the last role change was refused (the in-place edit shows it in the row).
    problem: Option<String>,
}

fn member_row(visitor: &Visitor, org: OrgId, m: MemberView) -> MemberRow {
    // Whether some other role is one this user may give: otherwise the role is only shown.
    let may_change_role = Role::ALL.iter().any(|&to| {
        let change = Action::ChangeRole { from: m.role, to };
        to != m.role && access::may(&visitor.caller.principal(), org, &change).is_ok()
    });
    MemberRow {
        id: m.user_id,
        login: m.login,
        name: m.display_name,
        role: m.role.to_string(),
        disabled: m.disabled,
        may_change_role,
        problem: None,
    }
}

struct InvitationRow {
    /// Whether this user may invite at the invitation's role, and so resend or withdraw it.
    may_manage: bool,
    id: String,
    email: String,
    role: String,
    until: String,
}

/// An invitation just sent: and, when its mail did not go out, the link to hand over.
struct Issued {
    email: String,
    why: String,
    link: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "members.html", config = "src/console/askama.toml")]
struct MembersPage {
    layout: Layout,
    csrf: String,
    org: OrgId,
    members: Vec<MemberRow>,
    invitations: Vec<InvitationRow>,
    may_invite: bool,
    roles: &'static [Role],
    issued: Option<Issued>,
}

pub async fn list(
    State(services): State<Arc<Services>>,
    visitor: Visitor,
    Path(org): Path<OrgId>,
) -> ConsoleResult<Response> {
    members_page(&services, visitor, org, None).await
}

async fn members_page(
    services: &Arc<Services>,
    visitor: Visitor,
    org: OrgId,
    issued: Option<Issued>,
) -> ConsoleResult<Response> {
    let state = || State(services.clone());
    let caller = || visitor.caller.clone();
    let found = every(|q| grants::members(state(), caller(), ApiPath(org), q)).await?;
    let pending = every(|q| invitations::list(state(), caller(), ApiPath(org), q)).await?;
    let may_invite = |role| {
        let invite = Action::InviteMember { role };
        access::may(&visitor.caller.principal(), org, &invite).is_ok()
    };
    let members = found
        .into_iter()
        .map(|m| member_row(&visitor, org, m))
        .collect();
    let invitations = pending
        .into_iter()
        .map(|i| InvitationRow {
            may_manage: may_invite(i.role),
            id: i.id,
            email: i.email,
            role: i.role.to_string(),
            until: date(i.expires),
        })
        .collect();
    let page = MembersPage {
        may_invite: may_invite(Role::Collaborator),
        layout: Layout::with(visitor.bar(services, Some(org)).await?),
        csrf: visitor.csrf,
        org,
        members,
        invitations,
        roles: &Role::ALL,
        issued,
    };
    Ok(render(&page)?.into_response())
}

#[derive(askama::Template)]
#[template(path = "member_row_fragment.html", config = "src/console/askama.toml")]
struct MemberRowFragment {
    csrf: String,
    org: OrgId,
    member: MemberRow,
    roles: &'static [Role],
}

#[derive(Deserialize)]
pub struct RoleForm {
    csrf: String,
    role: Role,
}

/// Changes a member's role through the API. In place (htmx, `HX-Request`): the row again,
/// with the API's refusal in it, and any other failure sent as htmx understands it (see
/// `ConsoleError::for_htmx`); without script: back to the list, or the refusal's page.
pub async fn change_role(
    State(services): State<Arc<Services>>,
    client: ClientAddr,
    visitor: Result<Visitor, ConsoleError>,
    headers: HeaderMap,
    Path((org, user)): Path<(OrgId, UserId)>,
    form: Result<Form<RoleForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let in_place = headers.contains_key("hx-request");
    let changed = async {
        let visitor = visitor?;
        let Form(form) =
            form.map_err(|e| ConsoleError::Api(crate::admin::ApiError::BadRequest(e.body_text())))?;
        visitor.check(&form.csrf)?;
        let change = RoleChange {
            role: Some(form.role),
            disabled: None,
        };
        let path = ApiPath((org, user));
        let caller = visitor.caller.clone();
        let changed = grants::change_role(
            State(services.clone()),
            client,
            caller,
            path,
            ApiJson(change),
        )
        .await;
        if !in_place {
            let _changed = changed?;
            return Ok(back_to(format!("/console/orgs/{org}/members")));
        }
        let problem = changed.err().map(|e| e.parts().2);
        member_fragment(&services, visitor, org, user, problem).await
    };
    match changed.await {
        Ok(answer) => answer,
        Err(e) if in_place => e.for_htmx(),
        Err(e) => e.into_response(),
    }
}

/// One member's row again, for an in-place edit.
async fn member_fragment(
    services: &Arc<Services>,
    visitor: Visitor,
    org: OrgId,
    user: UserId,
    problem: Option<String>,
) -> ConsoleResult<Response> {
    let caller = || visitor.caller.clone();
    let found =
        every(|q| grants::members(State(services.clone()), caller(), ApiPath(org), q)).await?;
    let member = found
        .into_iter()
        .find(|m| m.user_id == user)
        .ok_or_else(|| {
            ConsoleError::from(crate::admin::ApiError::NotFound("no such member".into()))
        })?;
    let fragment = MemberRowFragment {
        member: MemberRow {
            problem,
            ..member_row(&visitor, org, member)
        },
        csrf: visitor.csrf,
        org,
        roles: &Role::ALL,
    };
    Ok(render(&fragment)?.into_response())
}

struct ReachRow {
    mailbox: MailboxId,
    address: String,
    can: String,
    reasons: Vec<String>,
}

#[derive(askama::Template)]
#[template(path = "reach.html", config = "src/console/askama.toml")]
struct ReachPage {
    layout: Layout,
    org: OrgId,
    login: String,
    rows: Vec<ReachRow>,
}

/// Every mailbox of the organization a member can reach, and why (the API's review).
pub async fn reach(
    State(services): State<Arc<Services>>,
    visitor: Visitor,
    Path((org, user)): Path<(OrgId, UserId)>,
) -> ConsoleResult<Response> {
    let found = review::user(
        State(services.clone()),
        visitor.caller.clone(),
        ApiPath((org, user)),
    )
    .await?
    .0;
    let names = Names::of(&services, org)?;
    let rows = found
        .mailboxes
        .into_iter()
        .map(|m| {
            let reasons = m
                .through
                .into_iter()
                .map(|r| reason_row(&services, org, &names, r).map(|row| row.why))
                .collect::<ConsoleResult<_>>()?;
            Ok(ReachRow {
                can: abilities(&m.rights, m.send),
                mailbox: m.mailbox,
                address: m.address,
                reasons,
            })
        })
        .collect::<ConsoleResult<_>>()?;
    let page = ReachPage {
        layout: Layout::with(visitor.bar(&services, Some(org)).await?),
        org,
        login: found.login,
        rows,
    };
    Ok(render(&page)?.into_response())
}

#[derive(Deserialize)]
pub struct InviteForm {
    csrf: String,
    email: String,
    role: Role,
}

/// The invitation's acceptance page, at the server's public name (as the invitation mail
/// gives it), when its mail did not go out: the API's answer carries the path only then.
fn issued(services: &Services, view: InvitationView) -> Issued {
    let public = &services.config.public;
    let host = public
        .hostname
        .as_ref()
        .unwrap_or(&services.config.hostname);
    let token = view.accept_path.as_deref().and_then(|p| {
        p.strip_prefix("/api/v1/invitations/")?
            .strip_suffix("/accept")
            .map(str::to_string)
    });
    Issued {
        email: view.email,
        why: view
            .undelivered
            .unwrap_or_else(|| "The mail did not go out".into()),
        link: token.map(|t| format!("https://{host}/console/invitations/{t}")),
    }
}

pub async fn invite(
    State(services): State<Arc<Services>>,
    client: ClientAddr,
    visitor: Visitor,
    Path(org): Path<OrgId>,
    Form(form): Form<InviteForm>,
) -> ConsoleResult<Response> {
    visitor.check(&form.csrf)?;
    let request = InvitationRequest {
        email: form.email,
        role: form.role,
        teams: Vec::new(),
        grants: Vec::new(),
    };
    let (_, made) = invitations::create(
        State(services.clone()),
        client,
        visitor.caller.clone(),
        ApiPath(org),
        ApiJson(request),
    )
    .await?;
    let shown = issued(&services, made.0);
    members_page(&services, visitor, org, Some(shown)).await
}

pub async fn resend(
    State(services): State<Arc<Services>>,
    client: ClientAddr,
    Path((org, id)): Path<(OrgId, String)>,
    Pressed(visitor): Pressed,
) -> ConsoleResult<Response> {
    let path = ApiPath((org, id));
    let made = invitations::resend(
        State(services.clone()),
        client,
        visitor.caller.clone(),
        path,
    )
    .await?;
    let shown = issued(&services, made.0);
    members_page(&services, visitor, org, Some(shown)).await
}

pub async fn withdraw(
    State(services): State<Arc<Services>>,
    client: ClientAddr,
    Path((org, id)): Path<(OrgId, String)>,
    Pressed(visitor): Pressed,
) -> ConsoleResult<Response> {
    let path = ApiPath((org, id));
    invitations::withdraw(State(services), client, visitor.caller, path).await?;
    Ok(back_to(format!("/console/orgs/{org}/members")))
}

#[derive(askama::Template)]
#[template(path = "accept.html", config = "src/console/askama.toml")]
struct AcceptPage {
    layout: Layout,
    token: String,
    csrf: String,
    problem: Option<String>,
}

/// The page an invitation's link opens: no session needed, the link is the credential.
pub async fn accept_page(secure: Secure, Path(token): Path<String>) -> ConsoleResult<Response> {
    let token = invitation_token(token)?;
    accept_form(secure, token, None, axum::http::StatusCode::OK)
}

/// The form, with a new token in a cookie of its own (as the login form's): another site
/// cannot make a browser accept an invitation, and so sign in to an account it chose.
/// A token as the invitations' links carry it (64 hex digits); any other path is no page.
fn invitation_token(token: String) -> ConsoleResult<String> {
    match token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
        true => Ok(token),
        false => Err(crate::admin::ApiError::NotFound("no such invitation".into()).into()),
    }
}

fn accept_form(
    secure: Secure,
    token: String,
    problem: Option<String>,
    status: axum::http::StatusCode,
) -> ConsoleResult<Response> {
    let (csrf, cookie) = form_token(secure, "/console/invitations");
    let page = AcceptPage {
        layout: Layout::bare(),
        token,
        csrf,
        problem,
    };
    Ok((status, [(header::SET_COOKIE, cookie)], render(&page)?).into_response())
}

#[derive(Deserialize)]
pub struct AcceptForm {
    csrf: String,
    password: String,
}

/// Accepts through the API (a new account's password, or an existing one's), then signs in.
pub async fn accept(
    State(services): State<Arc<Services>>,
    client: ClientAddr,
    secure: Secure,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<AcceptForm>,
) -> ConsoleResult<Response> {
    let token = invitation_token(token)?;
    check_form_token(&headers, &form.csrf)?;
    let acceptance = Acceptance {
        password: form.password.clone(),
    };
    let path = ApiPath(token.clone());
    let accepted = invitations::accept(
        State(services.clone()),
        ClientAddr(client.0),
        path,
        ApiJson(acceptance),
    )
    .await;
    let login = match accepted {
        Ok((_, answer)) => answer.0.login,
        Err(e) => {
            let (status, message) = refusal(e);
            return accept_form(secure, token, Some(message), status);
        }
    };
    let request = LoginRequest {
        login,
        password: form.password,
    };
    let (_, answer) = session::login(State(services), client, ApiJson(request)).await?;
    Ok(signed_in(secure, &answer.0))
}
