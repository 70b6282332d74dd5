//! FETCH data items (RFC 3501 §6.4.5, §7.4.2) from the stored summary and the message bytes.

use super::wire;
use crate::mail::{BodyPart, MessageSummary, PartContent};
use imap_codec::imap_types::fetch::{
    Macro, MacroOrMessageDataItemNames, MessageDataItemName, Section,
};

/// The items asked for, with macros expanded.
pub fn items(m: MacroOrMessageDataItemNames<'static>) -> Vec<MessageDataItemName<'static>> {
    use MessageDataItemName::*;
    match m {
        MacroOrMessageDataItemNames::Macro(Macro::Fast) => vec![Flags, InternalDate, Rfc822Size],
        MacroOrMessageDataItemNames::Macro(Macro::All) => {
            vec![Flags, InternalDate, Rfc822Size, Envelope]
        }
        MacroOrMessageDataItemNames::Macro(Macro::Full) => {
            vec![Flags, InternalDate, Rfc822Size, Envelope, Body]
        }
        MacroOrMessageDataItemNames::Macro(_) => vec![Flags],
        MacroOrMessageDataItemNames::MessageDataItemNames(items) => items,
    }
}

/// Whether any item needs the message's bytes (rather than the stored summary).
pub fn needs_bytes(items: &[MessageDataItemName<'_>]) -> bool {
    items.iter().any(|i| {
        matches!(
            i,
            MessageDataItemName::BodyExt { .. }
                | MessageDataItemName::Rfc822
                | MessageDataItemName::Rfc822Header
                | MessageDataItemName::Rfc822Text
                | MessageDataItemName::Binary { .. }
                | MessageDataItemName::BinarySize { .. }
        )
    })
}

/// Whether fetching `items` sets `\Seen` (RFC 3501 §6.4.5: BODY[] without PEEK, RFC822,
/// RFC822.TEXT).
pub fn sets_seen(items: &[MessageDataItemName<'_>]) -> bool {
    items.iter().any(|i| {
        matches!(
            i,
            MessageDataItemName::BodyExt { peek: false, .. }
                | MessageDataItemName::Binary { peek: false, .. }
                | MessageDataItemName::Rfc822
                | MessageDataItemName::Rfc822Text
        )
    })
}

/// The part a section path names (RFC 3501 §6.4.5). The first number counts the parts of
/// the message itself, the next ones those of the part before: a multipart's children, or
/// the parts of a message/rfc822's encapsulated message. So when the message's own body is
/// message/rfc822, `1` is that whole encapsulated message and `1.1` its body.
fn find_part<'a>(root: &'a BodyPart, path: &[u32]) -> Option<&'a BodyPart> {
    let (&first, rest) = path.split_first()?;
    let mut current = part_of_message(root, first)?;
    for &n in rest {
        current = match &current.content {
            PartContent::Multipart(children) => children.get(n.checked_sub(1)? as usize)?,
            PartContent::Message(_, body) => part_of_message(body, n)?,
            PartContent::Single => return None,
        };
    }
    Some(current)
}

/// Part `n` of a message whose body is `body`: a multipart body's n-th child; any other body
/// is the message's only part, 1 (RFC 3501 §6.4.5).
fn part_of_message(body: &BodyPart, n: u32) -> Option<&BodyPart> {
    match &body.content {
        PartContent::Multipart(children) => children.get(n.checked_sub(1)? as usize),
        _ if n == 1 => Some(body),
        _ => None,
    }
}

/// The encapsulated message of a message/rfc822 part (or the message itself for no path).
fn message_of<'a>(root: &'a BodyPart, path: Option<&[u32]>) -> Option<&'a BodyPart> {
    match path {
        None => Some(root),
        Some(path) => match &find_part(root, path)?.content {
            PartContent::Message(_, body) => Some(body),
            _ => None,
        },
    }
}

fn slice(raw: &[u8], from: u32, to: u32) -> &[u8] {
    raw.get(from as usize..to as usize).unwrap_or_default()
}

/// The header fields of `header` whose names are (or, with `not`, are not) in `names`,
/// followed by the blank line.
fn header_fields(header: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|b| *b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !continuation {
            let name = line.split(|b| *b == b':').next().unwrap_or_default();
            let name = String::from_utf8_lossy(name).trim().to_ascii_lowercase();
            keep = names.contains(&name) != not;
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The bytes of `section` (None: the whole message).
pub fn section_bytes(
    raw: &[u8],
    summary: &MessageSummary,
    section: Option<&Section<'_>>,
) -> Vec<u8> {
    let path = |p: &imap_codec::imap_types::fetch::Part| -> Vec<u32> {
        p.0.as_ref().iter().map(|n| n.get()).collect()
    };
    let root = &summary.body;
    let names = |fields: &[imap_codec::imap_types::core::AString<'_>]| -> Vec<String> {
        fields
            .iter()
            .map(|f| String::from_utf8_lossy(f.as_ref()).to_ascii_lowercase())
            .collect()
    };
    match section {
        None => raw.to_vec(),
        Some(Section::Part(p)) => find_part(root, &path(p))
            .map(|part| slice(raw, part.offsets.body, part.offsets.end).to_vec())
            .unwrap_or_default(),
        Some(Section::Header(p)) => message_of(root, p.as_ref().map(path).as_deref())
            .map(|m| slice(raw, m.offsets.header, m.offsets.body).to_vec())
            .unwrap_or_default(),
        Some(Section::Text(p)) => message_of(root, p.as_ref().map(path).as_deref())
            .map(|m| slice(raw, m.offsets.body, m.offsets.end).to_vec())
            .unwrap_or_default(),
        Some(Section::Mime(p)) => find_part(root, &path(p))
            .map(|part| slice(raw, part.offsets.header, part.offsets.body).to_vec())
            .unwrap_or_default(),
        Some(Section::HeaderFields(p, fields)) | Some(Section::HeaderFieldsNot(p, fields)) => {
            let not = matches!(section, Some(Section::HeaderFieldsNot(..)));
            message_of(root, p.as_ref().map(path).as_deref())
                .map(|m| {
                    header_fields(
                        slice(raw, m.offsets.header, m.offsets.body),
                        &names(fields.as_ref()),
                        not,
                    )
                })
                .unwrap_or_default()
        }
    }
}

/// The section specification as FETCH echoes it: `BODY[1.HEADER.FIELDS (SUBJECT)]`.
pub fn section_name(section: Option<&Section<'_>>) -> String {
    let part = |p: &imap_codec::imap_types::fetch::Part| {
        p.0.as_ref()
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(".")
    };
    let prefixed = |p: &Option<imap_codec::imap_types::fetch::Part>, what: &str| match p {
        Some(p) => format!("{}.{what}", part(p)),
        None => what.to_string(),
    };
    let fields = |f: &[imap_codec::imap_types::core::AString<'_>]| {
        f.iter()
            .map(|s| {
                let mut out = Vec::new();
                wire::astring(
                    &mut out,
                    &String::from_utf8_lossy(s.as_ref()).to_ascii_uppercase(),
                );
                String::from_utf8_lossy(&out).into_owned()
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    match section {
        None => String::new(),
        Some(Section::Part(p)) => part(p),
        Some(Section::Header(p)) => prefixed(p, "HEADER"),
        Some(Section::Text(p)) => prefixed(p, "TEXT"),
        Some(Section::Mime(p)) => format!("{}.MIME", part(p)),
        Some(Section::HeaderFields(p, f)) => {
            format!("{} ({})", prefixed(p, "HEADER.FIELDS"), fields(f.as_ref()))
        }
        Some(Section::HeaderFieldsNot(p, f)) => format!(
            "{} ({})",
            prefixed(p, "HEADER.FIELDS.NOT"),
            fields(f.as_ref())
        ),
    }
}

/// Applies `<origin.count>` (RFC 3501 §6.4.5).
pub fn partial(bytes: Vec<u8>, partial: Option<(u32, std::num::NonZeroU32)>) -> (Vec<u8>, String) {
    match partial {
        None => (bytes, String::new()),
        Some((origin, count)) => {
            let start = (origin as usize).min(bytes.len());
            let end = start.saturating_add(count.get() as usize).min(bytes.len());
            (bytes[start..end].to_vec(), format!("<{origin}>"))
        }
    }
}

/// A part whose Content-Transfer-Encoding the server cannot undo (RFC 3516 §4.3,
/// UNKNOWN-CTE).
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownCte(pub String);

/// RFC 3516 §4.2: BINARY[path], the content of that part with its transfer encoding undone.
/// The whole message, a multipart and a message/rfc822 part are given as they are.
pub fn binary_bytes(
    raw: &[u8],
    summary: &MessageSummary,
    path: &[u32],
) -> Result<Vec<u8>, UnknownCte> {
    if path.is_empty() {
        return Ok(raw.to_vec());
    }
    let Some(part) = find_part(&summary.body, path) else {
        return Ok(Vec::new());
    };
    let body = slice(raw, part.offsets.body, part.offsets.end);
    if !matches!(part.content, PartContent::Single) {
        return Ok(body.to_vec());
    }
    let decoded = match part.encoding.as_str() {
        "7BIT" | "8BIT" | "BINARY" | "" => Some(body.to_vec()),
        "BASE64" => mail_parser::decoders::base64::base64_decode(body),
        "QUOTED-PRINTABLE" => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(body)
        }
        other => return Err(UnknownCte(other.to_string())),
    };
    // Undecodable content (broken base64) is given as the decoder could read it: nothing.
    Ok(decoded.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message whose own body is message/rfc822, encapsulating one whose body is too
    /// (imaptest's fetch-body-message-rfc822-x2).
    const TWICE: &[u8] = b"From: user@domain.org\r\nMime-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\nFrom: user2@domain.org\r\nMime-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\nFrom: sub@domain.org\r\nSubject: submsg\r\n\r\nHello world\r\n";

    fn body(raw: &[u8], path: &[u32]) -> String {
        let summary = MessageSummary::parse(raw);
        let part = find_part(&summary.body, path).expect("a part");
        String::from_utf8_lossy(slice(raw, part.offsets.body, part.offsets.end)).into_owned()
    }

    fn header(raw: &[u8], path: &[u32]) -> String {
        let summary = MessageSummary::parse(raw);
        let message = message_of(&summary.body, Some(path)).expect("a message");
        String::from_utf8_lossy(slice(raw, message.offsets.header, message.offsets.body))
            .into_owned()
    }

    #[test]
    fn part_one_of_a_message_rfc822_body_is_the_whole_encapsulated_message() {
        assert!(body(TWICE, &[1]).starts_with("From: user2@domain.org\r\n"));
        assert!(body(TWICE, &[1, 1]).starts_with("From: sub@domain.org\r\n"));
        assert_eq!(body(TWICE, &[1, 1, 1]), "Hello world\r\n");
        assert!(header(TWICE, &[1]).starts_with("From: user2@domain.org\r\n"));
        assert!(header(TWICE, &[1, 1]).starts_with("From: sub@domain.org\r\n"));
        let summary = MessageSummary::parse(TWICE);
        assert!(find_part(&summary.body, &[2]).is_none());
        assert!(find_part(&summary.body, &[1, 1, 1, 1]).is_none());
    }

    #[test]
    fn binary_undoes_the_transfer_encoding() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8A\r\n--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9=\r\n!\r\n--b\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n--b--\r\n";
        let summary = MessageSummary::parse(raw);
        assert_eq!(binary_bytes(raw, &summary, &[1]).unwrap(), b"hello\0");
        assert_eq!(
            binary_bytes(raw, &summary, &[2]).unwrap(),
            "café!".as_bytes()
        );
        assert_eq!(
            binary_bytes(raw, &summary, &[3]),
            Err(UnknownCte("X-UUENCODE".into()))
        );
        assert_eq!(binary_bytes(raw, &summary, &[]).unwrap(), raw);
    }

    #[test]
    fn a_forwarded_message_inside_a_multipart() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee below\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--b--\r\n";
        assert_eq!(body(raw, &[1]), "see below");
        assert!(body(raw, &[2]).starts_with("Subject: inner\r\n"));
        assert!(body(raw, &[2, 1]).starts_with("inner body"));
        assert_eq!(header(raw, &[2]), "Subject: inner\r\n\r\n");
    }
}
