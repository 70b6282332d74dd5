//! From a complete message to its handler: the state check, the rewrites around imap-codec
//! (`$` of SEARCHRES, an unquoted delegation login, the items and keys of OBJECTID and
//! SAVEDATE), the commands `extension` recognises, then imap-codec's parse.

use super::session::{Action, Session, State};
use bounded_static::IntoBoundedStatic;
use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::fragmentizer::DecodeMessageError;

impl Session {
    pub(super) async fn command_message(&mut self) -> Action {
        let action = self.command_message_in_full().await;
        self.object_items = Default::default();
        action
    }

    async fn command_message_in_full(&mut self) -> Action {
        if let Some(spooled) = self.spooled.take() {
            let rest = self.fragmentizer.message_bytes().to_vec();
            return match spooled.finish(&rest).await {
                Ok(finished) => {
                    self.spooled_messages = finished.messages;
                    let action = Box::pin(self.rewritten_message(finished.command)).await;
                    self.spooled_messages.clear();
                    action
                }
                Err((tag, text)) => {
                    self.tagged_text(&tag, "NO", &text);
                    Action::Continue
                }
            };
        }
        if let Some((tag, why)) = self.wrong_state() {
            self.tagged_text(&tag, "BAD", &why);
            return Action::Continue;
        }
        let mut rewritten = self
            .replace_saved()
            .or_else(|| super::extension::quote_login_name(self.fragmentizer.message_bytes()));
        match self.replace_objects(rewritten.as_deref()) {
            Ok(Some(message)) => rewritten = Some(message),
            Ok(None) => {}
            Err(why) => {
                let tag = self.fragmentizer.decode_tag().map(|t| t.into_static());
                match tag {
                    Some(tag) => self.tagged(&tag, "BAD", &why),
                    None => self.untagged("BAD Syntax error: no tag"),
                }
                return Action::Continue;
            }
        }
        if let Some(rewritten) = rewritten {
            return Box::pin(self.rewritten_message(rewritten)).await;
        }
        if let Some((tag, command)) = super::extension::recognize(self.fragmentizer.message_bytes())
        {
            return self.ext_message(&tag, command).await;
        }
        let decoded = self
            .fragmentizer
            .decode_message(&CommandCodec::default())
            .map(|c| c.into_static())
            .map_err(|e| match e {
                DecodeMessageError::MessageTooLong { .. } => "[TOOBIG] Message too large",
                DecodeMessageError::MessagePoisoned { .. } => "[TOOBIG] Literal too large",
                _ => "Syntax error in command",
            });
        match decoded {
            Ok(command) => self.command(command).await,
            Err(reason) => {
                match self.fragmentizer.decode_tag().map(|t| t.into_static()) {
                    Some(tag) if reason.starts_with("[TOOBIG]") => self.tagged(&tag, "NO", reason),
                    Some(tag) => self.tagged(&tag, "BAD", reason),
                    None => self.untagged("BAD Syntax error: no tag"),
                }
                Action::Continue
            }
        }
    }

    /// The tag and the refusal of a command the current state does not allow (`states`).
    pub(super) fn wrong_state(&self) -> Option<(String, String)> {
        let (tag, verb) = super::states::tag_and_verb(self.fragmentizer.message_bytes())?;
        let why = super::states::refusal(&self.state, verb)?;
        Some((tag.to_string(), why))
    }

    /// The current message with `$` replaced by the saved search result (RFC 5182).
    pub(super) fn replace_saved(&self) -> Option<Vec<u8>> {
        let State::Selected(_, sel) = &self.state else {
            return None;
        };
        let uids: Vec<u32> = sel
            .saved
            .iter()
            .copied()
            .filter(|u| sel.seq_of(*u).is_some())
            .collect();
        let seqs: Vec<u32> = uids
            .iter()
            .filter_map(|u| sel.seq_of(*u))
            .map(|s| s as u32)
            .collect();
        // An empty result names no message: a UID that cannot exist does the same.
        let text = |set: &[u32]| match set {
            [] => u32::MAX.to_string(),
            set => super::selection::uid_set(set),
        };
        super::extension::replace_saved(
            self.fragmentizer.message_bytes(),
            &text(&uids),
            &text(&seqs),
        )
    }

    /// The message (`rewritten`, or as it came) with the FETCH and STATUS items of OBJECTID
    /// and SAVEDATE taken out into `object_items`, and their SEARCH keys replaced by the
    /// matching UIDs of the selection; `None` when it has none of them.
    pub(super) fn replace_objects(
        &mut self,
        rewritten: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, String> {
        use super::objects::{ObjectKey, replace_keys, take_items};
        let message = rewritten.unwrap_or(self.fragmentizer.message_bytes());
        if let Some((message, items)) = take_items(message) {
            self.object_items = items;
            return Ok(Some(message));
        }
        let State::Selected(_, sel) = &self.state else {
            return Ok(None);
        };
        let mut records = None;
        let mut resolve = |key: &ObjectKey| {
            if *key == ObjectKey::SaveDateSupported {
                return "ALL".to_string();
            }
            let records = records.get_or_insert_with(|| {
                let store = &self.services.store;
                store
                    .messages(sel.mailbox.id, sel.folder.id)
                    .unwrap_or_default()
            });
            let uids: Vec<u32> = records
                .iter()
                .filter(|r| key.matches(r) && sel.seq_of(r.uid).is_some())
                .map(|r| r.uid)
                .collect();
            // As for `$`: an empty set names a UID that cannot exist.
            match uids.as_slice() {
                [] => format!("UID {}", u32::MAX),
                uids => format!("UID {}", super::selection::uid_set(uids)),
            }
        };
        replace_keys(message, &mut resolve).transpose()
    }

    /// A command `extension` recognised: checked for revoked access like any other.
    pub(super) async fn ext_message(
        &mut self,
        tag: &str,
        command: Result<super::extension::ExtCommand, String>,
    ) -> Action {
        if let Err(bye) = self.check_access_changes() {
            self.untagged(&format!("BYE {bye}"));
            self.state = State::Logout;
            return Action::Close;
        }
        if !self.rate.allow() {
            let text = "[LIMIT] Too many commands per second; slow down";
            self.tagged_text(tag, "NO", text);
            return Action::Continue;
        }
        match command {
            Ok(command) => self.ext_command(tag, command).await,
            Err(reason) => self.tagged_text(tag, "BAD", &reason),
        }
        Action::Continue
    }

    /// Handles a message rewritten around imap-codec (`$` replaced).
    pub(super) async fn rewritten_message(&mut self, message: Vec<u8>) -> Action {
        if let Some((tag, command)) = super::extension::recognize(&message) {
            return self.ext_message(&tag, command).await;
        }
        match CommandCodec::default()
            .decode(&message)
            .map(|(_, c)| c.into_static())
        {
            Ok(command) => self.command(command).await,
            Err(_) => {
                match self.fragmentizer.decode_tag().map(|t| t.into_static()) {
                    Some(tag) => self.tagged(&tag, "BAD", "Syntax error in command"),
                    None => self.untagged("BAD Syntax error: no tag"),
                }
                Action::Continue
            }
        }
    }
}
