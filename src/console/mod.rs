//! The web console (issue 15): server-rendered pages for organization admins under
//! `/console/`, served by the admin listener from this one binary. The templates are compiled
//! in (askama, `templates/`); the stylesheet and a vendored htmx (2.0.8, 0BSD licence, from
//! the npm package `htmx.org`) are embedded. Every page calls the admin API's own handlers, so
//! that it shows and does exactly what the API lets the same user see and do: the console
//! only hides the controls the server would refuse anyway.
//!
//! Plain HTML forms (post, then redirect) work without JavaScript; the session is a cookie of
//! its own (HttpOnly, SameSite=Strict, Secure over TLS) holding an API session token, and every
//! form carries a CSRF token derived from it. No inline script or style: the
//! Content-Security-Policy allows only the console's own files.

mod audit;
mod grants;
mod members;
mod pages;
mod partners;
mod session;
mod teams;
#[cfg(test)]
mod tests;

use crate::admin::ApiError;
use crate::model::{Millis, OrgId};
use crate::services::Services;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use std::sync::Arc;

pub use session::Transport;

/// Shown in every page's footer.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The console's routes, to be nested under `/console` (`/console` itself leads to
/// [`home`]).
pub fn router() -> Router<Arc<Services>> {
    Router::new()
        .route("/", get(|| async { Redirect::permanent("/console/") }))
        .route("/login", get(session::login_page).post(session::log_in))
        .route("/logout", post(session::log_out))
        .route(
            "/password",
            get(session::password_page).post(session::change_password),
        )
        .route(
            "/orgs/{org}/mailboxes",
            get(pages::mailboxes).post(pages::create_mailbox),
        )
        .route("/orgs/{org}/aliases", post(pages::create_alias))
        .route(
            "/orgs/{org}/aliases/{address}/remove",
            post(pages::remove_alias),
        )
        .route("/orgs/{org}/mailboxes/{id}/access", get(pages::access))
        .route(
            "/orgs/{org}/mailboxes/{id}/grant",
            get(grants::editor).post(grants::give),
        )
        .route("/orgs/{org}/grants/{id}/remove", post(pages::remove_grant))
        .route("/orgs/{org}/members", get(members::list))
        .route(
            "/orgs/{org}/members/{user}/role",
            post(members::change_role),
        )
        .route("/orgs/{org}/members/{user}/reach", get(members::reach))
        .route("/orgs/{org}/invitations", post(members::invite))
        .route("/orgs/{org}/invitations/{id}/resend", post(members::resend))
        .route(
            "/orgs/{org}/invitations/{id}/withdraw",
            post(members::withdraw),
        )
        .route(
            "/invitations/{token}",
            get(members::accept_page).post(members::accept),
        )
        .route("/orgs/{org}/teams", get(teams::list).post(teams::create))
        .route("/orgs/{org}/teams/{team}/members", post(teams::add_member))
        .route(
            "/orgs/{org}/teams/{team}/members/{user}/remove",
            post(teams::remove_member),
        )
        .route("/orgs/{org}/mailboxes/{id}/setup", get(partners::setup))
        .route(
            "/orgs/{org}/partners",
            get(partners::list).post(partners::invite),
        )
        .route("/orgs/{org}/partners/{id}/accept", post(partners::accept))
        .route("/orgs/{org}/partners/{id}/refuse", post(partners::refuse))
        .route("/orgs/{org}/partners/{id}/end", post(partners::end))
        .route("/orgs/{org}/audit", get(audit::log))
        .route("/orgs/{org}/audit.csv", get(audit::csv))
        .route("/static/style.css", get(style))
        .route("/static/htmx.min.js", get(htmx))
        .route("/static/favicon.svg", get(favicon))
        .fallback(not_found)
        .layer(axum::middleware::map_response(html_rejections))
        .layer(axum::middleware::map_response(secure_headers))
}

/// `/console/`, the organizations: the one page outside [`router`], which a router nested
/// at `/console` does not reach.
pub fn home() -> axum::routing::MethodRouter<Arc<Services>> {
    get(pages::home).layer(axum::middleware::map_response(secure_headers))
}

/// What every page shows around its own content.
pub struct Layout {
    /// The signed-in user's bar: absent on the login page and error pages.
    pub bar: Option<Bar>,
    pub version: &'static str,
}

impl Layout {
    pub fn bare() -> Layout {
        Layout {
            bar: None,
            version: VERSION,
        }
    }

    pub fn with(bar: Bar) -> Layout {
        Layout {
            bar: Some(bar),
            version: VERSION,
        }
    }
}

/// Who is signed in, the organizations to switch between, and the CSRF token of the logout
/// form.
pub struct Bar {
    pub login: String,
    /// The organization the page is about, if any.
    pub current: Option<OrgId>,
    pub csrf: String,
    pub organizations: Vec<OrgLink>,
}

pub struct OrgLink {
    pub id: OrgId,
    pub name: String,
    /// The organization the page is about.
    pub current: bool,
}

/// Why a console request did not get its page.
pub enum ConsoleError {
    /// Not signed in, or the session ended: to the login page.
    LogIn,
    /// Signed in with a password that must be changed first.
    ChangePassword,
    /// A form without the session's CSRF token (another site's, or a stale page).
    Csrf,
    /// What the admin API answered.
    Api(ApiError),
    /// A template failed to render (a bug): logged.
    Render(askama::Error),
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> ConsoleError {
        match e {
            ApiError::Unauthorized(_) => ConsoleError::LogIn,
            ApiError::PasswordChangeRequired => ConsoleError::ChangePassword,
            other => ConsoleError::Api(other),
        }
    }
}

impl From<askama::Error> for ConsoleError {
    fn from(e: askama::Error) -> ConsoleError {
        ConsoleError::Render(e)
    }
}

pub type ConsoleResult<T> = Result<T, ConsoleError>;

#[derive(askama::Template)]
#[template(path = "error.html", config = "src/console/askama.toml")]
struct ErrorPage {
    layout: Layout,
    title: String,
    message: String,
}

impl ConsoleError {
    /// The answer to htmx (an in-place edit), which swaps only successful answers into the
    /// page: sent where the visitor must go (`HX-Redirect`), or the page reloaded to show the
    /// error (`HX-Refresh`).
    pub fn for_htmx(self) -> Response {
        let (name, value) = match self {
            ConsoleError::LogIn => ("hx-redirect", "/console/login"),
            ConsoleError::ChangePassword => ("hx-redirect", "/console/password"),
            other => {
                if let ConsoleError::Render(e) = &other {
                    tracing::error!(error = %e, "a console fragment failed to render");
                }
                ("hx-refresh", "true")
            }
        };
        ([(name, value)], StatusCode::OK).into_response()
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ConsoleError::LogIn => return Redirect::to("/console/login").into_response(),
            ConsoleError::ChangePassword => {
                return Redirect::to("/console/password").into_response();
            }
            ConsoleError::Csrf => (
                StatusCode::FORBIDDEN,
                "This form is out of date or came from another site. Reload the page and try again."
                    .to_string(),
            ),
            ConsoleError::Api(e) => {
                let (status, _, message) = e.parts();
                (status, message)
            }
            ConsoleError::Render(e) => {
                tracing::error!(error = %e, "a console page failed to render");
                let status = StatusCode::INTERNAL_SERVER_ERROR;
                return (status, "internal error; see the server log").into_response();
            }
        };
        error_page(status, message)
    }
}

/// The console's page for a refusal or an error: its status, and why in words.
fn error_page(status: StatusCode, message: String) -> Response {
    let page = ErrorPage {
        layout: Layout::bare(),
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        message,
    };
    match render(&page) {
        Ok(html) => (status, html).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A page as HTML.
fn render(page: &impl askama::Template) -> ConsoleResult<Html<String>> {
    Ok(Html(page.render()?))
}

/// axum's own refusals of a malformed request (a path or form it cannot read) are plain
/// text: in the console they become its error page, with the same words.
async fn html_rejections(response: Response) -> Response {
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    if !response.status().is_client_error() || !plain {
        return response;
    }
    let status = response.status();
    let words = axum::body::to_bytes(response.into_body(), 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let message = match words.trim() {
        "" => "The request could not be read.".to_string(),
        words => words.to_string(),
    };
    error_page(status, message)
}

/// Headers on every console answer: only the console's own scripts, styles and forms; never
/// framed; nothing but the assets cached.
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let fixed = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    // Everything but the embedded assets (which say they may be kept) shows one user's data.
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", include_str!("static/style.css"))
}

async fn htmx() -> impl IntoResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("static/htmx.min.js"),
    )
}

async fn favicon() -> impl IntoResponse {
    asset("image/svg+xml", include_str!("static/favicon.svg"))
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
}

async fn not_found() -> ConsoleError {
    ConsoleError::Api(ApiError::NotFound("no such page".into()))
}

/// The organization's name, for a page the API already let the user see.
pub(super) fn org_name(services: &Services, org: OrgId) -> ConsoleResult<String> {
    Ok(services
        .store
        .organization(org)
        .map_err(store_error)?
        .map_or_else(|| format!("#{org}"), |o| o.name))
}

/// A store failure, as the API reports it.
pub(super) fn store_error(e: crate::store::StoreError) -> ConsoleError {
    ConsoleError::from(crate::admin::ApiError::from(e))
}

pub(super) fn date(millis: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(millis).map_or_else(
        || millis.to_string(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

pub(super) fn bytes(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    match n {
        n if n >= 1024 * MIB => format!("{:.1} GiB", n as f64 / (1024 * MIB) as f64),
        n if n >= MIB => format!("{:.1} MiB", n as f64 / MIB as f64),
        n if n >= 1024 => format!("{} KiB", n / 1024),
        n => format!("{n} bytes"),
    }
}

/// What someone can do who holds no rights on a mailbox but reaches it.
pub(super) const NO_RIGHTS: &str = "reset its password (and so read it)";

/// Rights in words (the grant editor's): what a person can do with the mailbox.
pub(super) fn abilities(letters: &str, send: Option<crate::model::SendMode>) -> String {
    let rights = crate::model::Rights::parse(letters).unwrap_or_default();
    let has =
        |letters: &str| crate::model::Rights::parse(letters).is_ok_and(|r| rights.includes(r));
    let mut can = Vec::new();
    if has("a") {
        can.push("manage");
    }
    if has("lrswipkxte") {
        can.push("read and write");
    } else if has("lr") {
        can.push("read");
    } else if has("l") {
        can.push("see");
    }
    match send {
        Some(crate::model::SendMode::As) => can.push("send as"),
        Some(crate::model::SendMode::OnBehalf) => can.push("send on behalf of"),
        None => {}
    }
    if can.is_empty() {
        // Only a role or a partnership reaches a mailbox without rights of its own.
        return NO_RIGHTS.into();
    }
    can.join(", ")
}

/// `text` as a URL's query value.
pub(super) fn url_encoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Every item of a list the API hands out a page at a time: `page` is asked for the next page
/// until there is none, so that no form or table silently stops at the first.
pub(super) async fn every<T, F, Fut>(mut page: F) -> ConsoleResult<Vec<T>>
where
    F: FnMut(crate::admin::error::ApiQuery<crate::admin::page::PageQuery>) -> Fut,
    Fut: std::future::Future<
            Output = crate::admin::error::ApiResult<axum::Json<crate::admin::page::Page<T>>>,
        >,
{
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let query = crate::admin::page::PageQuery {
            limit: crate::admin::page::Limit::try_from(1000).ok(),
            cursor,
        };
        let answer = page(crate::admin::error::ApiQuery(query)).await?.0;
        items.extend(answer.items);
        match answer.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(items),
        }
    }
}

/// After a change: back to `path` (post, then redirect).
pub(super) fn back_to(path: String) -> Response {
    Redirect::to(&path).into_response()
}

/// Why the API refused, for a form that shows it again: its status and words. (The caller's
/// session was good: the API does not ask it again mid-call, so even a 401 here is about
/// what was sent, as a password, not about the session.)
pub(super) fn refusal(e: ApiError) -> (StatusCode, String) {
    let (status, _, message) = e.parts();
    (status, message)
}
