//! Connections kept open between deliveries to the same host (issue 13: 200 messages to one
//! domain opened 200 TCP and TLS sessions). After a message is delivered the connection is
//! parked here, greeted, TLS and AUTH done; the next message for that host takes it, checks
//! it with RSET (RFC 5321 §4.1.1.5) and sends at once. Idle ones are closed with QUIT after
//! a few seconds, as Postfix's connection cache does.

use super::conversation::Conversation;
use super::{SmarthostTls, Target, quit};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How long a connection waits for its next message (Postfix's
/// `smtp_connection_cache_time_limit` is 2 s; a queue run here takes up to a second).
const IDLE: Duration = Duration::from_secs(5);
/// Messages one connection carries before it is closed (Postfix's
/// `smtp_connection_reuse_count_limit` idea): a long-lived session is no one's friend.
const MAX_MESSAGES: u32 = 100;
/// Idle connections kept per host.
const PER_HOST: usize = 4;

/// An open SMTP session, plain or under TLS.
pub(super) enum Link {
    Plain(Conversation<TcpStream>),
    Tls(Box<Conversation<TlsStream<TcpStream>>>),
}

/// A session waiting for its next message, with what its EHLO offered.
pub(super) struct Parked {
    pub link: Link,
    pub ehlo: Vec<String>,
    /// Messages it carried so far.
    pub messages: u32,
    since: Instant,
}

/// Which connections are interchangeable: same host, port and TLS mode.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct Key {
    host: String,
    port: u16,
    tls: u8,
}

impl Key {
    pub fn of(target: &Target) -> Key {
        Key {
            host: target.host.to_ascii_lowercase(),
            port: target.port,
            tls: match target.tls {
                SmarthostTls::Starttls => 0,
                SmarthostTls::Implicit => 1,
                SmarthostTls::None => 2,
            },
        }
    }
}

/// The idle connections of the outbound queue.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<Key, Vec<Parked>>>,
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Vec<Parked>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle connection to `key`'s host, the most recent first. When that one has been idle
    /// too long, so have the older ones: none is given, and all are closed with QUIT (RFC 5321
    /// §4.1.1.10), not dropped, apart from the delivery, which opens a new connection at once.
    pub(super) fn take(&self, key: &Key) -> Option<Parked> {
        let mut idle = self.lock();
        let parked = idle.get_mut(key)?;
        let newest = parked.pop()?;
        if newest.since.elapsed() < IDLE {
            if parked.is_empty() {
                idle.remove(key);
            }
            return Some(newest);
        }
        let mut stale = idle.remove(key).unwrap_or_default();
        stale.push(newest);
        drop(idle);
        tokio::spawn(async move {
            for parked in stale {
                close(parked.link).await;
            }
        });
        None
    }

    /// Keeps a connection that just delivered a message, unless it carried enough or the
    /// host has enough waiting; those get their QUIT now.
    pub(super) async fn park(&self, key: Key, link: Link, ehlo: Vec<String>, messages: u32) {
        let parked = Parked {
            link,
            ehlo,
            messages,
            since: Instant::now(),
        };
        let refused = {
            let mut idle = self.lock();
            let slot = idle.entry(key).or_default();
            if messages < MAX_MESSAGES && slot.len() < PER_HOST {
                slot.push(parked);
                None
            } else {
                Some(parked)
            }
        };
        if let Some(parked) = refused {
            close(parked.link).await;
        }
    }

    /// Closes the connections idle for too long; called once a queue round.
    pub async fn close_idle(&self) {
        let expired: Vec<Parked> = {
            let mut idle = self.lock();
            let mut out = Vec::new();
            for parked in idle.values_mut() {
                let (old, fresh): (Vec<_>, Vec<_>) =
                    parked.drain(..).partition(|p| p.since.elapsed() >= IDLE);
                *parked = fresh;
                out.extend(old);
            }
            idle.retain(|_, parked| !parked.is_empty());
            out
        };
        for parked in expired {
            close(parked.link).await;
        }
    }

    /// How many connections wait now (for the tests).
    pub fn idle_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }
}

async fn close(link: Link) {
    match link {
        Link::Plain(mut conv) => quit(&mut conv).await,
        Link::Tls(mut conv) => quit(&mut *conv).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// A parked plain connection to a loopback peer that answers QUIT and reports the lines
    /// it got.
    async fn parked(since: Instant) -> (Parked, tokio::task::JoinHandle<Vec<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let mut got = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if line == "QUIT" {
                    let _ = write.write_all(b"221 bye\r\n").await;
                }
                got.push(line);
            }
            got
        });
        let stream = TcpStream::connect(address).await.unwrap();
        let parked = Parked {
            link: Link::Plain(Conversation::new(stream)),
            ehlo: Vec::new(),
            messages: 1,
            since,
        };
        (parked, peer)
    }

    fn key() -> Key {
        Key {
            host: "mx.test".into(),
            port: 25,
            tls: 2,
        }
    }

    /// A connection idle for longer than `IDLE` is not handed out: it gets its QUIT.
    #[tokio::test]
    async fn an_expired_connection_is_quit_not_dropped() {
        let pool = Pool::default();
        let old = Instant::now() - IDLE - Duration::from_secs(1);
        let (stale, peer) = parked(old).await;
        pool.lock().entry(key()).or_default().push(stale);
        assert!(pool.take(&key()).is_none());
        assert_eq!(pool.idle_count(), 0);
        assert_eq!(peer.await.unwrap(), ["QUIT"]);

        let (fresh, _peer) = parked(Instant::now()).await;
        pool.lock().entry(key()).or_default().push(fresh);
        assert!(pool.take(&key()).is_some());
    }
}
