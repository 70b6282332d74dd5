//! The admin HTTP API (axum), on the same runtime as the mail protocols. Every handler asks
//! `access` before it acts and records what it changed in the audit log.

mod audit;
pub(crate) mod audit_log;
pub(crate) mod auth;
pub use auth::token_hash;
pub(crate) mod autoconfig;
mod domain_dns;
mod domains;
pub(crate) mod error;
mod export;
pub(crate) mod grants;
mod imports;
pub(crate) mod invitations;
pub(crate) mod mailboxes;
mod orgs;
pub(crate) mod page;
pub(crate) mod partnerships;
mod queue;
pub(crate) mod review;
pub mod routes;
pub(crate) mod session;
pub(crate) mod teams;
mod tokens;

pub use error::ApiError;
pub use grants::keep_time as keep_grant_time;
pub use orgs::keep_deletions as keep_organization_deletions;

use crate::connection::proxy::AdminListener;
use crate::services::Services;
use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde_json::json;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Every route of the API (the table is in `routes`, with the OpenAPI document).
pub fn router(services: Arc<Services>) -> Router {
    routes::build(services)
}

/// Serves the API on `listener` (over TLS when `tls`) until `shutdown` is cancelled; behind
/// a balancer of `[proxy] trusted`, each connection's client address comes from its PROXY
/// header.
pub async fn serve(
    listener: TcpListener,
    services: Arc<Services>,
    shutdown: CancellationToken,
    tls: bool,
) {
    use axum::serve::ListenerExt;
    let trusted = services.config.proxy.trusted.clone();
    let acceptor = tls.then(|| services.tls.clone());
    let listener = match AdminListener::new(listener, trusted, acceptor, shutdown.clone()) {
        // Tapped for nothing: axum gives the client's address (ConnectInfo) to a tapped
        // listener of any kind.
        Ok(listener) => listener.tap_io(|_| {}),
        Err(e) => {
            tracing::error!(error = %e, "the admin HTTP listener failed");
            return;
        }
    };
    let transport = crate::console::Transport { tls };
    let app = router(services)
        .layer(axum::Extension(transport))
        .into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "the admin HTTP listener failed");
    }
}

/// Serves only the answers to ACME HTTP-01 challenges on `listener` (`[tls.acme]
/// challenge_listen`, port 80 on the Internet), so that the API itself need not face it.
pub async fn serve_acme_challenges(
    listener: TcpListener,
    services: Arc<Services>,
    shutdown: CancellationToken,
) {
    let app = Router::new()
        .route(
            "/.well-known/acme-challenge/{token}",
            axum::routing::get(acme_challenge),
        )
        .fallback(not_found)
        .with_state(services);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "the ACME challenge listener failed");
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

/// The key authorization of a pending HTTP-01 challenge, as text (RFC 8555 §8.3); 404 for
/// any other token.
async fn acme_challenge(
    axum::extract::State(services): axum::extract::State<Arc<Services>>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String), ApiError> {
    let store = services.store.clone();
    let answer =
        tokio::task::spawn_blocking(move || crate::tls::acme::key_authorization(&store, &token))
            .await
            .ok()
            .flatten();
    let answer = answer.ok_or_else(|| ApiError::NotFound("no such ACME challenge".into()))?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        answer,
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

/// An address a request names for something new (a mailbox, an alias, an invitation), by
/// the rules of `crate::address` with this server's delegation separator; 422 says what is
/// wrong with it.
pub fn parse_address(
    services: &crate::services::Services,
    text: &str,
) -> error::ApiResult<crate::address::Address> {
    let rules = crate::address::AddressRules {
        delegation_separator: &services.config.auth.delegation_separator,
    };
    crate::address::Address::parse(text, rules)
        .map_err(|e| error::ApiError::Invalid(format!("the address {:?} {e}", text.trim())))
}
