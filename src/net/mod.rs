//! Networking in one place: the listeners, TLS, the connection caps and graceful shutdown.
//! Protocol sessions get a `Stream` and know nothing of sockets beyond it.

use crate::connection::proxy;
pub use crate::connection::{Connection, Protocol, Stream};
use crate::services::Services;

use crate::config::Config;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Whether TLS starts with the connection or on the client's STARTTLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    StartTls,
    Implicit,
    /// The admin HTTP listener (plain HTTP; put a proxy in front beyond loopback).
    Http,
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot listen for {protocol} on {address}: {source}")]
    Bind {
        protocol: &'static str,
        address: SocketAddr,
        source: std::io::Error,
    },
}

struct BoundListener {
    listener: TcpListener,
    protocol: Protocol,
    security: Security,
}

/// The bound listeners of one server, ready to run.
pub struct Server {
    services: Arc<Services>,
    listeners: Vec<BoundListener>,
}

impl Server {
    /// Binds every configured listener; fails naming the first that cannot be bound.
    pub async fn bind(services: Arc<Services>) -> Result<Server, NetError> {
        let c = &services.config;
        let challenge_listen = c
            .tls
            .acme
            .as_ref()
            .map(|a| a.challenge_listen.clone())
            .unwrap_or_default();
        let wanted = [
            (&c.imap.listen, Protocol::Imap, Security::StartTls),
            (&c.imap.listen_tls, Protocol::Imap, Security::Implicit),
            (&c.smtp.listen, Protocol::Smtp, Security::StartTls),
            (
                &c.submission.listen,
                Protocol::Submission,
                Security::StartTls,
            ),
            (
                &c.submission.listen_tls,
                Protocol::Submission,
                Security::Implicit,
            ),
            (&c.admin.listen, Protocol::Admin, Security::Http),
            (&c.admin.listen_tls, Protocol::Admin, Security::Implicit),
            (&challenge_listen, Protocol::AcmeChallenge, Security::Http),
        ];
        let mut listeners = Vec::new();
        for (addresses, protocol, security) in wanted {
            for address in addresses {
                let listener =
                    TcpListener::bind(address)
                        .await
                        .map_err(|source| NetError::Bind {
                            protocol: protocol.name(),
                            address: *address,
                            source,
                        })?;
                listeners.push(BoundListener {
                    listener,
                    protocol,
                    security,
                });
            }
        }
        Ok(Server {
            services,
            listeners,
        })
    }

    /// What listens where, as "imap (STARTTLS)" → address, for the start-up banner.
    pub fn addresses(&self) -> Vec<(String, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|l| {
                let kind = match l.security {
                    Security::StartTls => format!("{} (STARTTLS)", l.protocol.name()),
                    Security::Implicit => format!("{} (TLS)", l.protocol.name()),
                    Security::Http => format!("{} (HTTP)", l.protocol.name()),
                };
                Some((kind, l.listener.local_addr().ok()?))
            })
            .collect()
    }

    /// Serves until `shutdown` completes, then stops accepting, gives open sessions the grace
    /// period, and flushes the store.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        let limits = Arc::new(ConnectionLimits::new(&self.services.config));
        // Before any session can queue something held of its own.
        crate::smtp::outbound::drop_held(&self.services).await;
        // Before the admin API can start one anew.
        match self.services.store.interrupt_running_imports() {
            Ok(0) => {}
            Ok(n) => tracing::warn!(imports = n, "imports cut short by the last stop; resumable"),
            Err(e) => tracing::error!(error = %e, "marking unfinished imports failed"),
        }
        crate::tls::acme::serve_stored_at_start(&self.services);
        for bound in self.listeners {
            let services = self.services.clone();
            let (token, tracker2, limits) = (token.clone(), tracker.clone(), limits.clone());
            tracker.spawn(async move {
                match bound.protocol {
                    Protocol::Admin => {
                        let tls = bound.security == Security::Implicit;
                        crate::admin::serve(bound.listener, services, token, tls).await;
                    }
                    Protocol::AcmeChallenge => {
                        crate::admin::serve_acme_challenges(bound.listener, services, token).await;
                    }
                    Protocol::Imap | Protocol::Smtp | Protocol::Submission => {
                        accept_loop(bound, services, token, tracker2, limits).await;
                    }
                }
            });
        }
        let queue = (self.services.clone(), token.clone());
        tracker.spawn(crate::smtp::outbound::run(queue.0, queue.1));
        tracker.spawn(prune_audit_log(self.services.clone(), token.clone()));
        tracker.spawn(sweep_freed_blobs(self.services.clone(), token.clone()));
        let store = self.services.store.clone();
        tracker.spawn(async move { crate::dkim::keep_keys(&store).await });
        tracker.spawn(crate::tls::keep(self.services.clone(), token.clone()));
        tracker.spawn(crate::admin::keep_grant_time(
            self.services.clone(),
            token.clone(),
        ));
        tracker.spawn(crate::admin::keep_organization_deletions(
            self.services.clone(),
            token.clone(),
        ));
        shutdown.await;
        tracing::info!("shutting down: no new connections; waiting for open sessions");
        token.cancel();
        self.services.imports.stop_all();
        tracker.close();
        let grace = Duration::from_secs(self.services.config.limits.shutdown_grace_seconds);
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!("sessions still open after the grace period are being closed");
        }
        if let Err(e) = self.services.store.flush().await {
            tracing::error!(error = %e, "flushing the store at shutdown failed");
        }
        sweep_once(&self.services).await;
    }
}

/// Once a second, removes the files of blobs whose last message went (an expunge, a deleted
/// folder or mailbox, a delivered outbound message): one flush for all of them, instead of
/// one that each expunge would wait for.
async fn sweep_freed_blobs(services: Arc<Services>, shutdown: CancellationToken) {
    loop {
        sweep_once(&services).await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn sweep_once(services: &Services) {
    let store = services.store.clone();
    match tokio::task::spawn_blocking(move || store.sweep_freed_blobs()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "removing unreferenced message files failed"),
        Err(e) => tracing::error!(error = %e, "removing unreferenced message files failed"),
    }
}

/// Once an hour (and at start), removes the audit events older than
/// `store.audit_retention_days`.
async fn prune_audit_log(services: Arc<Services>, shutdown: CancellationToken) {
    let days = services.config.store.audit_retention_days;
    if days == 0 {
        return;
    }
    loop {
        if services.runs(crate::services::Job::AuditPruning).await {
            let before = crate::model::now_millis() - (days * 24 * 3600 * 1000) as i64;
            let store = services.store.clone();
            match tokio::task::spawn_blocking(move || store.prune_audit(before)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(removed = n, days, "old audit events removed"),
                Ok(Err(e)) => tracing::error!(error = %e, "removing old audit events failed"),
                Err(e) => tracing::error!(error = %e, "removing old audit events failed"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

/// The server-wide cap (a semaphore: further clients wait in the backlog) and the per-address
/// cap (further connections are refused with a protocol-specific answer).
struct ConnectionLimits {
    total: Arc<Semaphore>,
    per_client: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ConnectionLimits {
    fn new(config: &Config) -> ConnectionLimits {
        ConnectionLimits {
            total: Arc::new(Semaphore::new(config.limits.max_connections)),
            per_client: config.limits.max_connections_per_client,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a connection from `ip`, or refuses it when the address has too many open.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.per_client {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            limits: self.clone(),
            ip,
        })
    }
}

/// One admitted connection; dropping it frees the place.
struct ClientSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

async fn accept_loop(
    bound: BoundListener,
    services: Arc<Services>,
    token: CancellationToken,
    tracker: TaskTracker,
    limits: Arc<ConnectionLimits>,
) {
    loop {
        let permit = tokio::select! {
            _ = token.cancelled() => return,
            permit = limits.total.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = token.cancelled() => return,
            accepted = crate::connection::accept(&bound.listener) => accepted,
        };
        let _ = tcp.set_nodelay(true);
        let (protocol, security) = (bound.protocol, bound.security);
        let (services, token, limits) = (services.clone(), token.clone(), limits.clone());
        tracker.spawn(async move {
            let _permit = permit;
            let mut tcp = tcp;
            let trusted = &services.config.proxy.trusted;
            let peer = match proxy::client_address(&mut tcp, peer, trusted).await {
                Ok(client) => client,
                Err(e) => {
                    tracing::warn!(balancer = %peer, error = %e, "connection refused");
                    return;
                }
            };
            let slot = limits.admit(peer.ip());
            let mut stream = Stream::Plain(tcp);
            if security == Security::Implicit {
                stream = match stream.start_tls(&services.tls).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                };
            }
            // Refused after the handshake, so that a TLS client can read why.
            let Some(_slot) = slot else {
                let _ = stream.write_all(too_many(protocol).as_bytes()).await;
                let _ = stream.shutdown().await;
                return;
            };
            let counting = services.clone();
            let _counted = counting.metrics.connection(protocol.name());
            let session = Connection {
                stream,
                peer,
                protocol,
                services,
                shutdown: token,
            };
            if let Err(e) = serve(session).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

fn too_many(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Imap => "* BYE [UNAVAILABLE] Too many connections from your address\r\n",
        _ => "421 4.7.0 Too many connections from your address\r\n",
    }
}

/// Hands an accepted connection to its protocol: the one place that knows them all.
async fn serve(conn: Connection) -> std::io::Result<()> {
    match conn.protocol {
        Protocol::Imap => crate::imap::serve(conn).await,
        Protocol::Smtp => crate::smtp::serve(conn, crate::smtp::Mode::Inbound).await,
        Protocol::Submission => crate::smtp::serve(conn, crate::smtp::Mode::Submission).await,
        // The admin API has its own server (axum) and never gets here.
        Protocol::Admin | Protocol::AcmeChallenge => Ok(()),
    }
}
