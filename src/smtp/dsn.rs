//! Delivery status notifications (RFC 3464, RFC 3461): what the sender is told of a
//! message's fate (a failure unless NOTIFY left it out; a delivery or relay when NOTIFY asked
//! for SUCCESS), and the DSN parameters passed on to a next hop that takes them.

use super::address::{self, Destination};
use crate::model::{DsnRequest, DsnReturn, Millis, Notify, RecipientDsn};
use crate::services::Services;
use crate::store::QueueEntry;

/// What happened for one recipient, as a report says it (RFC 3464 §2.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delivered,
    /// Handed to a host that does not report further (RFC 3461 §5.2.2).
    Relayed,
}

/// One recipient's line in a report; `why` is a failure's reason.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub recipient: String,
    pub action: Action,
    pub why: String,
}

impl Outcome {
    pub fn new(recipient: &str, action: Action, why: &str) -> Outcome {
        Outcome {
            recipient: recipient.into(),
            action,
            why: why.into(),
        }
    }
}

/// The message a report is about, and what its sender asked.
pub struct Reported<'a> {
    /// The reverse-path: where the report goes; empty for a bounce, which is not reported on.
    pub sender: &'a str,
    pub arrival: Millis,
    pub dsn: &'a DsnRequest,
    pub raw: &'a [u8],
}

impl<'a> Reported<'a> {
    pub fn of(entry: &'a QueueEntry, raw: &'a [u8]) -> Reported<'a> {
        Reported {
            sender: &entry.sender,
            arrival: entry.created,
            dsn: &entry.dsn,
            raw,
        }
    }
}

/// A failed message's whole content comes back with RET=FULL up to this size; a larger one
/// comes back as its header, as Postfix's `bounce_size_limit` does.
const FULL_RETURN_LIMIT: usize = 10 * 1024 * 1024;

/// Tells the sender of `entry` that `failed` recipients will not get it (those whose NOTIFY
/// left failures out excepted); an error when the notice could not be stored.
pub async fn bounce(
    services: &Services,
    entry: &QueueEntry,
    raw: &[u8],
    failed: &[(String, String)],
) -> Result<(), String> {
    let outcomes = failed
        .iter()
        .map(|(r, why)| Outcome::new(r, Action::Failed, why))
        .collect();
    report(services, &Reported::of(entry, raw), outcomes).await
}

/// Sends the sender a report of the `outcomes` they asked to hear of (RFC 3461 §4.1), if
/// any; an error when it could not be stored or queued. A report on a report (empty sender)
/// is not made (RFC 5321 §6.1 forbids bouncing a bounce).
pub async fn report(
    services: &Services,
    about: &Reported<'_>,
    outcomes: Vec<Outcome>,
) -> Result<(), String> {
    let wanted = asked_for(about.dsn, outcomes);
    if wanted.is_empty() {
        return Ok(());
    }
    if about.sender.is_empty() {
        tracing::warn!("a bounce could not be delivered; dropped");
        return Ok(());
    }
    let report = build(&services.config.hostname, about, &wanted);
    let sender = about.sender.to_string();
    let result = match address::destination(services, &sender) {
        Ok(Destination::Local { mailbox }) => {
            super::delivery::deliver(services, &[mailbox], report.into())
                .await
                .map_err(|e| e.to_string())
        }
        Ok(Destination::Remote { .. }) => {
            let outgoing = super::outbound::Outgoing {
                sender: "",
                recipients: std::slice::from_ref(&sender),
                dsn: &DsnRequest::default(),
                hold: crate::store::Hold::No,
            };
            super::outbound::enqueue(services, &report, outgoing)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        // Nowhere to go, now or later (no such local mailbox, not an address): like a
        // bounce of a bounce, dropped rather than kept for nothing.
        Ok(Destination::UnknownLocal) | Err(_) => {
            tracing::warn!(%sender, "the sender cannot be notified; report dropped");
            return Ok(());
        }
    };
    if result.is_ok() {
        tracing::info!(%sender, recipients = wanted.len(), "delivery status reported");
    }
    result
}

/// The outcomes the sender asked to hear of.
fn asked_for(dsn: &DsnRequest, outcomes: Vec<Outcome>) -> Vec<Outcome> {
    outcomes
        .into_iter()
        .filter(|o| match o.action {
            Action::Failed => dsn.wants_failure(&o.recipient),
            Action::Delivered | Action::Relayed => dsn.wants_success(&o.recipient),
        })
        .collect()
}

/// The multipart/report message: a human explanation, the machine-readable status per
/// recipient, and the original header (or, for a failure with RET=FULL, the whole message).
pub fn build(hostname: &str, about: &Reported<'_>, outcomes: &[Outcome]) -> Vec<u8> {
    let id = hex::encode(rand::random::<[u8; 12]>());
    let boundary = format!("mailgate-dsn-{id}");
    let failed = outcomes.iter().any(|o| o.action == Action::Failed);
    let full =
        failed && about.dsn.ret == Some(DsnReturn::Full) && about.raw.len() <= FULL_RETURN_LIMIT;
    let header = returned_header(about.raw);
    let returned = if full { about.raw } else { header };
    // RFC 6533: with a UTF-8 address or header, the report is the "global" kind (an 8-bit
    // body alone does not make it one).
    let header_is_ascii = header.is_ascii();
    let global = !about.sender.is_ascii()
        || outcomes.iter().any(|o| !o.recipient.is_ascii())
        || !header_is_ascii;
    let status_type = if global {
        "message/global-delivery-status"
    } else {
        "message/delivery-status"
    };
    let date = chrono::Utc::now().to_rfc2822();
    let arrival = chrono::DateTime::from_timestamp_millis(about.arrival)
        .map(|d| d.to_rfc2822())
        .unwrap_or_else(|| date.clone());
    let subject = match (failed, outcomes.iter().all(|o| o.action == Action::Failed)) {
        (true, true) => "Undelivered Mail Returned to Sender",
        (false, _) => "Successful Mail Delivery Report",
        (true, false) => "Delivery Status Notification",
    };
    let mut out = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n\
         To: <{sender}>\r\n\
         Subject: {subject}\r\n\
         Date: {date}\r\n\
         Message-ID: <{id}@{hostname}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         {explanation}\r\n\
         --{boundary}\r\n\
         Content-Type: {status_type}\r\n\
         \r\n",
        sender = about.sender,
        explanation = explanation(outcomes),
    );
    // RFC 3464 §2.2: the sender's ENVID first, then who reports.
    if let Some(envid) = &about.dsn.envid {
        out.push_str(&format!("Original-Envelope-Id: {}\r\n", one_line(envid)));
    }
    out.push_str(&format!(
        "Reporting-MTA: dns; {hostname}\r\nArrival-Date: {arrival}\r\n"
    ));
    for outcome in outcomes {
        out.push_str(&recipient_fields(about.dsn, outcome));
    }
    let mut bytes = out.into_bytes();
    // What comes back (RFC 3462 §3): the header, or with RET=FULL the message; one with
    // UTF-8 in it of the global kinds (RFC 6533 §3).
    if !returned.is_empty() {
        let kind = match (full, header_is_ascii) {
            (true, true) => "message/rfc822",
            (true, false) => "message/global",
            (false, true) => "text/rfc822-headers",
            (false, false) => "message/global-headers",
        };
        // An 8-bit part says so (RFC 2045 §6.1); the queue sends it with BODY=8BITMIME.
        let encoding = if returned.is_ascii() {
            ""
        } else {
            "Content-Transfer-Encoding: 8bit\r\n"
        };
        bytes.extend_from_slice(
            format!("\r\n--{boundary}\r\nContent-Type: {kind}\r\n{encoding}\r\n").as_bytes(),
        );
        bytes.extend_from_slice(returned);
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

/// The human part: each recipient under what happened.
fn explanation(outcomes: &[Outcome]) -> String {
    let mut text = String::new();
    for (action, heading) in [
        (
            Action::Failed,
            "Your message could not be delivered to these recipients:",
        ),
        (Action::Delivered, "Your message was delivered to:"),
        (
            Action::Relayed,
            "Your message was passed on to a server that does not report delivery, for:",
        ),
    ] {
        let lines: String = outcomes
            .iter()
            .filter(|o| o.action == action)
            .map(|o| match action {
                Action::Failed => format!("  <{}>: {}\r\n", o.recipient, one_line(&o.why)),
                _ => format!("  <{}>\r\n", o.recipient),
            })
            .collect();
        if !lines.is_empty() {
            text.push_str(&format!("{heading}\r\n\r\n{lines}\r\n"));
        }
    }
    text
}

/// One recipient's fields (RFC 3464 §2.3).
fn recipient_fields(dsn: &DsnRequest, outcome: &Outcome) -> String {
    let recipient = &outcome.recipient;
    let mut out = String::from("\r\n");
    if let Some(orcpt) = dsn.recipient(recipient).and_then(|r| r.orcpt.as_deref()) {
        out.push_str(&format!(
            "Original-Recipient: rfc822; {}\r\n",
            one_line(orcpt)
        ));
    }
    // RFC 6533 §3: a UTF-8 address is of the `utf-8` type, not `rfc822`.
    let kind = if recipient.is_ascii() {
        "rfc822"
    } else {
        "utf-8"
    };
    let action = match outcome.action {
        Action::Failed => "failed",
        Action::Delivered => "delivered",
        Action::Relayed => "relayed",
    };
    out.push_str(&format!(
        "Final-Recipient: {kind}; {recipient}\r\nAction: {action}\r\n"
    ));
    if outcome.action != Action::Failed {
        out.push_str("Status: 2.0.0\r\n");
        return out;
    }
    // RFC 3464 §2.3.5-2.3.6: Remote-MTA and Diagnostic-Code are the remote host's and its
    // reply; this server's own verdicts (no host answered, the message's content refused
    // before sending) are not written as if one had said them.
    let why = one_line(&outcome.why);
    match super::client::quoted_reply(&why) {
        Some((host, reply)) => out.push_str(&format!(
            "Status: {}\r\nRemote-MTA: dns; {host}\r\nDiagnostic-Code: smtp; {reply}\r\n",
            status_of(reply)
        )),
        None => out.push_str(&format!(
            "Status: {}\r\nX-Mailgate-Reason: {why}\r\n",
            status_of(&why)
        )),
    }
    out
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// RET and ENVID of MAIL FROM (RFC 3461 §4.3, §4.4; smtp-proto decoded the xtext).
pub fn message_dsn(from: &smtp_proto::MailFrom<String>) -> Result<DsnRequest, &'static str> {
    let full = from.flags & smtp_proto::MAIL_RET_FULL != 0;
    let headers = from.flags & smtp_proto::MAIL_RET_HDRS != 0;
    let ret = match (full, headers) {
        (true, true) => return Err("RET is given once: FULL or HDRS"),
        (true, false) => Some(DsnReturn::Full),
        (false, true) => Some(DsnReturn::Headers),
        (false, false) => None,
    };
    if from.env_id.as_deref().is_some_and(|e| !printable(e)) {
        return Err("ENVID must be printable ASCII once decoded");
    }
    Ok(DsnRequest {
        ret,
        envid: from.env_id.clone(),
        recipients: Vec::new(),
    })
}

/// RFC 3461 §4.2, §4.4: an ORCPT of type rfc822 and an ENVID are printable ASCII (xtext only
/// carries them); anything else would reach reports and next hops garbled.
fn printable(text: &str) -> bool {
    text.bytes().all(|b| (b' '..=b'~').contains(&b))
}

/// NOTIFY and ORCPT of RCPT TO, if either was given (RFC 3461 §4.1, §4.2).
pub fn recipient_dsn(
    to: &smtp_proto::RcptTo<String>,
) -> Result<Option<RecipientDsn>, &'static str> {
    let flag = |f: u64| to.flags & f != 0;
    let never = flag(smtp_proto::RCPT_NOTIFY_NEVER);
    let notify = Notify {
        success: flag(smtp_proto::RCPT_NOTIFY_SUCCESS),
        failure: flag(smtp_proto::RCPT_NOTIFY_FAILURE),
        delay: flag(smtp_proto::RCPT_NOTIFY_DELAY),
    };
    let events = notify != Notify::default();
    if never && events {
        return Err("NOTIFY=NEVER cannot be combined with other values");
    }
    if to.orcpt.as_deref().is_some_and(|o| !printable(o)) {
        return Err("ORCPT must be printable ASCII once decoded");
    }
    if !never && !events && to.orcpt.is_none() {
        return Ok(None);
    }
    Ok(Some(RecipientDsn {
        address: to.address.clone(),
        notify: (never || events).then_some(notify),
        orcpt: to.orcpt.clone(),
    }))
}

/// ` RET=… ENVID=…` for MAIL FROM to a host that offers DSN (RFC 3461 §4.3, §4.4).
pub fn mail_parameters(dsn: &DsnRequest) -> String {
    let mut out = String::new();
    match dsn.ret {
        Some(DsnReturn::Full) => out.push_str(" RET=FULL"),
        Some(DsnReturn::Headers) => out.push_str(" RET=HDRS"),
        None => {}
    }
    if let Some(envid) = &dsn.envid {
        out.push_str(&format!(" ENVID={}", xtext(envid)));
    }
    out
}

/// ` NOTIFY=… ORCPT=…` for RCPT TO `recipient` (RFC 3461 §4.1, §4.2).
pub fn rcpt_parameters(dsn: &DsnRequest, recipient: &str) -> String {
    let Some(asked) = dsn.recipient(recipient) else {
        return String::new();
    };
    let mut out = String::new();
    if let Some(notify) = asked.notify {
        let events: Vec<&str> = [
            (notify.success, "SUCCESS"),
            (notify.failure, "FAILURE"),
            (notify.delay, "DELAY"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        let list = if events.is_empty() {
            "NEVER".to_string()
        } else {
            events.join(",")
        };
        out.push_str(&format!(" NOTIFY={list}"));
    }
    if let Some(orcpt) = &asked.orcpt {
        out.push_str(&format!(" ORCPT=rfc822;{}", xtext(orcpt)));
    }
    out
}

/// RFC 3461 §4: printable ASCII but `+` and `=` as itself, anything else as `+HH`.
fn xtext(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'!'..=b'~' if b != b'+' && b != b'=' => (b as char).to_string(),
            _ => format!("+{b:02X}"),
        })
        .collect()
}

/// The header of the message returned with a bounce.
pub fn returned_header(raw: &[u8]) -> &[u8] {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |p| p + 2);
    &raw[..end]
}

/// The enhanced status code of a remote reply ("550 5.1.1 ..."), else a generic one: 5.0.0
/// for a refusal, 4.4.7 (delivery time expired) for a temporary failure that ran out of time
/// (RFC 3463; Postfix words expiry the same way).
fn status_of(why: &str) -> String {
    let mut words = why.split_whitespace();
    let code = words.next().unwrap_or("");
    let enhanced = words.next().unwrap_or("");
    let looks_enhanced = enhanced.split('.').count() == 3
        && enhanced
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if looks_enhanced && (enhanced.starts_with('5') || enhanced.starts_with('4')) {
        return enhanced.to_string();
    }
    if code.starts_with('5') {
        "5.0.0".into()
    } else {
        "4.4.7".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn about<'a>(sender: &'a str, dsn: &'a DsnRequest, raw: &'a [u8]) -> Reported<'a> {
        Reported {
            sender,
            arrival: 0,
            dsn,
            raw,
        }
    }

    fn failed(recipient: &str, why: &str) -> Outcome {
        Outcome::new(recipient, Action::Failed, why)
    }

    #[test]
    fn remote_replies_and_our_own_verdicts_are_told_apart() {
        let failed = [
            failed(
                "a@far.example",
                "host mx.far.example said: 550 5.1.1 no such user",
            ),
            failed(
                "b@far.example",
                "550 5.6.7 the receiving server does not take UTF-8 addresses (SMTPUTF8)",
            ),
            failed("c@far.example", "connection: refused"),
        ];
        let dsn = DsnRequest::default();
        let about = about("s@acme.example", &dsn, b"Subject: x\r\n\r\nx\r\n");
        let report = String::from_utf8(build("mail.acme.example", &about, &failed)).unwrap();
        assert!(report.contains("Final-Recipient: rfc822; a@far.example\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.far.example\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n"), "{report}");
        assert!(report.contains("Final-Recipient: rfc822; b@far.example\r\nAction: failed\r\nStatus: 5.6.7\r\nX-Mailgate-Reason: 550 5.6.7 the receiving"), "{report}");
        assert!(report.contains("Final-Recipient: rfc822; c@far.example\r\nAction: failed\r\nStatus: 4.4.7\r\nX-Mailgate-Reason: connection: refused\r\n"), "{report}");
        assert_eq!(report.matches("Diagnostic-Code").count(), 1, "{report}");
        assert!(report.contains("Subject: Undelivered Mail Returned to Sender\r\n"));
        assert!(
            report.contains("Content-Type: message/delivery-status\r\n"),
            "{report}"
        );
        assert!(
            report.contains("Content-Type: text/rfc822-headers\r\n"),
            "{report}"
        );
        assert!(!report.contains("Original-"), "{report}");
    }

    #[test]
    fn utf8_addresses_and_headers_make_a_global_report() {
        let failed = [failed("émile@far.example", "host mx said: 550 5.1.1 no")];
        let raw = "Subject: Grüße\r\n\r\nbody\r\n".as_bytes();
        let dsn = DsnRequest::default();
        let about = about("jörg@acme.example", &dsn, raw);
        let report = String::from_utf8(build("mail.acme.example", &about, &failed)).unwrap();
        assert!(
            report.contains("Content-Type: message/global-delivery-status\r\n"),
            "{report}"
        );
        assert!(
            report.contains("Final-Recipient: utf-8; émile@far.example\r\n"),
            "{report}"
        );
        assert!(
            report.contains("Content-Type: message/global-headers\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSubject: Grüße\r\n"),
            "{report}"
        );
        assert!(!report.contains("body"), "the header only: {report}");
    }

    fn asked(address: &str, notify: Option<Notify>, orcpt: Option<&str>) -> RecipientDsn {
        RecipientDsn {
            address: address.into(),
            notify,
            orcpt: orcpt.map(str::to_string),
        }
    }

    const NEVER: Notify = Notify {
        success: false,
        failure: false,
        delay: false,
    };
    const SUCCESS: Notify = Notify {
        success: true,
        failure: false,
        delay: false,
    };

    /// RFC 3461 §4.1: failures are reported unless NOTIFY leaves them out; deliveries only
    /// when NOTIFY asks for SUCCESS.
    #[test]
    fn only_what_notify_asks_for_is_reported() {
        let dsn = DsnRequest {
            recipients: vec![
                asked("never@x.example", Some(NEVER), None),
                asked("success@x.example", Some(SUCCESS), None),
            ],
            ..DsnRequest::default()
        };
        let outcomes = vec![
            failed("never@x.example", "550 no"),
            failed("success@x.example", "550 no"),
            failed("plain@x.example", "550 no"),
            Outcome::new("success@x.example", Action::Relayed, ""),
            Outcome::new("plain@x.example", Action::Delivered, ""),
        ];
        let kept: Vec<(String, Action)> = asked_for(&dsn, outcomes)
            .into_iter()
            .map(|o| (o.recipient, o.action))
            .collect();
        assert_eq!(
            kept,
            [
                ("plain@x.example".to_string(), Action::Failed),
                ("success@x.example".to_string(), Action::Relayed),
            ]
        );
    }

    /// ENVID and ORCPT come back (RFC 3464 §2.2.1, §2.3.1); RET=FULL returns the whole
    /// message with a failure, never with a success.
    #[test]
    fn a_report_carries_envid_orcpt_and_with_ret_full_the_message() {
        let dsn = DsnRequest {
            ret: Some(DsnReturn::Full),
            envid: Some("env 1".into()),
            recipients: vec![asked("a@far.example", None, Some("first@far.example"))],
        };
        let raw = b"Subject: x\r\n\r\nthe body\r\n";
        let about = about("s@acme.example", &dsn, raw);
        let report = String::from_utf8(build(
            "mail.acme.example",
            &about,
            &[failed("a@far.example", "host mx said: 550 5.1.1 no")],
        ))
        .unwrap();
        assert!(
            report.contains(
                "\r\nOriginal-Envelope-Id: env 1\r\nReporting-MTA: dns; mail.acme.example\r\n"
            ),
            "{report}"
        );
        assert!(
            report.contains("\r\nOriginal-Recipient: rfc822; first@far.example\r\nFinal-Recipient: rfc822; a@far.example\r\n"),
            "{report}"
        );
        assert!(
            report.contains("Content-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\nthe body\r\n"),
            "{report}"
        );

        // An 8-bit body under an ASCII header: message/rfc822, marked 8bit, not "global".
        let raw = "Subject: x\r\n\r\nGrüße\r\n".as_bytes();
        let eight_bit = about_full(&dsn, raw);
        assert!(
            eight_bit.contains("Content-Type: message/delivery-status\r\n"),
            "{eight_bit}"
        );
        assert!(
            eight_bit.contains(
                "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSubject: x"
            ),
            "{eight_bit}"
        );

        let delivered = String::from_utf8(build(
            "mail.acme.example",
            &about,
            &[Outcome::new("a@far.example", Action::Delivered, "")],
        ))
        .unwrap();
        assert!(delivered.contains("Subject: Successful Mail Delivery Report\r\n"));
        assert!(delivered.contains("Action: delivered\r\nStatus: 2.0.0\r\n"));
        assert!(!delivered.contains("the body"), "{delivered}");
    }

    fn about_full(dsn: &DsnRequest, raw: &[u8]) -> String {
        let failed = [failed("a@far.example", "host mx said: 550 5.1.1 no")];
        String::from_utf8(build(
            "mail.acme.example",
            &about("s@acme.example", dsn, raw),
            &failed,
        ))
        .unwrap()
    }

    /// What is passed on to a next hop that offers DSN, in xtext.
    #[test]
    fn dsn_parameters_are_passed_on_in_xtext() {
        let dsn = DsnRequest {
            ret: Some(DsnReturn::Headers),
            envid: Some("a+b=c d".into()),
            recipients: vec![
                asked("a@x.example", Some(NEVER), None),
                asked(
                    "b@x.example",
                    Some(Notify {
                        success: true,
                        failure: true,
                        delay: false,
                    }),
                    Some("B+1@x.example"),
                ),
            ],
        };
        assert_eq!(mail_parameters(&dsn), " RET=HDRS ENVID=a+2Bb+3Dc+20d");
        assert_eq!(rcpt_parameters(&dsn, "a@x.example"), " NOTIFY=NEVER");
        assert_eq!(
            rcpt_parameters(&dsn, "b@x.example"),
            " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B+2B1@x.example"
        );
        assert_eq!(rcpt_parameters(&dsn, "c@x.example"), "");
        assert_eq!(mail_parameters(&DsnRequest::default()), "");
    }
}
