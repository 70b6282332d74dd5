//! SMTP (RFC 5321) on smtp-proto: inbound delivery to local mailboxes and aliases,
//! authenticated submission (RFC 6409) under the send-as rules, and the outbound queue.
//!
//! `session` is the protocol as a state machine without sockets; this module drives it over
//! a connection: reads, writes, STARTTLS, timeouts and server shutdown.

pub mod address;
mod authenticity;
pub mod client;
pub mod delivery;
mod dsn;
pub(crate) mod filter;
pub mod notice;
pub mod outbound;
mod session;
pub(crate) mod submission;

#[cfg(test)]
mod tests;

pub use session::{Action, Mode, Output, Session};

use crate::connection::Connection;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves one SMTP connection until QUIT, a drop, a timeout or server shutdown.
pub async fn serve(conn: Connection, mode: Mode) -> std::io::Result<()> {
    let Connection {
        mut stream,
        peer,
        services,
        shutdown,
        ..
    } = conn;
    let timeout = Duration::from_secs(services.config.smtp.timeout_seconds);
    let mut session = Session::new(services.clone(), peer, stream.is_tls(), mode);
    stream.write_all(&session.greeting()).await?;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let output = tokio::select! {
            read = tokio::time::timeout(timeout, stream.read(&mut buf)) => match read {
                Err(_) => {
                    stream.write_all(session.timeout_reply()).await?;
                    return Ok(());
                }
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(n)) => session.feed(&buf[..n]).await,
                Ok(Err(e)) => return Err(e),
            },
            _ = shutdown.cancelled() => {
                stream.write_all(b"421 4.3.2 Server shutting down\r\n").await?;
                return Ok(());
            }
        };
        // A client that stops reading must not hold the session forever.
        crate::connection::write_all_within(&mut stream, &output.bytes, timeout).await?;
        match output.action {
            Action::Continue => {}
            Action::Close => {
                let _ = stream.shutdown().await;
                return Ok(());
            }
            Action::StartTls => {
                stream.flush().await?;
                stream = stream.start_tls(&services.tls).await?;
                session.tls_started();
            }
        }
    }
}
