//! Passwords: argon2id PHC strings, checked off the async runtime a few at a time (each check
//! takes about 19 MiB), with a short-lived memory of verdicts so that clients that log in again
//! and again stay cheap.

use crate::model::PasswordHash;
use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OnceCell, Semaphore};

/// At most this many remembered successes; the oldest are forgotten first when it is full.
const CACHE_CAPACITY: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("a password must not be empty")]
    Empty,
    #[error("could not hash the password: {0}")]
    Hash(String),
    #[error("too many password hashes at once; try again shortly")]
    Busy,
}

/// Hashes a password as an argon2id PHC string with a random salt.
pub fn hash(password: &str) -> Result<PasswordHash, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| PasswordHash(h.to_string()))
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Checks a password against a PHC string (blocking: argon2 is slow on purpose).
pub fn verify_blocking(hash: &PasswordHash, password: &str) -> bool {
    match argon2::PasswordHash::new(&hash.0) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A random password for first logins and generated mailbox passwords: 20 characters from an
/// alphabet without look-alikes (about 115 bits).
pub fn generate() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Why a password could not be checked now: the server is computing as many hashes as it
/// allows, and the queue of checks waiting for a turn is full or did not move in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks at once; try again shortly")]
pub struct Busy;

/// How many argon2 checks may run at once and how long others wait (`[auth]`).
#[derive(Clone, Copy, Debug)]
pub struct CheckLimits {
    /// Hashes computed at once (each takes about 19 MiB and a core for a moment).
    pub concurrent: usize,
    /// Checks waiting for a turn; more are refused at once.
    pub waiting: usize,
    /// How long a check waits for its turn before it is refused.
    pub wait: Duration,
}

/// Checks passwords off the runtime: a few at a time, identical concurrent checks computed
/// once, recent verdicts remembered.
///
/// The cache key is a keyed SHA-256 of the PHC string and the password: a changed password has
/// a new PHC string (new salt), so old entries can never match again. The verdict for one key
/// never changes, so wrong passwords are remembered too: a phone retrying an old password
/// costs one hash, not one per attempt. A hit extends the entry, so a client that logs in
/// every few minutes never pays the hash again while it keeps coming.
pub struct Verifier {
    ttl: Duration,
    key: [u8; 32],
    recent: Mutex<HashMap<[u8; 32], (bool, Instant)>>,
    /// The checks under way, shared by everyone asking the same question meanwhile.
    inflight: Mutex<HashMap<[u8; 32], Arc<OnceCell<bool>>>>,
    /// Places for a hash being computed or waiting for its turn.
    admitted: Arc<Semaphore>,
    /// Turns to compute a hash.
    running: Arc<Semaphore>,
    wait: Duration,
    /// Hashes computed so far.
    computed: AtomicU64,
}

impl Verifier {
    pub fn new(ttl: Duration, limits: CheckLimits) -> Verifier {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        let concurrent = limits.concurrent.max(1);
        Verifier {
            ttl,
            key,
            recent: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            admitted: Arc::new(Semaphore::new(concurrent + limits.waiting)),
            running: Arc::new(Semaphore::new(concurrent)),
            wait: limits.wait,
            computed: AtomicU64::new(0),
        }
    }

    /// Whether `password` matches `hash`; `Busy` when the check could not get a turn.
    pub async fn verify(&self, hash: &PasswordHash, password: &str) -> Result<bool, Busy> {
        let id = self.cache_key(hash, password);
        if let Some(verdict) = self.remembered(&id) {
            return Ok(verdict);
        }
        let cell = {
            let mut inflight = lock(&self.inflight);
            inflight.entry(id).or_default().clone()
        };
        let verdict = cell
            .get_or_try_init(|| self.compute(hash.clone(), password.to_string()))
            .await
            .copied();
        // Remembered before the shared check goes, so that no caller in between computes again.
        if let Ok(verdict) = verdict {
            self.remember(id, verdict);
        }
        let mut inflight = lock(&self.inflight);
        if inflight.get(&id).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            inflight.remove(&id);
        }
        verdict
    }

    /// One argon2 check on a blocking thread, once a turn is free. The turn goes with the
    /// thread: a client that hangs up mid-check does not free it before the hash is done.
    async fn compute(&self, hash: PasswordHash, password: String) -> Result<bool, Busy> {
        self.computed.fetch_add(1, Ordering::Relaxed);
        let check = self.in_turn(move || verify_blocking(&hash, &password));
        Ok(check.await?.unwrap_or(false))
    }

    /// Runs `work` (an argon2 hash) on a blocking thread once a turn is free: a place among
    /// the admitted at once, or `Busy`; then a turn within `wait`, or `Busy`. The turn goes
    /// with the thread, so a caller that gives up does not free it before the work is done.
    async fn in_turn<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<Result<T, tokio::task::JoinError>, Busy> {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| Busy)?;
        let running = tokio::time::timeout(self.wait, self.running.clone().acquire_owned())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        Ok(tokio::task::spawn_blocking(move || {
            let _turn = (admitted, running);
            work()
        })
        .await)
    }

    /// Hashes a new password on a blocking thread, taking a turn like a check: setting
    /// passwords through the API costs the same memory as checking them.
    pub async fn hash(&self, password: &str) -> Result<PasswordHash, PasswordError> {
        if password.is_empty() {
            return Err(PasswordError::Empty);
        }
        let password = password.to_string();
        self.in_turn(move || hash(&password))
            .await
            .map_err(|Busy| PasswordError::Busy)?
            .map_err(|e| PasswordError::Hash(e.to_string()))?
    }

    fn cache_key(&self, hash: &PasswordHash, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(hash.0.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// A fresh verdict for `id`, its entry extended.
    fn remembered(&self, id: &[u8; 32]) -> Option<bool> {
        let mut recent = lock(&self.recent);
        let (verdict, at) = recent.get_mut(id)?;
        if at.elapsed() >= self.ttl {
            return None;
        }
        *at = Instant::now();
        Some(*verdict)
    }

    fn remember(&self, id: [u8; 32], verdict: bool) {
        if self.ttl.is_zero() {
            return;
        }
        let mut recent = lock(&self.recent);
        if recent.len() >= CACHE_CAPACITY {
            let ttl = self.ttl;
            recent.retain(|_, (_, at)| at.elapsed() < ttl);
            if recent.len() >= CACHE_CAPACITY {
                // Wrong passwords go first: they are what a storm fills the cache with.
                recent.retain(|_, (verdict, _)| *verdict);
            }
            if recent.len() >= CACHE_CAPACITY {
                recent.clear();
            }
        }
        recent.insert(id, (verdict, Instant::now()));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_salted() {
        let a = hash("secret").unwrap();
        let b = hash("secret").unwrap();
        assert!(a.0.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(verify_blocking(&a, "secret"));
        assert!(!verify_blocking(&a, "Secret"));
        assert!(matches!(hash(""), Err(PasswordError::Empty)));
    }

    #[test]
    fn a_broken_hash_never_verifies() {
        assert!(!verify_blocking(&PasswordHash("garbage".into()), "x"));
    }

    fn limits(concurrent: usize, waiting: usize) -> CheckLimits {
        CheckLimits {
            concurrent,
            waiting,
            wait: Duration::from_secs(30),
        }
    }

    #[tokio::test]
    async fn the_cache_remembers_verdicts_and_forgets_old_passwords() {
        let v = Verifier::new(Duration::from_secs(60), limits(2, 8));
        let old = hash("one").unwrap();
        assert_eq!(v.verify(&old, "two").await, Ok(false));
        assert_eq!(v.verify(&old, "one").await, Ok(true));
        assert_eq!(v.remembered(&v.cache_key(&old, "one")), Some(true));
        assert_eq!(v.remembered(&v.cache_key(&old, "two")), Some(false));
        // A new password makes a new hash: the old success does not carry over.
        let new = hash("one").unwrap();
        assert_eq!(v.remembered(&v.cache_key(&new, "one")), None);
    }

    #[tokio::test]
    async fn a_hit_extends_the_entry() {
        let v = Verifier::new(Duration::from_secs(60), limits(1, 1));
        let h = hash("pw").unwrap();
        assert_eq!(v.verify(&h, "pw").await, Ok(true));
        let id = v.cache_key(&h, "pw");
        let age = |v: &Verifier, by: u64| {
            let mut recent = lock(&v.recent);
            let entry = recent.get_mut(&id).unwrap();
            entry.1 = Instant::now().checked_sub(Duration::from_secs(by)).unwrap();
        };
        age(&v, 59);
        assert_eq!(v.remembered(&id), Some(true), "still within its time");
        assert!(
            lock(&v.recent)[&id].1.elapsed() < Duration::from_secs(30),
            "extended"
        );
        age(&v, 61);
        assert_eq!(v.remembered(&id), None, "past its time");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn identical_concurrent_checks_are_computed_once() {
        // One turn, no waiting places: a second computation would be refused as Busy.
        let v = Arc::new(Verifier::new(Duration::from_secs(60), limits(1, 0)));
        let h = hash("same").unwrap();
        let checks: Vec<_> = (0..8)
            .map(|_| {
                let (v, h) = (v.clone(), h.clone());
                tokio::spawn(async move { v.verify(&h, "same").await })
            })
            .collect();
        for check in checks {
            assert_eq!(check.await.unwrap(), Ok(true));
        }
        assert_eq!(v.computed.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_beyond_the_turns_and_the_queue_are_refused() {
        let v = Arc::new(Verifier::new(Duration::ZERO, limits(1, 1)));
        let h = hash("pw").unwrap();
        // Hold the only turn, so that checks queue: one computing place, one waiting place.
        let turn = v.running.clone().acquire_owned().await.unwrap();
        let queued: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|pw| {
                let (v, h) = (v.clone(), h.clone());
                tokio::spawn(async move { v.verify(&h, pw).await })
            })
            .collect();
        while v.admitted.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(v.verify(&h, "c").await, Err(Busy), "no place left");
        drop(turn);
        for check in queued {
            assert_eq!(check.await.unwrap(), Ok(false));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_that_waits_too_long_is_refused() {
        let v = Verifier::new(
            Duration::ZERO,
            CheckLimits {
                concurrent: 1,
                waiting: 4,
                wait: Duration::from_secs(10),
            },
        );
        let _turn = v.running.clone().acquire_owned().await.unwrap();
        let h = PasswordHash("$argon2id$not-checked".into());
        assert_eq!(v.verify(&h, "x").await, Err(Busy));
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let (a, b) = (generate(), generate());
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
    }
}
