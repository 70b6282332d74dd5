//! FETCH data items (RFC 3501 §6.4.5, §7.4.2) from the stored summary and the message bytes.

use super::wire;
use crate::mail::{BodyPart, MessageSummary, PartContent};
use imap_codec::imap_types::fetch::{
    Macro, MacroOrMessageDataItemNames, MessageDataItemName, Section,
};
use std::num::NonZeroU32;
use std::ops::Range;

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

/// The bytes of a message that a FETCH read: all of them, or, for items that need only part
/// of a large message (a partial `BODY[]<0.65536>`, one attachment, the header), the range
/// that holds them, so that the store reads only that (issue 14).
#[derive(Clone, Copy, Debug, Default)]
pub struct Window<'a> {
    /// Where `bytes` start in the message.
    start: u32,
    bytes: &'a [u8],
}

impl<'a> Window<'a> {
    pub fn whole(raw: &'a [u8]) -> Window<'a> {
        Window {
            start: 0,
            bytes: raw,
        }
    }

    pub fn at(start: u32, bytes: &'a [u8]) -> Window<'a> {
        Window { start, bytes }
    }

    /// Bytes `range` of the message; nothing if the window does not hold them all (as for a
    /// range beyond the message).
    fn slice(self, range: Range<u32>) -> &'a [u8] {
        let (Some(from), Some(to)) = (
            range.start.checked_sub(self.start),
            range.end.checked_sub(self.start),
        ) else {
            return &[];
        };
        self.bytes
            .get(from as usize..to as usize)
            .unwrap_or_default()
    }
}

/// Where a section's bytes come from: a range of the message, or the header fields picked
/// from a header (`HEADER.FIELDS`, `HEADER.FIELDS.NOT`).
enum Span<'s> {
    Cut(Range<u32>),
    Fields {
        header: Range<u32>,
        names: &'s [imap_codec::imap_types::core::AString<'s>],
        not: bool,
    },
}

/// Where `section` lies in a message of `size` bytes (RFC 3501 §6.4.5); a part that is not
/// there is an empty range.
fn span<'s>(summary: &MessageSummary, section: Option<&'s Section<'s>>, size: u32) -> Span<'s> {
    let path = |p: &imap_codec::imap_types::fetch::Part| -> Vec<u32> {
        p.0.as_ref().iter().map(|n| n.get()).collect()
    };
    let root = &summary.body;
    let message = |p: &Option<imap_codec::imap_types::fetch::Part>| {
        message_of(root, p.as_ref().map(path).as_deref())
    };
    let cut = |part: Option<&BodyPart>, range: fn(&BodyPart) -> Range<u32>| {
        Span::Cut(part.map(range).unwrap_or(0..0))
    };
    let header = |m: &BodyPart| m.offsets.header..m.offsets.body;
    let body = |m: &BodyPart| m.offsets.body..m.offsets.end;
    match section {
        None => Span::Cut(0..size),
        Some(Section::Part(p)) => cut(find_part(root, &path(p)), body),
        Some(Section::Header(p)) => cut(message(p), header),
        Some(Section::Text(p)) => cut(message(p), body),
        Some(Section::Mime(p)) => cut(find_part(root, &path(p)), header),
        Some(Section::HeaderFields(p, fields)) | Some(Section::HeaderFieldsNot(p, fields)) => {
            match message(p) {
                Some(m) => Span::Fields {
                    header: header(m),
                    names: fields.as_ref(),
                    not: matches!(section, Some(Section::HeaderFieldsNot(..))),
                },
                None => Span::Cut(0..0),
            }
        }
    }
}

/// `<origin.count>` of `range` (RFC 3501 §6.4.5): the bytes from `origin` on, at most
/// `count` of them.
fn within(range: Range<u32>, partial: Option<(u32, NonZeroU32)>) -> Range<u32> {
    match partial {
        None => range,
        Some((origin, count)) => {
            let start = range.start.saturating_add(origin).min(range.end);
            start..start.saturating_add(count.get()).min(range.end)
        }
    }
}

/// The bytes of `section` (None: the whole message of `size` bytes).
pub fn section_bytes(
    raw: Window<'_>,
    summary: &MessageSummary,
    section: Option<&Section<'_>>,
    size: u32,
) -> Vec<u8> {
    body_section(raw, summary, section, None, size).0
}

/// `BODY[section]<partial>`'s bytes and the origin it is echoed with.
pub fn body_section(
    raw: Window<'_>,
    summary: &MessageSummary,
    section: Option<&Section<'_>>,
    cut: Option<(u32, NonZeroU32)>,
    size: u32,
) -> (Vec<u8>, String) {
    let bytes = match span(summary, section, size) {
        Span::Cut(range) => raw.slice(within(range, cut)).to_vec(),
        Span::Fields { header, names, not } => {
            let names: Vec<String> = names
                .iter()
                .map(|f| String::from_utf8_lossy(f.as_ref()).to_ascii_lowercase())
                .collect();
            let fields = header_fields(raw.slice(header), &names, not);
            return partial(fields, cut);
        }
    };
    (bytes, origin(cut))
}

/// How a partial FETCH's answer names its origin: `<origin>`, or nothing.
fn origin(cut: Option<(u32, NonZeroU32)>) -> String {
    cut.map_or(String::new(), |(o, _)| format!("<{o}>"))
}

/// The one range of a message of `size` bytes that holds what `items` need of its bytes
/// (`None`: nothing); `summary` places the sections, without it the whole message is needed.
pub fn needed_range(
    items: &[MessageDataItemName<'_>],
    summary: Option<&MessageSummary>,
    size: u32,
) -> Option<Range<u32>> {
    use MessageDataItemName::*;
    let mut needed: Option<Range<u32>> = None;
    let whole = 0..size;
    for item in items {
        let range = match (item, summary) {
            (
                BodyExt { .. } | Rfc822Header | Rfc822Text | Binary { .. } | BinarySize { .. },
                None,
            )
            | (Rfc822, _) => whole.clone(),
            (
                BodyExt {
                    section, partial, ..
                },
                Some(summary),
            ) => match span(summary, section.as_ref(), size) {
                Span::Cut(range) => within(range, *partial),
                Span::Fields { header, .. } => header,
            },
            (Rfc822Header, Some(summary)) => summary.body.offsets.header..summary.body.offsets.body,
            (Rfc822Text, Some(summary)) => summary.body.offsets.body..summary.body.offsets.end,
            (Binary { section, .. } | BinarySize { section }, Some(summary)) => {
                binary_range(summary, section, size)
            }
            _ => continue,
        };
        let range = range.start.min(size)..range.end.min(size);
        needed = Some(match needed {
            None => range,
            Some(n) => n.start.min(range.start)..n.end.max(range.end),
        });
    }
    needed
}

/// Where BINARY[path] takes its bytes from: the whole message, or one part's body.
fn binary_range(summary: &MessageSummary, path: &[NonZeroU32], size: u32) -> Range<u32> {
    if path.is_empty() {
        return 0..size;
    }
    let path: Vec<u32> = path.iter().map(|n| n.get()).collect();
    find_part(&summary.body, &path).map_or(0..0, |p| p.offsets.body..p.offsets.end)
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
pub fn partial(bytes: Vec<u8>, cut: Option<(u32, NonZeroU32)>) -> (Vec<u8>, String) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    let range = within(0..len, cut);
    let kept = bytes[range.start as usize..range.end as usize].to_vec();
    (kept, origin(cut))
}

/// A part whose Content-Transfer-Encoding the server cannot undo (RFC 3516 §4.3,
/// UNKNOWN-CTE).
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownCte(pub String);

/// RFC 3516 §4.2: BINARY[path], the content of that part with its transfer encoding undone.
/// The whole message, a multipart and a message/rfc822 part are given as they are.
pub fn binary_bytes(
    raw: Window<'_>,
    summary: &MessageSummary,
    path: &[NonZeroU32],
    size: u32,
) -> Result<Vec<u8>, UnknownCte> {
    let body = raw.slice(binary_range(summary, path, size));
    let path: Vec<u32> = path.iter().map(|n| n.get()).collect();
    let single = find_part(&summary.body, &path)
        .filter(|part| matches!(part.content, PartContent::Single) && !path.is_empty());
    let Some(part) = single else {
        return Ok(body.to_vec());
    };
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

    fn slice(raw: &[u8], from: u32, to: u32) -> &[u8] {
        raw.get(from as usize..to as usize).unwrap_or_default()
    }

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
        let binary = |path: &[u32]| {
            let path: Vec<NonZeroU32> = path.iter().filter_map(|n| NonZeroU32::new(*n)).collect();
            binary_bytes(Window::whole(raw), &summary, &path, raw.len() as u32)
        };
        assert_eq!(binary(&[1]).unwrap(), b"hello\0");
        assert_eq!(binary(&[2]).unwrap(), "café!".as_bytes());
        assert_eq!(binary(&[3]), Err(UnknownCte("X-UUENCODE".into())));
        assert_eq!(binary(&[]).unwrap(), raw);
        assert_eq!(binary(&[4]).unwrap(), b"", "no such part");
    }

    #[test]
    fn a_forwarded_message_inside_a_multipart() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee below\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--b--\r\n";
        assert_eq!(body(raw, &[1]), "see below");
        assert!(body(raw, &[2]).starts_with("Subject: inner\r\n"));
        assert!(body(raw, &[2, 1]).starts_with("inner body"));
        assert_eq!(header(raw, &[2]), "Subject: inner\r\n\r\n");
    }

    /// A message with a short text part and a large attachment: what the text, its header or
    /// the first bytes need is read without the attachment; BINARY of the attachment reads it.
    #[test]
    fn the_range_read_holds_what_the_items_need_and_no_more() {
        use imap_codec::imap_types::fetch::Part;
        let mut raw = b"Subject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nfirst part\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
        let attachment_at = raw.len() as u32;
        raw.extend(std::iter::repeat_n(b'Q', 100_000));
        raw.extend_from_slice(b"\r\n--b--\r\n");
        let summary = MessageSummary::parse(&raw);
        let size = raw.len() as u32;
        let part = |n: u32| Part(NonZeroU32::new(n).unwrap().into());
        let body = |section, partial| MessageDataItemName::BodyExt {
            section,
            partial,
            peek: true,
        };
        let needed = |items: &[MessageDataItemName<'_>]| needed_range(items, Some(&summary), size);
        let text = needed(&[body(Some(Section::Part(part(1))), None)]).unwrap();
        assert_eq!(&raw[text.start as usize..text.end as usize], b"first part");
        let start = needed(&[body(None, Some((0, NonZeroU32::new(9).unwrap())))]);
        assert_eq!(start, Some(0..9));
        let header = needed(&[MessageDataItemName::Rfc822Header]).unwrap();
        assert!(header.end < attachment_at);
        let both = needed(&[
            MessageDataItemName::Rfc822Header,
            body(Some(Section::Part(part(1))), None),
        ]);
        assert_eq!(both, Some(0..text.end));
        let binary = [MessageDataItemName::BinarySize {
            section: vec![NonZeroU32::new(2).unwrap()],
        }];
        assert_eq!(
            needed(&binary),
            Some(attachment_at..attachment_at + 100_000)
        );
        assert_eq!(needed(&[MessageDataItemName::Flags]), None);
        assert_eq!(needed(&[MessageDataItemName::Rfc822]), Some(0..size));
        assert_eq!(
            needed_range(&[MessageDataItemName::Rfc822Header], None, size),
            Some(0..size),
            "without a summary, the whole message"
        );
        // What a window of that range answers is what the whole message answers.
        let window = Window::at(text.start, &raw[text.start as usize..text.end as usize]);
        let section = Section::Part(part(1));
        let partial = Some((6, NonZeroU32::new(100).unwrap()));
        assert_eq!(
            body_section(window, &summary, Some(&section), partial, size),
            body_section(Window::whole(&raw), &summary, Some(&section), partial, size),
        );
    }
}
