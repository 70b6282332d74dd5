//! Signing in and out of the console, the forced password change, and who a request is from:
//! the session cookie holds an admin API session token, checked by the API's own code.

use super::{Bar, ConsoleError, ConsoleResult, Layout, OrgLink, refusal, render};
use crate::admin::auth::{Caller, PendingCaller};
use crate::admin::error::ApiJson;
use crate::admin::session::{LoginRequest, LoginResponse, MIN_PASSWORD_LEN, PasswordChange};
use crate::admin::{ClientAddr, session as api};
use crate::model::OrgId;
use crate::services::Services;
use axum::extract::{Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The session cookie: an API session token.
const SESSION_COOKIE: &str = "mailgate_console";
/// The CSRF token of a form without a session (logging in, accepting an invitation): a
/// double-submitted cookie.
const FORM_COOKIE: &str = "mailgate_console_form";

/// How the request reached the admin listener: cookies are `Secure` over TLS. Set by the
/// listener (`admin::serve`); absent (as in tests through the router), plain HTTP.
#[derive(Clone, Copy, Debug)]
pub struct Transport {
    pub tls: bool,
}

/// A signed-in user whose password needs no change, and the CSRF token of the session.
pub struct Visitor {
    pub caller: Caller,
    pub csrf: String,
}

/// A signed-in user who may still have to change the password: the password page and
/// logging out only.
pub struct PendingVisitor(Visitor);

impl Visitor {
    /// Whether a posted form carries the session's CSRF token.
    pub fn check(&self, sent: &str) -> ConsoleResult<()> {
        same(sent, &self.csrf)
            .then_some(())
            .ok_or(ConsoleError::Csrf)
    }

    /// The bar of every page: who is signed in, the organizations to switch between.
    pub async fn bar(
        &self,
        services: &Arc<Services>,
        current: Option<OrgId>,
    ) -> ConsoleResult<Bar> {
        let me = api::me(State(services.clone()), PendingCaller(self.caller.clone()))
            .await?
            .0;
        Ok(Bar {
            login: me.login,
            current,
            csrf: self.csrf.clone(),
            organizations: me
                .organizations
                .into_iter()
                .map(|o| OrgLink {
                    current: Some(o.id) == current,
                    id: o.id,
                    name: o.name,
                })
                .collect(),
        })
    }
}

/// The CSRF token of the session whose token is `token`: derived, so that nothing is kept,
/// and unknown to another site, which cannot read the cookie.
fn csrf_for(token: &str) -> String {
    hex::encode(Sha256::digest(format!("mailgate console csrf\0{token}")))
}

/// Compares in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// A `Set-Cookie` value for the console: never readable by scripts, never sent from another
/// site, Secure over TLS.
fn set_cookie(name: &str, value: &str, path: &str, seconds: u64, Secure(secure): Secure) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; Max-Age={seconds}; HttpOnly; SameSite=Strict{secure}")
}

async fn visitor(parts: &Parts, services: &Arc<Services>) -> ConsoleResult<Visitor> {
    let token = cookie(&parts.headers, SESSION_COOKIE).ok_or(ConsoleError::LogIn)?;
    let caller = crate::admin::auth::caller_for_token(services, &token)?;
    Ok(Visitor {
        caller,
        csrf: csrf_for(&token),
    })
}

impl FromRequestParts<Arc<Services>> for Visitor {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        services: &Arc<Services>,
    ) -> ConsoleResult<Self> {
        let visitor = visitor(parts, services).await?;
        if visitor.caller.token.password_change_only {
            return Err(ConsoleError::ChangePassword);
        }
        Ok(visitor)
    }
}

impl FromRequestParts<Arc<Services>> for PendingVisitor {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        services: &Arc<Services>,
    ) -> ConsoleResult<Self> {
        visitor(parts, services).await.map(PendingVisitor)
    }
}

/// Whether the console's cookies are `Secure` (sent back over HTTPS only): over the
/// listener's TLS, and whenever the browser is not on this machine (behind a balancer that
/// ends TLS, `[proxy] trusted`, the client's real address is not a loopback one); only a
/// browser on the server itself, over plain HTTP on loopback, gets them without.
pub struct Secure(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for Secure {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let tls = parts.extensions.get::<Transport>().is_some_and(|t| t.tls);
        let remote = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .is_some_and(|peer| !peer.0.ip().is_loopback());
        Ok(Secure(tls || remote))
    }
}

#[derive(askama::Template)]
#[template(path = "login.html", config = "src/console/askama.toml")]
struct LoginPage {
    layout: Layout,
    csrf: String,
    login: String,
    problem: Option<String>,
}

/// The login form, with a new CSRF token in its own cookie; a signed-in visitor goes on.
pub async fn login_page(
    State(services): State<Arc<Services>>,
    secure: Secure,
    headers: HeaderMap,
) -> ConsoleResult<Response> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && crate::admin::auth::caller_for_token(&services, &token).is_ok()
    {
        return Ok(Redirect::to("/console/").into_response());
    }
    login_form(secure, String::new(), None, StatusCode::OK)
}

/// A form's token for a page without a session (logging in, accepting an invitation): a new
/// random value, and the cookie that carries it for the form's `path` (double-submitted).
pub(super) fn form_token(secure: Secure, path: &str) -> (String, String) {
    let token = crate::admin::session::new_token();
    let cookie = set_cookie(FORM_COOKIE, &token, path, 3600, secure);
    (token, cookie)
}

/// Whether a form posted without a session carries the token its page's cookie holds.
pub(super) fn check_form_token(headers: &HeaderMap, sent: &str) -> ConsoleResult<()> {
    let expected = cookie(headers, FORM_COOKIE).unwrap_or_default();
    match !expected.is_empty() && same(sent, &expected) {
        true => Ok(()),
        false => Err(ConsoleError::Csrf),
    }
}

fn login_form(
    secure: Secure,
    login: String,
    problem: Option<String>,
    status: StatusCode,
) -> ConsoleResult<Response> {
    let (csrf, cookie) = form_token(secure, "/console/login");
    let page = LoginPage {
        layout: Layout::bare(),
        csrf,
        login,
        problem,
    };
    Ok((status, [(header::SET_COOKIE, cookie)], render(&page)?).into_response())
}

#[derive(Deserialize)]
pub struct LoginForm {
    csrf: String,
    login: String,
    password: String,
}

/// Signs in through the API's login (its throttle and audit), then to the organizations, or
/// first to the forced password change.
pub async fn log_in(
    State(services): State<Arc<Services>>,
    client: ClientAddr,
    secure: Secure,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> ConsoleResult<Response> {
    check_form_token(&headers, &form.csrf)?;
    let request = LoginRequest {
        login: form.login.clone(),
        password: form.password,
    };
    match api::login(State(services), client, ApiJson(request)).await {
        Ok((_, answer)) => Ok(signed_in(secure, &answer.0)),
        Err(e) => {
            let (status, message) = refusal(e);
            login_form(secure, form.login, Some(message), status)
        }
    }
}

/// The answer that starts a session: its cookie (lasting as long as the API's session), and
/// where to go.
pub(super) fn signed_in(secure: Secure, session: &LoginResponse) -> Response {
    let seconds = (session.expires_at - crate::model::now_millis()).max(0) / 1000;
    let cookie = set_cookie(
        SESSION_COOKIE,
        &session.token,
        "/console",
        seconds as u64,
        secure,
    );
    let to = if session.must_change_password {
        "/console/password"
    } else {
        "/console/"
    };
    ([(header::SET_COOKIE, cookie)], Redirect::to(to)).into_response()
}

/// A form that carries nothing but the session's CSRF token (a button).
#[derive(Deserialize)]
pub struct CsrfOnly {
    pub csrf: String,
}

/// A signed-in visitor who pressed a button: a form of nothing but the session's CSRF
/// token, checked here once for every such handler.
pub struct Pressed(pub Visitor);

impl axum::extract::FromRequest<Arc<Services>> for Pressed {
    type Rejection = ConsoleError;

    async fn from_request(
        request: axum::extract::Request,
        services: &Arc<Services>,
    ) -> ConsoleResult<Self> {
        let (mut parts, body) = request.into_parts();
        let visitor = Visitor::from_request_parts(&mut parts, services).await?;
        let request = axum::extract::Request::from_parts(parts, body);
        let Form(form) = Form::<CsrfOnly>::from_request(request, services)
            .await
            .map_err(|e| ConsoleError::Api(crate::admin::ApiError::BadRequest(e.body_text())))?;
        visitor.check(&form.csrf)?;
        Ok(Pressed(visitor))
    }
}

/// Ends the session (its token is deleted, as the API's logout does).
pub async fn log_out(
    State(services): State<Arc<Services>>,
    PendingVisitor(visitor): PendingVisitor,
    secure: Secure,
    Form(form): Form<CsrfOnly>,
) -> ConsoleResult<Response> {
    visitor.check(&form.csrf)?;
    api::logout(State(services), PendingCaller(visitor.caller)).await?;
    let cookie = set_cookie(SESSION_COOKIE, "", "/console", 0, secure);
    Ok((
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/console/login"),
    )
        .into_response())
}

#[derive(askama::Template)]
#[template(path = "password.html", config = "src/console/askama.toml")]
struct PasswordPage {
    layout: Layout,
    csrf: String,
    forced: bool,
    min_length: usize,
    problem: Option<String>,
}

pub async fn password_page(
    State(services): State<Arc<Services>>,
    PendingVisitor(visitor): PendingVisitor,
) -> ConsoleResult<Response> {
    password_form(&services, &visitor, None, StatusCode::OK).await
}

async fn password_form(
    services: &Arc<Services>,
    visitor: &Visitor,
    problem: Option<String>,
    status: StatusCode,
) -> ConsoleResult<Response> {
    let forced = visitor.caller.token.password_change_only;
    // A user who must change the password sees nothing else yet.
    let layout = match forced {
        true => Layout::bare(),
        false => Layout::with(visitor.bar(services, None).await?),
    };
    let page = PasswordPage {
        layout,
        csrf: visitor.csrf.clone(),
        forced,
        min_length: MIN_PASSWORD_LEN,
        problem,
    };
    Ok((status, render(&page)?).into_response())
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current_password: String,
    new_password: String,
    confirm_password: String,
}

/// Changes the password through the API (which ends the user's other sessions), then opens a
/// full session with the new one in place of the old.
pub async fn change_password(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    PendingVisitor(visitor): PendingVisitor,
    secure: Secure,
    Form(form): Form<PasswordForm>,
) -> ConsoleResult<Response> {
    visitor.check(&form.csrf)?;
    if form.new_password != form.confirm_password {
        let problem = Some("The two new passwords differ.".to_string());
        return password_form(
            &services,
            &visitor,
            problem,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let change = PasswordChange {
        current_password: form.current_password,
        new_password: form.new_password.clone(),
    };
    let caller = PendingCaller(visitor.caller.clone());
    let changed = api::change_password(
        State(services.clone()),
        ClientAddr(client),
        caller,
        ApiJson(change),
    )
    .await;
    if let Err(e) = changed {
        let (status, message) = refusal(e);
        return password_form(&services, &visitor, Some(message), status).await;
    }
    let request = LoginRequest {
        login: visitor.caller.user.login.clone(),
        password: form.new_password,
    };
    let renewed = api::login(
        State(services.clone()),
        ClientAddr(client),
        ApiJson(request),
    )
    .await;
    // The old session (perhaps only good for this change) goes either way; should that
    // fail, it still ends at its time.
    let _ = api::logout(State(services), PendingCaller(visitor.caller)).await;
    match renewed {
        Ok((_, answer)) => Ok(signed_in(secure, &answer.0)),
        // Changed, but no new session now (the login throttle, the database): the password
        // is the new one, so the login page is where to go on.
        Err(e) => {
            tracing::warn!(error = %refusal(e).1, "no session after a console password change");
            let cookie = set_cookie(SESSION_COOKIE, "", "/console", 0, secure);
            Ok((
                [(header::SET_COOKIE, cookie)],
                Redirect::to("/console/login"),
            )
                .into_response())
        }
    }
}
