//! An APPEND whose literals went to the spool rather than memory (`store::spool`): its
//! command text is kept, each large literal's bytes are counted into the spool as they
//! arrive, and once the rest of the command has come the command is decoded with an empty
//! literal in each message's place, and the APPEND takes the spooled messages instead: they
//! are never copied into the command, and their files may become the stored copies. One
//! command may spool several (MULTIAPPEND, RFC 3502).

use crate::store::Incoming;
use crate::store::spool::Loaded;

/// Large literals one command may send to the spool: each holds a file open.
pub const MAX_SPOOLED_PER_COMMAND: usize = 32;

pub struct Spooling {
    /// Literals of this command spooled before the current one, each with the command text
    /// before it.
    earlier: Vec<Part>,
    current: Part,
    /// Literal bytes still to come.
    left: usize,
}

struct Part {
    /// The command text before the literal, its announcement included (`… {N}\r\n`).
    prefix: Vec<u8>,
    incoming: Incoming,
    /// Why the server does not take it (no room, too many): its bytes are read and dropped,
    /// and the command refused with this text once it ends.
    refused: Option<String>,
}

/// The refusal when the spool's budget has no room.
pub const NO_ROOM: &str = "[UNAVAILABLE] Too much mail in flight here; try again later";

/// A command whose spooled literals are back, ready for the decoder.
pub struct Finished {
    /// The command with `{0}` in each spooled literal's place.
    pub command: Vec<u8>,
    /// The spooled messages, each with the offset in `command` of its `{0}`.
    pub messages: Vec<(usize, Loaded)>,
}

impl Spooling {
    pub fn new(
        prefix: Vec<u8>,
        length: u32,
        incoming: Incoming,
        refused: Option<String>,
    ) -> Spooling {
        Spooling {
            earlier: Vec::new(),
            current: Part {
                prefix,
                incoming,
                refused,
            },
            left: length as usize,
        }
    }

    /// The next large literal of the same command, `prefix` the text since the last one.
    pub fn then(
        mut self,
        prefix: Vec<u8>,
        length: u32,
        incoming: Incoming,
        refused: Option<String>,
    ) -> Self {
        let next = Part {
            prefix,
            incoming,
            refused,
        };
        self.earlier
            .push(std::mem::replace(&mut self.current, next));
        self.left = length as usize;
        self
    }

    /// Literals this command has spooled, the current one included.
    pub fn count(&self) -> usize {
        self.earlier.len() + 1
    }

    /// Takes what belongs to the literal from `input`; returns how many bytes it took.
    pub fn take(&mut self, input: &[u8]) -> usize {
        let n = self.left.min(input.len());
        self.left -= n;
        let part = &mut self.current;
        if part.refused.is_none() && part.incoming.push(&input[..n]).is_err() {
            // The budget ran out meanwhile (or the spool file failed, which the log says).
            part.refused = Some(NO_ROOM.into());
            part.incoming.clear();
        }
        n
    }

    pub fn is_complete(&self) -> bool {
        self.left == 0
    }

    /// The command's tag.
    pub fn tag(&self) -> String {
        let first = self.earlier.first().unwrap_or(&self.current);
        let end = first
            .prefix
            .iter()
            .position(|b| *b == b' ')
            .unwrap_or(first.prefix.len());
        String::from_utf8_lossy(&first.prefix[..end]).into_owned()
    }

    /// The command with an empty literal in each message's place, and the messages once the
    /// server has memory free for them (hold them until stored: they carry that memory's
    /// turn, and their spool files may become the stored copies); or the tag and the text of
    /// a refusal.
    pub async fn finish(self, rest: &[u8]) -> Result<Finished, (String, String)> {
        let tag = self.tag();
        let mut parts = self.earlier;
        parts.push(self.current);
        if let Some(text) = parts.iter().find_map(|p| p.refused.clone()) {
            return Err((tag, text));
        }
        let mut command = Vec::new();
        let mut messages = Vec::with_capacity(parts.len());
        for part in parts {
            let loaded = part.incoming.load().await.map_err(|e| {
                tracing::error!(error = %e, "reading a spooled APPEND failed");
                let text = "[SERVERBUG] The message could not be read back; try again";
                (tag.clone(), text.to_string())
            })?;
            let mut prefix = part.prefix;
            // The announcement (`{N}`, `{N+}`, or BINARY's `~{N}`) ends the prefix.
            let brace = prefix
                .iter()
                .rposition(|b| *b == b'{')
                .unwrap_or(prefix.len());
            prefix.truncate(brace);
            command.extend_from_slice(&prefix);
            messages.push((command.len(), loaded));
            command.extend_from_slice(b"{0}\r\n");
        }
        command.extend_from_slice(rest);
        Ok(Finished { command, messages })
    }
}
