//! Message bytes on PostgreSQL: content-addressed (SHA-256) like sled's blob files, stored
//! once with a count of what refers to them, in chunks so that a partial FETCH reads only the
//! chunks it needs. Taken and released inside the transaction that adds or drops the
//! reference, so bytes and references never disagree (no sweep needed, unlike files).

use super::rows::{self, Prepared};
use crate::store::BlobId;
use crate::store::error::{StoreError, StoreResult};
use deadpool_postgres::GenericClient;

/// Bytes per chunk: large enough that a whole message is a few rows, small enough that a
/// partial FETCH of a large attachment does not read it all.
pub const CHUNK: usize = 256 * 1024;

/// Adds `references` references on `blob` (`BlobId::of(bytes)`, which the caller has),
/// storing the bytes if they are not there yet.
pub async fn hold(
    client: &impl GenericClient,
    blob: BlobId,
    bytes: &[u8],
    references: u64,
) -> StoreResult<BlobId> {
    let size = i64::try_from(bytes.len()).map_err(|_| StoreError::Invalid {
        what: "message",
        why: "larger than the database keeps".into(),
    })?;
    // A delivery of the same bytes in another transaction waits here for that one to end,
    // then adds its reference to the row it made (or makes it, if that one rolled back).
    let inserted: bool = client
        .query_one_cached(
            "INSERT INTO blobs (id, size, refs) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET refs = blobs.refs + EXCLUDED.refs \
             RETURNING xmax = 0",
            &[&blob.0.as_slice(), &size, &rows::id(references)?],
        )
        .await?
        .try_get(0)?;
    if inserted {
        for (n, chunk) in bytes.chunks(CHUNK).enumerate() {
            let n = i32::try_from(n).map_err(|_| StoreError::Invalid {
                what: "message",
                why: "too many chunks".into(),
            })?;
            client
                .execute_cached(
                    "INSERT INTO blob_chunks (blob, n, data) VALUES ($1, $2, $3)",
                    &[&blob.0.as_slice(), &n, &chunk],
                )
                .await?;
        }
    }
    Ok(blob)
}

/// Drops one reference on `blob`; the bytes go with the last.
pub async fn release(client: &impl GenericClient, blob: &BlobId) -> StoreResult<()> {
    release_n(client, blob, 1).await
}

/// Drops `n` references on `blob`; the bytes go with the last.
pub async fn release_n(client: &impl GenericClient, blob: &BlobId, n: u64) -> StoreResult<()> {
    let left: Option<i64> = client
        .query_opt_cached(
            "UPDATE blobs SET refs = refs - $2 WHERE id = $1 RETURNING refs",
            &[&blob.0.as_slice(), &rows::id(n)?],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
    match left {
        Some(0) => {
            client
                .execute_cached("DELETE FROM blobs WHERE id = $1", &[&blob.0.as_slice()])
                .await?;
            Ok(())
        }
        Some(_) => Ok(()),
        None => Err(StoreError::Corrupt(format!(
            "a reference on {blob:?}, which is not there"
        ))),
    }
}

/// The bytes of `blob`, chunk by chunk.
pub async fn read(client: &impl GenericClient, blob: &BlobId) -> StoreResult<bytes::Bytes> {
    let rows = client
        .query_cached(
            "SELECT b.size, c.data FROM blobs b LEFT JOIN blob_chunks c ON c.blob = b.id \
             WHERE b.id = $1 ORDER BY c.n",
            &[&blob.0.as_slice()],
        )
        .await?;
    let Some(first) = rows.first() else {
        return Err(StoreError::not_found(format!("message {blob:?}")));
    };
    let size: i64 = first.try_get(0)?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    for row in &rows {
        if let Some(data) = row.try_get::<_, Option<&[u8]>>(1)? {
            bytes.extend_from_slice(data);
        }
    }
    if bytes.len() as i64 != size {
        return Err(StoreError::Corrupt(format!(
            "{blob:?} holds {} bytes of {size}",
            bytes.len()
        )));
    }
    Ok(bytes.into())
}

/// Bytes `range` of `blob` (fewer where it ends first), from the chunks that hold them only.
pub async fn read_range(
    client: &impl GenericClient,
    blob: &BlobId,
    range: std::ops::Range<u64>,
) -> StoreResult<bytes::Bytes> {
    let chunk = CHUNK as u64;
    let (first, last) = (range.start / chunk, range.end.saturating_sub(1) / chunk);
    let index = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
    let rows = client
        .query_cached(
            "SELECT b.size, c.data FROM blobs b LEFT JOIN blob_chunks c \
             ON c.blob = b.id AND c.n BETWEEN $2 AND $3 WHERE b.id = $1 ORDER BY c.n",
            &[&blob.0.as_slice(), &index(first), &index(last)],
        )
        .await?;
    let Some(head) = rows.first() else {
        return Err(StoreError::not_found(format!("message {blob:?}")));
    };
    let size = u64::try_from(head.try_get::<_, i64>(0)?).unwrap_or(0);
    let mut bytes = Vec::new();
    for row in &rows {
        if let Some(data) = row.try_get::<_, Option<&[u8]>>(1)? {
            bytes.extend_from_slice(data);
        }
    }
    let from = range.start.min(size) - first.min(size / chunk) * chunk;
    let wanted = range.end.min(size).saturating_sub(range.start);
    let bytes = bytes::Bytes::from(bytes);
    let got = crate::store::blobs::slice_of(&bytes, from..from + wanted);
    if got.len() as u64 != wanted {
        return Err(StoreError::Corrupt(format!(
            "{blob:?} holds {} of bytes {range:?} of {size}",
            got.len()
        )));
    }
    Ok(got)
}

/// For tests: the bytes of a blob as its chunks hold them, and its reference count.
#[cfg(test)]
pub(super) async fn stored(
    client: &impl GenericClient,
    blob: &BlobId,
) -> StoreResult<Option<(Vec<u8>, i64, i64)>> {
    let row = client
        .query_opt_cached(
            "SELECT b.refs, (SELECT count(*) FROM blob_chunks WHERE blob = b.id), \
             (SELECT string_agg(data, ''::bytea ORDER BY n) FROM blob_chunks WHERE blob = b.id) \
             FROM blobs b WHERE b.id = $1",
            &[&blob.0.as_slice()],
        )
        .await?;
    row.map(|row| Ok((row.try_get(2)?, row.try_get(0)?, row.try_get(1)?)))
        .transpose()
}
