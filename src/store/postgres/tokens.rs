//! API tokens on PostgreSQL.

use super::PgStore;
use super::rows::Prepared;
use super::rows::{self, from_id, hash32, id};
use crate::model::*;
use crate::store::error::{StoreError, StoreResult};
use crate::store::hub::AccessChange;
use crate::store::interface::{ServerStore, TokenStore};
use crate::store::{ApiToken, TokenKind};

const COLUMNS: &str = "token_hash, user_id, name, created, expires, password_change_only";

impl TokenStore for PgStore {
    fn create_api_token(&self, token: ApiToken) -> StoreResult<()> {
        let name = match &token.kind {
            TokenKind::Session => None,
            TokenKind::Personal { name } => Some(name.as_str()),
        };
        let inserted = self.execute(
                    &format!(
                        "INSERT INTO api_tokens ({COLUMNS}) \
                         SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2) \
                         ON CONFLICT (token_hash) DO UPDATE SET user_id = $2, name = $3, \
                         created = $4, expires = $5, password_change_only = $6"
                    ),
                    &[
                        &token.token_hash.as_slice(),
                        &id(token.user.0)?,
                        &name,
                        &token.created,
                        &token.expires,
                        &token.password_change_only,
                    ],
                )?;
        match inserted {
            0 => Err(StoreError::not_found(format!("user {}", token.user.0))),
            _ => Ok(()),
        }
    }

    fn api_token(&self, hash: &[u8; 32]) -> StoreResult<Option<ApiToken>> {
        let row = self.query_opt(
            &format!(
                "SELECT {COLUMNS} FROM api_tokens \
                         WHERE token_hash = $1 AND (expires IS NULL OR expires > $2)"
            ),
            &[&hash.as_slice(), &now_millis()],
        )?;
        row.as_ref().map(token).transpose()
    }

    fn api_tokens_of(&self, user: UserId) -> StoreResult<Vec<ApiToken>> {
        let rows = self.query(
            &format!("SELECT {COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY token_hash"),
            &[&id(user.0)?],
        )?;
        rows.iter().map(token).collect()
    }

    fn delete_api_token(&self, hash: &[u8; 32]) -> StoreResult<()> {
        let deleted = self.execute(
            "DELETE FROM api_tokens WHERE token_hash = $1",
            &[&hash.as_slice()],
        )?;
        match deleted {
            0 => Err(StoreError::not_found("token")),
            _ => Ok(()),
        }
    }

    fn change_user_password(&self, user: UserId, password: PasswordHash) -> StoreResult<User> {
        let record = self.transaction(async |tx| {
            let row = tx
                .query_opt_cached(
                    &format!(
                        "UPDATE users SET password = $2, must_change_password = false \
                         WHERE id = $1 RETURNING {}",
                        rows::USER_COLUMNS
                    ),
                    &[&id(user.0)?, &password.0],
                )
                .await?
                .ok_or_else(|| StoreError::not_found(format!("user {}", user.0)))?;
            tx.execute_cached(
                "UPDATE api_tokens SET password_change_only = false WHERE user_id = $1",
                &[&id(user.0)?],
            )
            .await?;
            self.tell_nodes(tx, AccessChange::User(user)).await?;
            rows::user(&row)
        })?;
        self.hub().publish_access(AccessChange::User(user));
        Ok(record)
    }
}

fn token(row: &tokio_postgres::Row) -> StoreResult<ApiToken> {
    let name: Option<String> = row.try_get(2)?;
    Ok(ApiToken {
        token_hash: hash32(row.try_get(0)?, "token")?,
        user: UserId(from_id(row.try_get(1)?, "user")?),
        kind: name.map_or(TokenKind::Session, |name| TokenKind::Personal { name }),
        created: row.try_get(3)?,
        expires: row.try_get(4)?,
        password_change_only: row.try_get(5)?,
    })
}
