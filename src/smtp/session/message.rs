//! A whole message: what submission checks and adds, the checks of inbound mail, DKIM
//! signing, and storing it (local copies and the queue), with what the sender asked to hear.

use super::*;

impl Session {
    /// Issue 12: a message sent as (or on behalf of) a mailbox through a grant is recorded
    /// in the mailbox's organization's log, with both identities.
    pub(super) fn record_sending_for(
        &self,
        sent_for: &[crate::smtp::submission::Sendable],
        envelope: &Envelope,
    ) {
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
    pub(super) fn prepare_submission(
        &mut self,
        raw: &[u8],
    ) -> Result<(String, Option<Vec<u8>>), Action> {
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
    pub(super) async fn judge(
        &mut self,
        envelope: &Envelope,
        message: &mut Loaded,
    ) -> Result<Filing, Action> {
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
    pub(super) fn sign(&mut self, from_domain: &str, message: &mut Loaded) -> Result<(), Action> {
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
    pub(super) async fn store_message(
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
            match crate::smtp::outbound::enqueue(&self.services, message.bytes(), outgoing).await {
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
            crate::smtp::outbound::withdraw(&self.services, &queued).await;
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
            && let Err(e) = crate::smtp::outbound::release(&self.services, &queued).await
        {
            // The local copies stay: the client's retry may deliver them twice, which beats
            // a 250 for remote copies that a restart would drop.
            tracing::error!(error = %e, "releasing queued mail failed");
            crate::smtp::outbound::withdraw(&self.services, &queued).await;
            return (451, "4.3.0", "Queueing failed; try again later".into());
        }
        if let Some(header) = header {
            self.report_local_deliveries(envelope, &header).await;
        }
        self.accepted(envelope)
    }

    /// Tells the sender of the local deliveries they asked to hear of (NOTIFY=SUCCESS, RFC
    /// 3461 §4.1). The message is in the mailboxes already: a report that fails is logged.
    pub(super) async fn report_local_deliveries(&self, envelope: &Envelope, header: &[u8]) {
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

    pub(super) fn accepted(&self, envelope: &Envelope) -> (u16, &'static str, String) {
        let metrics = &self.services.metrics;
        metrics.delivery(envelope.local.len(), envelope.remote.len());
        (250, "2.0.0", "Message accepted".into())
    }

    pub(super) fn received(&self, envelope: &Envelope) -> String {
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
    pub(in crate::smtp) fn outgoing(&self, hold: Hold) -> Outgoing<'_> {
        Outgoing {
            sender: &self.sender,
            recipients: &self.remote,
            dsn: &self.dsn,
            hold,
        }
    }
}
