//! An accepted client connection as a protocol session gets it: the stream (plain or TLS,
//! upgraded in place by STARTTLS), who is at the other end, the shared services, and the
//! server's shutdown. A leaf: `net` accepts connections and hands them to the protocols;
//! the protocols depend on this module, not on `net`.

mod dialogue;
pub mod proxy;
mod stream;

pub use dialogue::{Action, Dialogue, Output, Waiting, converse};
pub use stream::Stream;

use crate::services::Services;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Imap,
    Smtp,
    Submission,
    Admin,
    /// Only the answers to ACME HTTP-01 challenges (`[tls.acme] challenge_listen`).
    AcmeChallenge,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Imap => "imap",
            Protocol::Smtp => "smtp",
            Protocol::Submission => "submission",
            Protocol::Admin => "admin",
            Protocol::AcmeChallenge => "acme-challenge",
        }
    }
}

/// An accepted client connection, handed to its protocol.
pub struct Connection {
    pub stream: Stream,
    pub peer: SocketAddr,
    pub protocol: Protocol,
    pub services: Arc<Services>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
}

/// Runs work that blocks (a disk wait, a long computation on borrowed data) without holding
/// up the other sessions served by this runtime worker: tokio hands them to another
/// meanwhile. On a single-threaded runtime (the tests, the fuzzer) it simply runs.
pub fn blocking_here<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// Writes `bytes` in pieces, each of which must go out within `stall`: a large answer to a
/// slow but live reader takes as long as it needs, while a client that stops reading is
/// dropped instead of holding its task, its buffer and its connection slot.
pub async fn write_all_within(
    stream: &mut Stream,
    bytes: &[u8],
    stall: Duration,
) -> std::io::Result<()> {
    let stalled = |_| std::io::Error::new(std::io::ErrorKind::TimedOut, "client stopped reading");
    for piece in bytes.chunks(64 * 1024) {
        tokio::time::timeout(stall, stream.write_all(piece))
            .await
            .map_err(stalled)??;
    }
    // TLS: rustls takes the plaintext and keeps what the socket would not take yet; only a
    // flush sends that tail. Without it, the end of a large answer waited for the client's
    // next command, which never came (found by tests/import.rs reading 5 MB in one FETCH).
    tokio::time::timeout(stall, stream.flush())
        .await
        .map_err(stalled)??;
    Ok(())
}

/// The next connection on `listener`. An accept that fails (out of file descriptors and the
/// like) is retried after a pause rather than in a spin.
pub async fn accept(listener: &tokio::net::TcpListener) -> (tokio::net::TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
