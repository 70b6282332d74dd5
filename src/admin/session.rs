//! Logging in and out, and the caller's own account.

use super::auth::{PendingCaller, token_hash};
use super::error::{ApiError, ApiJson, ApiResult};
use super::{ClientAddr, audit};
use crate::model::*;
use crate::net::Services;
use crate::password;
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
    crate::login::wait_out_penalty(&services, client_ip(client), &req.login).await;
    let user = services.store.user_by_login(&req.login)?;
    let verified = match &user {
        Some(u) if !u.disabled => services.passwords.verify(&u.password, &req.password).await,
        _ => false,
    };
    let Some(user) = user.filter(|_| verified) else {
        // Whoever failed is nobody yet (as over IMAP and SMTP); the organizations of the user
        // named see it. The API's logins are users' logins, never delegations.
        let orgs = crate::login::orgs_of_user(&services, &req.login);
        for org in crate::login::audit_logs(orgs) {
            let failure = audit::entry("admin.login", &req.login)
                .actor(Actor::Anonymous)
                .failure("wrong login or password");
            failure.in_org(org).record(&services, client);
        }
        slow_down(&services, client, &req.login).await;
        return Err(ApiError::Unauthorized("wrong login or password"));
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
    audit::entry("admin.login", &user.login)
        .actor(Actor::User(user.id))
        .record(&services, client);
    services.throttle.succeeded(&req.login);
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
    if !services
        .passwords
        .verify(&caller.user.password, &req.current_password)
        .await
    {
        audit::entry("user.password", &caller.user.login)
            .actor(caller.actor())
            .failure("wrong current password")
            .record(&services, client);
        slow_down(&services, client, &caller.user.login).await;
        return Err(ApiError::Unauthorized("the current password is wrong"));
    }
    check_new_password(&req.new_password, &req.current_password)?;
    let hash = password::hash(&req.new_password)?;
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

/// A wrong password is answered after the pause the throttle gives (growing per address and
/// per login), as on IMAP and SMTP.
pub async fn slow_down(services: &Services, client: Option<std::net::SocketAddr>, login: &str) {
    crate::login::penalize(services, client_ip(client), login).await;
}

/// The client's address for the throttle; unknown clients share one.
fn client_ip(client: Option<std::net::SocketAddr>) -> std::net::IpAddr {
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
