//! The admin HTTP API (axum), on the same runtime as the mail protocols.

use crate::net::Services;
use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::json;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The routes. The API proper arrives with its issue; `/healthz` answers now.
pub fn router(services: Arc<Services>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(services)
}

/// Serves the API on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, services: Arc<Services>, shutdown: CancellationToken) {
    let app = router(services);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "the admin HTTP listener failed");
    }
}

async fn healthz(
    axum::extract::State(services): axum::extract::State<Arc<Services>>,
) -> (StatusCode, Json<serde_json::Value>) {
    match services.store.is_empty() {
        Ok(_) => (StatusCode::OK, Json(json!({"status": "ok"}))),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "store_unavailable", "message": e.to_string()})),
        ),
    }
}

async fn not_found() -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "not_found", "message": "no such endpoint"})),
    )
}
