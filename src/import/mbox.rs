//! mbox uploads (RFC 4155, read as mboxrd): what `GET …/export` writes, what mail clients and
//! other servers export, and what `mailgate admin mailboxes import --maildir` makes of a
//! Maildir. A message's folder and flags come from the lines mailgate writes after the
//! `From ` line (`X-Mailgate-Folder:`, `X-Mailgate-Flags:`, both removed), else from the
//! `Status:`/`X-Status:` fields other programs write (kept).

use crate::model::Millis;
use crate::store::{AppendMessage, Flags};

/// Appends one message to an mbox (mboxrd): the `From ` line with its date, the folder and
/// flag lines `messages` reads back (when given), the message with every `From ` line quoted
/// once more, and the empty line that ends it.
pub fn write_message(
    out: &mut Vec<u8>,
    sender: &str,
    date: Millis,
    folder: Option<&str>,
    flags: &[String],
    raw: &[u8],
) {
    let date = chrono::DateTime::from_timestamp_millis(date)
        .unwrap_or_default()
        .format("%a %b %e %H:%M:%S %Y");
    out.extend_from_slice(format!("From {sender} {date}\n").as_bytes());
    if let Some(folder) = folder {
        out.extend_from_slice(format!("X-Mailgate-Folder: {folder}\n").as_bytes());
    }
    // Written even when empty, so that the reader does not take the message's own
    // `Status:` field for its flags.
    out.extend_from_slice(format!("X-Mailgate-Flags: {}\n", flags.join(" ")).as_bytes());
    for line in raw.split_inclusive(|b| *b == b'\n') {
        let quotes = line.iter().take_while(|b| **b == b'>').count();
        if line[quotes..].starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    if !raw.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// A message's flags and keywords as IMAP names them, for `X-Mailgate-Flags:`.
pub fn flag_names(flags: Flags, keywords: &[String]) -> Vec<String> {
    let system = [
        (Flags::SEEN, "\\Seen"),
        (Flags::ANSWERED, "\\Answered"),
        (Flags::FLAGGED, "\\Flagged"),
        (Flags::DELETED, "\\Deleted"),
        (Flags::DRAFT, "\\Draft"),
    ];
    system
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .map(|(_, name)| name.to_string())
        .chain(keywords.iter().cloned())
        .collect()
}

/// One message of an mbox.
#[derive(Debug)]
pub struct MboxMessage {
    /// The folder its `X-Mailgate-Folder:` line names, if any.
    pub folder: Option<String>,
    pub raw: Vec<u8>,
    pub meta: AppendMessage,
}

/// The messages of an mbox, one at a time (an upload may hold many: only the one being read
/// is copied). Text before the first `From ` line is not a message and is skipped; a
/// message's own lines get CRLF endings and lose one level of `>From ` quoting.
pub fn messages(mbox: &[u8]) -> impl Iterator<Item = MboxMessage> + '_ {
    let mut rest = match next_from_line(mbox, 0) {
        Some(start) => &mbox[start..],
        None => &mbox[..0],
    };
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let first_end = rest
            .iter()
            .position(|b| *b == b'\n')
            .map_or(rest.len(), |p| p + 1);
        let end = next_from_line(rest, first_end).unwrap_or(rest.len());
        let date = from_line_date(&rest[..first_end]);
        let body = &rest[first_end..end];
        rest = &rest[end..];
        Some(message(date, body))
    })
}

/// Where the next line starting with `From ` begins, at or after `from` (a line start).
fn next_from_line(mbox: &[u8], from: usize) -> Option<usize> {
    if mbox[from..].starts_with(b"From ") {
        return Some(from);
    }
    mbox[from..]
        .windows(6)
        .position(|w| w == b"\nFrom ")
        .map(|p| from + p + 1)
}

fn message(date: Option<Millis>, mut body: &[u8]) -> MboxMessage {
    // The empty line that ends each message in an mbox is the mbox's, not the message's.
    let without_newline = body.strip_suffix(b"\n").unwrap_or(body);
    let last_start = without_newline
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    if body.ends_with(b"\n") && without_newline[last_start..].trim_ascii().is_empty() {
        body = &body[..last_start];
    }
    let mut folder = None;
    let mut flags: Option<Vec<String>> = None;
    let mut lines = body.split_inclusive(|b| *b == b'\n').peekable();
    while let Some(line) = lines.peek() {
        let text = String::from_utf8_lossy(line);
        if let Some(name) = strip_field(&text, "X-Mailgate-Folder:") {
            folder = Some(name.to_string());
        } else if let Some(list) = strip_field(&text, "X-Mailgate-Flags:") {
            flags = Some(list.split_whitespace().map(str::to_string).collect());
        } else {
            break;
        }
        lines.next();
    }
    let mut raw = Vec::with_capacity(body.len() + body.len() / 32);
    for line in lines {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let quotes = line.iter().take_while(|b| **b == b'>').count();
        let unquoted = if quotes > 0 && line[quotes..].starts_with(b"From ") {
            &line[1..]
        } else {
            line
        };
        raw.extend_from_slice(unquoted);
        raw.extend_from_slice(b"\r\n");
    }
    let names = flags.unwrap_or_else(|| status_flags(&raw));
    let meta = super::append_meta(names.iter().map(String::as_str), date);
    MboxMessage { folder, raw, meta }
}

fn strip_field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let head = line.get(..name.len())?;
    head.eq_ignore_ascii_case(name)
        .then(|| line[name.len()..].trim())
}

/// The flags of the `Status:` (R: seen) and `X-Status:` (A: answered, F: flagged,
/// D: deleted, T: draft) fields of the message's header, as mutt and Dovecot's mbox write them.
fn status_flags(raw: &[u8]) -> Vec<String> {
    let header_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let header = String::from_utf8_lossy(&raw[..header_end]);
    let mut names = Vec::new();
    for line in header.lines() {
        if let Some(v) = strip_field(line, "Status:") {
            if v.contains('R') {
                names.push("\\Seen".to_string());
            }
        } else if let Some(v) = strip_field(line, "X-Status:") {
            for (letter, name) in [
                ('A', "\\Answered"),
                ('F', "\\Flagged"),
                ('D', "\\Deleted"),
                ('T', "\\Draft"),
            ] {
                if v.contains(letter) {
                    names.push(name.to_string());
                }
            }
        }
    }
    names
}

/// The date of a `From sender Thu Nov 27 10:00:00 2026` line, as the message's INTERNALDATE.
fn from_line_date(line: &[u8]) -> Option<Millis> {
    let text = String::from_utf8_lossy(line);
    let mut words = text.split_whitespace().skip(2);
    let date = words.by_ref().take(5).collect::<Vec<_>>().join(" ");
    chrono::NaiveDateTime::parse_from_str(&date, "%a %b %e %H:%M:%S %Y")
        .ok()
        .map(|d| d.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Flags;

    #[test]
    fn an_export_reads_back_as_it_was() {
        let mbox = b"From contact@acme.example Thu Nov 26 10:00:00 2026\n\
X-Mailgate-Folder: Archive/2024\n\
X-Mailgate-Flags: \\Seen $Forwarded\n\
Subject: one\r\n\r\n>From here\r\n>>From there\r\nbody\r\n\n\
From someone Fri Nov 27 11:00:00 2026\n\
Subject: two\nStatus: RO\nX-Status: AF\n\nline\n\n";
        let all: Vec<_> = messages(mbox).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].folder.as_deref(), Some("Archive/2024"));
        assert_eq!(
            all[0].raw,
            b"Subject: one\r\n\r\nFrom here\r\n>From there\r\nbody\r\n"
        );
        assert_eq!(all[0].meta.flags, Flags::SEEN);
        assert_eq!(all[0].meta.keywords, ["$Forwarded"]);
        assert_eq!(all[0].meta.internal_date, Some(1_795_687_200_000));
        assert_eq!(all[1].folder, None);
        assert_eq!(
            all[1].raw,
            b"Subject: two\r\nStatus: RO\r\nX-Status: AF\r\n\r\nline\r\n"
        );
        assert_eq!(
            all[1].meta.flags,
            Flags::SEEN
                .with(Flags::ANSWERED, true)
                .with(Flags::FLAGGED, true)
        );
    }

    #[test]
    fn from_lines_are_quoted_mboxrd_style() {
        let mut out = Vec::new();
        let raw = b"Subject: x\r\n\r\nFrom here\r\n>From there\r\n From not\r\nend";
        write_message(&mut out, "a@b", 0, None, &[], raw);
        let expected = b"From a@b Thu Jan  1 00:00:00 1970\nX-Mailgate-Flags: \nSubject: x\r\n\r\n>From here\r\n>>From there\r\n From not\r\nend\n\n";
        assert_eq!(out, expected.to_vec());
    }

    #[test]
    fn what_is_written_reads_back() {
        let mut out = Vec::new();
        let raw = b"Subject: s\r\n\r\nFrom me\r\n>From you\r\nend";
        let names = flag_names(Flags::SEEN.with(Flags::DRAFT, true), &["Work".into()]);
        write_message(
            &mut out,
            "a@b",
            1_795_687_200_000,
            Some("Sent"),
            &names,
            raw,
        );
        write_message(&mut out, "a@b", 0, None, &[], b"Subject: t\r\n\r\nx\r\n");
        let back: Vec<_> = messages(&out).collect();
        assert_eq!(back.len(), 2);
        assert_eq!(
            back[0].raw,
            b"Subject: s\r\n\r\nFrom me\r\n>From you\r\nend\r\n"
        );
        assert_eq!(back[0].folder.as_deref(), Some("Sent"));
        assert_eq!(back[0].meta.flags, Flags::SEEN.with(Flags::DRAFT, true));
        assert_eq!(back[0].meta.keywords, ["Work"]);
        assert_eq!(back[0].meta.internal_date, Some(1_795_687_200_000));
        assert_eq!(back[1].raw, b"Subject: t\r\n\r\nx\r\n");
        assert_eq!(back[1].meta.flags, Flags::default());
    }

    #[test]
    fn text_before_the_first_message_and_bad_dates_are_no_trouble() {
        let all: Vec<_> = messages(b"junk\nFrom x not a date\nSubject: s\n\nb\n").collect();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].meta.internal_date, None);
        assert_eq!(all[0].raw, b"Subject: s\r\n\r\nb\r\n");
        assert_eq!(messages(b"").count(), 0);
        assert_eq!(messages(b"no From line at all\n").count(), 0);
        let last: Vec<_> = messages(b"From a\nSubject: t\n\nno newline at the end").collect();
        assert_eq!(last[0].raw, b"Subject: t\r\n\r\nno newline at the end\r\n");
    }
}
