//! The IMAP session as a state machine without sockets: bytes in, bytes out
//! (ARCHITECTURE.md §4). The network driver in `super` feeds it; tests and the fuzzer do the same.

use super::identity::Identity;
use super::selection::Selection;
use crate::model::*;
use crate::services::Services;
use crate::store::AccessChange;
use imap_codec::IdleDoneCodec;
use imap_codec::fragmentizer::Fragmentizer;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::Tag;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::broadcast;

pub use crate::connection::{Action, Output};

/// What the next complete message from the client is.
pub(super) enum Expect {
    Command,
    /// The client's answer in an AUTHENTICATE exchange.
    AuthenticateData {
        tag: Tag<'static>,
        step: SaslStep,
    },
    /// `DONE`, ending IDLE.
    IdleDone {
        tag: Tag<'static>,
    },
}

#[derive(Clone)]
pub(super) enum SaslStep {
    Plain,
    LoginUser,
    LoginPassword { user: String },
}

pub(super) enum State {
    NotAuthenticated,
    Authenticated(Identity),
    Selected(Identity, Box<Selection>),
    /// A user's own INBOX is selected: it exists and is always empty (ARCHITECTURE.md §3).
    EmptyInbox(Identity),
    Logout,
}

pub struct Session {
    pub(super) services: Arc<Services>,
    pub(super) peer: SocketAddr,
    pub(super) tls: bool,
    pub(super) state: State,
    pub(super) fragmentizer: Fragmentizer,
    /// Bytes fed but not yet part of a complete message (an upper bound: a message cut at the
    /// size limit counts in full), to know when the fragmentizer holds nothing.
    pub(super) unconsumed: usize,
    pub(super) expect: Expect,
    /// Bytes of the literal being received that the fragmentizer has yet to be given.
    pub(super) literal_left: usize,
    /// An APPEND literal going to the spool, or arrived there while the rest of its command
    /// is still to come.
    pub(super) spooled: Option<super::spooled::Spooling>,
    /// The spooled messages of the APPEND being handled, whose command holds an empty
    /// literal in each one's place (at the offset given).
    pub(super) spooled_messages: Vec<(usize, crate::store::spool::Loaded)>,
    /// Literal bytes announced so far in the current message: what the line limit leaves out.
    pub(super) literal_bytes: usize,
    /// The client's ID (RFC 2971), for the audit log.
    pub(super) client_id: Option<String>,
    pub(super) out: Vec<u8>,
    pub(super) access_events: broadcast::Receiver<AccessChange>,
    pub(super) rate: RateLimit,
    /// RFC 5465: the folders NOTIFY watches.
    pub(super) watching: Option<super::notify::Watching>,
    /// RFC 7162: CONDSTORE and QRESYNC as enabled in this session.
    pub(super) reporting: super::selection::Reporting,
    /// The OBJECTID and SAVEDATE items the current FETCH or STATUS asked for (`objects`).
    pub(super) object_items: super::objects::ObjectItems,
    /// The mailboxes this session opened through a grant, each recorded once (`selecting`).
    pub(super) opened: std::collections::HashSet<MailboxId>,
}

/// A token bucket: `rate` commands a second, `10 × rate` at once.
pub(super) struct RateLimit {
    rate: f64,
    tokens: f64,
    last: std::time::Instant,
}

impl RateLimit {
    pub(super) fn new(rate: u32) -> RateLimit {
        RateLimit {
            rate: f64::from(rate),
            tokens: f64::from(rate) * 10.0,
            last: std::time::Instant::now(),
        }
    }

    pub(super) fn allow(&mut self) -> bool {
        let now = std::time::Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate * 10.0);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub const CAPABILITIES: &str = "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID IDLE NAMESPACE UNSELECT UIDPLUS MOVE SPECIAL-USE CHILDREN ACL RIGHTS=kxte QUOTA QUOTA=RES-STORAGE ENABLE CONDSTORE QRESYNC LIST-EXTENDED LIST-STATUS ESEARCH SEARCHRES BINARY STATUS=SIZE SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES MULTIAPPEND CATENATE CONTEXT=SEARCH NOTIFY UTF8=ACCEPT OBJECTID SAVEDATE";

impl Session {
    pub fn new(services: Arc<Services>, peer: SocketAddr, tls: bool) -> Session {
        let access_events = services.store.hub().subscribe_access();
        Session {
            peer,
            tls,
            state: State::NotAuthenticated,
            fragmentizer: super::framing::new_fragmentizer(&services),
            unconsumed: 0,
            expect: Expect::Command,
            literal_left: 0,
            spooled: None,
            spooled_messages: Vec::new(),
            watching: None,
            literal_bytes: 0,
            client_id: None,
            out: Vec::new(),
            rate: RateLimit::new(services.config.imap.max_commands_per_second),
            reporting: Default::default(),
            object_items: Default::default(),
            opened: Default::default(),
            access_events,
            services,
        }
    }

    pub fn greeting(&self) -> Vec<u8> {
        format!(
            "* OK [CAPABILITY {}] {} mailgate ready\r\n",
            self.capabilities(),
            self.services.config.hostname
        )
        .into_bytes()
    }

    /// The capabilities for the current state (RFC 3501 §6.1.1, §7.2.1).
    pub fn capabilities(&self) -> String {
        let mut caps = CAPABILITIES.to_string();
        // RFC 7889: the largest APPEND taken, the same in every folder.
        let limit = self.services.config.imap.max_message_bytes;
        caps.push_str(&format!(" APPENDLIMIT={limit}"));
        if matches!(self.state, State::NotAuthenticated) {
            if !self.tls {
                caps.push_str(" STARTTLS");
            }
            if self.plaintext_refused() {
                caps.push_str(" LOGINDISABLED");
            } else {
                caps.push_str(" AUTH=PLAIN AUTH=LOGIN");
            }
        }
        caps
    }

    /// Passwords travel only over TLS, or over loopback when the configuration allows it.
    pub(super) fn plaintext_refused(&self) -> bool {
        crate::login::plaintext_refused(&self.services, self.peer, self.tls)
    }

    pub fn tls_started(&mut self) {
        self.tls = true;
    }

    pub fn is_idle(&self) -> bool {
        matches!(self.expect, Expect::IdleDone { .. })
    }

    pub fn is_logged_in(&self) -> bool {
        matches!(
            self.state,
            State::Authenticated(_) | State::Selected(..) | State::EmptyInbox(_)
        )
    }

    pub fn is_logged_out(&self) -> bool {
        matches!(self.state, State::Logout)
    }

    /// Receivers the driver may wait on while the session idles: the selected folder's events.
    pub fn idle_watch(&self) -> Option<broadcast::Receiver<crate::store::FolderEvent>> {
        match &self.state {
            State::Selected(_, sel) => Some(sel.events.resubscribe()),
            _ => None,
        }
    }

    /// Whether changes arrived that the session has not looked at yet, and that the driver's
    /// fresh receivers would not wake for: folder changes while IDLE, access changes always.
    pub fn has_pending_changes(&self) -> bool {
        let folder = match (&self.state, self.is_idle()) {
            (State::Selected(_, sel), true) => !sel.events.is_empty(),
            _ => false,
        };
        folder || !self.access_events.is_empty()
    }

    /// What wakes the driver when a folder NOTIFY watches changes.
    pub fn notify_watch(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.watching.as_ref().map(|w| w.wake())
    }

    pub fn access_watch(&self) -> broadcast::Receiver<AccessChange> {
        self.access_events.resubscribe()
    }

    /// Handles one complete client message.
    pub(super) async fn message(&mut self) -> Action {
        match std::mem::replace(&mut self.expect, Expect::Command) {
            Expect::Command => self.command_message().await,
            Expect::AuthenticateData { tag, step } => self.authenticate_data(tag, step).await,
            Expect::IdleDone { tag } => self.idle_done(tag),
        }
    }

    pub(super) fn tagged(&mut self, tag: &Tag<'_>, status: &str, text: &str) {
        self.tagged_text(tag.inner(), status, text);
    }

    pub(super) fn tagged_text(&mut self, tag: &str, status: &str, text: &str) {
        self.out.extend_from_slice(tag.as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(status.as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    pub(super) fn untagged(&mut self, text: &str) {
        self.out.extend_from_slice(b"* ");
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    pub(super) async fn command(&mut self, command: Command<'static>) -> Action {
        let Command { tag, body } = command;
        if !self.rate.allow() {
            self.tagged(
                &tag,
                "NO",
                "[LIMIT] Too many commands per second; slow down",
            );
            return Action::Continue;
        }
        if let Err(bye) = self.check_access_changes() {
            self.untagged(&format!("BYE {bye}"));
            self.state = State::Logout;
            return Action::Close;
        }
        match body {
            CommandBody::Capability => {
                let caps = self.capabilities();
                self.untagged(&format!("CAPABILITY {caps}"));
                self.sync_selection(true);
                self.tagged(&tag, "OK", "CAPABILITY completed");
            }
            CommandBody::Noop => {
                self.sync_selection(true);
                self.tagged(&tag, "OK", "NOOP completed");
            }
            CommandBody::Logout => {
                self.untagged("BYE mailgate logging out");
                self.tagged(&tag, "OK", "LOGOUT completed");
                self.state = State::Logout;
                return Action::Close;
            }
            CommandBody::Id { parameters } => {
                self.client_id = parameters.map(|p| {
                    p.iter()
                        .map(|(k, v)| {
                            let v =
                                v.0.as_ref()
                                    .map(|s| String::from_utf8_lossy(s.as_ref()).into_owned());
                            format!(
                                "{}={}",
                                String::from_utf8_lossy(k.as_ref()),
                                v.unwrap_or_default()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                });
                self.untagged("ID (\"name\" \"mailgate\")");
                self.tagged(&tag, "OK", "ID completed");
            }
            CommandBody::StartTLS => return self.starttls(&tag),
            CommandBody::Login { username, password } => {
                let login = String::from_utf8_lossy(username.as_ref()).into_owned();
                let password = String::from_utf8_lossy(password.declassify().as_ref()).into_owned();
                self.login(&tag, &login, &password, None, "LOGIN").await;
            }
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } => {
                let initial = initial_response.map(|r| r.declassify().to_vec());
                self.authenticate(tag, mechanism, initial).await;
            }
            CommandBody::Idle => self.idle(tag),
            CommandBody::Enable { capabilities } => self.enable(&tag, capabilities.as_ref()),
            body => self.authenticated_command(tag, body).await,
        }
        Action::Continue
    }

    /// A CONDSTORE-enabling command (FETCH MODSEQ, SEARCH MODSEQ, STORE UNCHANGEDSINCE)
    /// turns CONDSTORE on; the first one in a selected folder also tells its HIGHESTMODSEQ,
    /// which the SELECT did not (RFC 7162 §3.1).
    pub(super) fn enable_condstore(&mut self) {
        if self.reporting.condstore {
            return;
        }
        self.reporting.condstore = true;
        if let State::Selected(_, sel) = &self.state {
            let highest = sel.folder.highestmodseq;
            self.untagged(&format!("OK [HIGHESTMODSEQ {highest}] Highest"));
        }
    }

    /// RFC 5161 ENABLE, for CONDSTORE and QRESYNC (RFC 7162 §3.2.3: QRESYNC implies CONDSTORE)
    /// and UTF8=ACCEPT (RFC 6855 §3).
    pub(super) fn enable(
        &mut self,
        tag: &Tag<'_>,
        capabilities: &[imap_codec::imap_types::extensions::enable::CapabilityEnable<'_>],
    ) {
        use imap_codec::imap_types::extensions::enable::CapabilityEnable;
        if self.identity().is_none() {
            self.tagged(tag, "BAD", "ENABLE needs a login first");
            return;
        }
        let mut enabled = Vec::new();
        for cap in capabilities {
            match cap {
                CapabilityEnable::Utf8(
                    imap_codec::imap_types::extensions::utf8::Utf8Kind::Accept,
                ) => {
                    self.reporting.utf8 = true;
                    enabled.push("UTF8=ACCEPT");
                }
                CapabilityEnable::CondStore => {
                    self.reporting.condstore = true;
                    enabled.push("CONDSTORE");
                }
                // RFC 9051 §6.3.1: once on, never off again.
                other @ CapabilityEnable::Other(_)
                    if other.to_string().eq_ignore_ascii_case("IMAP4rev2") =>
                {
                    self.reporting.rev2 = true;
                    enabled.push("IMAP4rev2");
                }
                other @ CapabilityEnable::Other(_)
                    if other.to_string().eq_ignore_ascii_case("QRESYNC") =>
                {
                    self.reporting.condstore = true;
                    self.reporting.qresync = true;
                    enabled.push("QRESYNC");
                }
                _ => {}
            }
        }
        self.untagged(format!("ENABLED {}", enabled.join(" ")).trim_end());
        self.tagged(tag, "OK", "ENABLE completed");
    }

    /// Answers a handler's result.
    pub(super) fn finish(
        &mut self,
        tag: &Tag<'_>,
        result: Result<String, super::folders::Refusal>,
    ) {
        self.finish_text(tag.inner(), result);
    }

    /// [`Session::finish`] for a tag as text (the commands `extension` recognises).
    pub(super) fn finish_text(
        &mut self,
        tag: &str,
        result: Result<String, super::folders::Refusal>,
    ) {
        self.report_live_searches();
        match result {
            Ok(text) => self.tagged_text(tag, "OK", &text),
            Err(refusal) => {
                let (status, text) = refusal.answer();
                self.tagged_text(tag, status, text);
            }
        }
    }

    pub(super) fn idle(&mut self, tag: Tag<'static>) {
        if matches!(self.state, State::NotAuthenticated) {
            self.tagged(&tag, "BAD", "Log in first");
            return;
        }
        self.sync_selection(true);
        self.out.extend_from_slice(b"+ idling\r\n");
        self.expect = Expect::IdleDone { tag };
    }

    pub(super) fn idle_done(&mut self, tag: Tag<'static>) -> Action {
        let done = self
            .fragmentizer
            .decode_message(&IdleDoneCodec::default())
            .is_ok();
        if done {
            self.sync_selection(true);
            self.tagged(&tag, "OK", "IDLE terminated");
        } else {
            self.tagged(&tag, "BAD", "Expected DONE");
        }
        Action::Continue
    }

    /// During IDLE: reports what changed (RFC 2177), or ends the session when access went.
    pub async fn idle_update(&mut self) -> Output {
        if let Err(bye) = self.check_access_changes() {
            self.untagged(&format!("BYE {bye}"));
            self.state = State::Logout;
            return self.take(Action::Close);
        }
        self.sync_selection(true);
        self.take(Action::Continue)
    }

    /// Between commands: ends the session when its access went; says nothing otherwise.
    pub fn access_update(&mut self) -> Output {
        if let Err(bye) = self.check_access_changes() {
            self.untagged(&format!("BYE {bye}"));
            self.state = State::Logout;
            return self.take(Action::Close);
        }
        self.take(Action::Continue)
    }

    /// Applies access changes published since the last command: reloads the identity's
    /// facts; when the identity or the selected mailbox's `r` right is gone, says why the
    /// session must end.
    pub(super) fn check_access_changes(&mut self) -> Result<(), String> {
        if !crate::store::hub::drain(&mut self.access_events) {
            return Ok(());
        }
        let services = self.services.clone();
        let identity = match &mut self.state {
            State::Authenticated(identity)
            | State::Selected(identity, _)
            | State::EmptyInbox(identity) => identity,
            _ => return Ok(()),
        };
        match identity.refresh(&services) {
            Ok(true) => {}
            Ok(false) => return Err("Your access was revoked".into()),
            Err(e) => {
                tracing::error!(error = %e, "reloading access failed");
                return Err("Internal error while checking access".into());
            }
        }
        if let State::Selected(identity, sel) = &mut self.state {
            let access = identity.access(&sel.mailbox);
            if !access.may(Right::Read) {
                return Err(format!(
                    "[NOPERM] Access to {} was revoked",
                    super::utf7::encode(&sel.display)
                ));
            }
            sel.rights = access.rights;
        }
        if let Some(personal) = self.identity().and_then(|i| i.personal()).cloned()
            && self
                .identity()
                .is_some_and(|i| i.access(&personal).rights.is_empty())
        {
            return Err("[NOPERM] Access to this mailbox was revoked".into());
        }
        Ok(())
    }

    pub(super) fn identity(&self) -> Option<&Identity> {
        match &self.state {
            State::Authenticated(i) | State::Selected(i, _) | State::EmptyInbox(i) => Some(i),
            _ => None,
        }
    }
}
