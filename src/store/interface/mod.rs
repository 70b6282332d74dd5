//! The store's one interface (ARCHITECTURE.md §6): what the rest of the server asks of
//! persistent state, family by family, whichever backend keeps it. [`Store`](super::Store)
//! hands out a [`Backend`]: sled's (`SledStore`), or in time PostgreSQL's (`postgres::PgStore`,
//! which implements some families so far).

mod audit;
mod claims;
mod directory;
mod dkim;
mod expunges;
mod flags;
mod folders;
mod grants;
mod imports;
mod lifecycle;
mod queue;
mod server;
mod tokens;
mod transfer;

pub use audit::AuditStore;
pub use claims::ClaimStore;
pub use directory::DirectoryStore;
pub use dkim::DkimStore;
pub use expunges::ExpungeStore;
pub use flags::FlagStore;
pub use folders::FolderStore;
pub use grants::GrantStore;
pub use imports::ImportStore;
pub use lifecycle::{ExportWriter, LifecycleStore};
pub use queue::QueueStore;
pub(crate) use server::make_secret;
pub use server::{SecretCheck, SecretMaker, ServerStore};
pub use tokens::TokenStore;
pub use transfer::TransferStore;

/// Everything a store backend provides.
pub trait Backend:
    AuditStore
    + ClaimStore
    + DirectoryStore
    + DkimStore
    + ExpungeStore
    + FlagStore
    + FolderStore
    + GrantStore
    + ImportStore
    + LifecycleStore
    + QueueStore
    + TokenStore
    + TransferStore
    + ServerStore
    + Send
    + Sync
{
}
