//! Reading commands off the wire: lines and literals through imap-codec's fragmentizer, each
//! buffer bounded, an APPEND's large literals to the spool (RFC 3501 §4.3, RFC 7888).

use super::session::{Action, Output, Session};
use crate::services::Services;
use bounded_static::IntoBoundedStatic;
use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer};
use imap_codec::imap_types::core::LiteralMode;

/// Messages up to the largest APPEND plus its command line.
pub(super) fn new_fragmentizer(services: &Services) -> Fragmentizer {
    let imap = &services.config.imap;
    Fragmentizer::new(imap.max_message_bytes + imap.max_line_bytes)
}

/// What to do with an announced literal.
pub(super) enum LiteralAnswer {
    /// Let the fragmentizer take it.
    Take,
    /// Its bytes go to the spool.
    Spool,
    /// Refused; the message is skipped.
    Refused,
}

impl Session {
    /// Feeds bytes from the client; returns what to send back and what to do next.
    pub async fn feed(&mut self, mut input: &[u8]) -> Output {
        let mut bytes = Vec::new();
        loop {
            let (output, used) = self.feed_some(input).await;
            bytes.extend_from_slice(&output.bytes);
            input = &input[used..];
            if output.action != Action::Continue || input.is_empty() {
                return Output {
                    bytes,
                    action: output.action,
                };
            }
        }
    }

    /// Feeds bytes from the client up to the end of the first command that has an answer,
    /// and says how many it took: the driver sends that answer before feeding the rest, so
    /// that a pipelined command's answer does not wait for the commands behind it.
    ///
    /// The fragmentizer is given one line at a time, or a literal's announced bytes, so that
    /// it never holds bytes beyond the fragment it reports: when an APPEND announces a large
    /// literal, its bytes go straight to the spool (see `spooled`) instead.
    pub async fn feed_some(&mut self, whole: &[u8]) -> (Output, usize) {
        let mut input = whole;
        loop {
            if let Some(spooling) = self.spooling() {
                let n = spooling.take(input);
                input = &input[n..];
                if !spooling.is_complete() {
                    return (self.take(Action::Continue), whole.len() - input.len());
                }
            }
            match self.progress().await {
                Some(action) => return (self.take(action), whole.len()),
                None if self.spooling().is_some() => continue,
                None => {}
            }
            if input.is_empty() {
                if self.literal_left == 0 && self.partial_line_too_long() {
                    self.out
                        .extend_from_slice(b"* BYE Command line too long\r\n");
                    return (self.take(Action::Close), whole.len());
                }
                return (self.take(Action::Continue), whole.len());
            }
            if !self.out.is_empty() && input.len() < whole.len() {
                return (self.take(Action::Continue), whole.len() - input.len());
            }
            let n = self.next_piece(input);
            self.fragmentizer.enqueue_bytes(&input[..n]);
            self.unconsumed += n;
            input = &input[n..];
        }
    }

    /// The APPEND literal whose bytes are still going to the spool, if any.
    pub(super) fn spooling(&mut self) -> Option<&mut super::spooled::Spooling> {
        self.spooled.as_mut().filter(|s| !s.is_complete())
    }

    /// How much of `input` to hand the fragmentizer next: the rest of a literal it expects,
    /// or up to the end of the next line.
    pub(super) fn next_piece(&mut self, input: &[u8]) -> usize {
        if self.literal_left > 0 {
            let n = self.literal_left.min(input.len());
            self.literal_left -= n;
            return n;
        }
        input
            .iter()
            .position(|b| *b == b'\n')
            .map_or(input.len(), |p| p + 1)
    }

    /// Handles every fragment the fragmentizer can make of what it has. `Some` when the
    /// driver must act (close, STARTTLS); `None` when more input is needed or a literal
    /// started going to the spool.
    pub(super) async fn progress(&mut self) -> Option<Action> {
        while let Some(fragment) = self.fragmentizer.progress() {
            if let FragmentInfo::Line {
                announcement: Some(literal),
                ..
            } = fragment
            {
                match self.accept_literal(literal.mode, literal.length) {
                    LiteralAnswer::Take => self.literal_left = literal.length as usize,
                    LiteralAnswer::Spool => return None,
                    LiteralAnswer::Refused => continue,
                }
            }
            if !self.fragmentizer.is_message_complete() {
                continue;
            }
            self.literal_bytes = 0;
            let size = self.fragmentizer.message_bytes().len();
            self.unconsumed = self.unconsumed.saturating_sub(size);
            let action = self.message().await;
            if action != Action::Continue {
                return Some(action);
            }
            self.shrink_after(size);
        }
        None
    }

    /// After a large message (an APPEND of megabytes), a fresh fragmentizer: its buffer would
    /// otherwise keep that capacity for the rest of the session. Only when nothing else is
    /// queued in it, so no byte of the client's is lost.
    pub(super) fn shrink_after(&mut self, size: usize) {
        if size > 64 * 1024 && self.unconsumed == 0 {
            self.fragmentizer = new_fragmentizer(&self.services);
        }
    }

    pub(super) fn take(&mut self, action: Action) -> Output {
        Output {
            bytes: std::mem::take(&mut self.out),
            action,
        }
    }

    /// A line still without its end that is already longer than the limit: the client is
    /// not speaking IMAP, and there is no safe point to resynchronize at.
    pub(super) fn partial_line_too_long(&self) -> bool {
        let lines = self
            .fragmentizer
            .message_bytes()
            .len()
            .saturating_sub(self.literal_bytes);
        lines > self.services.config.imap.max_line_bytes as usize
    }

    /// Answers a literal announcement: `+` for a synchronizing literal we take, a tagged
    /// `NO [TOOBIG]` (and the message skipped) for one we do not (RFC 7888 §4, §5). An
    /// APPEND's literal past the spool threshold goes to the spool instead of memory.
    pub(super) fn accept_literal(&mut self, mode: LiteralMode, length: u32) -> LiteralAnswer {
        // A command the state does not allow takes no literal: nothing of it is stored or
        // spooled (an APPEND before login, say), and the BAD comes at once.
        if self.spooled.is_none()
            && let Some((tag, why)) = self.wrong_state()
        {
            if mode == LiteralMode::Sync {
                self.tagged_text(&tag, "BAD", &why);
                self.fragmentizer.skip_message();
                return LiteralAnswer::Refused;
            }
            self.fragmentizer.poison_message();
            return LiteralAnswer::Take;
        }
        // A message (APPEND) may be large; a name, a password or a search string may not.
        // After a spooled literal, the fragmentizer holds the rest of that APPEND.
        let appending = self.spooled.is_some()
            || self
                .fragmentizer
                .message_bytes()
                .split(|b| *b == b' ')
                .nth(1)
                .is_some_and(|verb| verb.eq_ignore_ascii_case(b"APPEND"));
        let imap = &self.services.config.imap;
        let limit = if appending {
            imap.max_message_bytes
        } else {
            imap.max_literal_bytes
        };
        if length <= limit {
            let threshold = self.services.config.limits.spool_threshold_bytes;
            if appending && length as usize > threshold {
                return self.start_spooling(mode, length);
            }
            self.literal_bytes += length as usize;
            if mode == LiteralMode::Sync {
                self.out.extend_from_slice(b"+ Ready for literal data\r\n");
            }
            return LiteralAnswer::Take;
        }
        let tag = self.fragmentizer.decode_tag().map(|t| t.into_static());
        let text = format!("[TOOBIG] Literal of {length} bytes exceeds the limit of {limit}");
        match (mode, tag) {
            (LiteralMode::Sync, Some(tag)) => {
                self.tagged(&tag, "NO", &text);
                self.fragmentizer.skip_message();
                LiteralAnswer::Refused
            }
            // The client sends a non-synchronizing literal anyway: let the fragmentizer drop
            // it and answer once the message ends.
            _ => {
                self.fragmentizer.poison_message();
                LiteralAnswer::Take
            }
        }
    }

    /// Routes the announced literal to the spool: the fragmentizer forgets the message so
    /// far (kept here) and starts afresh after the literal, with the rest of the command.
    pub(super) fn start_spooling(&mut self, mode: LiteralMode, length: u32) -> LiteralAnswer {
        use super::spooled::{MAX_SPOOLED_PER_COMMAND, NO_ROOM, Spooling};
        let prefix = self.fragmentizer.message_bytes().to_vec();
        let tag = match &self.spooled {
            Some(earlier) => Some(earlier.tag()),
            None => self
                .fragmentizer
                .decode_tag()
                .map(|t| t.inner().to_string()),
        };
        let spooled = self.spooled.as_ref().map_or(0, Spooling::count);
        let refusal = if spooled >= MAX_SPOOLED_PER_COMMAND {
            Some(format!(
                "[LIMIT] At most {MAX_SPOOLED_PER_COMMAND} large messages in one APPEND"
            ))
        } else if self.services.spool.reserve(u64::from(length)).is_err() {
            Some(NO_ROOM.to_string())
        } else {
            None
        };
        if let (Some(text), LiteralMode::Sync) = (&refusal, mode) {
            if let Some(tag) = tag {
                self.tagged_text(&tag, "NO", text);
            }
            self.spooled = None;
            self.fragmentizer.skip_message();
            return LiteralAnswer::Refused;
        }
        self.unconsumed = self.unconsumed.saturating_sub(prefix.len());
        self.fragmentizer.skip_message();
        if mode == LiteralMode::Sync {
            self.out.extend_from_slice(b"+ Ready for literal data\r\n");
        }
        let incoming = self.services.spool.incoming();
        self.spooled = Some(match self.spooled.take() {
            Some(earlier) => earlier.then(prefix, length, incoming, refusal),
            None => Spooling::new(prefix, length, incoming, refusal),
        });
        LiteralAnswer::Spool
    }
}
