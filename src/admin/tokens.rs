//! Personal API tokens (`/api/v1/me/tokens`): named, for scripts, listed and revoked by name.
//! The secret is shown once, when made; the store keeps its hash.

use super::auth::{Caller, token_hash};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use super::page::{Page, PageQuery, paginate};
use super::{ClientAddr, audit};
use crate::model::*;
use crate::services::Services;
use crate::store::{ApiToken, TokenKind};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub name: String,
    pub created: Millis,
    pub expires: Option<Millis>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    /// Leave out for a token that lasts until revoked.
    pub expires_in_days: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    pub name: String,
    /// Shown this once.
    pub token: String,
    pub expires: Option<Millis>,
}

fn personal(tokens: Vec<ApiToken>) -> Vec<(String, ApiToken)> {
    tokens
        .into_iter()
        .filter_map(|t| match &t.kind {
            TokenKind::Personal { name } => Some((name.clone(), t)),
            TokenKind::Session => None,
        })
        .collect()
}

pub async fn list(
    State(services): State<Arc<Services>>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<TokenView>>> {
    let views: Vec<TokenView> = personal(services.store.api_tokens_of(caller.user.id)?)
        .into_iter()
        .map(|(name, t)| TokenView {
            name,
            created: t.created,
            expires: t.expires,
        })
        .collect();
    Ok(Json(paginate(views, |t| t.name.clone(), &page)))
}

pub async fn create(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiJson(req): ApiJson<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let name = req.name.trim().to_string();
    if name.is_empty() || name.len() > 100 || name.contains('/') {
        return Err(ApiError::Invalid(
            "a token name has 1 to 100 characters and no '/'".into(),
        ));
    }
    let existing = personal(services.store.api_tokens_of(caller.user.id)?);
    if existing.iter().any(|(n, _)| *n == name) {
        return Err(ApiError::Conflict(format!(
            "you already have a token named {name:?}"
        )));
    }
    let token = super::session::new_token();
    let expires = req
        .expires_in_days
        .map(|d| now_millis() + i64::from(d) * 24 * 3600 * 1000);
    services.store.create_api_token(ApiToken {
        token_hash: token_hash(&token),
        user: caller.user.id,
        kind: TokenKind::Personal { name: name.clone() },
        created: now_millis(),
        expires,
        password_change_only: false,
    })?;
    audit::entry("token.create", &name)
        .actor(caller.actor())
        .record(&services, client);
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            name,
            token,
            expires,
        }),
    ))
}

pub async fn revoke(
    State(services): State<Arc<Services>>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let found = personal(services.store.api_tokens_of(caller.user.id)?)
        .into_iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| ApiError::NotFound(format!("no token named {name:?}")))?;
    services.store.delete_api_token(&found.1.token_hash)?;
    audit::entry("token.revoke", &name)
        .actor(caller.actor())
        .record(&services, client);
    Ok(StatusCode::NO_CONTENT)
}
