//! One SMTP session as a state machine without sockets: bytes in, replies out. smtp-proto
//! parses commands (and the DATA and BDAT bodies); this module decides.
//!
//! Two kinds of listener share it. Inbound (port 25's role) takes mail for this server's
//! addresses from anyone and relays nothing. Submission (RFC 6409, ports 587/465) takes mail
//! from authenticated clients to anywhere, under the send-as rules.

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

    // ----- AUTH (RFC 4954) -----

    async fn auth(&mut self, mechanism: u64, initial: String) -> Action {
        if self.mode != Mode::Submission {
            return self.error(503, "5.5.1", "AUTH is offered on the submission ports only");
        }
        if self.identity.is_some() {
            return self.error(503, "5.5.1", "Already authenticated");
        }
        if self.envelope.is_some() {
            return self.error(
                503,
                "5.5.1",
                "AUTH is not allowed during a mail transaction",
            );
        }
        if login::plaintext_refused(&self.services, self.peer, self.tls) {
            return self.error(538, "5.7.11", "Encryption required: use STARTTLS first");
        }
        let step = match mechanism {
            smtp_proto::AUTH_PLAIN => AuthStep::Plain,
            smtp_proto::AUTH_LOGIN => AuthStep::LoginUser,
            _ => return self.error(504, "5.5.4", "Unsupported mechanism; use PLAIN or LOGIN"),
        };
        if initial.is_empty() {
            let prompt = match step {
                AuthStep::LoginUser => "334 VXNlcm5hbWU6\r\n",
                _ => "334 \r\n",
            };
            self.out.extend_from_slice(prompt.as_bytes());
            self.phase = Phase::Auth(step);
            return Action::Continue;
        }
        // "=" is an empty initial response (RFC 4954 §4).
        let initial = if initial == "=" {
            String::new()
        } else {
            initial
        };
        self.auth_step(step, initial.into_bytes()).await
    }

    /// Collects one line of an AUTH exchange; `None` until it is complete.
    fn auth_line(&mut self, bytes: &mut std::slice::Iter<'_, u8>) -> Option<Vec<u8>> {
        let rest = bytes.as_slice();
        match rest.iter().position(|b| *b == b'\n') {
            Some(p) => {
                self.line.extend_from_slice(&rest[..p]);
                *bytes = rest[p + 1..].iter();
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Some(line)
            }
            None => {
                self.line.extend_from_slice(rest);
                *bytes = [].iter();
                if self.line.len() > MAX_AUTH_LINE {
                    self.line.clear();
                    // Treated as a cancelled exchange with an over-long line.
                    return Some(b"*".to_vec());
                }
                None
            }
        }
    }

    async fn auth_response(&mut self, line: Vec<u8>) -> Action {
        let Phase::Auth(step) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return Action::Continue;
        };
        if line == b"*" {
            return self.error(501, "5.0.0", "Authentication cancelled");
        }
        self.auth_step(step, line).await
    }

    async fn auth_step(&mut self, step: AuthStep, encoded: Vec<u8>) -> Action {
        let Ok(data) = base64::engine::general_purpose::STANDARD.decode(&encoded) else {
            return self.error(
                501,
                "5.5.2",
                "Invalid base64 in the authentication exchange",
            );
        };
        match step {
            AuthStep::Plain => match login::plain_credentials(&data) {
                Some((authzid, authcid, password)) => {
                    self.login(&authcid, &password, authzid.as_deref(), "PLAIN")
                        .await
                }
                None => self.error(501, "5.5.2", "Malformed PLAIN response"),
            },
            AuthStep::LoginUser => {
                let user = String::from_utf8_lossy(&data).into_owned();
                self.out.extend_from_slice(b"334 UGFzc3dvcmQ6\r\n");
                self.phase = Phase::Auth(AuthStep::LoginPassword { user });
                Action::Continue
            }
            AuthStep::LoginPassword { user } => {
                let password = String::from_utf8_lossy(&data).into_owned();
                self.login(&user, &password, None, "LOGIN").await
            }
        }
    }

    async fn login(
        &mut self,
        user: &str,
        password: &str,
        authzid: Option<&str>,
        mechanism: &str,
    ) -> Action {
        let attempt = login::Attempt {
            action: "smtp.login",
            peer: self.peer,
            tls: self.tls,
            login: user,
            authzid,
            mechanism,
            client_id: None,
        };
        let result = login::log_in(&self.services, login::Realm::MailClient, &attempt, password);
        match result.await {
            Ok(identity) => match SendAs::of(&self.services, &identity) {
                Ok(send_as) => {
                    self.send_as = send_as;
                    self.identity = Some(identity);
                    self.reply(235, "2.7.0", "Authentication successful");
                    Action::Continue
                }
                Err(e) => {
                    tracing::error!(error = %e, "loading send-as addresses failed");
                    self.reply(454, "4.7.0", "Temporary authentication failure");
                    Action::Continue
                }
            },
            // RFC 4954 §6: 454 4.7.0 is a temporary authentication failure.
            Err(LoginRefusal::Throttled) => self.error(
                454,
                "4.7.0",
                "Too many failed logins from your network or for this name; try again in a minute",
            ),
            Err(LoginRefusal::Suspended) => self.error(
                454,
                "4.7.0",
                "This organization is suspended; its mail is kept, try again later",
            ),
            Err(LoginRefusal::Unavailable) => self.error(
                454,
                "4.7.0",
                "Temporary authentication failure; try again shortly",
            ),
            Err(refusal) => {
                let text = match refusal {
                    LoginRefusal::MustChangePassword => {
                        "The password must be changed first (admin API: POST /api/v1/me/password)"
                    }
                    LoginRefusal::Disabled => "This user is disabled",
                    LoginRefusal::Alias => "That address is an alias; log in with its mailbox",
                    LoginRefusal::NoAccess => "No access to that mailbox",
                    _ => "Invalid credentials",
                };
                self.error(535, "5.7.8", text)
            }
        }
    }

    // ----- the transaction -----

    fn mail(&mut self, from: MailFrom<String>) -> Action {
        if self.helo.is_none() {
            return self.error(503, "5.5.1", "Say EHLO first");
        }
        if self.envelope.is_some() {
            return self.error(503, "5.5.1", "A transaction is already open; RSET first");
        }
        if self.mode == Mode::Submission && self.identity.is_none() {
            return self.error(530, "5.7.0", "Authentication required");
        }
        // A revoked grant, a disabled user or a changed password count from the next message
        // on, not from the next login (issue 5: changes reach open sessions at once).
        if let Err(action) = self.refresh_identity() {
            return action;
        }
        let max = self.services.config.smtp.max_message_bytes;
        if from.size > max {
            return self.error(
                552,
                "5.3.4",
                &format!("Messages are limited to {max} bytes"),
            );
        }
        // DSN is offered on submission only; elsewhere its parameters are not looked at.
        let dsn = match self.mode {
            Mode::Submission => match message_dsn(&from) {
                Ok(dsn) => dsn,
                Err(why) => return self.error(501, "5.5.4", why),
            },
            _ => DsnRequest::default(),
        };
        let sender = from.address;
        if self.mode == Mode::Submission {
            if sender.is_empty() {
                return self.error(550, "5.7.1", "A null sender is not taken on submission");
            }
            if self.send_as.mode(&sender).is_none() {
                return self.error(550, "5.7.1", &format!("You may not send as <{sender}>"));
            }
        }
        // Inbound, the reverse-path is only where bounces go: smtp-proto checked its syntax,
        // and odd but valid forms (quoted local parts) must not lose the mail.
        self.envelope = Some(Envelope {
            sender,
            size: from.size,
            smtputf8: from.flags & smtp_proto::MAIL_SMTPUTF8 != 0,
            local: Vec::new(),
            remote: Vec::new(),
            dsn,
        });
        self.reply(250, "2.1.0", "Sender OK");
        Action::Continue
    }

    fn rcpt(&mut self, to: RcptTo<String>) -> Action {
        let Some(envelope) = &self.envelope else {
            return self.error(503, "5.5.1", "MAIL FROM first");
        };
        if envelope.recipients() >= self.services.config.smtp.max_recipients {
            // RFC 5321 §4.5.3.1.10: 452, and the client sends the rest in another transaction.
            self.reply(452, "4.5.3", "Too many recipients");
            return Action::Continue;
        }
        let asked = match self.mode {
            Mode::Submission => match recipient_dsn(&to) {
                Ok(asked) => asked,
                Err(why) => return self.error(501, "5.5.4", why),
            },
            _ => None,
        };
        let address = to.address;
        let size = envelope.size as u64;
        if !envelope.smtputf8 && !address.is_ascii() {
            return self.error(553, "5.6.7", "A non-ASCII address needs SMTPUTF8");
        }
        // RFC 5321 §4.5.1: <Postmaster> without a domain must be taken.
        let lookup = if address.eq_ignore_ascii_case("postmaster") {
            format!("postmaster@{}", self.services.config.hostname)
        } else {
            address.clone()
        };
        match address::destination(&self.services, &lookup) {
            Err(Malformed::Routing) => self.error(
                554,
                "5.7.1",
                &format!("<{address}>: relay forms are refused"),
            ),
            Err(Malformed::NotAnAddress) => {
                self.error(501, "5.1.3", &format!("<{address}> is not an address"))
            }
            Ok(Destination::UnknownLocal) => {
                self.error(550, "5.1.1", &format!("<{address}>: no such mailbox here"))
            }
            Ok(Destination::Remote { .. }) if self.mode == Mode::Inbound => {
                self.error(554, "5.7.1", &format!("<{address}>: relay access denied"))
            }
            Ok(Destination::Remote { .. }) => {
                self.accept_recipient(address, None, asked);
                Action::Continue
            }
            Ok(Destination::Local { mailbox }) => {
                // RFC 3463 §3.3: X.2.1, mailbox disabled, not accepting messages; 450 so that
                // the sender retries until the organization is resumed.
                if delivery::suspended(&self.services, mailbox) {
                    self.reply(
                        450,
                        "4.2.1",
                        &format!("<{address}>: mailbox temporarily unavailable; try again later"),
                    );
                    return Action::Continue;
                }
                // With SIZE, a mailbox that cannot take the message says so here (RFC 1870 §6.3).
                if !delivery::has_room(&self.services, mailbox, size) {
                    self.reply(452, "4.2.2", &format!("<{address}>: mailbox full"));
                    return Action::Continue;
                }
                self.accept_recipient(address, Some(mailbox), asked);
                Action::Continue
            }
        }
    }

    fn accept_recipient(
        &mut self,
        address: String,
        local: Option<MailboxId>,
        asked: Option<RecipientDsn>,
    ) {
        if let Some(envelope) = &mut self.envelope {
            if let Some(asked) = asked {
                envelope.dsn.recipients.push(RecipientDsn {
                    address: address.clone(),
                    ..asked
                });
            }
            match local {
                Some(mailbox) => envelope.local.push((address, mailbox)),
                None => envelope.remote.push(address),
            }
        }
        self.reply(250, "2.1.5", "Recipient OK");
    }

    fn ready_for_body(&mut self) -> Result<(), Action> {
        match &self.envelope {
            None => Err(self.error(503, "5.5.1", "MAIL FROM first")),
            Some(e) if e.recipients() == 0 => Err(self.error(554, "5.5.1", "No valid recipients")),
            Some(_) => Ok(()),
        }
    }

    fn data(&mut self) -> Action {
        if let Err(action) = self.ready_for_body() {
            return action;
        }
        self.clear_message();
        self.start_message();
        // 354 carries no enhanced status code (RFC 2034 §4: only 2xx, 4xx and 5xx do).
        self.line("354 End data with <CR><LF>.<CR><LF>");
        self.phase = Phase::Data(DataReceiver::new());
        Action::Continue
    }

    fn bdat(&mut self, size: usize, last: bool) -> Action {
        // The chunk's bytes follow whatever the answer: they are read (and maybe dropped).
        self.phase = Phase::Bdat(BdatReceiver::new(size, last));
        if self.message.is_empty() && self.ready_for_body_quietly() {
            self.start_message();
        }
        Action::Continue
    }

    fn ready_for_body_quietly(&self) -> bool {
        self.envelope.as_ref().is_some_and(|e| e.recipients() > 0)
    }

    /// Puts the trace field first into the message (RFC 5321 §4.4): known once the envelope
    /// is, and written before the body so that a spooled message needs no second copy.
    fn start_message(&mut self) {
        let Some(envelope) = &self.envelope else {
            return;
        };
        let received = self.received(envelope);
        self.received_len = received.len();
        if self.message.push(received.as_bytes()).is_err() {
            self.no_room = true;
            self.message.clear();
        }
    }

    /// Bytes of the client's message received so far.
    fn body_len(&self) -> u64 {
        self.message.len().saturating_sub(self.received_len as u64)
    }

    /// Moves what the receiver produced into the message, unless it is already refused. A
    /// trailing CR stays behind until more comes: the receiver takes it back when it turns out
    /// to begin the final `CRLF.CRLF`.
    fn absorb(&mut self, done: bool) {
        let keep = usize::from(!done && self.scratch.last() == Some(&b'\r'));
        let take = self.scratch.len() - keep;
        if !self.too_big && !self.no_room {
            let max = self.services.config.smtp.max_message_bytes as u64;
            if self.body_len() + take as u64 > max {
                self.too_big = true;
                self.message.clear();
            } else if let Err(e) = self.message.push(&self.scratch[..take]) {
                if let SpoolError::Io { .. } = e {
                    tracing::error!(error = %e, "spooling a message failed");
                }
                self.no_room = true;
                self.message.clear();
            }
        }
        self.scratch.drain(..take);
    }

    async fn end_of_chunk(&mut self, last: bool) -> Action {
        if self.envelope.is_none() || self.envelope.as_ref().is_some_and(|e| e.recipients() == 0) {
            self.clear_message();
            if let Err(action) = self.ready_for_body() {
                return action;
            }
        }
        if !last {
            if self.too_big {
                self.reply(552, "5.3.4", "Message too big");
                self.reset();
                return Action::Continue;
            }
            let n = self.body_len();
            self.reply(250, "2.0.0", &format!("{n} octets received"));
            return Action::Continue;
        }
        self.end_of_message().await
    }

    async fn end_of_message(&mut self) -> Action {
        let Some(envelope) = self.envelope.take() else {
            return self.error(503, "5.5.1", "MAIL FROM first");
        };
        let incoming = std::mem::replace(&mut self.message, self.services.spool.incoming());
        let received_len = std::mem::take(&mut self.received_len);
        if std::mem::take(&mut self.no_room) {
            self.too_big = false;
            // RFC 3463 §3.4: 4.3.1, mail system full.
            return self.error(
                452,
                "4.3.1",
                "Too much mail in flight here; try again later",
            );
        }
        if std::mem::take(&mut self.too_big) {
            let max = self.services.config.smtp.max_message_bytes;
            return self.error(
                552,
                "5.3.4",
                &format!("Messages are limited to {max} bytes"),
            );
        }
        // Held until the message is stored: its share of the memory for messages in process.
        let mut message = match incoming.load().await {
            Ok(message) => message,
            Err(e) => {
                tracing::error!(error = %e, "reading a spooled message failed");
                return self.error(451, "4.3.0", "Local error in processing; try again later");
            }
        };
        if self.mode == Mode::Submission {
            let (received, body) = message.bytes().split_at(received_len.min(message.len()));
            let from_domain = match self.prepare_submission(body) {
                Ok((from_domain, None)) => from_domain,
                Ok((from_domain, Some(completed))) => {
                    let mut full = Vec::with_capacity(received.len() + completed.len());
                    full.extend_from_slice(received);
                    full.extend_from_slice(&completed);
                    message.replace(full);
                    from_domain
                }
                Err(action) => return action,
            };
            if let Err(action) = self.sign(&from_domain, &mut message) {
                return action;
            }
        }
        let filing = match self.mode {
            Mode::Inbound => match self.judge(&envelope, &mut message).await {
                Ok(filing) => filing,
                Err(action) => return action,
            },
            Mode::Submission => Filing::Inbox,
        };
        let (code, status, text) = self.store_message(&envelope, message, filing).await;
        let sent_for = std::mem::take(&mut self.sent_for);
        if code == 250 {
            self.record_sending_for(&sent_for, &envelope);
        }
        self.reply(code, status, &text);
        Action::Continue
    }

    /// Issue 12: a message sent as (or on behalf of) a mailbox through a grant is recorded
    /// in the mailbox's organization's log, with both identities.
    fn record_sending_for(&self, sent_for: &[super::submission::Sendable], envelope: &Envelope) {
        let Some(identity) = &self.identity else {
            return;
        };
        for s in sent_for {
            let action = match s.mode {
                SendMode::As => "smtp.send_as",
                SendMode::OnBehalf => "smtp.send_on_behalf",
            };
            let event = AuditEvent {
                id: AuditId(0),
                at: 0,
                org: Some(s.org),
                actor: identity.actor(),
                action: action.into(),
                target: s.address.clone(),
                client: Some(self.peer.ip().to_string()),
                outcome: Outcome::Success,
                detail: format!(
                    "mailbox {} to {} recipients",
                    s.mailbox,
                    envelope.local.len() + envelope.remote.len()
                ),
            };
            if let Err(e) = self.services.store.record_audit(event) {
                tracing::error!(error = %e, "could not record a message sent for a mailbox");
            }
        }
    }

    /// Checks `From:` against the send-as rules; the domain of its (first) address, and the
    /// message completed with what the server adds (RFC 6409 §8), if it adds anything.
    fn prepare_submission(&mut self, raw: &[u8]) -> Result<(String, Option<Vec<u8>>), Action> {
        let mut on_behalf = false;
        let addresses = match submission::from_addresses(raw) {
            Ok(addresses) => addresses,
            Err(submission::FromProblem::NotOne(n)) => {
                let text = format!("A message needs exactly one From: field, not {n}");
                return Err(self.error(550, "5.6.0", &text));
            }
            Err(submission::FromProblem::NoAddress) => {
                return Err(self.error(550, "5.6.0", "Every From: mailbox needs an address"));
            }
        };
        let from_domain = addresses
            .first()
            .and_then(|a| a.rsplit_once('@'))
            .map_or(String::new(), |(_, d)| d.to_string());
        let through_grant = !matches!(self.identity, Some(Identity::Mailbox(_)) | None);
        let mut sent_for = Vec::new();
        for from in addresses {
            let Some(sendable) = self.send_as.find(&from) else {
                return Err(self.error(550, "5.7.1", &format!("You may not send as <{from}>")));
            };
            let domain = from.rsplit_once('@').map_or("", |(_, d)| d);
            if !self
                .services
                .store
                .is_domain_verified(domain)
                .unwrap_or(false)
            {
                let text = format!(
                    "The domain of <{from}> is not verified yet: its admins publish its TXT record and verify it"
                );
                return Err(self.error(550, "5.7.1", &text));
            }
            on_behalf |= sendable.mode == SendMode::OnBehalf;
            if through_grant {
                sent_for.push(sendable.clone());
            }
        }
        self.sent_for = sent_for;
        let sender = match (&self.identity, on_behalf) {
            (Some(Identity::User { user, .. } | Identity::Delegate { user, .. }), true) => {
                Some(if user.display_name.is_empty() {
                    format!("<{}>", user.login)
                } else {
                    format!("{} <{}>", user.display_name, user.login)
                })
            }
            _ => None,
        };
        let additions = Additions {
            sender,
            message_id: !submission::has_field(raw, "message-id"),
            date: !submission::has_field(raw, "date"),
            drop_bcc: submission::has_field(raw, "bcc"),
        };
        if additions.is_empty() {
            return Ok((from_domain, None));
        }
        let completed = submission::complete(raw, &self.services.config.hostname, &additions);
        Ok((from_domain, Some(completed)))
    }

    /// Issue 13: SPF, DKIM, ARC and DMARC of a message from another server, then the spam
    /// filter. Fields the sender wrote that claim to be our verdicts go, ours go on top; a
    /// DMARC failure the domain wants refused is refused (RFC 7489 §6.6.2), with a 5xx so
    /// that the sending server bounces it rather than retries. Peers of
    /// `inbound.trusted_networks` are not judged.
    async fn judge(&mut self, envelope: &Envelope, message: &mut Loaded) -> Result<Filing, Action> {
        let services = self.services.clone();
        let hostname = &services.config.hostname;
        if let Some(cleaned) = authenticity::without_forged_results(message.bytes(), hostname) {
            message.replace(cleaned);
        }
        let ip = self.peer.ip();
        if services
            .config
            .inbound
            .trusted_networks
            .iter()
            .any(|n| n.contains(ip))
        {
            return Ok(Filing::Inbox);
        }
        let helo = self.helo.clone().unwrap_or_default();
        let sender = authenticity::Sender {
            ip,
            helo: &helo,
            mail_from: &envelope.sender,
        };
        let mut filing = Filing::Inbox;
        match authenticity::check(&services, &sender, message.bytes()).await {
            None => {}
            Some(authenticity::Verdict::Reject(why)) => return Err(self.error(550, "5.7.1", &why)),
            Some(authenticity::Verdict::Deliver { header, filing: f }) => {
                prepend(message, header.as_bytes(), None);
                filing = f;
            }
        }
        let Some(filter) = &services.filter else {
            return Ok(filing);
        };
        if let Some(cleaned) =
            submission::without_fields_where(message.bytes(), filter::is_spam_status)
        {
            message.replace(cleaned);
        }
        let recipients: Vec<&str> = envelope.local.iter().map(|(a, _)| a.as_str()).collect();
        match filter.check(&sender, &recipients, message.shared()).await {
            filter::Outcome::Refuse { code, status, text } => Err(self.error(code, status, &text)),
            filter::Outcome::Deliver {
                header,
                filing: f,
                subject,
            } => {
                prepend(message, header.as_bytes(), subject.as_deref());
                Ok(if f == Filing::Junk { f } else { filing })
            }
        }
    }

    /// Puts the DKIM signatures of the `From:` domain on top of a submitted message, before
    /// it is split between local and remote recipients (so that both copies verify).
    fn sign(&mut self, from_domain: &str, message: &mut Loaded) -> Result<(), Action> {
        let services = &self.services;
        // Hashing a large body and an RSA signature: not on the runtime's threads.
        let signed = crate::connection::blocking_here(|| {
            let fields = crate::dkim::signatures(services, from_domain, message.bytes())?;
            if fields.is_empty() {
                return Ok::<_, crate::dkim::DkimError>(None);
            }
            let mut full = Vec::with_capacity(fields.len() + message.len());
            full.extend_from_slice(&fields);
            full.extend_from_slice(message.bytes());
            Ok(Some(full))
        });
        match signed {
            Ok(Some(full)) => message.replace(full),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "DKIM signing failed");
                return Err(self.error(
                    451,
                    "4.3.0",
                    "The message could not be signed; try again later",
                ));
            }
        }
        Ok(())
    }

    /// Delivers locally and queues the rest; the reply says whether all of it is on disk.
    async fn store_message(
        &self,
        envelope: &Envelope,
        message: Loaded,
        filing: Filing,
    ) -> (u16, &'static str, String) {
        let mailboxes: Vec<MailboxId> = envelope.local.iter().map(|(_, m)| *m).collect();
        // With local copies to write, queued first but held: released once they are written,
        // taken back if they fail. A 4xx then leaves nothing behind, nothing has left yet,
        // and the client's retry delivers everything once.
        let hold = if mailboxes.is_empty() {
            Hold::No
        } else {
            Hold::UntilReleased
        };
        let queued = if envelope.remote.is_empty() {
            Vec::new()
        } else {
            let outgoing = envelope.outgoing(hold);
            match super::outbound::enqueue(&self.services, message.bytes(), outgoing).await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::error!(error = %e, "queueing failed");
                    return (451, "4.3.0", "Queueing failed; try again later".into());
                }
            }
        };
        if mailboxes.is_empty() {
            return self.accepted(envelope);
        }
        let wants_report = envelope
            .local
            .iter()
            .any(|(address, _)| envelope.dsn.wants_success(address));
        let header = wants_report.then(|| dsn::returned_header(message.bytes()).to_vec());
        if let Err(e) = delivery::deliver_to(&self.services, &mailboxes, message, filing).await {
            super::outbound::withdraw(&self.services, &queued).await;
            if let DeliveryError::OverQuota = e {
                return (452, "4.2.2", "A mailbox is full; try again later".into());
            }
            tracing::error!(error = %e, "local delivery failed");
            return (
                451,
                "4.3.0",
                "Local delivery failed; try again later".into(),
            );
        }
        if !queued.is_empty()
            && let Err(e) = super::outbound::release(&self.services, &queued).await
        {
            // The local copies stay: the client's retry may deliver them twice, which beats
            // a 250 for remote copies that a restart would drop.
            tracing::error!(error = %e, "releasing queued mail failed");
            super::outbound::withdraw(&self.services, &queued).await;
            return (451, "4.3.0", "Queueing failed; try again later".into());
        }
        if let Some(header) = header {
            self.report_local_deliveries(envelope, &header).await;
        }
        self.accepted(envelope)
    }

    /// Tells the sender of the local deliveries they asked to hear of (NOTIFY=SUCCESS, RFC
    /// 3461 §4.1). The message is in the mailboxes already: a report that fails is logged.
    async fn report_local_deliveries(&self, envelope: &Envelope, header: &[u8]) {
        let outcomes = envelope
            .local
            .iter()
            .map(|(address, _)| dsn::Outcome::new(address, dsn::Action::Delivered, ""))
            .collect();
        let about = dsn::Reported {
            sender: &envelope.sender,
            arrival: now_millis(),
            dsn: &envelope.dsn,
            raw: header,
        };
        if let Err(e) = dsn::report(&self.services, &about, outcomes).await {
            tracing::error!(error = %e, "the delivery report could not be sent");
        }
    }

    fn accepted(&self, envelope: &Envelope) -> (u16, &'static str, String) {
        let metrics = &self.services.metrics;
        metrics.delivery(envelope.local.len(), envelope.remote.len());
        (250, "2.0.0", "Message accepted".into())
    }

    fn received(&self, envelope: &Envelope) -> String {
        // RFC 3848: ESMTP, then S for TLS and A for authenticated; RFC 6531 §4.3 names the
        // SMTPUTF8 ones UTF8SMTP, UTF8SMTPS, UTF8SMTPA, UTF8SMTPSA.
        let mut protocol = String::from(match (envelope.smtputf8, self.esmtp) {
            (true, _) => "UTF8SMTP",
            (false, true) => "ESMTP",
            (false, false) => "SMTP",
        });
        if self.tls {
            protocol.push('S');
        }
        if self.identity.is_some() {
            protocol.push('A');
        }
        let single = match (envelope.local.as_slice(), envelope.remote.as_slice()) {
            ([(only, _)], []) => Some(only.as_str()),
            ([], [only]) => Some(only.as_str()),
            _ => None,
        };
        delivery::received_header(
            &self.services,
            self.helo.as_deref().unwrap_or("unknown"),
            self.peer.ip(),
            &protocol,
            single,
        )
    }
}

/// `header` put on top of `message`, its subject first replaced by `subject`.
fn prepend(message: &mut Loaded, header: &[u8], subject: Option<&str>) {
    let rest = subject.map(|s| filter::with_subject(message.bytes(), s));
    let rest = rest.as_deref().unwrap_or(message.bytes());
    let mut full = Vec::with_capacity(header.len() + rest.len());
    full.extend_from_slice(header);
    full.extend_from_slice(rest);
    message.replace(full);
}

impl Envelope {
    pub(super) fn outgoing(&self, hold: Hold) -> Outgoing<'_> {
        Outgoing {
            sender: &self.sender,
            recipients: &self.remote,
            dsn: &self.dsn,
            hold,
        }
    }
}
