//! Submission rules (RFC 6409): whom a session may send as, and what the server adds to a
//! message before it leaves. Which mailboxes an identity may send for is `access`'s answer
//! (through `Identity::access`); this module only lists their addresses.

use crate::login::Identity;
use crate::model::*;
use crate::services::Services;
use crate::store::StoreResult;

/// The addresses a session may put in the envelope sender and in `From:`, each with how.
#[derive(Clone, Debug, Default)]
pub struct SendAs {
    addresses: Vec<Sendable>,
}

/// An address a session may send as, how, and the mailbox it belongs to.
#[derive(Clone, Debug)]
pub struct Sendable {
    pub address: String,
    pub mode: SendMode,
    pub mailbox: MailboxId,
    pub org: OrgId,
}

impl SendAs {
    /// A mailbox login sends as its mailbox and aliases; a user (or a delegate) as every
    /// mailbox a grant lets them send for, with that grant's mode.
    pub fn of(services: &Services, identity: &Identity) -> StoreResult<SendAs> {
        let mut addresses = Vec::new();
        for mailbox in candidate_mailboxes(services, identity)? {
            let Some(mode) = identity.access(&mailbox).send else {
                continue;
            };
            let sendable = |address: &str| Sendable {
                address: normalize_address(address),
                mode,
                mailbox: mailbox.id,
                org: mailbox.org,
            };
            for alias in services.store.aliases_of(mailbox.id)? {
                addresses.push(sendable(&alias.address));
            }
            addresses.push(sendable(&mailbox.address));
        }
        Ok(SendAs { addresses })
    }

    /// How the session may send as `address`, if at all.
    pub fn mode(&self, address: &str) -> Option<SendMode> {
        self.find(address).map(|s| s.mode)
    }

    /// The address as the session may send it: how, and whose.
    pub fn find(&self, address: &str) -> Option<&Sendable> {
        let address = normalize_address(address);
        self.addresses.iter().find(|s| s.address == address)
    }
}

fn candidate_mailboxes(services: &Services, identity: &Identity) -> StoreResult<Vec<Mailbox>> {
    match identity {
        Identity::Mailbox(m) | Identity::Delegate { mailbox: m, .. } => Ok(vec![m.clone()]),
        Identity::User { facts, .. } => {
            let mut out = Vec::new();
            for membership in &facts.memberships {
                out.extend(services.store.mailboxes(membership.org)?);
            }
            Ok(out)
        }
    }
}

/// Why a message's `From:` cannot be checked.
#[derive(Debug, PartialEq, Eq)]
pub enum FromProblem {
    /// RFC 5322 §3.6: exactly one `From:` field.
    NotOne(usize),
    /// A mailbox of the field has no address (a bare display name, a broken group).
    NoAddress,
}

/// The addresses of the `From:` field of a message's header (RFC 5322 §3.6.2), lower case.
/// A second `From:` field could otherwise hide a forged one (mail-parser keeps the last).
pub fn from_addresses(raw: &[u8]) -> Result<Vec<String>, FromProblem> {
    let header = &raw[..header_end(raw)];
    let count = fields(header).filter(|f| field_name_is(f, "from")).count();
    if count != 1 {
        return Err(FromProblem::NotOne(count));
    }
    let message = mail_parser::MessageParser::new()
        .parse_headers(raw)
        .ok_or(FromProblem::NoAddress)?;
    let from = message.from().ok_or(FromProblem::NoAddress)?;
    let mut out = Vec::new();
    for addr in from.iter() {
        out.push(normalize_address(
            addr.address().ok_or(FromProblem::NoAddress)?,
        ));
    }
    if out.is_empty() {
        return Err(FromProblem::NoAddress);
    }
    Ok(out)
}

/// What the server changes in a submitted message's header (RFC 6409 §8): `Sender:` added
/// for a message sent on behalf of a mailbox, `Message-ID:` and `Date:` when missing, and
/// `Bcc:` removed, so that no recipient learns who else got a blind copy (RFC 5322 §3.6.3;
/// Postfix's cleanup does the same).
pub struct Additions {
    pub sender: Option<String>,
    pub message_id: bool,
    pub date: bool,
    pub drop_bcc: bool,
}

impl Additions {
    pub fn is_empty(&self) -> bool {
        self.sender.is_none() && !self.message_id && !self.date && !self.drop_bcc
    }
}

/// `raw` with `additions` applied: a `Sender:` replaces any the client gave.
pub fn complete(raw: &[u8], hostname: &str, additions: &Additions) -> Vec<u8> {
    let header_end = header_end(raw);
    let (header, body) = raw.split_at(header_end);
    let mut out = Vec::with_capacity(raw.len() + 200);
    if let Some(sender) = &additions.sender {
        out.extend_from_slice(format!("Sender: {sender}\r\n").as_bytes());
    }
    if additions.message_id {
        let id = hex::encode(rand::random::<[u8; 12]>());
        out.extend_from_slice(format!("Message-ID: <{id}@{hostname}>\r\n").as_bytes());
    }
    if additions.date {
        out.extend_from_slice(format!("Date: {}\r\n", chrono::Utc::now().to_rfc2822()).as_bytes());
    }
    let dropped: &[&str] = match (additions.sender.is_some(), additions.drop_bcc) {
        (true, true) => &["sender", "bcc"],
        (true, false) => &["sender"],
        (false, true) => &["bcc"],
        (false, false) => &[],
    };
    out.extend_from_slice(&without_fields(header, dropped));
    out.extend_from_slice(body);
    out
}

/// Whether the header has a field `name` (case-insensitive).
pub fn has_field(raw: &[u8], name: &str) -> bool {
    fields(&raw[..header_end(raw)]).any(|f| field_name_is(f, name))
}

/// Where the header ends: after the empty line, or the whole message when there is none.
fn header_end(raw: &[u8]) -> usize {
    if raw.starts_with(b"\r\n") {
        return 0;
    }
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |p| p + 2)
}

/// The header's fields, each with its folded continuation lines and its CRLF.
fn fields(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = header;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = 0;
        loop {
            match rest[end..].iter().position(|b| *b == b'\n') {
                Some(p) => end += p + 1,
                None => end = rest.len(),
            }
            if end >= rest.len() || !matches!(rest[end], b' ' | b'\t') {
                break;
            }
        }
        let (field, tail) = rest.split_at(end);
        rest = tail;
        Some(field)
    })
}

fn field_name_is(field: &[u8], name: &str) -> bool {
    field.iter().position(|b| *b == b':').is_some_and(|colon| {
        field[..colon]
            .trim_ascii()
            .eq_ignore_ascii_case(name.as_bytes())
    })
}

/// `raw` without the header fields `drop` picks; None when it picks none.
pub fn without_fields_where(raw: &[u8], drop: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let (header, body) = raw.split_at(header_end(raw));
    if !fields(header).any(&drop) {
        return None;
    }
    let mut out: Vec<u8> = fields(header)
        .filter(|f| !drop(f))
        .flatten()
        .copied()
        .collect();
    out.extend_from_slice(body);
    Some(out)
}

fn without_fields(header: &[u8], names: &[&str]) -> Vec<u8> {
    fields(header)
        .filter(|f| !names.iter().any(|name| field_name_is(f, name)))
        .flatten()
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_replaces_the_clients_and_missing_fields_are_added() {
        let raw = b"From: a@acme.example\r\nSender: forged@x.example\r\n\tcontinued\r\nSubject: hi\r\n\r\nbody\r\n";
        let additions = Additions {
            sender: Some("Lucie <lucie@gmail.example>".into()),
            message_id: !has_field(raw, "message-id"),
            date: !has_field(raw, "date"),
            drop_bcc: has_field(raw, "bcc"),
        };
        let out = String::from_utf8(complete(raw, "mx.acme.example", &additions)).unwrap();
        assert!(
            out.starts_with("Sender: Lucie <lucie@gmail.example>\r\nMessage-ID: <"),
            "{out}"
        );
        assert!(out.contains("@mx.acme.example>\r\nDate: "), "{out}");
        assert!(
            !out.contains("forged") && !out.contains("continued"),
            "{out}"
        );
        assert!(
            out.ends_with("From: a@acme.example\r\nSubject: hi\r\n\r\nbody\r\n"),
            "{out}"
        );
        assert_eq!(from_addresses(raw), Ok(vec!["a@acme.example".to_string()]));
        let two = b"From: boss@acme.example\r\nFrom: me@acme.example\r\n\r\nx\r\n";
        assert_eq!(from_addresses(two), Err(FromProblem::NotOne(2)));
        assert_eq!(
            from_addresses(b"Subject: none\r\n\r\nx\r\n"),
            Err(FromProblem::NotOne(0))
        );
        assert_eq!(
            from_addresses(b"From: Just A Name\r\n\r\nx\r\n"),
            Err(FromProblem::NoAddress)
        );
    }

    #[test]
    fn a_message_without_a_body_keeps_its_header() {
        let raw = b"Subject: only\r\n";
        assert!(has_field(raw, "SUBJECT"));
        let none = Additions {
            sender: None,
            message_id: false,
            date: false,
            drop_bcc: false,
        };
        assert_eq!(complete(raw, "h", &none), raw.to_vec());
    }

    #[test]
    fn bcc_goes_whole_with_its_continuation_lines() {
        let raw = b"From: a@acme.example\r\nBcc: hidden@x.example,\r\n\tother@y.example\r\nTo: b@c.example\r\nBCC: again@z.example\r\n\r\nBcc: in the body stays\r\n";
        let additions = Additions {
            sender: None,
            message_id: false,
            date: false,
            drop_bcc: has_field(raw, "bcc"),
        };
        assert!(!additions.is_empty());
        let out = complete(raw, "h", &additions);
        assert_eq!(
            out,
            b"From: a@acme.example\r\nTo: b@c.example\r\n\r\nBcc: in the body stays\r\n".to_vec()
        );
    }
}
