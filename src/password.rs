//! Passwords: argon2id PHC strings, checked off the async runtime, with a short-lived memory of
//! successful checks so that clients that log in again and again stay cheap.

use crate::model::PasswordHash;
use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most this many remembered successes; the oldest are forgotten first when it is full.
const CACHE_CAPACITY: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("a password must not be empty")]
    Empty,
    #[error("could not hash the password: {0}")]
    Hash(String),
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

/// Checks passwords off the runtime and remembers recent successes.
///
/// The cache key is a keyed SHA-256 of the PHC string and the password: a changed password has
/// a new PHC string (new salt), so old entries can never match again.
pub struct Verifier {
    ttl: Duration,
    key: [u8; 32],
    recent: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Verifier {
    pub fn new(ttl: Duration) -> Verifier {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        Verifier {
            ttl,
            key,
            recent: Mutex::new(HashMap::new()),
        }
    }

    pub async fn verify(&self, hash: &PasswordHash, password: &str) -> bool {
        let id = self.cache_key(hash, password);
        if self.remembered(&id) {
            return true;
        }
        let (h, p) = (hash.clone(), password.to_string());
        let ok = tokio::task::spawn_blocking(move || verify_blocking(&h, &p))
            .await
            .unwrap_or(false);
        if ok {
            self.remember(id);
        }
        ok
    }

    fn cache_key(&self, hash: &PasswordHash, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(hash.0.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    fn remembered(&self, id: &[u8; 32]) -> bool {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.get(id).is_some_and(|at| at.elapsed() < self.ttl)
    }

    fn remember(&self, id: [u8; 32]) {
        if self.ttl.is_zero() {
            return;
        }
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() >= CACHE_CAPACITY {
            let ttl = self.ttl;
            recent.retain(|_, at| at.elapsed() < ttl);
            if recent.len() >= CACHE_CAPACITY {
                recent.clear();
            }
        }
        recent.insert(id, Instant::now());
    }
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

    #[tokio::test]
    async fn the_cache_remembers_success_only_and_forgets_old_passwords() {
        let v = Verifier::new(Duration::from_secs(60));
        let old = hash("one").unwrap();
        assert!(!v.verify(&old, "two").await);
        assert!(v.verify(&old, "one").await);
        assert!(v.remembered(&v.cache_key(&old, "one")));
        assert!(!v.remembered(&v.cache_key(&old, "two")));
        // A new password makes a new hash: the old success does not carry over.
        let new = hash("one").unwrap();
        assert!(!v.remembered(&v.cache_key(&new, "one")));
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let (a, b) = (generate(), generate());
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
    }
}
