//! Delivery status notifications (RFC 3464): what the sender gets when mail bounces.

use super::address::{self, Destination};
use crate::services::Services;
use crate::store::QueueEntry;

/// Tells the sender of `entry` that `failed` recipients will not get it; an error when the
/// notice could not be stored (the sender's mailbox is full, the store failed). A bounce of a bounce (empty sender) is dropped (RFC 5321
/// §6.1 forbids it).
pub async fn bounce(
    services: &Services,
    entry: &QueueEntry,
    raw: &[u8],
    failed: &[(String, String)],
) -> Result<(), String> {
    if entry.sender.is_empty() {
        tracing::warn!(queue = %entry.id, "a bounce could not be delivered; dropped");
        return Ok(());
    }
    let report = build(&services.config.hostname, entry, raw, failed);
    let result = match address::destination(services, &entry.sender) {
        Ok(Destination::Local { mailbox }) => {
            super::delivery::deliver(services, &[mailbox], report.into())
                .await
                .map_err(|e| e.to_string())
        }
        Ok(Destination::Remote { .. }) => {
            let outgoing = super::outbound::Outgoing {
                sender: "",
                recipients: std::slice::from_ref(&entry.sender),
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
            tracing::warn!(queue = %entry.id, sender = %entry.sender, "the sender cannot be notified; bounce dropped");
            return Ok(());
        }
    };
    if result.is_ok() {
        tracing::info!(queue = %entry.id, sender = %entry.sender, "bounced");
    }
    result
}

/// The multipart/report message: a human explanation, the machine-readable status per
/// recipient, and the original header.
pub fn build(
    hostname: &str,
    entry: &QueueEntry,
    raw: &[u8],
    failed: &[(String, String)],
) -> Vec<u8> {
    let boundary = format!("mailgate-dsn-{}", entry.id);
    let header = returned_header(raw);
    // RFC 6533: with a UTF-8 address or header, the report is the "global" kind.
    let global =
        !entry.sender.is_ascii() || failed.iter().any(|(r, _)| !r.is_ascii()) || !header.is_ascii();
    let status_type = if global {
        "message/global-delivery-status"
    } else {
        "message/delivery-status"
    };
    let date = chrono::Utc::now().to_rfc2822();
    let arrival = chrono::DateTime::from_timestamp_millis(entry.created)
        .map(|d| d.to_rfc2822())
        .unwrap_or_else(|| date.clone());
    let id = hex::encode(rand::random::<[u8; 12]>());
    let list: String = failed
        .iter()
        .map(|(r, why)| format!("  <{r}>: {why}\r\n"))
        .collect();
    let mut out = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n\
         To: <{sender}>\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
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
         Your message could not be delivered to these recipients:\r\n\
         \r\n{list}\r\n\
         --{boundary}\r\n\
         Content-Type: {status_type}\r\n\
         \r\n\
         Reporting-MTA: dns; {hostname}\r\n\
         Arrival-Date: {arrival}\r\n",
        sender = entry.sender,
    );
    for (recipient, why) in failed {
        let why = why.replace(['\r', '\n'], " ");
        // RFC 6533 §3: a UTF-8 address is of the `utf-8` type, not `rfc822`.
        let kind = if recipient.is_ascii() {
            "rfc822"
        } else {
            "utf-8"
        };
        out.push_str(&format!(
            "\r\nFinal-Recipient: {kind}; {recipient}\r\nAction: failed\r\n"
        ));
        // RFC 3464 §2.3.5-2.3.6: Remote-MTA and Diagnostic-Code are the remote host's and
        // its reply; this server's own verdicts (no host answered, the message's content
        // refused before sending) are not written as if one had said them.
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
    }
    let mut bytes = out.into_bytes();
    // The original header, when there is one to return (RFC 3462 §3); one with UTF-8 in it
    // as message/global-headers (RFC 6533 §3).
    if !header.is_empty() {
        let kind = if header.is_ascii() {
            "text/rfc822-headers"
        } else {
            "message/global-headers"
        };
        bytes.extend_from_slice(
            format!("\r\n--{boundary}\r\nContent-Type: {kind}\r\n\r\n").as_bytes(),
        );
        bytes.extend_from_slice(header);
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

/// The header of the message returned with a bounce.
fn returned_header(raw: &[u8]) -> &[u8] {
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
    use crate::store::{BlobId, QueueId};

    /// A queue entry from `sender`, as the bounce reads it.
    fn entry_from(sender: &str) -> QueueEntry {
        QueueEntry {
            id: QueueId(1),
            blob: BlobId::of(b"x"),
            sender: sender.into(),
            domain: "far.example".into(),
            recipients: Vec::new(),
            created: 0,
            attempts: 1,
            next_attempt: 0,
            last_error: None,
            reasons: Vec::new(),
        }
    }

    #[test]
    fn remote_replies_and_our_own_verdicts_are_told_apart() {
        let entry = entry_from("s@acme.example");
        let failed = [
            (
                "a@far.example".to_string(),
                "host mx.far.example said: 550 5.1.1 no such user".to_string(),
            ),
            (
                "b@far.example".to_string(),
                "550 5.6.7 the receiving server does not take UTF-8 addresses (SMTPUTF8)"
                    .to_string(),
            ),
            (
                "c@far.example".to_string(),
                "connection: refused".to_string(),
            ),
        ];
        let report = String::from_utf8(build(
            "mail.acme.example",
            &entry,
            b"Subject: x\r\n\r\nx\r\n",
            &failed,
        ))
        .unwrap();
        assert!(report.contains("Final-Recipient: rfc822; a@far.example\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.far.example\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n"), "{report}");
        assert!(report.contains("Final-Recipient: rfc822; b@far.example\r\nAction: failed\r\nStatus: 5.6.7\r\nX-Mailgate-Reason: 550 5.6.7 the receiving"), "{report}");
        assert!(report.contains("Final-Recipient: rfc822; c@far.example\r\nAction: failed\r\nStatus: 4.4.7\r\nX-Mailgate-Reason: connection: refused\r\n"), "{report}");
        assert_eq!(report.matches("Diagnostic-Code").count(), 1, "{report}");
        assert!(
            report.contains("Content-Type: message/delivery-status\r\n"),
            "{report}"
        );
        assert!(
            report.contains("Content-Type: text/rfc822-headers\r\n"),
            "{report}"
        );
    }

    #[test]
    fn utf8_addresses_and_headers_make_a_global_report() {
        let entry = entry_from("jörg@acme.example");
        let failed = [(
            "émile@far.example".to_string(),
            "host mx said: 550 5.1.1 no".to_string(),
        )];
        let raw = "Subject: Grüße\r\n\r\nbody\r\n".as_bytes();
        let report = String::from_utf8(build("mail.acme.example", &entry, raw, &failed)).unwrap();
        assert!(
            report.contains("Content-Type: message/global-delivery-status\r\n"),
            "{report}"
        );
        assert!(
            report.contains("Final-Recipient: utf-8; émile@far.example\r\n"),
            "{report}"
        );
        assert!(
            report.contains("Content-Type: message/global-headers\r\n\r\nSubject: Grüße\r\n"),
            "{report}"
        );
        assert!(!report.contains("body"), "the header only: {report}");
    }
}
