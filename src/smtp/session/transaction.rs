//! The transaction: MAIL, RCPT, DATA and BDAT, up to the end of the message.

use super::*;
use crate::smtp::delivery::Admitted;

impl Session {
    pub(super) fn mail(&mut self, from: MailFrom<String>) -> Action {
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

    pub(super) fn rcpt(&mut self, to: RcptTo<String>) -> Action {
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
                match delivery::admission(&self.services, mailbox, size) {
                    Admitted::Yes => {}
                    // RFC 3463 §3.3: X.2.1, mailbox disabled, not accepting messages; 450 so
                    // that the sender retries until the organization is resumed.
                    Admitted::Suspended => {
                        let why = format!(
                            "<{address}>: mailbox temporarily unavailable; try again later"
                        );
                        self.reply(450, "4.2.1", &why);
                        return Action::Continue;
                    }
                    // With SIZE, a mailbox that cannot take the message says so here (RFC
                    // 1870 §6.3).
                    Admitted::Full => {
                        self.reply(452, "4.2.2", &format!("<{address}>: mailbox full"));
                        return Action::Continue;
                    }
                }
                self.accept_recipient(address, Some(mailbox), asked);
                Action::Continue
            }
        }
    }

    pub(super) fn accept_recipient(
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

    pub(super) fn ready_for_body(&mut self) -> Result<(), Action> {
        match &self.envelope {
            None => Err(self.error(503, "5.5.1", "MAIL FROM first")),
            Some(e) if e.recipients() == 0 => Err(self.error(554, "5.5.1", "No valid recipients")),
            Some(_) => Ok(()),
        }
    }

    pub(super) fn data(&mut self) -> Action {
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

    pub(super) fn bdat(&mut self, size: usize, last: bool) -> Action {
        // The chunk's bytes follow whatever the answer: they are read (and maybe dropped).
        self.phase = Phase::Bdat(BdatReceiver::new(size, last));
        if self.message.is_empty() && self.ready_for_body_quietly() {
            self.start_message();
        }
        Action::Continue
    }

    pub(super) fn ready_for_body_quietly(&self) -> bool {
        self.envelope.as_ref().is_some_and(|e| e.recipients() > 0)
    }

    /// Puts the trace field first into the message (RFC 5321 §4.4): known once the envelope
    /// is, and written before the body so that a spooled message needs no second copy.
    pub(super) fn start_message(&mut self) {
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
    pub(super) fn body_len(&self) -> u64 {
        self.message.len().saturating_sub(self.received_len as u64)
    }

    /// Moves what the receiver produced into the message, unless it is already refused. A
    /// trailing CR stays behind until more comes: the receiver takes it back when it turns out
    /// to begin the final `CRLF.CRLF`.
    pub(super) fn absorb(&mut self, done: bool) {
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

    pub(super) async fn end_of_chunk(&mut self, last: bool) -> Action {
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

    pub(super) async fn end_of_message(&mut self) -> Action {
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
}
