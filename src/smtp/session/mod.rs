//! One SMTP session as a state machine without sockets: bytes in, replies out. smtp-proto
//! parses commands (and the DATA and BDAT bodies); this module decides.
//!
//! Two kinds of listener share it. Inbound (port 25's role) takes mail for this server's
//! addresses from anyone and relays nothing. Submission (RFC 6409, ports 587/465) takes mail
//! from authenticated clients to anywhere, under the send-as rules.

mod auth;
mod message;
mod transaction;

use super::address::{self, Destination, Malformed};
use super::authenticity;
use super::delivery::{self, DeliveryError, Filing};
use super::dsn::{self, message_dsn, recipient_dsn};
use super::filter;
use super::outbound::Outgoing;
use super::submission::{self, Additions, SendAs};
use crate::login::{self, Identity, LoginRefusal};
use crate::model::*;
use crate::services::Services;
use crate::store::spool::Loaded;
use crate::store::{Hold, Incoming, SpoolError};
use base64::Engine;
use smtp_proto::request::receiver::{BdatReceiver, DataReceiver, RequestReceiver};
use smtp_proto::{Error as ParseError, MailFrom, RcptTo, Request};
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Inbound,
    Submission,
}

pub use crate::connection::{Action, Output};

/// What the next bytes are.
enum Phase {
    Command,
    Data(DataReceiver),
    Bdat(BdatReceiver),
    /// A response line of an AUTH exchange (RFC 4954 §4).
    Auth(AuthStep),
}

enum AuthStep {
    Plain,
    LoginUser,
    LoginPassword { user: String },
}

/// A transaction from MAIL FROM on.
struct Envelope {
    sender: String,
    /// The size MAIL FROM announced (RFC 1870), 0 when none.
    size: usize,
    smtputf8: bool,
    local: Vec<(String, MailboxId)>,
    remote: Vec<String>,
    /// What the sender asked to be told (RFC 3461; submission only).
    dsn: DsnRequest,
}

impl Envelope {
    fn recipients(&self) -> usize {
        self.local.len() + self.remote.len()
    }
}

pub struct Session {
    services: Arc<Services>,
    peer: SocketAddr,
    tls: bool,
    mode: Mode,
    phase: Phase,
    requests: RequestReceiver,
    helo: Option<String>,
    esmtp: bool,
    identity: Option<Identity>,
    send_as: SendAs,
    /// The mailboxes the message in hand is sent for through a grant (its `From:`), to be
    /// recorded in their organizations' audit logs once it is accepted.
    sent_for: Vec<super::submission::Sendable>,
    envelope: Option<Envelope>,
    /// The message being received: in memory while small, then in the spool. It starts
    /// with the trace field the server adds, so that it is stored as it was spooled.
    message: Incoming,
    /// The length of that trace field, which the size limit does not count.
    received_len: usize,
    /// What the DATA or BDAT receiver produced from the last bytes, on its way to `message`.
    scratch: Vec<u8>,
    /// The message grew past the size limit: what follows is read and dropped.
    too_big: bool,
    /// The server's budget of bytes in flight was spent: what follows is read and dropped,
    /// and the message refused with a temporary error.
    no_room: bool,
    /// An AUTH response line being collected.
    line: Vec<u8>,
    errors: u32,
    commands: u32,
    out: Vec<u8>,
}

const MAX_AUTH_LINE: usize = 12 * 1024;

/// RFC 5321 §4.5.3.1.4 sets 512 octets for a command line; extensions make them longer, and
/// smtp-proto refuses partial lines beyond 4096. A whole line in one read is held to the same.
fn over_long_line(rest: &[u8]) -> bool {
    let limit = smtp_proto::request::receiver::MAX_LINE_LENGTH;
    rest.iter()
        .take(limit + 1)
        .position(|b| *b == b'\n')
        .is_none()
        && rest.len() > limit
}

impl Session {
    pub fn new(services: Arc<Services>, peer: SocketAddr, tls: bool, mode: Mode) -> Session {
        Session {
            message: services.spool.incoming(),
            services,
            peer,
            tls,
            mode,
            phase: Phase::Command,
            requests: RequestReceiver::default(),
            helo: None,
            esmtp: false,
            identity: None,
            send_as: SendAs::default(),
            sent_for: Vec::new(),
            envelope: None,
            scratch: Vec::new(),
            received_len: 0,
            too_big: false,
            no_room: false,
            line: Vec::new(),
            errors: 0,
            commands: 0,
            out: Vec::new(),
        }
    }

    pub fn greeting(&self) -> Vec<u8> {
        let host = &self.services.config.hostname;
        format!("220 {host} ESMTP mailgate\r\n").into_bytes()
    }

    pub fn tls_started(&mut self) {
        self.tls = true;
        // RFC 3207 §4.2: the session starts over; nothing learned before TLS is kept.
        self.helo = None;
        self.esmtp = false;
        self.envelope = None;
        self.identity = None;
        self.send_as = SendAs::default();
        self.commands = 0;
        self.requests = RequestReceiver::default();
    }

    /// How long the client may stay silent, or take to read an answer.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.services.config.smtp.timeout_seconds)
    }

    /// The client is told the session is over because it took too long.
    pub fn timeout_reply(&self) -> &'static [u8] {
        b"421 4.4.2 Timeout: closing the connection\r\n"
    }

    /// Feeds bytes from the client; returns the replies and what to do next.
    pub async fn feed(&mut self, input: &[u8]) -> Output {
        let mut bytes = input.iter();
        loop {
            let action = match &mut self.phase {
                Phase::Command if over_long_line(bytes.as_slice()) => {
                    let rest = bytes.as_slice();
                    let end = rest
                        .iter()
                        .position(|b| *b == b'\n')
                        .map_or(rest.len(), |p| p + 1);
                    bytes = rest[end..].iter();
                    self.error(500, "5.5.2", "Line too long")
                }
                Phase::Command => {
                    let before = bytes.len();
                    match self.requests.ingest(&mut bytes) {
                        Ok(request) => {
                            let request = request.into_owned();
                            self.command(request).await
                        }
                        Err(ParseError::NeedsMoreData { .. }) => break,
                        Err(e) => {
                            let action = self.parse_error(e);
                            if bytes.len() == before && action == Action::Continue {
                                break;
                            }
                            action
                        }
                    }
                }
                Phase::Data(receiver) => {
                    let done = receiver.ingest(&mut bytes, &mut self.scratch);
                    self.absorb(done);
                    if !done {
                        break;
                    }
                    self.phase = Phase::Command;
                    self.end_of_message().await
                }
                Phase::Bdat(receiver) => {
                    let done = receiver.ingest(&mut bytes, &mut self.scratch);
                    let last = receiver.is_last;
                    self.absorb(done);
                    if !done {
                        break;
                    }
                    self.phase = Phase::Command;
                    self.end_of_chunk(last).await
                }
                Phase::Auth(_) => match self.auth_line(&mut bytes) {
                    Some(line) => self.auth_response(line).await,
                    None => break,
                },
            };
            match action {
                Action::Continue => {}
                // RFC 3207 §4.2: whatever was pipelined after STARTTLS is dropped.
                other => return self.take(other),
            }
            if bytes.len() == 0 {
                break;
            }
        }
        self.take(Action::Continue)
    }

    fn take(&mut self, action: Action) -> Output {
        Output {
            bytes: std::mem::take(&mut self.out),
            action,
        }
    }

    fn line(&mut self, line: &str) {
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn reply(&mut self, code: u16, status: &str, text: &str) {
        self.out
            .extend_from_slice(format!("{code} {status} {text}\r\n").as_bytes());
    }

    /// An error reply; too many of them end the session (a client that is not speaking SMTP).
    fn error(&mut self, code: u16, status: &str, text: &str) -> Action {
        self.reply(code, status, text);
        self.errors += 1;
        if self.errors >= self.services.config.smtp.max_errors {
            self.reply(421, "4.7.0", "Too many errors; closing the connection");
            return Action::Close;
        }
        Action::Continue
    }

    fn parse_error(&mut self, e: ParseError) -> Action {
        match e {
            ParseError::UnknownCommand => self.error(500, "5.5.1", "Unknown command"),
            ParseError::InvalidSenderAddress => self.error(501, "5.1.7", "Invalid sender address"),
            ParseError::InvalidRecipientAddress => {
                self.error(501, "5.1.3", "Invalid recipient address")
            }
            ParseError::SyntaxError { syntax } => {
                self.error(501, "5.5.4", &format!("Syntax: {syntax}"))
            }
            ParseError::InvalidParameter { param } => {
                self.error(501, "5.5.4", &format!("Invalid parameter {param}"))
            }
            ParseError::UnsupportedParameter { param } => {
                self.error(504, "5.5.4", &format!("Unsupported parameter {param}"))
            }
            ParseError::ResponseTooLong => self.error(500, "5.5.2", "Line too long"),
            ParseError::NeedsMoreData { .. } | ParseError::InvalidResponse { .. } => {
                self.error(500, "5.5.2", "Syntax error")
            }
        }
    }

    async fn command(&mut self, request: Request<String>) -> Action {
        self.commands += 1;
        let limit = self.services.config.smtp.max_commands_before_auth;
        if self.mode == Mode::Submission && self.identity.is_none() && self.commands > limit {
            self.reply(421, "4.7.0", "Too many commands without authentication");
            return Action::Close;
        }
        match request {
            Request::Ehlo { host } => self.ehlo(host, true),
            Request::Helo { host } => self.ehlo(host, false),
            Request::Lhlo { .. } => self.error(500, "5.5.1", "LHLO is for LMTP"),
            Request::StartTls => self.starttls(),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response).await,
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size, is_last),
            Request::Rset => {
                self.reset();
                self.reply(250, "2.0.0", "Reset");
                Action::Continue
            }
            Request::Noop { .. } => {
                self.reply(250, "2.0.0", "OK");
                Action::Continue
            }
            Request::Quit => {
                let host = self.services.config.hostname.clone();
                self.reply(221, "2.0.0", &format!("{host} closing the connection"));
                Action::Close
            }
            // RFC 5321 §3.5.3: VRFY may answer 252 without saying whether the user exists.
            Request::Vrfy { .. } => {
                self.reply(
                    252,
                    "2.5.0",
                    "Cannot verify; send mail and it will be tried",
                );
                Action::Continue
            }
            Request::Expn { .. } => self.error(502, "5.5.1", "EXPN is not offered"),
            Request::Help { .. } => {
                self.reply(214, "2.0.0", "See RFC 5321; this server speaks ESMTP");
                Action::Continue
            }
            other => self.error(502, "5.5.1", &format!("{} is not offered", other.name())),
        }
    }

    fn refresh_identity(&mut self) -> Result<(), Action> {
        let Some(identity) = &mut self.identity else {
            return Ok(());
        };
        let still_valid = identity.refresh(&self.services).unwrap_or(false);
        let send_as = still_valid
            .then(|| SendAs::of(&self.services, identity).ok())
            .flatten();
        match send_as {
            Some(send_as) => {
                self.send_as = send_as;
                Ok(())
            }
            None => {
                self.identity = None;
                self.reply(421, "4.7.0", "Your access has changed; log in again");
                Err(Action::Close)
            }
        }
    }

    fn reset(&mut self) {
        self.envelope = None;
        self.clear_message();
    }

    fn clear_message(&mut self) {
        self.message.clear();
        self.scratch.clear();
        self.too_big = false;
        self.no_room = false;
    }

    fn ehlo(&mut self, host: String, extended: bool) -> Action {
        self.reset();
        self.helo = Some(host);
        self.esmtp = extended;
        let name = self.services.config.hostname.clone();
        if !extended {
            // No enhanced status code: RFC 2034 applies once EHLO has shown the extension.
            self.line(&format!("250 {name}"));
            return Action::Continue;
        }
        let mut lines = vec![
            format!("{name} at your service"),
            "PIPELINING".into(),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            format!("SIZE {}", self.services.config.smtp.max_message_bytes),
            "CHUNKING".into(),
        ];
        if !self.tls {
            lines.push("STARTTLS".into());
        }
        if self.mode == Mode::Submission {
            // RFC 3461: what the sender is told of each recipient, as Postfix offers it.
            lines.push("DSN".into());
        }
        if self.mode == Mode::Submission && self.offers_auth() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        let last = lines.len() - 1;
        for (i, line) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            self.line(&format!("250{sep}{line}"));
        }
        Action::Continue
    }

    fn offers_auth(&self) -> bool {
        self.identity.is_none() && !login::plaintext_refused(&self.services, self.peer, self.tls)
    }

    fn starttls(&mut self) -> Action {
        if self.tls {
            return self.error(503, "5.5.1", "TLS is already active");
        }
        self.reply(220, "2.0.0", "Ready to start TLS");
        Action::StartTls
    }
}
