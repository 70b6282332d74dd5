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

    /// An idle connection to `key`'s host, the most recent first.
    pub(super) fn take(&self, key: &Key) -> Option<Parked> {
        let mut idle = self.lock();
        let parked = idle.get_mut(key)?;
        let found = parked.pop();
        if parked.is_empty() {
            idle.remove(key);
        }
        found.filter(|p| p.since.elapsed() < IDLE)
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
