//! Admin API credentials: login sessions and personal tokens. The store keeps only the
//! SHA-256 of a token, so a copy of the data directory does not hold usable credentials.

use super::error::{StoreError, StoreResult};
use super::interface::*;
use super::{Changes, SledStore};
use crate::model::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Made by logging in; ends at `expires` or on logout.
    Session,
    /// Made by the user for scripts; named, listed, revoked by name.
    Personal { name: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub token_hash: [u8; 32],
    pub user: UserId,
    pub kind: TokenKind,
    pub created: Millis,
    /// `None`: until revoked.
    pub expires: Option<Millis>,
    /// A user who must change the password gets a token good for that alone.
    pub password_change_only: bool,
}

fn token_key(hash: &[u8; 32]) -> Vec<u8> {
    let mut k = vec![super::codec::API_TOKEN];
    k.extend_from_slice(hash);
    k
}

impl TokenStore for SledStore {
    fn create_api_token(&self, token: ApiToken) -> StoreResult<()> {
        let _guard = self.lock();
        self.require_user(token.user)?;
        let mut changes = Changes::default();
        changes.put_model(token_key(&token.token_hash), &token)?;
        self.commit(changes)
    }

    fn api_token(&self, hash: &[u8; 32]) -> StoreResult<Option<ApiToken>> {
        let token: Option<ApiToken> = self.get_model(&token_key(hash), "api token")?;
        Ok(token.filter(|t| t.expires.is_none_or(|e| e > now_millis())))
    }

    fn api_tokens_of(&self, user: UserId) -> StoreResult<Vec<ApiToken>> {
        let all: Vec<ApiToken> = self.scan_model(&[super::codec::API_TOKEN], "api token")?;
        Ok(all.into_iter().filter(|t| t.user == user).collect())
    }

    fn delete_api_token(&self, hash: &[u8; 32]) -> StoreResult<()> {
        let _guard = self.lock();
        if self
            .get_model::<ApiToken>(&token_key(hash), "api token")?
            .is_none()
        {
            return Err(StoreError::not_found("token"));
        }
        let mut changes = Changes::default();
        changes.del_model(token_key(hash));
        self.commit(changes)
    }

    fn change_user_password(&self, user: UserId, password: PasswordHash) -> StoreResult<User> {
        let _guard = self.lock();
        // Read under the lock: a token deleted meanwhile (a logout) must stay deleted.
        let tokens = self.api_tokens_of(user)?;
        let mut record = self.require_user(user)?;
        record.password = password;
        record.must_change_password = false;
        let mut changes = Changes::default();
        changes.put_model(super::codec::key(super::codec::USER, &[user.0]), &record)?;
        for mut token in tokens.into_iter().filter(|t| t.password_change_only) {
            token.password_change_only = false;
            changes.put_model(token_key(&token.token_hash), &token)?;
        }
        self.commit(changes)?;
        self.hub()
            .publish_access(super::hub::AccessChange::User(user));
        Ok(record)
    }
}
