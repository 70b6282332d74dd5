//! Keys and values as the store writes them: a one-byte prefix naming the record kind, then
//! big-endian ids (so that sled's order is numeric order) or a normalized string.

use super::error::{StoreError, StoreResult};
use serde::Serialize;
use serde::de::DeserializeOwned;

// `model` tree.
pub const ORG: u8 = b'O';
pub const DOMAIN: u8 = b'D';
/// address → `AddressOwner`: the one place that makes an address unique server-wide.
pub const ADDRESS: u8 = b'A';
pub const MAILBOX: u8 = b'M';
pub const USER: u8 = b'U';
/// normalized login → user id.
pub const LOGIN: u8 = b'L';
/// org ++ user → role.
pub const MEMBER: u8 = b'm';
/// user ++ org → (): the reverse index of `MEMBER`.
pub const USER_ORG: u8 = b'u';
pub const TEAM: u8 = b'T';
/// team ++ user → ().
pub const TEAM_MEMBER: u8 = b't';
/// user ++ team → ().
pub const USER_TEAM: u8 = b'y';
/// org ++ grant id → grant.
pub const GRANT: u8 = b'G';
pub const PARTNERSHIP: u8 = b'P';
/// token hash → invitation.
pub const INVITATION: u8 = b'I';
/// token hash → admin API token.
pub const API_TOKEN: u8 = b'K';

// `mail` tree.
/// mailbox ++ folder → folder.
pub const FOLDER: u8 = b'F';
/// mailbox ++ name → folder id.
pub const FOLDER_NAME: u8 = b'N';
/// mailbox ++ folder ++ uid → message record.
pub const MESSAGE: u8 = b'E';
/// blob id → reference count.
pub const BLOB_REFS: u8 = b'B';
/// blob id → parsed summary.
pub const SUMMARY: u8 = b's';
/// Summaries as written before envelopes kept source routes: a cache of the blobs, dropped
/// at open and made again when next read.
pub const OLD_SUMMARY: u8 = b'S';
/// mailbox ++ folder ++ uid ++ user → (): `\Seen` kept per user.
pub const USER_SEEN: u8 = b'W';
/// subscriber (a user, or 0: the mailbox's own login) ++ mailbox ++ folder name → [1]
/// subscribed or [0] not (an empty value, written before: subscribed).
pub const SUBSCRIPTION: u8 = b'R';
/// mailbox → bytes used.
pub const USAGE: u8 = b'Q';
/// mailbox ++ folder ++ MODSEQ ++ uid → (): an expunge QRESYNC reports as VANISHED.
pub const EXPUNGES: u8 = b'x';
/// mailbox ++ folder → how many expunges it keeps, and up to which MODSEQ it forgot.
pub const EXPUNGE_LOG: u8 = b'Y';
/// mailbox ++ folder ++ uid → MODSEQ: expunges as kept before, all of them; rewritten as
/// `EXPUNGES` at open.
pub const OLD_EXPUNGED: u8 = b'X';
/// queue id → an outbound message for one domain.
pub const QUEUE: u8 = b'q';
/// mailbox ++ folder → the lowest UID no session has seen yet (RFC 3501 \Recent).
pub const RECENT: u8 = b'V';
/// blob id → (): a blob whose last reference went, its file to be removed by the next sweep
/// (`Store::sweep_freed_blobs`), written in the same change that dropped the reference.
pub const FREED: u8 = b'Z';
/// user id → (): a server operator (creates and renames organizations).
pub const OPERATOR: u8 = b'o';
/// org id → `Suspension`: a suspended organization, perhaps set for deletion.
pub const SUSPENDED: u8 = b'z';
/// import id → `Import`: mail being moved in from another server, with its progress.
pub const IMPORT: u8 = b'J';
/// domain ++ "/" ++ selector → a DKIM key with its private half (`model` tree).
pub const DKIM_KEY: u8 = b'k';
/// domain → `DomainClaim`: the token a domain added through the API must show in the DNS.
pub const DOMAIN_CLAIM: u8 = b'v';

/// Builds a key from a prefix and big-endian ids.
pub fn key(prefix: u8, ids: &[u64]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 8 * ids.len());
    k.push(prefix);
    for id in ids {
        k.extend_from_slice(&id.to_be_bytes());
    }
    k
}

/// Builds a key from a prefix, big-endian ids and a trailing string.
pub fn key_str(prefix: u8, ids: &[u64], s: &str) -> Vec<u8> {
    let mut k = key(prefix, ids);
    k.extend_from_slice(s.as_bytes());
    k
}

/// Reads the big-endian u64 at `index` (counted in ids) after the prefix byte.
pub fn id_at(key: &[u8], index: usize) -> StoreResult<u64> {
    let start = 1 + 8 * index;
    key.get(start..start + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt(format!("short key {key:?}")))
}

pub fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| StoreError::Corrupt(format!("encoding: {e}")))
}

/// Decodes a record of the current layout, or of the one before (`Old`, which lacked the
/// fields added last), made current by `upgrade`.
pub fn decode_either<T: DeserializeOwned, Old: DeserializeOwned>(
    bytes: &[u8],
    what: &str,
    upgrade: impl FnOnce(Old) -> T,
) -> StoreResult<T> {
    decode(bytes, what).or_else(|e| match decode::<Old>(bytes, what) {
        Ok(old) => Ok(upgrade(old)),
        Err(_) => Err(e),
    })
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> StoreResult<T> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}
