//! Who is calling: a bearer token from `POST /api/v1/session` or a personal token, turned into
//! the user and the facts `access` decides on.

use super::error::{ApiError, ApiResult};
use crate::access::{self, Action, Principal, UserFacts};
use crate::model::*;
use crate::services::Services;
use crate::store::ApiToken;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// An authenticated caller whose password needs no change.
#[derive(Clone)]
pub struct Caller {
    pub user: User,
    pub facts: UserFacts,
    pub token: ApiToken,
}

/// An authenticated caller who may still have to change the password: only for the routes
/// that allow it (changing the password, logging out, `GET /me`).
pub struct PendingCaller(pub Caller);

pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

async fn authenticate(parts: &Parts, services: &Services) -> ApiResult<Caller> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthorized(
            "an Authorization: Bearer token is required",
        ))?;
    let token = header
        .strip_prefix("Bearer ")
        .ok_or(ApiError::Unauthorized(
            "the Authorization header must be Bearer <token>",
        ))?;
    caller_for_token(services, token)
}

/// The caller a session or personal token stands for (the console's cookie holds one).
pub(crate) fn caller_for_token(services: &Services, token: &str) -> ApiResult<Caller> {
    let stored =
        services
            .store
            .api_token(&token_hash(token.trim()))?
            .ok_or(ApiError::Unauthorized(
                "the token is unknown, expired or revoked",
            ))?;
    let user = services
        .store
        .user(stored.user)?
        .ok_or(ApiError::Unauthorized("the token's user no longer exists"))?;
    if user.disabled {
        return Err(ApiError::Unauthorized("the user is disabled"));
    }
    let facts = services.store.user_facts(user.id)?;
    Ok(Caller {
        user,
        facts,
        token: stored,
    })
}

impl FromRequestParts<Arc<Services>> for PendingCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, services: &Arc<Services>) -> ApiResult<Self> {
        authenticate(parts, services).await.map(PendingCaller)
    }
}

impl FromRequestParts<Arc<Services>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, services: &Arc<Services>) -> ApiResult<Self> {
        let caller = authenticate(parts, services).await?;
        if caller.token.password_change_only {
            return Err(ApiError::PasswordChangeRequired);
        }
        Ok(caller)
    }
}

impl Caller {
    pub fn principal(&self) -> Principal {
        Principal::User(self.facts.clone())
    }

    /// The organization, if the caller may see it at all; otherwise 404, so that nobody learns
    /// of another organization's existence (tenant isolation).
    pub fn see_org(&self, org: OrgId) -> ApiResult<()> {
        access::may(&self.principal(), org, &Action::ViewOrganization)
            .map_err(|_| ApiError::NotFound(format!("organization {org} not found")))
    }

    /// Checks `action` in `org`: 404 when the organization is not the caller's to see, 403 when
    /// it is but the action is not allowed.
    pub fn require(&self, org: OrgId, action: &Action) -> ApiResult<()> {
        self.see_org(org)?;
        access::may(&self.principal(), org, action).map_err(ApiError::Forbidden)
    }

    pub fn actor(&self) -> Actor {
        Actor::User(self.user.id)
    }
}
