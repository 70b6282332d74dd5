//! Messages as IMAP sees them: parsed once, at delivery or APPEND (ARCHITECTURE.md §4), into a
//! `MessageSummary` that the store keeps beside the blob, so that FETCH ENVELOPE,
//! BODYSTRUCTURE, BODY[section] and header SEARCH never re-parse a message.

use mail_parser::{
    Address, HeaderName, HeaderValue, MessageParser, MessagePart, MimeHeaders, PartType,
};
use serde::{Deserialize, Serialize};

/// How deep nested messages and multiparts are followed; deeper parts are kept as opaque.
const MAX_DEPTH: usize = 16;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSummary {
    pub envelope: Envelope,
    pub body: BodyPart,
    /// Every header field of the top-level header, name lower-cased and value decoded
    /// (RFC 2047), for SEARCH HEADER/FROM/SUBJECT/….
    pub headers: Vec<(String, String)>,
}

/// RFC 3501 §7.4.2 ENVELOPE: the raw (still encoded) header values, unfolded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub date: Option<String>,
    pub subject: Option<String>,
    pub from: Vec<EnvelopeAddress>,
    pub sender: Vec<EnvelopeAddress>,
    pub reply_to: Vec<EnvelopeAddress>,
    pub to: Vec<EnvelopeAddress>,
    pub cc: Vec<EnvelopeAddress>,
    pub bcc: Vec<EnvelopeAddress>,
    pub in_reply_to: Option<String>,
    pub message_id: Option<String>,
}

/// One address of an ENVELOPE list. A group starts with `mailbox = group name, host = None`
/// and ends with both `None` (RFC 3501 §7.4.2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeAddress {
    pub name: Option<String>,
    /// The obsolete source route (`<@relay:user@host>`), RFC 3501's "adl".
    pub route: Option<String>,
    pub mailbox: Option<String>,
    pub host: Option<String>,
}

/// Where a part lies in the message's bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartOffsets {
    pub header: u32,
    pub body: u32,
    pub end: u32,
}

/// One MIME part with what BODYSTRUCTURE reports of it (RFC 3501 §7.4.2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyPart {
    pub offsets: PartOffsets,
    /// Lower case, e.g. `text`.
    pub media_type: String,
    /// Lower case, e.g. `plain`.
    pub media_subtype: String,
    pub params: Vec<(String, String)>,
    pub id: Option<String>,
    pub description: Option<String>,
    /// Content-Transfer-Encoding, `7BIT` when absent.
    pub encoding: String,
    pub md5: Option<String>,
    pub disposition: Option<(String, Vec<(String, String)>)>,
    pub language: Vec<String>,
    pub location: Option<String>,
    /// Lines of the body, for text/* and message/rfc822 parts.
    pub lines: u32,
    pub content: PartContent,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartContent {
    #[default]
    Single,
    Multipart(Vec<BodyPart>),
    /// message/rfc822: the encapsulated message's envelope and body.
    Message(Box<Envelope>, Box<BodyPart>),
}

impl MessageSummary {
    /// Parses `raw`. Never fails: what cannot be parsed is summarized as a text/plain message
    /// without headers, so a malformed message is still stored and fetchable.
    pub fn parse(raw: &[u8]) -> MessageSummary {
        // mail-parser asserts its own invariants in debug builds, and hostile input has been
        // seen to trip them (fuzz corpus `regression-nested-offsets.eml`): a message that
        // cannot be parsed must still be delivered, so a panic falls back like a failure.
        let parsed = std::panic::catch_unwind(|| Self::parse_unguarded(raw));
        parsed.unwrap_or_else(|_| MessageSummary {
            body: fallback_part(raw),
            ..Default::default()
        })
    }

    fn parse_unguarded(raw: &[u8]) -> MessageSummary {
        let Some(message) = MessageParser::default().parse(raw) else {
            return MessageSummary {
                body: fallback_part(raw),
                ..Default::default()
            };
        };
        let Some(root) = message.parts.first() else {
            return MessageSummary {
                body: fallback_part(raw),
                ..Default::default()
            };
        };
        MessageSummary {
            envelope: envelope(root, raw),
            body: body_part(&message.parts, 0, raw, 0),
            headers: root
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.as_str().to_ascii_lowercase(),
                        decoded_text(h.value(), raw_value(raw, h)),
                    )
                })
                .collect(),
        }
    }
}

fn fallback_part(raw: &[u8]) -> BodyPart {
    BodyPart {
        offsets: PartOffsets {
            header: 0,
            body: 0,
            end: raw.len() as u32,
        },
        media_type: "text".into(),
        media_subtype: "plain".into(),
        params: vec![("charset".into(), "us-ascii".into())],
        encoding: "7BIT".into(),
        lines: count_lines(raw),
        ..Default::default()
    }
}

fn count_lines(bytes: &[u8]) -> u32 {
    let newlines = bytes.iter().filter(|b| **b == b'\n').count();
    let unterminated = !bytes.is_empty() && !bytes.ends_with(b"\n");
    (newlines + usize::from(unterminated)) as u32
}

/// The raw value of a header field, unfolded (RFC 5322 §2.2.3) and trimmed.
fn raw_value(raw: &[u8], h: &mail_parser::Header<'_>) -> String {
    let bytes = raw
        .get(h.offset_start as usize..h.offset_end as usize)
        .unwrap_or_default();
    let text = String::from_utf8_lossy(bytes);
    text.replace("\r\n", "")
        .replace('\n', "")
        .trim()
        .to_string()
}

fn decoded_text(value: &HeaderValue<'_>, raw: String) -> String {
    match value {
        HeaderValue::Text(t) => t.to_string(),
        HeaderValue::TextList(list) => list.join(", "),
        // Group names stay, so that SEARCH TO finds a group by its name (RFC 3501 §6.4.4
        // searches the field, names included).
        HeaderValue::Address(a) => addresses(a)
            .iter()
            .filter_map(|x| match (&x.mailbox, &x.host) {
                (Some(mailbox), Some(host)) => Some(match &x.name {
                    Some(n) => format!("{n} <{mailbox}@{host}>"),
                    None => format!("{mailbox}@{host}"),
                }),
                (Some(group), None) => Some(format!("{group}:")),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => raw,
    }
}

fn header_raw(part: &MessagePart<'_>, raw: &[u8], name: HeaderName<'_>) -> Option<String> {
    // Field names are case-insensitive (RFC 5322 §1.2.2); mail-parser keeps unknown ones as
    // written.
    let wanted = name.as_str();
    part.headers
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case(wanted))
        .map(|h| raw_value(raw, h))
}

fn header_addresses(part: &MessagePart<'_>, name: HeaderName<'_>) -> Vec<EnvelopeAddress> {
    part.headers
        .iter()
        .find(|h| h.name == name)
        .and_then(|h| h.value.as_address())
        .map(addresses)
        .unwrap_or_default()
}

fn split_address(address: Option<&str>) -> (Option<String>, Option<String>) {
    match address.and_then(|a| a.rsplit_once('@')) {
        // A quoted local part (`"john.smith"@x`) is given without its quotes, as a string.
        Some((local, host)) => {
            let local = local
                .strip_prefix('"')
                .and_then(|l| l.strip_suffix('"'))
                .unwrap_or(local);
            (Some(local.to_string()), Some(host.to_string()))
        }
        None => (address.map(str::to_string), None),
    }
}

fn addresses(address: &Address<'_>) -> Vec<EnvelopeAddress> {
    let one = |a: &mail_parser::Addr<'_>| {
        // RFC 5322 §4.4 obs-route: `@relay,@relay2:user@host`.
        let (route, address) = match a.address.as_deref() {
            Some(a) if a.starts_with('@') => match a.split_once(':') {
                Some((route, rest)) => (Some(route.to_string()), Some(rest)),
                None => (None, Some(a)),
            },
            other => (None, other),
        };
        let (mailbox, host) = split_address(address);
        EnvelopeAddress {
            name: a.name.as_deref().map(str::to_string),
            route,
            mailbox,
            host,
        }
    };
    match address {
        Address::List(list) => list.iter().map(one).collect(),
        Address::Group(groups) => {
            let mut out = Vec::new();
            for g in groups {
                if let Some(name) = &g.name {
                    out.push(EnvelopeAddress {
                        mailbox: Some(name.to_string()),
                        ..Default::default()
                    });
                    // A comment alone (`group: (foo) ;`) is no member.
                    let members = g.addresses.iter().filter(|a| a.address.is_some());
                    out.extend(members.map(one));
                    out.push(EnvelopeAddress::default());
                } else {
                    out.extend(g.addresses.iter().map(one));
                }
            }
            out
        }
    }
}

fn envelope(part: &MessagePart<'_>, raw: &[u8]) -> Envelope {
    let from = header_addresses(part, HeaderName::From);
    let or_from = |list: Vec<EnvelopeAddress>| if list.is_empty() { from.clone() } else { list };
    Envelope {
        date: header_raw(part, raw, HeaderName::Date),
        subject: header_raw(part, raw, HeaderName::Subject),
        // RFC 3501 §7.4.2: Sender and Reply-To default to From.
        sender: or_from(header_addresses(part, HeaderName::Sender)),
        reply_to: or_from(header_addresses(part, HeaderName::ReplyTo)),
        to: header_addresses(part, HeaderName::To),
        cc: header_addresses(part, HeaderName::Cc),
        bcc: header_addresses(part, HeaderName::Bcc),
        in_reply_to: header_raw(part, raw, HeaderName::InReplyTo),
        message_id: header_raw(part, raw, HeaderName::MessageId),
        from,
    }
}

fn attributes(attrs: Option<&[mail_parser::Attribute<'_>]>) -> Vec<(String, String)> {
    attrs
        .unwrap_or_default()
        .iter()
        .map(|a| (a.name.to_ascii_lowercase(), a.value.to_string()))
        .collect()
}

/// Summarizes part `id` of `parts`, whose offsets count in `raw`.
fn body_part(parts: &[MessagePart<'_>], id: usize, raw: &[u8], depth: usize) -> BodyPart {
    let Some(part) = parts.get(id) else {
        return BodyPart::default();
    };
    let offsets = PartOffsets {
        header: part.offset_header,
        body: part.offset_body,
        end: part.offset_end,
    };
    let ctype = part.content_type();
    let (media_type, media_subtype) = match ctype {
        Some(c) => (
            c.ctype().to_ascii_lowercase(),
            c.subtype().unwrap_or("").to_ascii_lowercase(),
        ),
        None if part.is_multipart() => ("multipart".into(), "mixed".into()),
        // RFC 2046 §5.1.5: in a multipart/digest a part without Content-Type is a message.
        None if part.is_message() => ("message".into(), "rfc822".into()),
        None => ("text".into(), "plain".into()),
    };
    let body_bytes = raw
        .get(offsets.body as usize..offsets.end as usize)
        .unwrap_or_default();
    let content = match &part.body {
        PartType::Multipart(children) if depth < MAX_DEPTH => PartContent::Multipart(
            children
                .iter()
                .map(|c| body_part(parts, *c as usize, raw, depth + 1))
                .collect(),
        ),
        PartType::Message(nested) if depth < MAX_DEPTH => match nested.parts.first() {
            Some(root) => {
                let nested_raw = nested.raw_message();
                if !nested_raw.is_empty() && body_bytes.starts_with(nested_raw) {
                    // Parsed in place: mail-parser's offsets count from the outer message.
                    // A multipart's epilogue is left out of its raw message, not of ours: the
                    // encapsulated message ends where its part does.
                    let mut body = body_part(&nested.parts, 0, raw, depth + 1);
                    body.offsets.end = offsets.end;
                    PartContent::Message(Box::new(envelope(root, raw)), Box::new(body))
                } else {
                    // Transfer-encoded (RFC 2046 §5.2.1 forbids it, senders do it anyway):
                    // the parts lie in the decoded bytes, so in ours they are the whole body.
                    let mut body = body_part(&nested.parts, 0, nested_raw, depth + 1);
                    body.pin(offsets);
                    PartContent::Message(Box::new(envelope(root, nested_raw)), Box::new(body))
                }
            }
            None => PartContent::Single,
        },
        _ => PartContent::Single,
    };
    let has_lines = media_type == "text" || matches!(content, PartContent::Message(..));
    BodyPart {
        offsets,
        params: attributes(ctype.and_then(|c| c.attributes())),
        id: header_raw(part, raw, HeaderName::ContentId),
        description: header_raw(part, raw, HeaderName::ContentDescription),
        encoding: header_raw(part, raw, HeaderName::ContentTransferEncoding)
            .map(|e| e.to_ascii_uppercase())
            .unwrap_or_else(|| "7BIT".into()),
        md5: header_raw(part, raw, HeaderName::Other("Content-MD5".into())),
        disposition: part
            .content_disposition()
            .map(|d| (d.ctype().to_ascii_lowercase(), attributes(d.attributes()))),
        language: part
            .content_language()
            .as_text_list()
            .map(|l| l.iter().map(|s| s.to_string()).collect())
            .or_else(|| {
                part.content_language()
                    .as_text()
                    .map(|s| vec![s.to_string()])
            })
            .unwrap_or_default(),
        location: header_raw(part, raw, HeaderName::ContentLocation),
        lines: if has_lines {
            count_lines(body_bytes)
        } else {
            0
        },
        media_type,
        media_subtype,
        content,
    }
}

impl BodyPart {
    /// Sets every offset of this part and its children to `offsets`.
    fn pin(&mut self, offsets: PartOffsets) {
        self.offsets = offsets;
        match &mut self.content {
            PartContent::Single => {}
            PartContent::Multipart(children) => children.iter_mut().for_each(|c| c.pin(offsets)),
            PartContent::Message(_, body) => body.pin(offsets),
        }
    }

    /// This part and every part inside it, depth first.
    pub fn walk(&self) -> Vec<&BodyPart> {
        let mut out = vec![self];
        match &self.content {
            PartContent::Single => {}
            PartContent::Multipart(children) => children.iter().for_each(|c| out.extend(c.walk())),
            PartContent::Message(_, body) => out.extend(body.walk()),
        }
        out
    }
}

/// The fuzz target's oracle, also run over its corpus by the tests: summarizing never
/// panics, and every part's offsets are ordered and inside the message.
pub fn check_summary_invariants(raw: &[u8]) {
    let summary = MessageSummary::parse(raw);
    for part in summary.body.walk() {
        let o = part.offsets;
        assert!(
            o.header <= o.body && o.body <= o.end && o.end as usize <= raw.len(),
            "part offsets {o:?} out of order or beyond {} bytes",
            raw.len()
        );
    }
}

/// The text of a message's text parts, decoded (quoted-printable, base64, charsets): what
/// SEARCH BODY and TEXT look in besides the raw bytes (RFC 3501 §6.4.4 searches the
/// message's text, not its transfer encoding).
pub fn text_of_parts(raw: &[u8]) -> String {
    let parsed = std::panic::catch_unwind(|| {
        let message = mail_parser::MessageParser::default().parse(raw)?;
        let mut out = String::new();
        for part in &message.parts {
            match &part.body {
                mail_parser::PartType::Text(text) | mail_parser::PartType::Html(text) => {
                    out.push_str(text);
                    out.push('\n');
                }
                _ => {}
            }
        }
        Some(out)
    });
    parsed.ok().flatten().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIMPLE: &[u8] = b"From: Lucie <lucie@gmail.example>\r\nTo: contact@acme.example\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\nMessage-ID: <1@x>\r\n\r\nHello\r\nworld\r\n";

    #[test]
    fn envelope_keeps_raw_values_and_splits_addresses() {
        let s = MessageSummary::parse(SIMPLE);
        assert_eq!(s.envelope.subject.as_deref(), Some("=?utf-8?q?Caf=C3=A9?="));
        assert_eq!(s.envelope.from[0].mailbox.as_deref(), Some("lucie"));
        assert_eq!(s.envelope.from[0].host.as_deref(), Some("gmail.example"));
        assert_eq!(s.envelope.sender, s.envelope.from);
        assert_eq!(s.envelope.message_id.as_deref(), Some("<1@x>"));
    }

    /// imaptest's fetch-envelope and search-addresses: a comment in a group is no member,
    /// and the group's name is searchable.
    #[test]
    fn groups_keep_their_names_and_only_their_members() {
        let raw =
            b"To: group: g1@d1.org, g2@d2.org;, group2: (foo) ;\r\nSubject: x\r\n\r\nbody\r\n";
        let s = MessageSummary::parse(raw);
        let to: Vec<_> = s
            .envelope
            .to
            .iter()
            .map(|a| (a.mailbox.as_deref(), a.host.as_deref()))
            .collect();
        assert_eq!(
            to,
            [
                (Some("group"), None),
                (Some("g1"), Some("d1.org")),
                (Some("g2"), Some("d2.org")),
                (None, None),
                (Some("group2"), None),
                (None, None),
            ]
        );
        let (_, text) = s.headers.iter().find(|(n, _)| n == "to").unwrap();
        assert!(
            text.contains("group:") && text.contains("group2:"),
            "{text}"
        );
    }

    #[test]
    fn a_source_route_is_kept_apart() {
        let s = MessageSummary::parse(b"From: <@route:user@domain>\r\n\r\nx\r\n");
        let from = &s.envelope.from[0];
        assert_eq!(from.route.as_deref(), Some("@route"));
        assert_eq!(from.mailbox.as_deref(), Some("user"));
        assert_eq!(from.host.as_deref(), Some("domain"));
    }

    #[test]
    fn headers_are_decoded_for_search() {
        let s = MessageSummary::parse(SIMPLE);
        assert!(s.headers.contains(&("subject".into(), "Café".into())));
    }

    #[test]
    fn text_body_has_lines_and_offsets() {
        let s = MessageSummary::parse(SIMPLE);
        assert_eq!(
            (s.body.media_type.as_str(), s.body.media_subtype.as_str()),
            ("text", "plain")
        );
        assert_eq!(s.body.lines, 2);
        let body = &SIMPLE[s.body.offsets.body as usize..s.body.offsets.end as usize];
        assert_eq!(body, b"Hello\r\nworld\r\n");
    }

    #[test]
    fn multipart_children_are_sliceable() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n";
        let s = MessageSummary::parse(raw);
        let PartContent::Multipart(children) = &s.body.content else {
            panic!("not multipart: {:?}", s.body.content);
        };
        assert_eq!(children.len(), 2);
        assert_eq!(children[1].media_type, "application");
        assert_eq!(children[1].encoding, "BASE64");
        assert_eq!(
            children[1].params,
            vec![("name".to_string(), "x.pdf".to_string())]
        );
        let first = &raw[children[0].offsets.body as usize..children[0].offsets.end as usize];
        assert!(
            first.starts_with(b"one"),
            "{:?}",
            String::from_utf8_lossy(first)
        );
    }

    #[test]
    fn nested_message_parts_are_sliceable() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nouter\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@x.example\r\nSubject: inner\r\n\r\ninner body\r\n--b--\r\n";
        let s = MessageSummary::parse(raw);
        let PartContent::Multipart(children) = &s.body.content else {
            panic!("not multipart");
        };
        let PartContent::Message(envelope, body) = &children[1].content else {
            panic!("not a message: {:?}", children[1].content);
        };
        assert_eq!(envelope.subject.as_deref(), Some("inner"));
        let header = &raw[body.offsets.header as usize..body.offsets.body as usize];
        assert!(
            header.starts_with(b"From: inner@x.example"),
            "{:?}",
            String::from_utf8_lossy(header)
        );
        let text = &raw[body.offsets.body as usize..body.offsets.end as usize];
        assert!(
            text.starts_with(b"inner body"),
            "{:?}",
            String::from_utf8_lossy(text)
        );
        check_summary_invariants(raw);
    }

    #[test]
    fn garbage_is_still_summarized() {
        let s = MessageSummary::parse(b"\xff\xfe not a message");
        assert!(!s.body.media_type.is_empty());
    }
}
