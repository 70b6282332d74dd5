//! The admin HTTP API (axum), on the same runtime as the mail protocols. Every handler asks
//! `access` before it acts and records what it changed in the audit log.

mod audit;
mod audit_log;
mod auth;
mod autoconfig;
mod domains;
mod error;
mod export;
mod grants;
mod invitations;
mod mailboxes;
mod page;
mod partnerships;
mod queue;
mod review;
mod session;
mod teams;
mod tokens;

pub use error::ApiError;

use crate::net::Services;
use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{get, post};
use serde_json::json;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Every route of the API.
pub fn router(services: Arc<Services>) -> Router {
    let org = "/api/v1/orgs/{org}";
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/.well-known/autoconfig/mail/config-v1.1.xml",
            get(autoconfig::thunderbird),
        )
        .route("/mail/config-v1.1.xml", get(autoconfig::thunderbird))
        .route(
            "/autodiscover/autodiscover.xml",
            post(autoconfig::outlook_v1),
        )
        .route(
            "/Autodiscover/Autodiscover.xml",
            post(autoconfig::outlook_v1),
        )
        .route(
            "/autodiscover/autodiscover.json",
            get(autoconfig::outlook_v2),
        )
        .route("/apple/mobileconfig", get(autoconfig::apple))
        .route(
            "/api/v1/session",
            post(session::login).delete(session::logout),
        )
        .route("/api/v1/me", get(session::me))
        .route("/api/v1/me/password", post(session::change_password))
        .route("/api/v1/me/audit", get(audit_log::own_log))
        .route("/api/v1/me/export", get(export::me))
        .route(
            &format!("{org}/mailboxes/{{id}}/export"),
            get(export::mailbox),
        )
        .route("/api/v1/me/tokens", get(tokens::list).post(tokens::create))
        .route(
            "/api/v1/me/tokens/{name}",
            axum::routing::delete(tokens::revoke),
        )
        .route(&format!("{org}/audit"), get(audit_log::org_log))
        .route(&format!("{org}/queue"), get(queue::list))
        .route(
            &format!("{org}/partnerships"),
            get(partnerships::list).post(partnerships::invite),
        )
        .route(
            &format!("{org}/partnerships/{{id}}"),
            axum::routing::patch(partnerships::rescope),
        )
        .route(
            &format!("{org}/partnerships/{{id}}/accept"),
            post(partnerships::accept),
        )
        .route(
            &format!("{org}/partnerships/{{id}}/refuse"),
            post(partnerships::refuse),
        )
        .route(
            &format!("{org}/partnerships/{{id}}/end"),
            post(partnerships::end),
        )
        .route(&format!("{org}/clients"), get(partnerships::clients))
        .route(
            &format!("{org}/domains"),
            get(domains::list).post(domains::create),
        )
        .route(
            &format!("{org}/domains/{{name}}"),
            axum::routing::delete(domains::delete),
        )
        .route(
            &format!("{org}/mailboxes"),
            get(mailboxes::list).post(mailboxes::create),
        )
        .route(
            &format!("{org}/mailboxes/{{id}}"),
            get(mailboxes::get)
                .patch(mailboxes::update)
                .delete(mailboxes::delete),
        )
        .route(
            &format!("{org}/aliases"),
            get(mailboxes::list_aliases).post(mailboxes::create_alias),
        )
        .route(
            &format!("{org}/aliases/{{address}}"),
            axum::routing::delete(mailboxes::delete_alias),
        )
        .route(
            &format!("{org}/grants"),
            get(grants::list).post(grants::create),
        )
        .route(
            &format!("{org}/grants/{{id}}"),
            axum::routing::patch(grants::update).delete(grants::delete),
        )
        .route(&format!("{org}/members"), get(grants::members))
        .route(
            &format!("{org}/invitations"),
            get(invitations::list).post(invitations::create),
        )
        .route(
            &format!("{org}/invitations/{{id}}"),
            axum::routing::delete(invitations::withdraw),
        )
        .route(
            &format!("{org}/invitations/{{id}}/resend"),
            post(invitations::resend),
        )
        .route(
            "/api/v1/invitations/{token}/accept",
            post(invitations::accept),
        )
        .route(&format!("{org}/members/{{user}}/access"), get(review::user))
        .route(
            &format!("{org}/mailboxes/{{id}}/access"),
            get(review::mailbox),
        )
        .route(
            &format!("{org}/members/{{user}}"),
            axum::routing::patch(grants::change_role).delete(grants::remove_member),
        )
        .route(
            &format!("{org}/teams"),
            get(teams::list).post(teams::create),
        )
        .route(
            &format!("{org}/teams/{{id}}"),
            axum::routing::patch(teams::rename).delete(teams::delete),
        )
        .route(
            &format!("{org}/teams/{{id}}/members/{{user}}"),
            axum::routing::put(teams::add_member).delete(teams::remove_member),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(services)
}

/// Serves the API on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, services: Arc<Services>, shutdown: CancellationToken) {
    let app = router(services).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "the admin HTTP listener failed");
    }
}

/// The client's address, when the server knows it.
pub struct ClientAddr(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

async fn healthz(
    axum::extract::State(services): axum::extract::State<Arc<Services>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    services.store.is_empty()?;
    Ok(Json(json!({"status": "ok"})))
}

/// Prometheus text; like /healthz, it tells nothing about any organization.
async fn metrics(
    axum::extract::State(services): axum::extract::State<Arc<Services>>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String), ApiError> {
    let queue = services.store.queue()?.len();
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        services.metrics.render(queue),
    ))
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

async fn method_not_allowed() -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(
            json!({"error": "method_not_allowed", "message": "this endpoint does not take that method"}),
        ),
    )
}
