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

use crate::connection::{Connection, Dialogue, Waiting};
use std::time::Duration;

/// Serves one SMTP connection until QUIT, a drop, a timeout or server shutdown.
pub async fn serve(conn: Connection, mode: Mode) -> std::io::Result<()> {
    let tls = conn.stream.is_tls();
    let session = Session::new(conn.services.clone(), conn.peer, tls, mode);
    crate::connection::converse(conn, session).await
}

impl Dialogue for Session {
    /// Only the client wakes an SMTP session.
    type Wake = std::convert::Infallible;

    fn greeting(&self) -> Vec<u8> {
        Session::greeting(self)
    }

    async fn feed_some(&mut self, bytes: &[u8]) -> (Output, usize) {
        (self.feed(bytes).await, bytes.len())
    }

    fn wake(&mut self) -> Option<Waiting<Self::Wake>> {
        None
    }

    async fn woken(&mut self, wake: Self::Wake) -> Output {
        match wake {}
    }

    fn tls_started(&mut self) {
        Session::tls_started(self)
    }

    fn silence(&self) -> (Duration, &'static [u8]) {
        (self.timeout(), self.timeout_reply())
    }

    fn farewell(&self) -> &'static [u8] {
        b"421 4.3.2 Server shutting down\r\n"
    }

    /// A client that stops reading must not hold the session forever.
    fn write_limit(&self) -> Duration {
        self.timeout()
    }

    fn buffer_size(&self) -> usize {
        16 * 1024
    }
}
