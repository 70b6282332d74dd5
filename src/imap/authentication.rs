//! STARTTLS, LOGIN and AUTHENTICATE (RFC 3501 §6.2, RFC 4959 SASL-IR): who the session is.

use super::session::{Action, Expect, SaslStep, Session, State};
use bounded_static::IntoBoundedStatic;
use imap_codec::AuthenticateDataCodec;
use imap_codec::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_codec::imap_types::core::Tag;

impl Session {
    pub(super) fn starttls(&mut self, tag: &Tag<'_>) -> Action {
        if self.tls {
            self.tagged(tag, "BAD", "TLS is already active");
            return Action::Continue;
        }
        if !matches!(self.state, State::NotAuthenticated) {
            self.tagged(tag, "BAD", "STARTTLS is only valid before login");
            return Action::Continue;
        }
        self.tagged(tag, "OK", "Begin TLS negotiation now");
        // RFC 3501 §6.2.1: nothing the client sent after STARTTLS may be used.
        self.unconsumed = 0;
        self.fragmentizer = super::framing::new_fragmentizer(&self.services);
        Action::StartTls
    }

    pub(super) async fn login(
        &mut self,
        tag: &Tag<'_>,
        login: &str,
        password: &str,
        authzid: Option<&str>,
        mechanism: &str,
    ) {
        if !matches!(self.state, State::NotAuthenticated) {
            self.tagged(tag, "BAD", "Already logged in");
            return;
        }
        if self.plaintext_refused() {
            self.tagged(
                tag,
                "NO",
                "[PRIVACYREQUIRED] Use STARTTLS (or port 993) before logging in",
            );
            return;
        }
        let attempt = crate::login::Attempt {
            action: "imap.login",
            peer: self.peer,
            tls: self.tls,
            login,
            authzid,
            mechanism,
            client_id: self.client_id.as_deref(),
        };
        let realm = crate::login::Realm::MailClient;
        match crate::login::log_in(&self.services, realm, &attempt, password).await {
            Ok(identity) => {
                self.state = State::Authenticated(identity);
                let caps = self.capabilities();
                self.tagged(tag, "OK", &format!("[CAPABILITY {caps}] Logged in"));
            }
            Err(refusal) => self.tagged(tag, "NO", refusal.response()),
        }
    }

    pub(super) async fn authenticate(
        &mut self,
        tag: Tag<'static>,
        mechanism: AuthMechanism<'static>,
        initial: Option<Vec<u8>>,
    ) {
        let step = match mechanism {
            AuthMechanism::Plain => SaslStep::Plain,
            AuthMechanism::Login => SaslStep::LoginUser,
            other => {
                let text = format!("Unsupported mechanism {other}; use PLAIN or LOGIN");
                self.tagged(&tag, "NO", &text);
                return;
            }
        };
        if !matches!(self.state, State::NotAuthenticated) {
            self.tagged(&tag, "BAD", "Already logged in");
            return;
        }
        if self.plaintext_refused() {
            self.tagged(
                &tag,
                "NO",
                "[PRIVACYREQUIRED] Use STARTTLS (or port 993) before logging in",
            );
            return;
        }
        match initial {
            // SASL-IR (RFC 4959): the first response came with the command.
            Some(data) => self.sasl_step(tag, step, data).await,
            None => {
                let prompt = match step {
                    SaslStep::LoginUser => "+ VXNlcm5hbWU6\r\n",
                    _ => "+ \r\n",
                };
                self.out.extend_from_slice(prompt.as_bytes());
                self.expect = Expect::AuthenticateData { tag, step };
            }
        }
    }

    pub(super) async fn authenticate_data(&mut self, tag: Tag<'static>, step: SaslStep) -> Action {
        let data = self
            .fragmentizer
            .decode_message(&AuthenticateDataCodec::default())
            .map(|d| d.into_static());
        match data {
            Ok(AuthenticateData::Continue(data)) => {
                let bytes = data.declassify().to_vec();
                self.sasl_step(tag, step, bytes).await;
            }
            Ok(AuthenticateData::Cancel) => self.tagged(&tag, "BAD", "Authentication cancelled"),
            Err(_) => self.tagged(&tag, "BAD", "Invalid base64 in the authentication exchange"),
        }
        Action::Continue
    }

    pub(super) async fn sasl_step(&mut self, tag: Tag<'static>, step: SaslStep, data: Vec<u8>) {
        let text = String::from_utf8_lossy(&data).into_owned();
        match step {
            SaslStep::Plain => match crate::login::plain_credentials(&data) {
                Some((authzid, authcid, password)) => {
                    let authzid = authzid.as_deref();
                    self.login(&tag, &authcid, &password, authzid, "PLAIN")
                        .await;
                }
                None => self.tagged(&tag, "BAD", "Malformed PLAIN response"),
            },
            SaslStep::LoginUser => {
                self.out.extend_from_slice(b"+ UGFzc3dvcmQ6\r\n");
                self.expect = Expect::AuthenticateData {
                    tag,
                    step: SaslStep::LoginPassword { user: text },
                };
            }
            SaslStep::LoginPassword { user } => self.login(&tag, &user, &text, None, "LOGIN").await,
        }
    }
}
