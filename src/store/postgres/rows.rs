//! Between the model's types and PostgreSQL's columns: identifiers as bigint, enumerations as
//! the text their serde names give (the schema's CHECK lists the same words).

use crate::model::*;
use crate::store::error::{StoreError, StoreResult};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::Row;

/// An identifier as its column holds it: ids come from one sequence, far below 2^63; one
/// above is refused, never wrapped into another's.
pub fn id(value: u64) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::Invalid {
        what: "identifier",
        why: format!("{value} is beyond what the database keeps"),
    })
}

/// A column's identifier back; a negative one is a damaged row.
pub fn from_id(value: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} id {value}")))
}

/// The word serde names a unit variant with (`Outcome::Success` → `success`).
pub fn word<T: Serialize>(value: &T) -> StoreResult<String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(StoreError::Invalid {
            what: "enumeration",
            why: "not a unit variant".into(),
        }),
    }
}

/// The variant a column's word names.
pub fn from_word<T: DeserializeOwned>(word: &str, what: &str) -> StoreResult<T> {
    serde_json::from_value(serde_json::Value::String(word.to_string()))
        .map_err(|_| StoreError::Corrupt(format!("{what} {word:?}")))
}

/// A value kept as jsonb.
pub fn json<T: Serialize>(value: &T) -> StoreResult<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| StoreError::Invalid {
        what: "record",
        why: format!("not expressible in JSON: {e}"),
    })
}

pub fn from_json<T: DeserializeOwned>(value: serde_json::Value, what: &str) -> StoreResult<T> {
    serde_json::from_value(value).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A 32-byte hash column.
pub fn hash32(value: Vec<u8>, what: &str) -> StoreResult<[u8; 32]> {
    <[u8; 32]>::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} hash")))
}

pub const USER_COLUMNS: &str =
    "id, login, display_name, password, must_change_password, disabled, created";

pub fn user(row: &Row) -> StoreResult<User> {
    Ok(User {
        id: UserId(from_id(row.try_get(0)?, "user")?),
        login: row.try_get(1)?,
        display_name: row.try_get(2)?,
        password: PasswordHash(row.try_get(3)?),
        must_change_password: row.try_get(4)?,
        disabled: row.try_get(5)?,
        created: row.try_get(6)?,
    })
}

/// Each statement prepared once per pooled connection and kept there (deadpool's statement
/// cache, keyed by the statement's text): a call is then one round trip to the server, which
/// neither parses nor plans it again, where a statement given as text costs two and both.
/// Every statement of the backend's operations goes through these; the texts are the code's
/// own (no values in them), so the cache stays as small as the code.
pub(crate) trait Prepared: deadpool_postgres::GenericClient {
    async fn query_cached(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query(&statement, params).await
    }

    async fn query_one_cached(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Row, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query_one(&statement, params).await
    }

    async fn query_opt_cached(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query_opt(&statement, params).await
    }

    async fn execute_cached(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.execute(&statement, params).await
    }
}

impl<C: deadpool_postgres::GenericClient + ?Sized> Prepared for C {}
