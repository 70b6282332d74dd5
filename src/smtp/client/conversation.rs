//! Commands and replies over one connection (RFC 5321 §4.2), each wait bounded.

use super::{Failure, wait};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// The longest reply line taken (RFC 5321 §4.5.3.1.5 sets 512 octets; some servers are
/// wordier).
const MAX_REPLY_LINE: u64 = 4096;
/// The most lines of one reply taken (EHLO answers run to a dozen or two).
const MAX_REPLY_LINES: usize = 100;

pub(super) struct Conversation<S> {
    stream: BufReader<S>,
    /// The host at the other end, named in what it says (`host mx.example said: 550 …`), so
    /// that a bounce tells its replies from this server's own verdicts.
    peer: String,
    /// Whether the last exchange ended with a whole reply: the connection is in step, and a
    /// QUIT can close it properly (RFC 5321 §4.1.1.10).
    in_step: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conversation<S> {
    pub fn new(stream: S) -> Self {
        Conversation {
            stream: BufReader::new(stream),
            peer: String::new(),
            in_step: false,
        }
    }

    pub fn with_peer(mut self, host: &str) -> Self {
        self.peer = host.to_string();
        self
    }

    /// A reply of the peer's, as reasons carry it.
    pub fn said(&self, code: u16, text: &str) -> String {
        if self.peer.is_empty() {
            format!("{code} {text}")
        } else {
            format!("{HOST}{}{SAID}{code} {text}", self.peer)
        }
    }

    pub fn in_step(&self) -> bool {
        self.in_step
    }

    /// Marks the connection as not to be used again (a reset that failed).
    pub fn lose_step(&mut self) {
        self.in_step = false;
    }

    pub fn into_inner(self) -> S {
        self.stream.into_inner()
    }

    pub async fn write(&mut self, bytes: &[u8], limit: Duration) -> Result<(), Failure> {
        self.in_step = false;
        let stream = self.stream.get_mut();
        tokio::time::timeout(limit, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await
        .map_err(|_| Failure::Temporary("write timed out".into()))??;
        Ok(())
    }

    /// Sends one command line; returns the reply's code and text.
    pub async fn send(&mut self, line: &str, limit: Duration) -> Result<(u16, String), Failure> {
        self.write(format!("{line}\r\n").as_bytes(), wait::GREETING)
            .await?;
        self.reply(limit)
            .await
            .map(|(code, lines)| (code, lines.join(" ")))
    }

    /// Sends a command that must get `expected`; a 5xx is a permanent failure, anything else
    /// temporary.
    pub async fn command(
        &mut self,
        line: &str,
        expected: u16,
        limit: Duration,
    ) -> Result<Vec<String>, Failure> {
        self.write(format!("{line}\r\n").as_bytes(), wait::GREETING)
            .await?;
        self.expect(expected, limit).await
    }

    pub async fn expect(&mut self, expected: u16, limit: Duration) -> Result<Vec<String>, Failure> {
        let (code, lines) = self.reply(limit).await?;
        let said = self.said(code, &lines.join(" "));
        match code {
            c if c == expected => Ok(lines),
            500..=599 => Err(Failure::Permanent(said)),
            _ => Err(Failure::Temporary(said)),
        }
    }

    /// EHLO, or HELO when the server does not know EHLO (RFC 5321 §3.2); the extensions.
    pub async fn ehlo(&mut self, hostname: &str) -> Result<Vec<String>, Failure> {
        self.write(format!("EHLO {hostname}\r\n").as_bytes(), wait::GREETING)
            .await?;
        let (code, lines) = self.reply(wait::GREETING).await?;
        match code {
            250 => Ok(lines.into_iter().skip(1).collect()),
            500..=599 => {
                self.command(&format!("HELO {hostname}"), 250, wait::GREETING)
                    .await?;
                Ok(Vec::new())
            }
            _ => Err(Failure::Temporary(self.said(code, &lines.join(" ")))),
        }
    }

    /// One reply, possibly multiline (RFC 5321 §4.2.1), within `limit`.
    pub async fn reply(&mut self, limit: Duration) -> Result<(u16, Vec<String>), Failure> {
        self.in_step = false;
        let reply = tokio::time::timeout(limit, self.reply_lines())
            .await
            .map_err(|_| Failure::Temporary("reply timed out".into()))??;
        self.in_step = true;
        Ok(reply)
    }

    async fn reply_lines(&mut self) -> Result<(u16, Vec<String>), Failure> {
        let mut lines = Vec::new();
        while lines.len() < MAX_REPLY_LINES {
            let mut bytes = Vec::new();
            // Bounded: a server that never ends its line gets no more memory than this.
            let n = (&mut self.stream)
                .take(MAX_REPLY_LINE + 1)
                .read_until(b'\n', &mut bytes)
                .await?;
            // Not always UTF-8 (a Latin-1 refusal is still a refusal).
            let line = String::from_utf8_lossy(&bytes);
            if n == 0 || !line.ends_with('\n') {
                return Err(Failure::Temporary(format!(
                    "bad reply {:?}",
                    line.chars().take(100).collect::<String>()
                )));
            }
            let code: u16 = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| Failure::Temporary(format!("bad reply {line:?}")))?;
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line.get(4..).unwrap_or("").trim_end().to_string());
            if !more {
                return Ok((code, lines));
            }
        }
        Err(Failure::Temporary(format!(
            "a reply of more than {MAX_REPLY_LINES} lines"
        )))
    }
}

/// How a reason quotes a remote host's reply: `host mx.example said: 550 5.1.1 …`.
pub(crate) const HOST: &str = "host ";
pub(crate) const SAID: &str = " said: ";

/// A reason's host and reply, when it quotes one (see [`Conversation::said`]).
pub(crate) fn quoted_reply(reason: &str) -> Option<(&str, &str)> {
    reason.strip_prefix(HOST)?.split_once(SAID)
}

/// RFC 5321 §4.5.2: a line that starts with "." gets another; the message ends with CRLF.
pub(super) fn dot_stuff(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 64);
    let mut line_start = true;
    for &b in raw {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}
