//! Failed logins, over IMAP, SMTP and the admin API alike, held back so that a guesser gets
//! nowhere while the people who share its address keep working (an office behind one NAT
//! where one phone still has an old password).
//!
//! The rules, each counted over a sliding minute:
//! - A wrong password is answered after a pause that doubles with each failure in a row of the
//!   same login from the same address (1, 2, 4 … at most 30 s); a quarter of an hour without
//!   one forgets the streak. A right password is never paused.
//! - One login from one address: after 10 failures, further attempts are refused (without a
//!   password check) until the minute has passed, whatever the password.
//! - An address and its networks (IPv4 /32, /26, /21; IPv6 /64, /48, /32), as mox does: after
//!   10, 30 and 90 failures, attempts from there are refused, except for logins that succeeded
//!   from that address in the last day, so colleagues keep working while a machine among
//!   them guesses.
//! - One login from anywhere: after 30 failures, attempts are refused from addresses it has
//!   not succeeded from in the last day (a guesser spread over many addresses).
//!
//! Every map is bounded; what is old is forgotten first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures of one login from one address in a minute before it is refused.
pub const PAIR_LIMIT: f64 = 10.0;
/// Failures of one login in a minute, from anywhere, before untrusted addresses are refused.
pub const LOGIN_LIMIT: f64 = 30.0;
/// Failures in a minute from an address, its /26 and its /21 (IPv6: /64, /48, /32).
pub const NETWORK_LIMITS: [(u8, u8, f64); 3] = [(32, 64, 10.0), (26, 48, 30.0), (21, 32, 90.0)];
/// How long a success makes an address trusted for its login.
const TRUST: Duration = Duration::from_secs(24 * 3600);
const STREAK_FORGOTTEN: Duration = Duration::from_secs(15 * 60);
const MAX_PAUSE: Duration = Duration::from_secs(30);
const MINUTE: Duration = Duration::from_secs(60);
/// How often the audit log records the same successful login again (see `worth_recording`).
const SUCCESS_RECORDED_EVERY: Duration = Duration::from_secs(3600);
/// Entries per map; past it, stale entries go, then the map starts over.
const MAX_TRACKED: usize = 100_000;

/// An attempt refused before its password was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled;

#[derive(Default)]
pub struct Throttle {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    networks: HashMap<(IpAddr, u8), Window>,
    logins: HashMap<String, Window>,
    pairs: HashMap<(IpAddr, String), Pair>,
    trusted: HashMap<(IpAddr, String), Instant>,
    /// When a success of (address, login, action) was last recorded in the audit log.
    recorded: HashMap<(IpAddr, String, &'static str), Instant>,
}

/// Failures in a sliding minute, estimated from this minute's and the last one's counts.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    current: f64,
    previous: f64,
}

impl Window {
    fn new(now: Instant) -> Window {
        Window {
            start: now,
            current: 0.0,
            previous: 0.0,
        }
    }

    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed >= 2 * MINUTE {
            *self = Window::new(now);
        } else if elapsed >= MINUTE {
            self.previous = self.current;
            self.current = 0.0;
            self.start += MINUTE;
        }
    }

    fn count(&mut self, now: Instant) -> f64 {
        self.roll(now);
        let into = now.saturating_duration_since(self.start).as_secs_f64() / 60.0;
        self.current + self.previous * (1.0 - into).max(0.0)
    }

    fn add(&mut self, now: Instant) {
        self.roll(now);
        self.current += 1.0;
    }

    fn stale(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.start) >= 2 * MINUTE
    }
}

/// One login from one address: its streak of failures and its minute.
struct Pair {
    streak: u32,
    last: Instant,
    window: Window,
}

/// `ip` with all but the first `bits` bits cleared, as a network's key.
fn network(ip: IpAddr, v4_bits: u8, v6_bits: u8) -> (IpAddr, u8) {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(v4_bits)).unwrap_or(0);
            (IpAddr::from((u32::from(v4) & mask).to_be_bytes()), v4_bits)
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(v6_bits)).unwrap_or(0);
            (IpAddr::from((u128::from(v6) & mask).to_be_bytes()), v6_bits)
        }
    }
}

fn networks(ip: IpAddr) -> impl Iterator<Item = ((IpAddr, u8), f64)> {
    // An IPv4 client seen through an IPv6 socket counts as the IPv4 address it is.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    NETWORK_LIMITS
        .into_iter()
        .map(move |(v4, v6, limit)| (network(ip, v4, v6), limit))
}

fn pause_for(streak: u32) -> Duration {
    Duration::from_secs(1u64 << streak.saturating_sub(1).min(5)).min(MAX_PAUSE)
}

fn bound<K: Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>, fresh: impl Fn(&V) -> bool) {
    if map.len() >= MAX_TRACKED {
        map.retain(|_, v| fresh(v));
        if map.len() >= MAX_TRACKED {
            map.clear();
        }
    }
}

impl Throttle {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether an attempt of `login` from `ip` may have its password checked now.
    pub fn admit(&self, ip: IpAddr, login: &str) -> Result<(), Throttled> {
        self.admit_at(ip, login, Instant::now())
    }

    fn admit_at(&self, ip: IpAddr, login: &str, now: Instant) -> Result<(), Throttled> {
        let login = login.to_lowercase();
        let mut state = self.state();
        let pair = (ip, login);
        if let Some(p) = state.pairs.get_mut(&pair)
            && p.window.count(now) >= PAIR_LIMIT
        {
            return Err(Throttled);
        }
        let trusted = state
            .trusted
            .get(&pair)
            .is_some_and(|at| now.saturating_duration_since(*at) < TRUST);
        if trusted {
            return Ok(());
        }
        for (net, limit) in networks(ip) {
            if let Some(w) = state.networks.get_mut(&net)
                && w.count(now) >= limit
            {
                return Err(Throttled);
            }
        }
        let login_failures = state.logins.get_mut(&pair.1).map(|w| w.count(now));
        match login_failures {
            Some(n) if n >= LOGIN_LIMIT => Err(Throttled),
            _ => Ok(()),
        }
    }

    /// Counts a wrong password; returns the pause before it is answered.
    pub fn failed(&self, ip: IpAddr, login: &str) -> Duration {
        self.failed_at(ip, login, Instant::now())
    }

    fn failed_at(&self, ip: IpAddr, login: &str, now: Instant) -> Duration {
        let login = login.to_lowercase();
        let mut state = self.state();
        bound(&mut state.networks, |w| !w.stale(now));
        for (net, _) in networks(ip) {
            state
                .networks
                .entry(net)
                .or_insert_with(|| Window::new(now))
                .add(now);
        }
        bound(&mut state.logins, |w| !w.stale(now));
        state
            .logins
            .entry(login.clone())
            .or_insert_with(|| Window::new(now))
            .add(now);
        bound(&mut state.pairs, |p| {
            now.saturating_duration_since(p.last) < STREAK_FORGOTTEN
        });
        let pair = state.pairs.entry((ip, login)).or_insert_with(|| Pair {
            streak: 0,
            last: now,
            window: Window::new(now),
        });
        if now.saturating_duration_since(pair.last) >= STREAK_FORGOTTEN {
            pair.streak = 0;
        }
        pair.streak = pair.streak.saturating_add(1);
        pair.last = now;
        pair.window.add(now);
        pause_for(pair.streak)
    }

    /// A right password: the streak ends, and the address is trusted for this login.
    pub fn succeeded(&self, ip: IpAddr, login: &str) {
        self.succeeded_at(ip, login, Instant::now());
    }

    /// Whether a successful `action` (`imap.login`, …) of `login` from `ip` goes to the
    /// audit log: the first in an hour does, the rest not. Mail clients log in again and again
    /// (Thunderbird per folder, phones every few minutes); one event an hour says who came in
    /// from where without a row per reconnection, which made the log the store's one part
    /// that grew with use. Failures are always recorded.
    pub fn worth_recording(&self, ip: IpAddr, login: &str, action: &'static str) -> bool {
        self.worth_recording_at(ip, login, action, Instant::now())
    }

    fn worth_recording_at(
        &self,
        ip: IpAddr,
        login: &str,
        action: &'static str,
        now: Instant,
    ) -> bool {
        let key = (ip, login.to_lowercase(), action);
        let mut state = self.state();
        let recent = |at: &Instant| now.saturating_duration_since(*at) < SUCCESS_RECORDED_EVERY;
        if state.recorded.get(&key).is_some_and(recent) {
            return false;
        }
        bound(&mut state.recorded, recent);
        state.recorded.insert(key, now);
        true
    }

    fn succeeded_at(&self, ip: IpAddr, login: &str, now: Instant) {
        let pair = (ip, login.to_lowercase());
        let mut state = self.state();
        state.pairs.remove(&pair);
        bound(&mut state.trusted, |at| {
            now.saturating_duration_since(*at) < TRUST
        });
        state.trusted.insert(pair, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_success_is_recorded_once_an_hour() {
        let t = Throttle::default();
        let (a, b, now) = (ip("192.0.2.7"), ip("192.0.2.8"), Instant::now());
        assert!(t.worth_recording_at(a, "x@acme.example", "imap.login", now));
        assert!(!t.worth_recording_at(a, "X@acme.example", "imap.login", now));
        assert!(
            t.worth_recording_at(b, "x@acme.example", "imap.login", now),
            "another address"
        );
        assert!(
            t.worth_recording_at(a, "x@acme.example", "smtp.login", now),
            "another action"
        );
        let later = now + SUCCESS_RECORDED_EVERY;
        assert!(t.worth_recording_at(a, "x@acme.example", "imap.login", later));
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn the_pause_doubles_per_login_and_address_and_a_success_ends_it() {
        let t = Throttle::default();
        let (a, now) = (ip("192.0.2.7"), Instant::now());
        let secs = |d: Duration| d.as_secs();
        assert_eq!(secs(t.failed_at(a, "x@acme.example", now)), 1);
        assert_eq!(secs(t.failed_at(a, "X@acme.example", now)), 2, "case");
        assert_eq!(
            secs(t.failed_at(a, "y@acme.example", now)),
            1,
            "another login"
        );
        assert_eq!(
            secs(t.failed_at(ip("192.0.2.8"), "x@acme.example", now)),
            1,
            "another address"
        );
        for _ in 0..6 {
            t.failed_at(a, "x@acme.example", now);
        }
        assert_eq!(secs(t.failed_at(a, "x@acme.example", now)), 30, "capped");
        t.succeeded_at(a, "x@acme.example", now);
        assert_eq!(secs(t.failed_at(a, "x@acme.example", now)), 1);
        let later = now + STREAK_FORGOTTEN;
        assert_eq!(
            secs(t.failed_at(a, "y@acme.example", later)),
            1,
            "forgotten"
        );
    }

    #[test]
    fn a_guessing_address_is_refused_but_its_trusted_logins_go_on() {
        let t = Throttle::default();
        let (office, now) = (ip("198.51.100.20"), Instant::now());
        t.succeeded_at(office, "colleague@acme.example", now);
        // A machine in the office guesses ten different logins within the minute.
        for n in 0..10 {
            assert_eq!(
                t.admit_at(office, &format!("u{n}@acme.example"), now),
                Ok(())
            );
            t.failed_at(office, &format!("u{n}@acme.example"), now);
        }
        assert_eq!(t.admit_at(office, "u10@acme.example", now), Err(Throttled));
        assert_eq!(t.admit_at(office, "new@acme.example", now), Err(Throttled));
        assert_eq!(
            t.admit_at(office, "colleague@acme.example", now),
            Ok(()),
            "trusted"
        );
        // Its /26 neighbour is not refused yet (30 for the /26), another network not at all.
        assert_eq!(
            t.admit_at(ip("198.51.100.21"), "new@acme.example", now),
            Ok(())
        );
        assert_eq!(
            t.admit_at(ip("203.0.113.1"), "new@acme.example", now),
            Ok(())
        );
        // The sliding minute lets the address in again once it has passed.
        let later = now + 2 * MINUTE;
        assert_eq!(t.admit_at(office, "new@acme.example", later), Ok(()));
    }

    #[test]
    fn a_trusted_address_still_cannot_guess_its_own_login_fast() {
        let t = Throttle::default();
        let (a, now) = (ip("192.0.2.9"), Instant::now());
        t.succeeded_at(a, "me@acme.example", now);
        for _ in 0..10 {
            assert_eq!(t.admit_at(a, "me@acme.example", now), Ok(()));
            t.failed_at(a, "me@acme.example", now);
        }
        assert_eq!(t.admit_at(a, "me@acme.example", now), Err(Throttled));
    }

    #[test]
    fn a_login_guessed_from_many_addresses_is_closed_to_new_addresses_only() {
        let t = Throttle::default();
        let now = Instant::now();
        let home = ip("2001:db8:1::5");
        t.succeeded_at(home, "boss@acme.example", now);
        for n in 0..30u32 {
            let attacker = IpAddr::from([203, 0, (n / 200) as u8, (n % 200) as u8]);
            t.failed_at(attacker, "boss@acme.example", now);
        }
        assert_eq!(
            t.admit_at(ip("192.0.2.200"), "boss@acme.example", now),
            Err(Throttled)
        );
        assert_eq!(
            t.admit_at(home, "boss@acme.example", now),
            Ok(()),
            "trusted"
        );
    }

    #[test]
    fn networks_group_ipv4_and_ipv6_prefixes() {
        assert_eq!(
            network(ip("198.51.100.77"), 26, 48),
            (ip("198.51.100.64"), 26)
        );
        assert_eq!(network(ip("198.51.100.77"), 21, 32).0, ip("198.51.96.0"));
        assert_eq!(
            network(ip("2001:db8:aa:bb::1"), 32, 48).0,
            ip("2001:db8:aa::")
        );
        let mapped: Vec<_> = networks(ip("::ffff:192.0.2.1")).map(|(n, _)| n).collect();
        assert_eq!(mapped[0], (ip("192.0.2.1"), 32));
    }
}
