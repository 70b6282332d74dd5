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

use crate::connection::{Connection, Dialogue, Waiting};
use std::time::Duration;

/// Runs store work that may wait on the disk (a flush) without holding up
/// the other sessions served by this runtime worker (see `connection::blocking_here`).
pub(crate) fn waiting_on_disk<T>(work: impl FnOnce() -> T) -> T {
    crate::connection::blocking_here(work)
}

/// Serves one IMAP connection until the client logs out, the connection drops, the session
/// times out or the server shuts down.
pub async fn serve(conn: Connection) -> std::io::Result<()> {
    let session = Session::new(conn.services.clone(), conn.peer, conn.stream.is_tls());
    crate::connection::converse(conn, session).await
}

/// What wakes an IMAP session between commands.
pub enum Wake {
    /// A change to the selected folder while IDLE, or to the session's access (a revoked
    /// grant ends a delegate's session within a second, not at its next command: issue 3).
    Changed { idle: bool },
    /// RFC 5465 §3: a watched folder's STATUS goes out at any time.
    Notified,
}

impl Dialogue for Session {
    type Wake = Wake;

    fn greeting(&self) -> Vec<u8> {
        Session::greeting(self)
    }

    async fn feed_some(&mut self, bytes: &[u8]) -> (Output, usize) {
        Session::feed_some(self, bytes).await
    }

    fn wake(&mut self) -> Option<Waiting<Wake>> {
        let mut folder_watch = self.idle_watch();
        let mut access_watch = self.access_watch();
        let idle = self.is_idle();
        let logged_in = self.is_logged_in();
        // Changes that came between the last look and these subscriptions wake at once.
        let pending = (idle || logged_in) && self.has_pending_changes();
        let notify_watch = self.notify_watch();
        Some(Box::pin(async move {
            let changed = async {
                if pending {
                    return;
                }
                // While IDLE, folder changes and access changes wake the session; otherwise
                // access changes alone.
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
            let notified = async {
                match &notify_watch {
                    Some(wake) => wake.notified().await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = changed => Wake::Changed { idle },
                _ = notified => Wake::Notified,
            }
        }))
    }

    async fn woken(&mut self, wake: Wake) -> Output {
        match wake {
            Wake::Changed { idle: true } => self.idle_update().await,
            Wake::Changed { idle: false } => self.access_update(),
            Wake::Notified => self.notify_update(),
        }
    }

    fn tls_started(&mut self) {
        Session::tls_started(self)
    }

    fn silence(&self) -> (Duration, &'static [u8]) {
        let seconds = self.services.config.imap.autologout_seconds;
        (
            Duration::from_secs(seconds),
            b"* BYE Autologout; idle for too long\r\n",
        )
    }

    fn farewell(&self) -> &'static [u8] {
        b"* BYE Server shutting down\r\n"
    }

    fn write_limit(&self) -> Duration {
        Duration::from_secs(self.services.config.imap.write_stall_seconds)
    }

    fn buffer_size(&self) -> usize {
        // Small on purpose: thousands of idle sessions each hold one (issue 3: 50 KiB each).
        8 * 1024
    }
}
