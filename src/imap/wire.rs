//! Writing IMAP responses (RFC 3501 §4, §9): strings as atoms, quoted strings or literals, so
//! that whatever a message holds reaches the client intact.

use crate::mail::{BodyPart, Envelope, EnvelopeAddress, PartContent};
use crate::model::Millis;
use crate::store::Flags;

/// Appends `s` as a quoted string when it can be one, else as a literal.
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    // RFC 3501 §9: a quoted string holds 7-bit characters other than NUL, CR and LF.
    let quotable = s.len() < 1024
        && s.iter()
            .all(|b| (1..0x80).contains(b) && *b != b'\r' && *b != b'\n');
    if quotable {
        out.push(b'"');
        for b in s {
            if *b == b'"' || *b == b'\\' {
                out.push(b'\\');
            }
            out.push(*b);
        }
        out.push(b'"');
    } else {
        literal(out, s);
    }
}

/// A literal. RFC 3501 §4.3 allows no NUL in one (BINARY's literal8 is the place for
/// them): a NUL in a message is sent as 0x80, as Dovecot does, keeping sizes and offsets.
pub fn literal(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
    let start = out.len();
    out.extend_from_slice(s);
    if s.contains(&0) {
        out[start..]
            .iter_mut()
            .filter(|b| **b == 0)
            .for_each(|b| *b = 0x80);
    }
}

/// BINARY's data (RFC 3516 §4.2): a literal8 (`~{n}`) when it holds a NUL, else a literal.
pub fn binary_literal(out: &mut Vec<u8>, s: &[u8]) {
    if s.contains(&0) {
        out.extend_from_slice(format!("~{{{}}}\r\n", s.len()).as_bytes());
        out.extend_from_slice(s);
    } else {
        literal(out, s);
    }
}

/// `NIL` or a string.
pub fn nstring(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s.as_bytes()),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// An astring (RFC 3501 §9): an atom when it is one, else a string.
pub fn astring(out: &mut Vec<u8>, s: &str) {
    let atom = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"(){ %*\"\\]".contains(&b));
    if atom {
        out.extend_from_slice(s.as_bytes());
    } else {
        string(out, s.as_bytes());
    }
}

/// A folder name: in modified UTF-7 (RFC 3501 §5.1.3), or once the client enabled
/// UTF8=ACCEPT as UTF-8, quoted where it can be (RFC 6855 §3).
pub fn folder_name(out: &mut Vec<u8>, name: &str, utf8: bool) {
    if !utf8 {
        return astring(out, &super::utf7::encode(name));
    }
    if name.is_ascii() {
        return astring(out, name);
    }
    let quotable = name.len() < 1024 && !name.contains(['\r', '\n', '\0']);
    if quotable {
        out.push(b'"');
        for b in name.bytes() {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, name.as_bytes());
    }
}

/// The flags as FETCH FLAGS shows them.
pub fn flags(out: &mut Vec<u8>, flags: Flags, keywords: &[String], recent: bool) {
    let mut names: Vec<&str> = Vec::new();
    for (flag, name) in [
        (Flags::SEEN, "\\Seen"),
        (Flags::ANSWERED, "\\Answered"),
        (Flags::FLAGGED, "\\Flagged"),
        (Flags::DELETED, "\\Deleted"),
        (Flags::DRAFT, "\\Draft"),
    ] {
        if flags.contains(flag) {
            names.push(name);
        }
    }
    if recent {
        names.push("\\Recent");
    }
    names.extend(keywords.iter().map(String::as_str));
    out.push(b'(');
    out.extend_from_slice(names.join(" ").as_bytes());
    out.push(b')');
}

/// RFC 3501 date-time: `"23-Nov-2026 19:37:37 +0000"`.
pub fn internal_date(out: &mut Vec<u8>, at: Millis) {
    let dt = chrono::DateTime::from_timestamp_millis(at).unwrap_or_default();
    out.extend_from_slice(
        dt.format("\"%d-%b-%Y %H:%M:%S +0000\"")
            .to_string()
            .as_bytes(),
    );
}

/// A display name as ENVELOPE shows it: 7-bit as is, otherwise as an RFC 2047 encoded word,
/// so that clients without UTF-8 support still read it.
fn display_name(out: &mut Vec<u8>, name: Option<&str>) {
    match name {
        Some(n) if !n.is_ascii() => {
            use base64::Engine;
            let encoded = base64::engine::general_purpose::STANDARD.encode(n.as_bytes());
            string(out, format!("=?UTF-8?B?{encoded}?=").as_bytes());
        }
        other => nstring(out, other),
    }
}

/// RFC 2231 §4 for a parameter value that is not 7-bit: `name*` = `UTF-8''percent-encoded`.
fn param(out: &mut Vec<u8>, key: &str, value: &str) {
    if value.is_ascii() {
        string(out, key.to_ascii_uppercase().as_bytes());
        out.push(b' ');
        string(out, value.as_bytes());
        return;
    }
    let mut encoded = String::from("UTF-8''");
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    string(out, format!("{}*", key.to_ascii_uppercase()).as_bytes());
    out.push(b' ');
    string(out, encoded.as_bytes());
}

fn address_list(out: &mut Vec<u8>, list: &[EnvelopeAddress]) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in list {
        out.push(b'(');
        display_name(out, a.name.as_deref());
        out.push(b' ');
        nstring(out, a.route.as_deref());
        out.push(b' ');
        nstring(out, a.mailbox.as_deref());
        out.push(b' ');
        nstring(out, a.host.as_deref());
        out.push(b')');
    }
    out.push(b')');
}

/// RFC 3501 §7.4.2 ENVELOPE.
pub fn envelope(out: &mut Vec<u8>, e: &Envelope) {
    out.push(b'(');
    nstring(out, e.date.as_deref());
    out.push(b' ');
    nstring(out, e.subject.as_deref());
    for list in [&e.from, &e.sender, &e.reply_to, &e.to, &e.cc, &e.bcc] {
        out.push(b' ');
        address_list(out, list);
    }
    out.push(b' ');
    nstring(out, e.in_reply_to.as_deref());
    out.push(b' ');
    nstring(out, e.message_id.as_deref());
    out.push(b')');
}

fn params(out: &mut Vec<u8>, params: &[(String, String)]) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        param(out, k, v);
    }
    out.push(b')');
}

fn disposition(out: &mut Vec<u8>, d: &Option<(String, Vec<(String, String)>)>) {
    match d {
        None => out.extend_from_slice(b"NIL"),
        Some((kind, p)) => {
            out.push(b'(');
            string(out, kind.to_ascii_uppercase().as_bytes());
            out.push(b' ');
            params(out, p);
            out.push(b')');
        }
    }
}

fn language(out: &mut Vec<u8>, langs: &[String]) {
    match langs {
        [] => out.extend_from_slice(b"NIL"),
        [one] => string(out, one.as_bytes()),
        many => {
            out.push(b'(');
            for (i, l) in many.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(out, l.as_bytes());
            }
            out.push(b')');
        }
    }
}

/// RFC 3501 §7.4.2 BODYSTRUCTURE (`extended`) or BODY.
pub fn body_structure(out: &mut Vec<u8>, part: &BodyPart, extended: bool) {
    out.push(b'(');
    match &part.content {
        PartContent::Multipart(children) => {
            for child in children {
                body_structure(out, child, extended);
            }
            if children.is_empty() {
                // RFC 3501 requires at least one part; an empty multipart shows as empty text.
                out.extend_from_slice(b"(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 0 0)");
            }
            out.push(b' ');
            string(out, part.media_subtype.to_ascii_uppercase().as_bytes());
            if extended {
                out.push(b' ');
                params(out, &part.params);
                out.push(b' ');
                disposition(out, &part.disposition);
                out.push(b' ');
                language(out, &part.language);
                out.push(b' ');
                nstring(out, part.location.as_deref());
            }
        }
        content => {
            string(out, part.media_type.to_ascii_uppercase().as_bytes());
            out.push(b' ');
            string(out, part.media_subtype.to_ascii_uppercase().as_bytes());
            out.push(b' ');
            let mut p = part.params.clone();
            if part.media_type == "text" && !p.iter().any(|(k, _)| k == "charset") {
                p.insert(0, ("charset".into(), "us-ascii".into()));
            }
            params(out, &p);
            out.push(b' ');
            nstring(out, part.id.as_deref());
            out.push(b' ');
            nstring(out, part.description.as_deref());
            out.push(b' ');
            string(out, part.encoding.as_bytes());
            let size = part.offsets.end.saturating_sub(part.offsets.body);
            out.extend_from_slice(format!(" {size}").as_bytes());
            if let PartContent::Message(env, body) = content {
                out.push(b' ');
                envelope(out, env);
                out.push(b' ');
                body_structure(out, body, extended);
                out.extend_from_slice(format!(" {}", part.lines).as_bytes());
            } else if part.media_type == "text" {
                out.extend_from_slice(format!(" {}", part.lines).as_bytes());
            }
            if extended {
                out.push(b' ');
                nstring(out, part.md5.as_deref());
                out.push(b' ');
                disposition(out, &part.disposition);
                out.push(b' ');
                language(out, &part.language);
                out.push(b' ');
                nstring(out, part.location.as_deref());
            }
        }
    }
    out.push(b')');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl Fn(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn folder_names_are_modified_utf7_until_utf8_is_enabled() {
        assert_eq!(s(|o| folder_name(o, "Entwürfe", false)), "Entw&APw-rfe");
        assert_eq!(s(|o| folder_name(o, "Entwürfe", true)), "\"Entwürfe\"");
        assert_eq!(s(|o| folder_name(o, "R&D", false)), "R&-D");
        assert_eq!(s(|o| folder_name(o, "R&D", true)), "R&D");
    }

    #[test]
    fn strings_are_quoted_or_literal() {
        assert_eq!(s(|o| string(o, b"hello world")), "\"hello world\"");
        assert_eq!(s(|o| string(o, b"say \"hi\"")), "\"say \\\"hi\\\"\"");
        assert_eq!(s(|o| string(o, "café".as_bytes())), "{5}\r\ncafé");
        assert_eq!(s(|o| string(o, b"a\r\nb")), "{4}\r\na\r\nb");
        assert_eq!(s(|o| astring(o, "INBOX")), "INBOX");
        assert_eq!(s(|o| astring(o, "Sent Items")), "\"Sent Items\"");
    }

    #[test]
    fn body_structure_of_a_simple_text_message() {
        let summary = crate::mail::MessageSummary::parse(b"Subject: x\r\n\r\nline 1\r\nline 2\r\n");
        assert_eq!(
            s(|o| body_structure(o, &summary.body, true)),
            "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 16 2 NIL NIL NIL NIL)"
        );
        assert_eq!(
            s(|o| body_structure(o, &summary.body, false)),
            "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 16 2)"
        );
    }

    #[test]
    fn internal_dates_are_rfc3501() {
        assert_eq!(s(|o| internal_date(o, 0)), "\"01-Jan-1970 00:00:00 +0000\"");
    }
}

#[cfg(test)]
mod literal_tests {
    #[test]
    fn a_literal_carries_no_nul() {
        let mut out = Vec::new();
        super::literal(&mut out, b"a\0b");
        assert_eq!(out, b"{3}\r\na\x80b");
    }
}
