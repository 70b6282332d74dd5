//! NOTIFY (RFC 5465): a client names folders besides the selected one whose new messages,
//! expunges and flag changes it wants to hear of, without selecting them or polling with
//! STATUS; the session sends an untagged STATUS for each when it changes, at any time.
//!
//! Each watched folder gets a small task that listens on the store's hub and marks the folder
//! changed; the connection's driver waits on one `tokio::sync::Notify` for all of them.

use super::folders::{No, Refusal};
use super::identity::{Identity, SEP, SHARED};
use super::list::Kind;
use super::session::{Session, State};
use super::syntax::Parser;
use crate::model::*;
use crate::store::FolderEvent;
use imap_codec::imap_types::status::StatusDataItemName;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Folders one session may watch: each costs a listener task.
const MAX_WATCHED: usize = 200;

/// The events this server reports (RFC 5465 §5); the others get `NO [BADEVENT …]`.
const EVENTS: [&str; 3] = ["MessageNew", "MessageExpunge", "FlagChange"];

/// A NOTIFY command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyCommand {
    None,
    Set {
        /// Send each watched folder's STATUS now (RFC 5465 §3.1).
        status: bool,
        groups: Vec<EventGroup>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventGroup {
    pub filter: Filter,
    /// Upper case; empty for NONE.
    pub events: Vec<String>,
}

/// RFC 5465 §6 filter-mailboxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Selected,
    Inboxes,
    Personal,
    Subscribed,
    Subtree(Vec<String>),
    Mailboxes(Vec<String>),
}

/// `NOTIFY NONE` or `NOTIFY SET [STATUS] (filter events) …` from `p`, after the verb.
pub fn parse(p: &mut Parser<'_>) -> Result<NotifyCommand, String> {
    p.space()?;
    if p.keyword("NONE") {
        p.end()?;
        return Ok(NotifyCommand::None);
    }
    if !p.keyword("SET") {
        return Err("expected SET or NONE".into());
    }
    p.space()?;
    let status = p.keyword("STATUS");
    if status {
        p.space()?;
    }
    let mut groups = vec![event_group(p)?];
    while p.space().is_ok() {
        groups.push(event_group(p)?);
    }
    p.end()?;
    Ok(NotifyCommand::Set { status, groups })
}

fn event_group(p: &mut Parser<'_>) -> Result<EventGroup, String> {
    p.expect(b'(')?;
    let word = p
        .atom()
        .ok_or("expected a mailbox filter")?
        .to_ascii_uppercase();
    let filter = match word.as_str() {
        "SELECTED" | "SELECTED-DELAYED" => Filter::Selected,
        "INBOXES" => Filter::Inboxes,
        "PERSONAL" => Filter::Personal,
        "SUBSCRIBED" => Filter::Subscribed,
        "SUBTREE" => Filter::Subtree(mailboxes(p)?),
        "MAILBOXES" => Filter::Mailboxes(mailboxes(p)?),
        other => return Err(format!("unknown mailbox filter {other}")),
    };
    p.space()?;
    let events = if p.keyword("NONE") {
        Vec::new()
    } else {
        p.paren_list(|p| p.atom().ok_or_else(|| "expected an event".into()))?
    };
    p.expect(b')')?;
    Ok(EventGroup { filter, events })
}

/// RFC 5465 one-or-more-mailbox: a name or a parenthesized list of them.
fn mailboxes(p: &mut Parser<'_>) -> Result<Vec<String>, String> {
    p.space()?;
    let names = if p.peek() == Some(b'(') {
        p.paren_list(Parser::astring)?
    } else {
        vec![p.astring()?]
    };
    Ok(names
        .iter()
        .map(|n| super::extension::folder_name(n))
        .collect())
}

/// What a session watches after NOTIFY SET.
pub struct Watching {
    folders: Vec<Watched>,
    /// Set by the listener of the folder at the same index.
    changed: Arc<Vec<AtomicBool>>,
    wake: Arc<tokio::sync::Notify>,
    listeners: Vec<tokio::task::AbortHandle>,
}

struct Watched {
    display: String,
    mailbox: MailboxId,
    folder: FolderId,
    /// FlagChange asked for: flag changes count, and STATUS carries HIGHESTMODSEQ.
    flags: bool,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.listeners.iter().for_each(|l| l.abort());
    }
}

impl Watching {
    /// Starts a listener per folder.
    fn start(folders: Vec<Watched>, hub: &crate::store::Hub) -> Watching {
        let changed: Arc<Vec<AtomicBool>> =
            Arc::new(folders.iter().map(|_| AtomicBool::new(false)).collect());
        let wake = Arc::new(tokio::sync::Notify::new());
        let listeners = folders
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let mut rx = hub.subscribe_folder(w.mailbox, w.folder);
                let (changed, wake, flags) = (changed.clone(), wake.clone(), w.flags);
                let task = tokio::spawn(async move {
                    loop {
                        let counts = match rx.recv().await {
                            Ok(FolderEvent::FlagsChanged { .. }) => flags,
                            Ok(_) => true,
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                        };
                        if counts && let Some(c) = changed.get(i) {
                            c.store(true, Ordering::Release);
                            wake.notify_one();
                        }
                    }
                });
                task.abort_handle()
            })
            .collect();
        Watching {
            folders,
            changed,
            wake,
            listeners,
        }
    }

    /// What the connection's driver waits on.
    pub fn wake(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }
}

impl Session {
    /// RFC 5465 §3: NOTIFY SET replaces what was watched; NOTIFY NONE ends it.
    pub(super) fn notify(
        &mut self,
        identity: &Identity,
        command: NotifyCommand,
    ) -> Result<String, Refusal> {
        let NotifyCommand::Set { status, groups } = command else {
            self.watching = None;
            return Ok("NOTIFY completed, nothing watched".into());
        };
        for event in groups.iter().flat_map(|g| &g.events) {
            if !EVENTS.iter().any(|e| e.eq_ignore_ascii_case(event)) {
                let supported = EVENTS.join(" ");
                return Err(No(format!(
                    "[BADEVENT ({supported})] {event} is not reported here"
                )));
            }
        }
        let folders = self.watched_folders(identity, &groups)?;
        if folders.len() > MAX_WATCHED {
            let text = format!("[LIMIT] NOTIFY watches at most {MAX_WATCHED} folders");
            return Err(No(text));
        }
        self.watching = Some(Watching::start(folders, self.services.store.hub()));
        if status {
            self.watched_status(identity, |_| true);
        }
        Ok("NOTIFY completed".into())
    }

    /// The folders (not the selected one) the groups name, each once.
    fn watched_folders(
        &self,
        identity: &Identity,
        groups: &[EventGroup],
    ) -> Result<Vec<Watched>, Refusal> {
        let names = self.names(identity)?;
        let mut out: Vec<Watched> = Vec::new();
        for group in groups.iter().filter(|g| !g.events.is_empty()) {
            let flags = group
                .events
                .iter()
                .any(|e| e.eq_ignore_ascii_case("FlagChange"));
            for name in names.iter().filter(|n| n.kind == Kind::Folder) {
                if !filter_holds(&group.filter, identity, &name.name, name.subscribed) {
                    continue;
                }
                let Ok((mailbox, folder, rights)) = self.folder(identity, &name.name) else {
                    continue;
                };
                if !rights.contains(Right::Read) {
                    continue;
                }
                match out
                    .iter_mut()
                    .find(|w| (w.mailbox, w.folder) == (mailbox.id, folder.id))
                {
                    Some(w) => w.flags |= flags,
                    None => out.push(Watched {
                        display: name.name.clone(),
                        mailbox: mailbox.id,
                        folder: folder.id,
                        flags,
                    }),
                }
            }
        }
        Ok(out)
    }

    /// After a listener's signal: a STATUS for each watched folder that changed.
    pub fn notify_update(&mut self) -> super::Output {
        if let Some(identity) = self.identity().cloned() {
            let changed = self.watching.as_ref().map(|w| w.changed.clone());
            if let Some(changed) = changed {
                self.watched_status(&identity, |i| {
                    changed
                        .get(i)
                        .is_some_and(|c| c.swap(false, Ordering::AcqRel))
                });
            }
        }
        self.take(super::session::Action::Continue)
    }

    /// An untagged STATUS for each watched folder `pick` chooses, but the selected one
    /// (RFC 5465 §5.1: its changes are reported the usual way).
    fn watched_status(&mut self, identity: &Identity, pick: impl Fn(usize) -> bool) {
        let Some(watching) = &self.watching else {
            return;
        };
        let selected = match &self.state {
            State::Selected(_, sel) => Some((sel.mailbox.id, sel.folder.id)),
            _ => None,
        };
        let chosen: Vec<(String, bool)> = (watching.folders.iter().enumerate())
            .filter(|(i, w)| pick(*i) && Some((w.mailbox, w.folder)) != selected)
            .map(|(_, w)| (w.display.clone(), w.flags))
            .collect();
        for (name, flags) in chosen {
            let mut items = vec![
                StatusDataItemName::Messages,
                StatusDataItemName::UidNext,
                StatusDataItemName::UidValidity,
            ];
            if flags {
                items.push(StatusDataItemName::HighestModSeq);
            }
            // A folder deleted since is simply no longer reported.
            let _ = self.status(identity, &name, &items);
        }
    }
}

/// Whether a folder the session sees (by its display name) passes a filter.
fn filter_holds(filter: &Filter, identity: &Identity, name: &str, subscribed: bool) -> bool {
    let shared = name.starts_with(&format!("{SHARED}{SEP}"));
    let same = |a: &str, b: &str| {
        a == b || (a.eq_ignore_ascii_case("INBOX") && b.eq_ignore_ascii_case("INBOX"))
    };
    match filter {
        // The selected folder is reported the usual way.
        Filter::Selected => false,
        Filter::Personal => identity.personal().is_some() && !shared,
        Filter::Inboxes => {
            same(name, "INBOX") && identity.personal().is_some()
                || shared && name.rsplit(SEP).next() == Some("INBOX")
        }
        Filter::Subscribed => subscribed,
        Filter::Mailboxes(names) => names.iter().any(|n| same(n, name)),
        Filter::Subtree(roots) => roots.iter().any(|root| {
            same(root, name)
                || name
                    .strip_prefix(root.as_str())
                    .is_some_and(|r| r.starts_with(SEP))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<NotifyCommand, String> {
        let mut p = Parser {
            input: text.as_bytes(),
            pos: "a NOTIFY".len(),
        };
        parse(&mut p)
    }

    #[test]
    fn notify_set_and_none() {
        assert_eq!(parse_text("a NOTIFY NONE\r\n"), Ok(NotifyCommand::None));
        let set = parse_text(
            "a NOTIFY SET STATUS (SELECTED (MessageNew MessageExpunge)) (MAILBOXES (Sent \"A b\") NONE) (SUBTREE Projects (FlagChange))\r\n",
        )
        .unwrap();
        let NotifyCommand::Set { status, groups } = set else {
            panic!("{set:?}");
        };
        assert!(status);
        assert_eq!(groups.len(), 3);
        assert_eq!(
            groups[1].filter,
            Filter::Mailboxes(vec!["Sent".into(), "A b".into()])
        );
        assert!(groups[1].events.is_empty());
        assert_eq!(groups[2].filter, Filter::Subtree(vec!["Projects".into()]));
        assert!(parse_text("a NOTIFY SET (ELSEWHERE (MessageNew))\r\n").is_err());
        assert!(parse_text("a NOTIFY\r\n").is_err());
    }
}
