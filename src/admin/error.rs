//! API errors: `{"error": code, "message": text}` with the status that says what went wrong.

use crate::access::Denied;
use crate::store::StoreError;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed (bad JSON, bad path or query).
    BadRequest(String),
    /// 401: no valid credentials.
    Unauthorized(&'static str),
    /// 403: the token may only change the password.
    PasswordChangeRequired,
    /// 403: authenticated, but the policy says no.
    Forbidden(Denied),
    /// 404: no such thing, or one the caller may not learn of.
    NotFound(String),
    /// 409: it clashes with what exists.
    Conflict(String),
    /// 422: well-formed but not acceptable.
    Invalid(String),
    /// 429: too many failed logins from the client's network or for the login named.
    Throttled,
    /// 503: the server cannot do it right now (all password checks taken, a store fault);
    /// the client may try again shortly.
    Unavailable(&'static str),
    /// 500: our fault; the details go to the log, not to the client.
    Internal,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// The status, the error's code and its words.
    pub(crate) fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m.clone()),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m.to_string()),
            ApiError::PasswordChangeRequired => (
                StatusCode::FORBIDDEN,
                "password_change_required",
                "the password must be changed first: POST /api/v1/me/password".into(),
            ),
            ApiError::Forbidden(d) => (StatusCode::FORBIDDEN, "forbidden", d.to_string()),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone()),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m.clone()),
            ApiError::Invalid(m) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid", m.clone()),
            ApiError::Throttled => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "too many failed logins from your network or for this login; try again in a minute"
                    .into(),
            ),
            ApiError::Unavailable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                m.to_string(),
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; see the server log".into(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        (status, Json(json!({"error": code, "message": message}))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        use StoreError::*;
        match e {
            NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            AddressTaken(_) | DomainTaken(_) | LoginTaken(_) | FolderExists(_) | DomainInUse(_)
            | AddressIsLogin(_) | LoginIsAddress(_) | LastOwner | LastOperator
            | ActiveDkimKey(_) => ApiError::Conflict(e.to_string()),
            DomainNotOwned(_)
            | AliasAcrossOrganizations
            | WrongOrganization(_)
            | OverQuota { .. }
            | Invalid { .. } => ApiError::Invalid(e.to_string()),
            Pool(_) => {
                tracing::error!(error = %e, "store unreachable in the admin API");
                ApiError::Unavailable("the database cannot be reached now; try again")
            }
            Locked { .. } | Schema { .. } | Db(_) | Postgres(_) | Io { .. } | Corrupt(_) => {
                tracing::error!(error = %e, "store failure in the admin API");
                ApiError::Internal
            }
        }
    }
}

impl ApiError {
    /// A refused password check, as the API answers it; `wrong` words a wrong password.
    pub fn from_login(refusal: crate::login::LoginRefusal, wrong: &'static str) -> ApiError {
        use crate::login::LoginRefusal::*;
        match refusal {
            Throttled => ApiError::Throttled,
            Unavailable => {
                ApiError::Unavailable("the server cannot check passwords right now; try again")
            }
            _ => ApiError::Unauthorized(wrong),
        }
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> ApiError {
        ApiError::Forbidden(d)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        match r {
            JsonRejection::JsonDataError(e) => ApiError::Invalid(e.body_text()),
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::BadRequest(r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::BadRequest(r.body_text())
    }
}

impl From<crate::password::PasswordError> for ApiError {
    fn from(e: crate::password::PasswordError) -> ApiError {
        match e {
            crate::password::PasswordError::Empty => ApiError::Invalid(e.to_string()),
            crate::password::PasswordError::Busy => {
                ApiError::Unavailable("too many password hashes at once; try again shortly")
            }
            crate::password::PasswordError::Hash(_) => {
                tracing::error!(error = %e, "password hashing failed");
                ApiError::Internal
            }
        }
    }
}

/// `Json` whose rejections are `ApiError`s, so a bad body gets a JSON error too.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `Path` whose rejections are `ApiError`s.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `Query` whose rejections are `ApiError`s.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);
