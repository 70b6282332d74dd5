//! Logging in and out, and the caller's own account.

use super::auth::{Caller, PendingCaller, token_hash};
use super::error::{ApiError, ApiJson, ApiPath, ApiResult};
use super::{ClientAddr, audit};
use crate::model::*;
use crate::services::Services;
use crate::store::{ApiToken, TokenKind};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How long a login session lasts.
const SESSION_HOURS: i64 = 12;
/// The shortest password a user may choose.
pub const MIN_PASSWORD_LEN: usize = 10;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    pub login: String,
    pub password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    pub token: String,
    pub expires_at: Millis,
    /// When true, the token only serves to change the password.
    pub must_change_password: bool,
}

/// A new random token: 32 bytes, base64url.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub async fn login(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<(StatusCode, Json<LoginResponse>)> {
    let attempt = crate::login::Attempt {
        action: "admin.login",
        peer: client.unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
        tls: false,
        login: &req.login,
        authzid: None,
        mechanism: "password",
        client_id: None,
    };
    let realm = crate::login::Realm::AdminApi;
    let user = match crate::login::log_in(&services, realm, &attempt, &req.password).await {
        Ok(identity) => identity.user().cloned().ok_or(ApiError::Internal)?,
        Err(refusal) => return Err(ApiError::from_login(refusal, "wrong login or password")),
    };
    let token = new_token();
    let expires_at = now_millis() + SESSION_HOURS * 3600 * 1000;
    services.store.create_api_token(ApiToken {
        token_hash: token_hash(&token),
        user: user.id,
        kind: TokenKind::Session,
        created: now_millis(),
        expires: Some(expires_at),
        password_change_only: user.must_change_password,
    })?;
    Ok((
        StatusCode::CREATED,
        Json(LoginResponse {
            token,
            expires_at,
            must_change_password: user.must_change_password,
        }),
    ))
}

pub async fn logout(
    State(services): State<Arc<Services>>,
    PendingCaller(caller): PendingCaller,
) -> ApiResult<StatusCode> {
    services.store.delete_api_token(&caller.token.token_hash)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    pub id: UserId,
    pub login: String,
    pub display_name: String,
    pub must_change_password: bool,
    pub organizations: Vec<MyOrganization>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MyOrganization {
    pub id: OrgId,
    pub name: String,
    pub role: Role,
}

pub async fn me(
    State(services): State<Arc<Services>>,
    PendingCaller(caller): PendingCaller,
) -> ApiResult<Json<Me>> {
    let mut organizations = Vec::new();
    for m in &caller.facts.memberships {
        if let Some(org) = services.store.organization(m.org)? {
            organizations.push(MyOrganization {
                id: org.id,
                name: org.name,
                role: m.role,
            });
        }
    }
    Ok(Json(Me {
        id: caller.user.id,
        login: caller.user.login,
        display_name: caller.user.display_name,
        must_change_password: caller.user.must_change_password,
        organizations,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

pub async fn change_password(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    PendingCaller(caller): PendingCaller,
    ApiJson(req): ApiJson<PasswordChange>,
) -> ApiResult<StatusCode> {
    let ip = client_ip(client);
    let confirmed =
        crate::login::confirm_password(&services, ip, &caller.user, &req.current_password).await;
    if let Err(refusal) = confirmed {
        audit::entry("user.password", &caller.user.login)
            .actor(caller.actor())
            .failure("wrong current password")
            .record(&services, client);
        return Err(ApiError::from_login(
            refusal,
            "the current password is wrong",
        ));
    }
    check_new_password(&req.new_password, &req.current_password)?;
    let hash = services.passwords.hash(&req.new_password).await?;
    services.store.change_user_password(caller.user.id, hash)?;
    // Whoever held another session or token of this user held it with the old password.
    for token in services.store.api_tokens_of(caller.user.id)? {
        if token.token_hash != caller.token.token_hash {
            services.store.delete_api_token(&token.token_hash)?;
        }
    }
    audit::entry("user.password", &caller.user.login)
        .actor(caller.actor())
        .record(&services, client);
    Ok(StatusCode::NO_CONTENT)
}

/// The client's address for the throttle; unknown clients share one.
pub fn client_ip(client: Option<std::net::SocketAddr>) -> std::net::IpAddr {
    client.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.ip())
}

/// A password a user chooses: long enough, and not the one it replaces.
pub fn check_new_password(new: &str, old: &str) -> ApiResult<()> {
    if new.chars().count() < MIN_PASSWORD_LEN {
        return Err(ApiError::Invalid(format!(
            "the new password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if new == old {
        return Err(ApiError::Invalid(
            "the new password must differ from the old one".into(),
        ));
    }
    Ok(())
}

/// `DELETE /api/v1/me/organizations/{org}`: the caller leaves an organization. Her grants
/// and team places there go with her membership, so her open sessions on its mailboxes get
/// BYE as on a revocation; the last owner cannot leave (409: hand the role over first).
pub async fn leave(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath(org): ApiPath<OrgId>,
) -> ApiResult<StatusCode> {
    if !caller.facts.memberships.iter().any(|m| m.org == org) {
        return Err(ApiError::NotFound(format!(
            "you are no member of organization {org}"
        )));
    }
    services.store.remove_member(org, caller.user.id)?;
    audit::entry("member.leave", format!("user {}", caller.user.id))
        .org(org)
        .actor(caller.actor())
        .record(&services, client);
    Ok(StatusCode::NO_CONTENT)
}
