//! An APPEND whose literal went to the spool rather than memory (`store::spool`): its command
//! line is kept, the literal's bytes are counted into the spool as they arrive, and once the
//! rest of the command has come the command is decoded with an empty literal in the
//! message's place, and the APPEND takes the spooled message instead: it is never copied into
//! the command, and its file may become the stored copy.

use crate::store::Incoming;
use crate::store::spool::Loaded;

pub struct Spooling {
    /// The command up to and including the literal's announcement (`… {N}\r\n`).
    prefix: Vec<u8>,
    /// Literal bytes still to come.
    left: usize,
    incoming: Incoming,
    /// Whether the server had room for it; without, the bytes are read and dropped and the
    /// command refused once it ends.
    room: bool,
}

impl Spooling {
    pub fn new(prefix: Vec<u8>, length: u32, incoming: Incoming, room: bool) -> Spooling {
        Spooling {
            prefix,
            left: length as usize,
            incoming,
            room,
        }
    }

    /// Takes what belongs to the literal from `input`; returns how many bytes it took.
    pub fn take(&mut self, input: &[u8]) -> usize {
        let n = self.left.min(input.len());
        self.left -= n;
        if self.room && self.incoming.push(&input[..n]).is_err() {
            // The budget ran out meanwhile (or the spool file failed, which the log says).
            self.room = false;
            self.incoming.clear();
        }
        n
    }

    pub fn is_complete(&self) -> bool {
        self.left == 0
    }

    fn tag(&self) -> String {
        let end = self
            .prefix
            .iter()
            .position(|b| *b == b' ')
            .unwrap_or(self.prefix.len());
        String::from_utf8_lossy(&self.prefix[..end]).into_owned()
    }

    /// The command with an empty literal in the message's place (`prefix`, `{0}`, `rest`),
    /// for the decoder, and the message itself once the server has memory free for it (hold
    /// it until it is stored: it carries that memory's turn, and its spool file may become
    /// the stored copy); or the tag and the text of a refusal.
    pub async fn finish(self, rest: &[u8]) -> Result<(Vec<u8>, Loaded), (String, String)> {
        let tag = self.tag();
        if !self.room {
            let text = "[UNAVAILABLE] Too much mail in flight here; try again later";
            return Err((tag, text.into()));
        }
        let loaded = self.incoming.load().await.map_err(|e| {
            tracing::error!(error = %e, "reading a spooled APPEND failed");
            let text = "[SERVERBUG] The message could not be read back; try again";
            (tag.clone(), text.to_string())
        })?;
        let mut command = self.prefix;
        // The announcement (`{N}`, `{N+}`, or BINARY's `~{N}`) ends the prefix.
        let brace = command
            .iter()
            .rposition(|b| *b == b'{')
            .unwrap_or(command.len());
        command.truncate(brace);
        command.extend_from_slice(b"{0}\r\n");
        command.extend_from_slice(rest);
        Ok((command, loaded))
    }
}
