use std::path::{Path, PathBuf};

pub type StoreResult<T> = Result<T, StoreError>;

/// Why a store operation failed. Invariant violations are their own variants so that front
/// ends can answer them precisely (409 for a taken address, `NO` for a missing folder, …).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the data directory {dir} is in use by another mailgate process (pid {pid}); stop it or pass another --data directory"
    )]
    Locked { dir: PathBuf, pid: String },
    #[error("the data directory holds schema version {found}, this build reads version {expected}")]
    Schema { found: u32, expected: u32 },
    #[error("database error: {0}")]
    Db(#[from] sled::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("PostgreSQL connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("the address {0} is already in use")]
    AddressTaken(String),
    #[error("the domain {0} belongs to another organization")]
    DomainTaken(String),
    #[error("the domain of {0} is not a domain of this organization")]
    DomainNotOwned(String),
    #[error("the domain {0} still has mailboxes or aliases")]
    DomainInUse(String),
    #[error("the login {0} is already taken")]
    LoginTaken(String),
    #[error(
        "the address {0} is a user's login (only a member of this organization may have a mailbox at her own login's address)"
    )]
    AddressIsLogin(String),
    #[error(
        "{0} is the address of a mailbox or an alias (a login may be a mailbox's address only for a user granted that mailbox)"
    )]
    LoginIsAddress(String),
    #[error("an organization must keep at least one owner")]
    LastOwner,
    #[error("the last server operator stays one")]
    LastOperator,
    #[error("an alias must point to a mailbox of its own organization")]
    AliasAcrossOrganizations,
    #[error("{0} belongs to another organization")]
    WrongOrganization(String),
    #[error("a folder named {0:?} already exists")]
    FolderExists(String),
    #[error("the mailbox is over its quota of {quota} bytes")]
    OverQuota { quota: u64 },
    #[error("the DKIM key {0} signs the domain's mail; activate another one first")]
    ActiveDkimKey(String),
    #[error("invalid {what}: {why}")]
    Invalid { what: &'static str, why: String },
}

impl StoreError {
    /// A transaction PostgreSQL rolled back to end a deadlock or a serialization conflict
    /// with another: run again, it may well pass.
    pub fn is_conflict(&self) -> bool {
        use tokio_postgres::error::SqlState;
        matches!(self, StoreError::Postgres(e) if e.code().is_some_and(|code| {
            *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
        }))
    }

    /// A file the store refers to is not there (as opposed to one it could not read now).
    pub fn is_missing_file(&self) -> bool {
        matches!(self, StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn not_found(what: impl std::fmt::Display) -> StoreError {
        StoreError::NotFound(what.to_string())
    }
}

impl From<sled::transaction::TransactionError<StoreError>> for StoreError {
    fn from(e: sled::transaction::TransactionError<StoreError>) -> StoreError {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => StoreError::Db(e),
        }
    }
}
