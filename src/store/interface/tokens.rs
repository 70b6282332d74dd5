//! The store's interface for API tokens.

use crate::model::*;
use crate::store::*;

/// API tokens.
pub trait TokenStore {
    fn create_api_token(&self, token: ApiToken) -> StoreResult<()>;

    /// The token with this hash, if it exists and has not expired.
    fn api_token(&self, hash: &[u8; 32]) -> StoreResult<Option<ApiToken>>;

    fn api_tokens_of(&self, user: UserId) -> StoreResult<Vec<ApiToken>>;

    fn delete_api_token(&self, hash: &[u8; 32]) -> StoreResult<()>;

    /// Changes a user's password and lifts the password-change-only restriction of the
    /// user's tokens, in one transaction.
    fn change_user_password(&self, user: UserId, password: PasswordHash) -> StoreResult<User>;
}
