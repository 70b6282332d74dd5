//! APPEND: one message (RFC 3501 §6.3.11, parsed by imap-codec), several at once
//! (MULTIAPPEND, RFC 3502) or one put together from text and parts of stored messages
//! (CATENATE, RFC 4469), or marked as UTF-8 (RFC 6855 §4). imap-codec takes none of the
//! last three: they are read here.

use super::folders::{No, Refusal, noperm, store_flags};
use super::identity::Identity;
use super::session::Session;
use super::syntax::Parser;
use crate::model::*;
use crate::store::spool::Loaded;
use crate::store::{AppendMessage, Folder, MessageRecord};
use bounded_static::IntoBoundedStatic;
use imap_codec::imap_types::fetch::Section;
use imap_codec::imap_types::flag::Flag;

/// An APPEND of several messages, or of one made with CATENATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMany {
    pub folder: String,
    pub messages: Vec<NewMessage>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub flags: Vec<String>,
    /// RFC 3501 date-time, as sent.
    pub date: Option<String>,
    /// CATENATE's pieces, or the one literal of a plain message.
    pub content: Vec<Piece>,
    /// Given with CATENATE or UTF8 (RFC 6855 §4): forms imap-codec does not take.
    pub extended: bool,
}

/// A piece of a new message: the bytes of a literal (`at`: the offset of its `{` in the
/// command, which names a spooled literal), or an IMAP URL of a stored message or part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text { at: usize, bytes: Vec<u8> },
    Url(String),
}

/// `APPEND folder message message…` or `APPEND folder … CATENATE (…)` from `p`, just after
/// the verb; `None` for one plain message, which imap-codec takes.
pub fn recognize(p: &mut Parser<'_>) -> Option<Result<AppendMany, String>> {
    let start = p.pos;
    match append_many(p) {
        Ok(a) if a.messages.len() == 1 && !a.messages[0].extended => None,
        Ok(a) => Some(Ok(a)),
        // A syntax error in what may be a plain APPEND: imap-codec says it.
        Err(_)
            if !super::extension::contains_ci(&p.input[start..], b" CATENATE ")
                && !super::extension::contains_ci(&p.input[start..], b" UTF8 (") =>
        {
            None
        }
        Err(e) => Some(Err(format!("APPEND: {e}"))),
    }
}

fn append_many(p: &mut Parser<'_>) -> Result<AppendMany, String> {
    p.space()?;
    let folder = super::extension::folder_name(&p.astring()?);
    let mut messages = Vec::new();
    while p.space().is_ok() {
        messages.push(new_message(p)?);
    }
    p.end()?;
    Ok(AppendMany { folder, messages })
}

/// RFC 3502 append-message: `[flag-list SP] [date-time SP] append-data`.
fn new_message(p: &mut Parser<'_>) -> Result<NewMessage, String> {
    let mut m = NewMessage {
        flags: Vec::new(),
        date: None,
        content: Vec::new(),
        extended: false,
    };
    if p.peek() == Some(b'(') {
        m.flags = p.paren_list(flag)?;
        p.space()?;
    }
    if p.peek() == Some(b'"') {
        m.date = Some(p.quoted()?);
        p.space()?;
    }
    if p.keyword("CATENATE") {
        m.extended = true;
        p.space()?;
        p.expect(b'(')?;
        loop {
            m.content.push(catenate_part(p)?);
            if p.peek() == Some(b')') {
                p.pos += 1;
                break;
            }
            p.space()?;
        }
    } else if p.keyword("UTF8") {
        m.extended = true;
        m.content.push(utf8_text(p)?);
    } else {
        m.content.push(text(p)?);
    }
    Ok(m)
}

fn flag(p: &mut Parser<'_>) -> Result<String, String> {
    let backslash = p.peek() == Some(b'\\');
    if backslash {
        p.pos += 1;
    }
    let atom = p.atom().ok_or("expected a flag")?;
    Ok(if backslash { format!("\\{atom}") } else { atom })
}

/// RFC 4469 §5: `TEXT literal` or `URL astring`.
fn catenate_part(p: &mut Parser<'_>) -> Result<Piece, String> {
    if p.keyword("TEXT") {
        p.space()?;
        text(p)
    } else if p.keyword("UTF8") {
        utf8_text(p)
    } else if p.keyword("URL") {
        p.space()?;
        Ok(Piece::Url(p.astring()?))
    } else {
        Err("expected TEXT or URL in CATENATE".into())
    }
}

/// RFC 6855 §4: `UTF8 (literal8)`, a message whose header may hold UTF-8.
fn utf8_text(p: &mut Parser<'_>) -> Result<Piece, String> {
    p.space()?;
    p.expect(b'(')?;
    if p.peek() != Some(b'~') {
        return Err("UTF8 takes a literal8 (~{n})".into());
    }
    let piece = text(p)?;
    p.expect(b')')?;
    Ok(piece)
}

fn text(p: &mut Parser<'_>) -> Result<Piece, String> {
    let at = p.pos + usize::from(p.peek() == Some(b'~'));
    let bytes = p.literal_data()?.to_vec();
    Ok(Piece::Text { at, bytes })
}

impl Session {
    /// MULTIAPPEND, CATENATE and UTF8: every message made, then all stored in one commit.
    pub(super) async fn append_many(
        &mut self,
        identity: &Identity,
        command: AppendMany,
    ) -> Result<String, Refusal> {
        let (mailbox, folder, rights) = self.append_target(identity, &command.folder)?;
        let mut spooled = std::mem::take(&mut self.spooled_messages);
        let limit = self.services.config.imap.max_message_bytes as usize;
        let mut messages = Vec::with_capacity(command.messages.len());
        for m in &command.messages {
            let bytes = self.assemble(identity, &m.content, &mut spooled, limit)?;
            let (flags, keywords) = store_flags(&parse_flags(&m.flags)?)?;
            let (flags, keywords) = super::selected::permitted(rights, flags, keywords);
            let meta = AppendMessage {
                flags,
                keywords,
                internal_date: m.date.as_deref().map(parse_date).transpose()?,
                seen_by: identity.seen_user(&mailbox),
            };
            messages.push((bytes, meta));
        }
        let records = self.store_appended(mailbox.id, folder.id, messages).await?;
        self.sync_selection(false);
        let uids: Vec<u32> = records.iter().map(|r| r.uid).collect();
        let set = super::selection::uid_set(&uids);
        Ok(format!(
            "[APPENDUID {} {set}] APPEND completed",
            folder.uidvalidity
        ))
    }

    /// One message (RFC 3501 §6.3.11).
    pub(super) async fn append(
        &mut self,
        identity: &Identity,
        name: &str,
        flags: &[Flag<'_>],
        date: Option<Millis>,
        message: Loaded,
    ) -> Result<String, Refusal> {
        let (mailbox, folder, rights) = self.append_target(identity, name)?;
        let (flags, keywords) = store_flags(flags)?;
        let (flags, keywords) = super::selected::permitted(rights, flags, keywords);
        let meta = AppendMessage {
            flags,
            keywords,
            internal_date: date,
            seen_by: identity.seen_user(&mailbox),
        };
        let records = self
            .store_appended(mailbox.id, folder.id, vec![(message, meta)])
            .await?;
        self.sync_selection(false);
        let uids: Vec<u32> = records.iter().map(|r| r.uid).collect();
        Ok(format!(
            "[APPENDUID {} {}] APPEND completed",
            folder.uidvalidity,
            super::selection::uid_set(&uids)
        ))
    }

    /// A folder to APPEND to, and the rights there (RFC 3501 §6.3.11: TRYCREATE when it is
    /// missing, before anything else is looked at).
    pub(super) fn append_target(
        &self,
        identity: &Identity,
        name: &str,
    ) -> Result<(Mailbox, Folder, Rights), Refusal> {
        let (mailbox, folder, rights) = match self.folder(identity, name) {
            Err(No(text)) if text.starts_with("[NONEXISTENT]") => {
                let text = &text["[NONEXISTENT] ".len()..];
                return Err(No(format!("[TRYCREATE] {text}")));
            }
            other => other?,
        };
        if !rights.contains(Right::Insert) {
            return Err(noperm(Right::Insert, "add messages to this folder"));
        }
        Ok((mailbox, folder, rights))
    }

    /// One message's bytes from its pieces: a spooled literal is taken as it is.
    fn assemble(
        &self,
        identity: &Identity,
        pieces: &[Piece],
        spooled: &mut Vec<(usize, Loaded)>,
        limit: usize,
    ) -> Result<Loaded, Refusal> {
        let mut take_spooled = |at: usize| {
            let i = spooled.iter().position(|(offset, _)| *offset == at)?;
            Some(spooled.remove(i).1)
        };
        if let [Piece::Text { at, bytes }] = pieces {
            return Ok(take_spooled(*at).unwrap_or_else(|| Loaded::from(bytes.clone())));
        }
        let mut out = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Text { at, bytes } => match take_spooled(*at) {
                    Some(loaded) => out.extend_from_slice(loaded.bytes()),
                    None => out.extend_from_slice(bytes),
                },
                Piece::Url(url) => out.extend(self.url_bytes(identity, url)?),
            }
            if out.len() > limit {
                let text = format!("[TOOBIG] The message would exceed {limit} bytes");
                return Err(No(text));
            }
        }
        if out.is_empty() {
            return Err(No("[CANNOT] The message would be empty".into()));
        }
        Ok(Loaded::from(out))
    }

    /// Stores the messages in one commit, flushed, off the async threads (parsing, the
    /// blobs' fsync and the flush block).
    pub(super) async fn store_appended(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        messages: Vec<(Loaded, AppendMessage)>,
    ) -> Result<Vec<MessageRecord>, Refusal> {
        let store = self.services.store.clone();
        let stored = tokio::task::spawn_blocking(move || {
            let items: Vec<(&Loaded, AppendMessage)> =
                messages.iter().map(|(m, meta)| (m, meta.clone())).collect();
            let records = store.append_all(mailbox, folder, &items)?;
            store.flush_blocking().map(|_| records).map_err(|e| {
                tracing::error!(error = %e, "flush after APPEND failed");
                No("[SERVERBUG] The message could not be made durable".into())
            })
        })
        .await;
        stored.map_err(|e| {
            tracing::error!(error = %e, "the APPEND task failed");
            No("[SERVERBUG] The message could not be stored".into())
        })?
    }
}

impl Session {
    /// The bytes an IMAP URL (RFC 5092) names: a message of a folder this session may read,
    /// or a section of it. Anything else is `NO [BADURL url]` (RFC 4469 §5).
    fn url_bytes(&self, identity: &Identity, url: &str) -> Result<Vec<u8>, Refusal> {
        let bad = || {
            No(format!(
                "[BADURL {url}] The URL names no message you can read"
            ))
        };
        let target = ImapUrl::parse(url, &self.services.config.hostname).ok_or_else(bad)?;
        let (mailbox, folder, rights) = self.folder(identity, &target.folder).map_err(|_| bad())?;
        if !rights.contains(Right::Read)
            || target.uidvalidity.is_some_and(|v| v != folder.uidvalidity)
        {
            return Err(bad());
        }
        let store = &self.services.store;
        let record = store
            .message(mailbox.id, folder.id, target.uid)?
            .ok_or_else(bad)?;
        let raw = store.read_message(&record.blob)?;
        let bytes = match &target.section {
            None => raw.to_vec(),
            Some(section) => {
                let section = section_of(section).ok_or_else(bad)?;
                let summary = store.summary(&record.blob)?;
                let window = super::fetch::Window::whole(&raw);
                let size = u32::try_from(raw.len()).unwrap_or(u32::MAX);
                super::fetch::section_bytes(window, &summary, Some(&section), size)
            }
        };
        let partial = target
            .partial
            .and_then(|(origin, length)| Some((origin, std::num::NonZeroU32::new(length)?)));
        Ok(match target.partial {
            Some(_) if partial.is_none() => Vec::new(),
            _ => super::fetch::partial(bytes, partial).0,
        })
    }
}

/// What an IMAP URL of this server names (RFC 5092 §6: `imap://host/folder;UIDVALIDITY=n/;UID=n/;SECTION=s/;PARTIAL=o.l`,
/// or the same from `/` on, relative to this server).
#[derive(Debug, PartialEq, Eq)]
struct ImapUrl {
    folder: String,
    uidvalidity: Option<u32>,
    uid: u32,
    section: Option<String>,
    partial: Option<(u32, u32)>,
}

impl ImapUrl {
    fn parse(url: &str, hostname: &str) -> Option<ImapUrl> {
        let path = match url.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case("imap://") => {
                let rest = &url[7..];
                let slash = rest.find('/')?;
                let authority = &rest[..slash];
                let host = authority.rsplit('@').next()?;
                let host = host.split(':').next()?;
                if !host.eq_ignore_ascii_case(hostname) {
                    return None;
                }
                &rest[slash..]
            }
            _ => url,
        };
        let mut parts = path.strip_prefix('/')?.split("/;");
        let first = parts.next()?;
        let (folder, uidvalidity) = match first.to_ascii_uppercase().find(";UIDVALIDITY=") {
            Some(i) => (&first[..i], Some(first[i + 13..].parse().ok()?)),
            None => (first, None),
        };
        let mut target = ImapUrl {
            folder: percent_decoded(folder)?,
            uidvalidity,
            uid: 0,
            section: None,
            partial: None,
        };
        for part in parts {
            let (name, value) = part.split_once('=')?;
            match name.to_ascii_uppercase().as_str() {
                "UID" => target.uid = value.parse().ok()?,
                "SECTION" => target.section = Some(percent_decoded(value)?),
                "PARTIAL" => {
                    let (origin, length) = value.split_once('.').unwrap_or((value, "4294967295"));
                    target.partial = Some((origin.parse().ok()?, length.parse().ok()?));
                }
                // URLAUTH and anything else: not a URL this server resolves.
                _ => return None,
            }
        }
        (target.uid > 0).then_some(target)
    }
}

/// `%XX` escapes undone; the result must be UTF-8.
fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A URL's section (`HEADER`, `1.MIME`, `TEXT`…) as FETCH's BODY[…] reads it.
fn section_of(text: &str) -> Option<Section<'static>> {
    use imap_codec::CommandCodec;
    use imap_codec::decode::Decoder;
    use imap_codec::imap_types::command::CommandBody;
    use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName};
    let command = format!("x FETCH 1 BODY.PEEK[{text}]\r\n");
    let (_, command) = CommandCodec::default().decode(command.as_bytes()).ok()?;
    let CommandBody::Fetch {
        macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(items),
        ..
    } = command.body
    else {
        return None;
    };
    match items.into_iter().next()? {
        MessageDataItemName::BodyExt { section, .. } => section.map(|s| s.into_static()),
        _ => None,
    }
}

fn parse_flags(flags: &[String]) -> Result<Vec<Flag<'_>>, Refusal> {
    flags
        .iter()
        .map(|f| {
            Flag::try_from(f.as_str())
                .map_err(|_| super::folders::Bad(format!("{f} is not a flag")))
        })
        .collect()
}

/// RFC 3501 date-time: `"dd-Mon-yyyy hh:mm:ss +zzzz"`, the day possibly space-padded.
fn parse_date(text: &str) -> Result<Millis, Refusal> {
    chrono::DateTime::parse_from_str(text.trim_start(), "%d-%b-%Y %H:%M:%S %z")
        .map(|d| d.timestamp_millis())
        .map_err(|_| super::folders::Bad(format!("{text:?} is not an IMAP date-time")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(command: &str) -> Option<Result<AppendMany, String>> {
        let mut p = Parser {
            input: command.as_bytes(),
            pos: "a APPEND".len(),
        };
        recognize(&mut p)
    }

    #[test]
    fn one_plain_message_is_left_to_imap_codec() {
        assert_eq!(parse("a APPEND INBOX (\\Seen) {2}\r\nhi\r\n"), None);
        assert_eq!(parse("a APPEND INBOX {2}\r\nhi\r\n"), None);
    }

    #[test]
    fn several_messages_each_with_their_flags_and_date() {
        let a = parse(
            "a APPEND INBOX {2}\r\nhi (\\Seen $Junk) \" 1-Feb-2024 10:00:00 +0100\" {3}\r\nyou\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(a.folder, "INBOX");
        assert_eq!(a.messages.len(), 2);
        assert_eq!(
            a.messages[0].content,
            vec![Piece::Text {
                at: "a APPEND INBOX ".len(),
                bytes: b"hi".to_vec()
            }]
        );
        assert_eq!(a.messages[1].flags, vec!["\\Seen", "$Junk"]);
        let date = a.messages[1].date.as_deref().unwrap();
        assert_eq!(parse_date(date).unwrap(), 1_706_778_000_000);
    }

    #[test]
    fn urls_of_this_server_name_a_message_and_a_part() {
        let url = ImapUrl::parse(
            "/INBOX%20old;UIDVALIDITY=7/;UID=3/;section=1.MIME/;partial=0.10",
            "h.example",
        );
        assert_eq!(
            url,
            Some(ImapUrl {
                folder: "INBOX old".into(),
                uidvalidity: Some(7),
                uid: 3,
                section: Some("1.MIME".into()),
                partial: Some((0, 10)),
            })
        );
        let remote = "imap://lucie@H.example:143/Sent/;UID=9";
        assert_eq!(ImapUrl::parse(remote, "h.example").map(|u| u.uid), Some(9));
        assert_eq!(
            ImapUrl::parse("imap://elsewhere.example/Sent/;UID=9", "h.example"),
            None
        );
        assert_eq!(
            ImapUrl::parse("/Sent", "h.example"),
            None,
            "no message named"
        );
        assert_eq!(ImapUrl::parse("/Sent/;UID=1/;URLAUTH=x", "h.example"), None);
        assert!(matches!(section_of("HEADER"), Some(Section::Header(None))));
        assert!(section_of("BOGUS(").is_none());
    }

    #[test]
    fn catenate_mixes_text_and_urls() {
        let a =
            parse("a APPEND Sent CATENATE (URL \"/INBOX/;uid=3/;section=1\" TEXT {4}\r\nbody)\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(
            a.messages[0].content,
            vec![
                Piece::Url("/INBOX/;uid=3/;section=1".into()),
                Piece::Text {
                    at: "a APPEND Sent CATENATE (URL \"/INBOX/;uid=3/;section=1\" TEXT ".len(),
                    bytes: b"body".to_vec()
                }
            ]
        );
        assert!(
            parse("a APPEND Sent CATENATE (BOGUS x)\r\n")
                .unwrap()
                .is_err()
        );
    }
}
