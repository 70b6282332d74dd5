//! Copying a mailbox from another IMAP server, with `async-imap` as the client. Each source
//! folder is read in UID order: first the UIDs and sizes above what an earlier run stored,
//! then the messages in batches, each batch stored with the progress that counts it.

use super::{ImportError, Secret};
use crate::model::*;
use crate::services::Services;
use crate::store::{AppendMessage, Folder, Import, ImportSource, SourceTls, SpecialUse, Store};
use async_imap::types::{Fetch, Name, NameAttribute};
use futures_util::TryStreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// How long one exchange with the source may take before the run stops as interrupted.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(120);
/// A batch: at most this many messages, or about this many bytes.
const BATCH_MESSAGES: usize = 200;
const BATCH_BYTES: u64 = 8 * 1024 * 1024;

type Result<T> = std::result::Result<T, ImportError>;

/// Bounds one exchange with the source.
async fn timed<T, E: std::fmt::Display>(
    what: &str,
    step: impl std::future::Future<Output = std::result::Result<T, E>>,
) -> Result<T> {
    match tokio::time::timeout(EXCHANGE_TIMEOUT, step).await {
        Ok(r) => r.map_err(|e| ImportError::Source(format!("{what}: {e}"))),
        Err(_) => Err(ImportError::Source(format!(
            "{what}: no answer in {} s",
            EXCHANGE_TIMEOUT.as_secs()
        ))),
    }
}

/// Connects, logs in and copies every folder.
pub async fn copy(
    services: &Arc<Services>,
    import: &mut Import,
    password: &Secret,
    cancel: &CancellationToken,
) -> Result<()> {
    let ImportSource::Imap {
        host,
        port,
        tls,
        accept_invalid_certificates,
        login,
    } = import.source.clone()
    else {
        return Err(ImportError::Refused("not an IMAP import".into()));
    };
    let addr = resolve(services, &host, port).await?;
    let tcp = timed("connecting", TcpStream::connect(addr)).await?;
    let tls_config = if accept_invalid_certificates {
        services.outbound_tls.mx.clone()
    } else {
        services.outbound_tls.smarthost.clone()
    };
    let connector = tokio_rustls::TlsConnector::from(tls_config);
    let name = rustls_pki_types::ServerName::try_from(host.clone())
        .map_err(|e| ImportError::Refused(format!("{host:?} is no host name: {e}")))?;
    match tls {
        SourceTls::None => {
            let mut client = async_imap::Client::new(tcp);
            greeting(&mut client).await?;
            run(services, import, client, &login, password, cancel).await
        }
        SourceTls::Tls => {
            let stream = timed("TLS", connector.connect(name, tcp)).await?;
            let mut client = async_imap::Client::new(stream);
            greeting(&mut client).await?;
            run(services, import, client, &login, password, cancel).await
        }
        SourceTls::Starttls => {
            let mut client = async_imap::Client::new(tcp);
            greeting(&mut client).await?;
            timed(
                "STARTTLS",
                client.run_command_and_check_ok("STARTTLS", None),
            )
            .await?;
            let tcp = client.into_inner();
            let stream = timed("TLS", connector.connect(name, tcp)).await?;
            let client = async_imap::Client::new(stream);
            run(services, import, client, &login, password, cancel).await
        }
    }
}

/// The source's address: refused when it is a private one and the server does not allow
/// those (`[import] allow_private_sources`).
pub async fn resolve(services: &Services, host: &str, port: u16) -> Result<std::net::SocketAddr> {
    let addrs: Vec<_> = timed("resolving", tokio::net::lookup_host((host, port)))
        .await?
        .collect();
    let first = addrs
        .first()
        .copied()
        .ok_or_else(|| ImportError::Source(format!("{host} has no address")))?;
    if !services.config.import.allow_private_sources
        && let Some(private) = addrs.iter().find(|a| !is_public(a.ip()))
    {
        tracing::info!(%host, ip = %private.ip(), "an import from a private address was refused");
        return Err(ImportError::Refused(format!(
            "{host} has a private address; this server imports from public ones only"
        )));
    }
    Ok(first)
}

fn is_public(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            let v4 =
                |hi: u16, lo: u16| std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
            // IPv4 inside IPv6: mapped, compatible (::/96), NAT64 (64:ff9b::/96), 6to4.
            let embedded = match s {
                [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
                [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
                [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
                _ => None,
            };
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || embedded.is_some_and(|v4| !is_public(v4.into())))
        }
    }
}

async fn greeting<T>(client: &mut async_imap::Client<T>) -> Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    match timed("greeting", client.read_response()).await? {
        Some(_) => Ok(()),
        None => Err(ImportError::Source("closed before its greeting".into())),
    }
}

async fn run<T>(
    services: &Arc<Services>,
    import: &mut Import,
    client: async_imap::Client<T>,
    login: &str,
    password: &Secret,
    cancel: &CancellationToken,
) -> Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let login_step = client.login(login, &password.0);
    let mut session = match tokio::time::timeout(EXCHANGE_TIMEOUT, login_step).await {
        Ok(Ok(session)) => session,
        Ok(Err((e, _))) => return Err(ImportError::Source(format!("login refused: {e}"))),
        Err(_) => return Err(ImportError::Source("login: no answer".into())),
    };
    let names: Vec<Name> = timed("LIST", async {
        session.list(Some(""), Some("*")).await?.try_collect().await
    })
    .await?;
    let mut folders: Vec<SourceFolder> = names.iter().filter_map(SourceFolder::of).collect();
    // INBOX first, then by name: parents before children.
    folders.sort_by_key(|f| (!f.name.eq_ignore_ascii_case("INBOX"), f.name.clone()));
    for source in folders {
        if cancel.is_cancelled() {
            return Err(ImportError::Cancelled);
        }
        copy_folder(services, import, &mut session, &source, cancel).await?;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
    Ok(())
}

/// A selectable folder of the source.
struct SourceFolder {
    /// As the source names it on the wire (modified UTF-7).
    name: String,
    delimiter: Option<String>,
    special_use: Option<SpecialUse>,
}

impl SourceFolder {
    fn of(name: &Name) -> Option<SourceFolder> {
        let attributes = name.attributes();
        if attributes
            .iter()
            .any(|a| matches!(a, NameAttribute::NoSelect))
        {
            return None;
        }
        let special_use = attributes.iter().find_map(|a| match a {
            NameAttribute::Sent => Some(SpecialUse::Sent),
            NameAttribute::Drafts => Some(SpecialUse::Drafts),
            NameAttribute::Trash => Some(SpecialUse::Trash),
            NameAttribute::Junk => Some(SpecialUse::Junk),
            NameAttribute::Archive => Some(SpecialUse::Archive),
            _ => None,
        });
        Some(SourceFolder {
            name: name.name().to_string(),
            delimiter: name.delimiter().map(str::to_string),
            special_use,
        })
    }

    /// The folder's name here: UTF-8, with our separator.
    fn target_name(&self) -> String {
        if self.name.eq_ignore_ascii_case("INBOX") {
            return "INBOX".into();
        }
        let utf8 = crate::imap::utf7::decode(&self.name).unwrap_or_else(|| self.name.clone());
        match self.delimiter.as_deref() {
            Some(d) if d != "/" => utf8.replace('/', "_").replace(d, "/"),
            _ => utf8,
        }
    }
}

/// The folder here that takes `source`'s messages: the one with the same special use if
/// there is one (the source's "Sent Messages" goes to our Sent), else the one of the same
/// name, made when missing.
fn target_folder(store: &Store, mailbox: MailboxId, source: &SourceFolder) -> Result<Folder> {
    let folders = store.folders(mailbox)?;
    if let Some(use_) = source.special_use
        && let Some(f) = folders.iter().find(|f| f.special_use == Some(use_))
    {
        return Ok(f.clone());
    }
    let name = source.target_name();
    if let Some(f) = store.folder_by_name(mailbox, &name)? {
        return Ok(f);
    }
    Ok(store.create_folder(mailbox, &name, source.special_use)?)
}

async fn copy_folder<T>(
    services: &Arc<Services>,
    import: &mut Import,
    session: &mut async_imap::Session<T>,
    source: &SourceFolder,
    cancel: &CancellationToken,
) -> Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let store = services.store.clone();
    // A folder that cannot be made here or opened there is one failure; the rest goes on.
    let target = match target_folder(&store, import.mailbox, source) {
        Ok(target) => target,
        Err(ImportError::Store(e)) => {
            import.fail(&source.name, None, format!("no folder here for it: {e}"));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let selected = match tokio::time::timeout(EXCHANGE_TIMEOUT, session.examine(&source.name)).await
    {
        Ok(Ok(selected)) => selected,
        Ok(Err(async_imap::error::Error::No(why) | async_imap::error::Error::Bad(why))) => {
            import.fail(
                &source.name,
                None,
                format!("the source would not open it: {why}"),
            );
            return Ok(());
        }
        Ok(Err(e)) => return Err(ImportError::Source(format!("EXAMINE: {e}"))),
        Err(_) => return Err(ImportError::Source("EXAMINE: no answer".into())),
    };
    let uidvalidity = selected.uid_validity.unwrap_or(0);
    let index = import.folder_progress(&source.name, &target.name);
    let progress = &mut import.folders[index];
    if progress.uidvalidity != uidvalidity && progress.last_uid > 0 {
        // RFC 3501 §2.3.1.1: the old UIDs mean nothing now, and reading the folder again
        // would store twice what an earlier run stored: it is left for a person to decide.
        progress.done = true;
        let folder = source.name.clone();
        import.fail(
            &folder,
            None,
            "UIDVALIDITY changed since the last run: not read again, to store nothing twice; import it anew into an empty folder",
        );
        return Ok(());
    }
    // Done in an earlier run: only what came since.
    progress.done = false;
    progress.uidvalidity = uidvalidity;
    progress.total = selected.exists;
    let after = progress.last_uid;
    let listing = if selected.exists == 0 {
        Vec::new()
    } else {
        list_uids(session, after).await?
    };
    // As APPEND would take it.
    let max = u64::from(services.config.imap.max_message_bytes);
    let mut batches: Vec<Vec<(u32, u64)>> = vec![Vec::new()];
    let mut batch_bytes = 0;
    for (uid, size) in listing {
        // One too big stays in its batch, to be recorded as failed (and passed) there.
        let size = size.min(max.saturating_add(1));
        let last = batches.last_mut().expect("one batch at least");
        if !last.is_empty() && (last.len() >= BATCH_MESSAGES || batch_bytes + size > BATCH_BYTES) {
            batches.push(Vec::new());
            batch_bytes = 0;
        }
        batches
            .last_mut()
            .expect("one batch at least")
            .push((uid, size));
        batch_bytes += size;
    }
    // Each batch is read from the source while the one before is being stored; the stores
    // run one after the other, so the progress on disk never passes a batch not stored.
    let mut storing: Option<tokio::task::JoinHandle<Result<()>>> = None;
    for batch in batches.iter().filter(|b| !b.is_empty()) {
        let read = match cancel.is_cancelled() {
            true => Err(ImportError::Cancelled),
            false => read_batch(import, index, session, &source.name, batch, max).await,
        };
        let stored = stored(storing.take()).await;
        let messages = read?;
        stored?;
        let (snapshot, folder_id, store) = (import.clone(), target.id, store.clone());
        storing = Some(tokio::task::spawn_blocking(move || {
            store
                .import_batch(&snapshot, folder_id, &messages)
                .map(|_| ())
                .map_err(ImportError::from)
        }));
    }
    stored(storing).await?;
    import.folders[index].done = true;
    let saved = import.clone();
    blocking(&store, move |s| s.save_import(&saved)).await
}

/// Waits for a batch's store, if one runs.
async fn stored(task: Option<tokio::task::JoinHandle<Result<()>>>) -> Result<()> {
    match task {
        Some(task) => task
            .await
            .map_err(|e| ImportError::Refused(format!("the store task failed: {e}")))?,
        None => Ok(()),
    }
}

/// The UIDs above `after`, in order, with their sizes.
async fn list_uids<T>(session: &mut async_imap::Session<T>, after: u32) -> Result<Vec<(u32, u64)>>
where
    T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let range = format!("{}:*", after.saturating_add(1));
    let fetches: Vec<Fetch> = timed("UID FETCH (listing)", async {
        session
            .uid_fetch(&range, "(UID RFC822.SIZE)")
            .await?
            .try_collect()
            .await
    })
    .await?;
    // `n:*` answers with the last message even when its UID is below n (RFC 3501 §6.4.8).
    let mut out: Vec<(u32, u64)> = fetches
        .iter()
        .filter_map(|f| Some((f.uid?, u64::from(f.size.unwrap_or(0)))))
        .filter(|(uid, _)| *uid > after)
        .collect();
    out.sort_unstable();
    out.dedup_by_key(|(uid, _)| *uid);
    Ok(out)
}

/// Reads one batch from the source and counts it in the import's progress (as stored once
/// the caller has stored it): the messages, each with its flags and date.
async fn read_batch<T>(
    import: &mut Import,
    index: usize,
    session: &mut async_imap::Session<T>,
    folder: &str,
    batch: &[(u32, u64)],
    max: u64,
) -> Result<Vec<(Vec<u8>, AppendMessage)>>
where
    T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let set = batch
        .iter()
        .filter(|(_, size)| *size <= max)
        .map(|(uid, _)| uid.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let fetches: Vec<Fetch> = if set.is_empty() {
        Vec::new()
    } else {
        timed("UID FETCH", async {
            session
                .uid_fetch(&set, "(UID FLAGS INTERNALDATE BODY.PEEK[])")
                .await?
                .try_collect()
                .await
        })
        .await?
    };
    // An unsolicited FETCH (new flags) may name the same UID: the one with the body counts.
    let mut by_uid: std::collections::HashMap<u32, &Fetch> = std::collections::HashMap::new();
    for f in &fetches {
        if let Some(uid) = f.uid
            && (f.body().is_some() || !by_uid.contains_key(&uid))
        {
            by_uid.insert(uid, f);
        }
    }
    let mut messages: Vec<(Vec<u8>, AppendMessage)> = Vec::with_capacity(batch.len());
    let mut bytes = 0;
    for (uid, size) in batch {
        if *size > max {
            import.fail(
                folder,
                Some(*uid),
                format!("larger than this server's limit of {max} bytes"),
            );
            continue;
        }
        let Some(fetch) = by_uid.get(uid) else {
            import.fail(
                folder,
                Some(*uid),
                "gone from the source before it was read",
            );
            continue;
        };
        let Some(body) = fetch.body() else {
            import.fail(folder, Some(*uid), "the source sent no body");
            continue;
        };
        if body.len() as u64 > max {
            // Its announced size was smaller: what came counts, not what was said.
            import.fail(
                folder,
                Some(*uid),
                format!("larger than this server's limit of {max} bytes"),
            );
            continue;
        }
        let names: Vec<String> = fetch.flags().map(|f| flag_name(&f)).collect();
        let date = fetch.internal_date().map(|d| d.timestamp_millis());
        let meta = super::append_meta(names.iter().map(String::as_str), date);
        bytes += body.len() as u64;
        messages.push((body.to_vec(), meta));
    }
    let progress = &mut import.folders[index];
    progress.last_uid = batch.last().map_or(progress.last_uid, |(uid, _)| *uid);
    progress.messages += messages.len() as u64;
    progress.bytes += bytes;
    import.messages += messages.len() as u64;
    import.bytes += bytes;
    Ok(messages)
}

fn flag_name(flag: &async_imap::types::Flag<'_>) -> String {
    use async_imap::types::Flag;
    match flag {
        Flag::Seen => "\\Seen".into(),
        Flag::Answered => "\\Answered".into(),
        Flag::Flagged => "\\Flagged".into(),
        Flag::Deleted => "\\Deleted".into(),
        Flag::Draft => "\\Draft".into(),
        Flag::Recent => "\\Recent".into(),
        Flag::MayCreate => "\\*".into(),
        Flag::Custom(name) => name.to_string(),
    }
}

/// Runs a store call off the runtime's workers.
async fn blocking<T: Send + 'static>(
    store: &Store,
    call: impl FnOnce(&Store) -> crate::store::StoreResult<T> + Send + 'static,
) -> Result<T> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || call(&store))
        .await
        .map_err(|e| ImportError::Refused(format!("the store task failed: {e}")))?
        .map_err(ImportError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str, delimiter: &str) -> SourceFolder {
        SourceFolder {
            name: name.into(),
            delimiter: Some(delimiter.into()),
            special_use: None,
        }
    }

    #[test]
    fn source_names_become_ours() {
        assert_eq!(folder("inbox", ".").target_name(), "INBOX");
        assert_eq!(folder("Archive.2024", ".").target_name(), "Archive/2024");
        assert_eq!(folder("a/b.c", ".").target_name(), "a_b/c");
        assert_eq!(folder("Entw&APw-rfe", "/").target_name(), "Entwürfe");
    }

    #[test]
    fn private_addresses_are_told_apart() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:c0a8:1::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
