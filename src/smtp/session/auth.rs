//! AUTH (RFC 4954): PLAIN and LOGIN, on submission, through the one login path.

use super::*;

impl Session {
    pub(super) async fn auth(&mut self, mechanism: u64, initial: String) -> Action {
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
    pub(super) fn auth_line(&mut self, bytes: &mut std::slice::Iter<'_, u8>) -> Option<Vec<u8>> {
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

    pub(super) async fn auth_response(&mut self, line: Vec<u8>) -> Action {
        let Phase::Auth(step) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return Action::Continue;
        };
        if line == b"*" {
            return self.error(501, "5.0.0", "Authentication cancelled");
        }
        self.auth_step(step, line).await
    }

    pub(super) async fn auth_step(&mut self, step: AuthStep, encoded: Vec<u8>) -> Action {
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

    pub(super) async fn login(
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
}
