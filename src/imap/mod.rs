//! IMAP4rev1 (RFC 3501) with the extensions Thunderbird and Outlook use, on imap-codec.
//!
//! `session` is the protocol as a state machine without sockets; this module drives it over a
//! connection: reads, writes, STARTTLS, IDLE wake-ups, autologout and server shutdown.

mod acl;
mod append;
mod authentication;
mod context;
mod dispatch;
mod extended;
mod extension;
mod fetch;
mod folders;
mod framing;
mod identity;
mod list;
mod notify;
mod objects;
mod search;
mod selected;
mod selecting;
mod selection;
mod session;
mod sort;
mod spooled;
mod states;
mod syntax;
mod thread;
pub mod utf7;
mod vanished;
mod wire;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod tests;

pub use identity::Identity;
pub use session::{Action, Output, Session};

use crate::connection::{Connection, Stream};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Runs store work that may wait on the disk (a flush) without holding up
/// the other sessions served by this runtime worker (see `connection::blocking_here`).
pub(crate) fn waiting_on_disk<T>(work: impl FnOnce() -> T) -> T {
    crate::connection::blocking_here(work)
}

/// Serves one IMAP connection until the client logs out, the connection drops, the session
/// times out or the server shuts down.
pub async fn serve(conn: Connection) -> std::io::Result<()> {
    let Connection {
        mut stream,
        peer,
        services,
        shutdown,
        ..
    } = conn;
    let autologout = Duration::from_secs(services.config.imap.autologout_seconds);
    let stall = Duration::from_secs(services.config.imap.write_stall_seconds);
    let mut session = Session::new(services.clone(), peer, stream.is_tls());
    crate::connection::write_all_within(&mut stream, &session.greeting(), stall).await?;
    // Small on purpose: thousands of idle sessions each hold one (issue 3: 50 KiB each).
    let mut buf = vec![0u8; 8 * 1024];
    // Bytes read but not yet fed: the commands pipelined behind one just answered.
    let mut unread = 0..0;
    loop {
        let output = if unread.is_empty() {
            let (output, read) =
                next_event(&mut session, &mut stream, &mut buf, &shutdown, autologout).await?;
            unread = read;
            output
        } else {
            let (output, used) = session.feed_some(&buf[unread.clone()]).await;
            unread.start += used;
            Some(output)
        };
        let Some(output) = output else {
            // A BYE written on the way out still needs its flush (TLS keeps a tail).
            let _ = tokio::time::timeout(stall, stream.shutdown()).await;
            return Ok(());
        };
        crate::connection::write_all_within(&mut stream, &output.bytes, stall).await?;
        match output.action {
            Action::Continue => {}
            Action::Close => {
                let _ = stream.shutdown().await;
                return Ok(());
            }
            Action::StartTls => {
                // RFC 3501 §6.2.1: nothing the client sent before the handshake may count.
                unread = 0..0;
                stream.flush().await?;
                stream = stream.start_tls(&services.tls).await?;
                session.tls_started();
            }
        }
    }
}

/// Waits for the client's bytes or an event for the session, and answers it: `None` when
/// the connection is over. With bytes, also the range of `buf` not yet fed.
async fn next_event(
    session: &mut Session,
    stream: &mut Stream,
    buf: &mut [u8],
    shutdown: &CancellationToken,
    autologout: Duration,
) -> std::io::Result<(Option<Output>, std::ops::Range<usize>)> {
    {
        let mut folder_watch = session.idle_watch();
        let mut access_watch = session.access_watch();
        let idle = session.is_idle();
        let logged_in = session.is_logged_in();
        // While IDLE, folder changes and access changes wake the session; otherwise access
        // changes alone, so that a revoked delegate is ended within a second, not at the
        // next command (issue 3).
        // Changes that came between the last look and these subscriptions wake at once.
        let pending = (idle || logged_in) && session.has_pending_changes();
        let notify_watch = session.notify_watch();
        let notified = async {
            match &notify_watch {
                Some(wake) => wake.notified().await,
                None => std::future::pending::<()>().await,
            }
        };
        let event = async {
            if pending {
                return;
            }
            match (&mut folder_watch, idle, logged_in) {
                (Some(rx), true, _) => {
                    tokio::select! {
                        _ = rx.recv() => {}
                        _ = access_watch.recv() => {}
                    }
                }
                (None, true, _) | (_, false, true) => {
                    let _ = access_watch.recv().await;
                }
                _ => std::future::pending::<()>().await,
            }
        };
        let output = tokio::select! {
            read = tokio::time::timeout(autologout, stream.read(buf)) => match read {
                Err(_) => {
                    stream.write_all(b"* BYE Autologout; idle for too long\r\n").await?;
                    return Ok((None, 0..0));
                }
                Ok(Ok(0)) => return Ok((None, 0..0)),
                Ok(Ok(n)) => {
                    let (output, used) = session.feed_some(&buf[..n]).await;
                    return Ok((Some(output), used..n));
                }
                Ok(Err(e)) => return Err(e),
            },
            _ = event => if idle { session.idle_update().await } else { session.access_update() },
            // RFC 5465 §3: a watched folder's STATUS goes out at any time.
            _ = notified => session.notify_update(),
            _ = shutdown.cancelled() => {
                stream.write_all(b"* BYE Server shutting down\r\n").await?;
                return Ok((None, 0..0));
            }
        };
        Ok((Some(output), 0..0))
    }
}
