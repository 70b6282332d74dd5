//! The one connection loop of IMAP and SMTP: read what the client sends, feed it to the
//! protocol's state machine, write the answer within a time limit, and act on it (STARTTLS,
//! close); between commands, the session's own wake-ups (IDLE, a revoked grant), its silence
//! limit and the server's shutdown, each answered in the protocol's words.

use super::{Connection, Stream};
use crate::services::Services;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// What the connection does after writing a session's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Run the TLS handshake now (after the protocol's go-ahead).
    StartTls,
    Close,
}

/// A session's answer: bytes for the client, then what to do.
pub struct Output {
    pub bytes: Vec<u8>,
    pub action: Action,
}

/// A future for a session's next wake-up, owning what it waits on.
pub type Waiting<W> = Pin<Box<dyn Future<Output = W> + Send>>;

/// A protocol session as the connection loop drives it: a state machine, bytes in and bytes
/// out, that knows nothing of sockets.
pub trait Dialogue: Send {
    /// What woke the session besides the client.
    type Wake: Send;

    fn greeting(&self) -> Vec<u8>;

    /// Feeds what the client sent: the answer, and how many bytes it used. The rest (commands
    /// pipelined behind one that changes how bytes are read) is fed next.
    fn feed_some(&mut self, bytes: &[u8]) -> impl Future<Output = (Output, usize)> + Send;

    /// What may wake the session before the client speaks; `None` when only the client can.
    fn wake(&mut self) -> Option<Waiting<Self::Wake>>;

    /// The session's answer to a wake-up.
    fn woken(&mut self, wake: Self::Wake) -> impl Future<Output = Output> + Send;

    fn tls_started(&mut self);

    /// How long the client may stay silent, and what it is told then.
    fn silence(&self) -> (Duration, &'static [u8]);

    /// What the client is told when the server shuts down.
    fn farewell(&self) -> &'static [u8];

    /// How long a write may wait for a client that does not read.
    fn write_limit(&self) -> Duration;

    /// The read buffer: small, since thousands of idle sessions each hold one.
    fn buffer_size(&self) -> usize;
}

/// Serves `conn` with `session` until the session closes it, the client goes, stays silent
/// too long, or the server shuts down.
pub async fn converse<D: Dialogue>(conn: Connection, mut session: D) -> std::io::Result<()> {
    let Connection {
        mut stream,
        services,
        shutdown,
        ..
    } = conn;
    let limit = session.write_limit();
    super::write_all_within(&mut stream, &session.greeting(), limit).await?;
    let mut buf = vec![0u8; session.buffer_size()];
    // Bytes read but not yet fed: the commands pipelined behind one just answered.
    let mut unread = 0..0;
    loop {
        let output = if unread.is_empty() {
            let (output, read) = next_event(&mut session, &mut stream, &mut buf, &shutdown).await?;
            unread = read;
            output
        } else {
            let (output, used) = session.feed_some(&buf[unread.clone()]).await;
            unread.start += used;
            Some(output)
        };
        let Some(output) = output else {
            // A last word written on the way out still needs its flush (TLS keeps a tail).
            let _ = tokio::time::timeout(limit, stream.shutdown()).await;
            return Ok(());
        };
        super::write_all_within(&mut stream, &output.bytes, limit).await?;
        match output.action {
            Action::Continue => {}
            Action::Close => {
                let _ = tokio::time::timeout(limit, stream.shutdown()).await;
                return Ok(());
            }
            Action::StartTls => {
                // RFC 3501 §6.2.1, RFC 3207 §4.2: nothing sent before the handshake counts.
                unread = 0..0;
                stream = start_tls(stream, &services).await?;
                session.tls_started();
            }
        }
    }
}

async fn start_tls(mut stream: Stream, services: &Services) -> std::io::Result<Stream> {
    stream.flush().await?;
    stream.start_tls(&services.tls).await
}

/// Waits for the client's bytes, a wake-up of the session, silence or shutdown, and answers
/// it: `None` when the connection is over. With bytes, also the range of `buf` not yet fed.
async fn next_event<D: Dialogue>(
    session: &mut D,
    stream: &mut Stream,
    buf: &mut [u8],
    shutdown: &CancellationToken,
) -> std::io::Result<(Option<Output>, Range<usize>)> {
    let (silence, silent_words) = session.silence();
    let limit = session.write_limit();
    let woken = session.wake();
    let wake = async {
        match woken {
            Some(waiting) => waiting.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        read = tokio::time::timeout(silence, stream.read(buf)) => match read {
            Err(_) => {
                super::write_all_within(stream, silent_words, limit).await?;
                Ok((None, 0..0))
            }
            Ok(Ok(0)) => Ok((None, 0..0)),
            Ok(Ok(n)) => {
                let (output, used) = session.feed_some(&buf[..n]).await;
                Ok((Some(output), used..n))
            }
            Ok(Err(e)) => Err(e),
        },
        wake = wake => Ok((Some(session.woken(wake).await), 0..0)),
        _ = shutdown.cancelled() => {
            super::write_all_within(stream, session.farewell(), limit).await?;
            Ok((None, 0..0))
        }
    }
}
