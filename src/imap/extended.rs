//! Answers to the commands `extension` recognises around imap-codec: ACL, LIST with options
//! (LIST-EXTENDED, LIST-STATUS, SPECIAL-USE) and ESEARCH.

use super::context::ReturnOptions;
use super::extension::ExtCommand;
use super::folders::Refusal;
use super::session::{Session, State};

impl Session {
    pub(super) async fn ext_command(&mut self, tag: &str, command: ExtCommand) {
        let Some(identity) = self.identity().cloned() else {
            self.tagged_text(tag, "BAD", "Log in first");
            return;
        };
        let result = match command {
            ExtCommand::MyRights { mailbox } => self.myrights(&identity, &mailbox),
            ExtCommand::GetAcl { mailbox } => self.getacl(&identity, &mailbox),
            ExtCommand::ListRights {
                mailbox,
                identifier,
            } => self.listrights(&identity, &mailbox, &identifier),
            ExtCommand::SetAcl {
                mailbox,
                identifier,
                rights,
            } => self.setacl(&identity, &mailbox, &identifier, Some(&rights)),
            ExtCommand::DeleteAcl {
                mailbox,
                identifier,
            } => self.setacl(&identity, &mailbox, &identifier, None),
            ExtCommand::ListExtended(list) => self.list_extended(&identity, &list),
            ExtCommand::Esearch { returns, plain } => self.esearch(tag, &returns, &plain),
            ExtCommand::Thread { algorithm, plain } => self.thread(algorithm, &plain),
            ExtCommand::Sort {
                returns,
                criteria,
                plain,
            } => self.sort(tag, returns.as_deref(), &criteria, &plain),
            ExtCommand::AppendMany(append) => self.append_many(&identity, append).await,
            ExtCommand::CancelUpdate { tags } => self.cancel_updates(&tags),
            ExtCommand::Notify(command) => self.notify(&identity, command),
        };
        self.finish_text(tag, result);
    }

    /// RFC 4731 SEARCH RETURN (MIN MAX COUNT ALL), with SAVE (RFC 5182), PARTIAL and
    /// UPDATE (RFC 5267).
    fn esearch(&mut self, tag: &str, returns: &[String], plain: &[u8]) -> Result<String, Refusal> {
        let options = ReturnOptions::parse(returns)?;
        let found = self.plain_search("SEARCH", plain)?;
        let uid = found.uid;
        let hits = &found.numbers;
        if options.save {
            self.save_result(hits, uid, &options);
        }
        if options.update {
            self.watch_search(tag, plain, uid, hits);
        }
        // RFC 5182 §2.1: SAVE alone returns no ESEARCH.
        if options
            == (ReturnOptions {
                save: true,
                ..Default::default()
            })
        {
            return Ok("SEARCH completed, result saved".into());
        }
        let mut line = format!("ESEARCH (TAG \"{tag}\")");
        if uid {
            line.push_str(" UID");
        }
        if let (true, Some(min)) = (options.min, hits.first()) {
            line.push_str(&format!(" MIN {min}"));
        }
        if let (true, Some(max)) = (options.max, hits.last()) {
            line.push_str(&format!(" MAX {max}"));
        }
        if options.count {
            line.push_str(&format!(" COUNT {}", hits.len()));
        }
        if options.all && !hits.is_empty() {
            line.push_str(&format!(" ALL {}", super::selection::uid_set(hits)));
        }
        if let Some(range) = options.partial {
            line.push_str(&super::context::partial_item(range, hits));
        }
        // RFC 7162 §3.1.5: with MIN or MAX alone, or both, the MODSEQ of what they return.
        let only_ends = !options.all && !options.count && options.partial.is_none();
        let modseqs = found.records.iter().map(|r| r.modseq);
        let reported = match (found.records.first(), found.records.last()) {
            (Some(first), Some(last)) if only_ends => {
                let ends = [(options.min, first), (options.max, last)];
                found.modseq_of(ends.into_iter().filter(|(w, _)| *w).map(|(_, r)| r.modseq))
            }
            _ => found.modseq_of(modseqs),
        };
        if let Some(modseq) = reported {
            line.push_str(&format!(" MODSEQ {modseq}"));
        }
        self.untagged(&line);
        Ok(if uid {
            "UID SEARCH completed"
        } else {
            "SEARCH completed"
        }
        .into())
    }
}

impl Session {
    /// RFC 5182 §2.1: keeps the hits (as UIDs) for `$`; with MIN or MAX only those.
    fn save_result(&mut self, hits: &[u32], uid: bool, options: &ReturnOptions) {
        let State::Selected(_, sel) = &mut self.state else {
            return;
        };
        let mut uids: Vec<u32> = if uid {
            hits.to_vec()
        } else {
            hits.iter()
                .filter_map(|s| sel.messages.get(*s as usize - 1))
                .map(|s| s.uid)
                .collect()
        };
        let (min, max) = (options.min, options.max);
        if min || max {
            let (lo, hi) = (uids.iter().min().copied(), uids.iter().max().copied());
            uids = [lo.filter(|_| min), hi.filter(|_| max)]
                .into_iter()
                .flatten()
                .collect();
        }
        sel.saved = uids;
    }
}
