//! DKIM for the hosted domains (issue 13): each domain's keys made (Ed25519 and RSA-2048,
//! both signing: RFC 8463 §4), and submitted mail signed with the keys of its `From:` domain
//! before it is queued or delivered, so that a local copy verifies as a remote one does.
//! The cryptography and the canonicalization are `mail-auth`'s.

use crate::model::*;
use crate::services::Services;
use crate::store::{DkimSecret, NewDkimKey, Store, StoreError};
use base64::Engine;
use mail_auth::common::crypto::{self, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::{HeaderWriter, Writable};
use mail_auth::dkim::DkimSigner;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("making a DKIM key failed: {0}")]
    Generate(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the DKIM key {selector} cannot sign: {why}")]
    BadKey { selector: String, why: String },
    #[error("the key-making task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The header fields signed, those of RFC 6376 §5.4.1's list (plus `Sender:`, which an MSA
/// adds for mail sent on behalf of a mailbox). Only those present are signed.
const SIGNED_FIELDS: &[&str] = &[
    "From",
    "Sender",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "To",
    "Cc",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-ID",
    "Content-Description",
    "Resent-Date",
    "Resent-From",
    "Resent-Sender",
    "Resent-To",
    "Resent-Cc",
    "Resent-Message-ID",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
];

/// A new pair of keys, one per algorithm. Generating the RSA key takes a while: call this
/// off the async threads.
pub fn make_keys() -> Result<Vec<NewDkimKey>, DkimError> {
    use ring::signature::KeyPair;
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let failed = |e: &dyn std::fmt::Display| DkimError::Generate(e.to_string());
    let rng = ring::rand::SystemRandom::new();
    let ed_pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| failed(&e))?;
    let ed =
        ring::signature::Ed25519KeyPair::from_pkcs8(ed_pkcs8.as_ref()).map_err(|e| failed(&e))?;
    let rsa = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(|e| failed(&e))?;
    // RFC 6376 §3.6.1: the RSA public key as SubjectPublicKeyInfo, which every verifier reads.
    let rsa_public = rsa
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| failed(&e))?;
    let rsa_private = rsa.to_pkcs8_der().map_err(|e| failed(&e))?;
    Ok(vec![
        NewDkimKey {
            algorithm: DkimAlgorithm::Ed25519,
            public_key: b64(ed.public_key().as_ref()),
            private_der: ed_pkcs8.as_ref().to_vec(),
        },
        NewDkimKey {
            algorithm: DkimAlgorithm::Rsa,
            public_key: b64(rsa_public.as_bytes()),
            private_der: rsa_private.as_bytes().to_vec(),
        },
    ])
}

/// Makes and keeps a new pair of keys for `domain`: active ones for a domain without any,
/// the next ones to publish otherwise.
pub async fn add_keys(store: &Store, domain: &str) -> Result<Vec<DkimKey>, DkimError> {
    let made = tokio::task::spawn_blocking(make_keys).await??;
    let store = store.clone();
    let domain = domain.to_string();
    Ok(tokio::task::spawn_blocking(move || store.add_dkim_keys(&domain, made)).await??)
}

/// Gives every domain without an active key of each algorithm its keys: at start (domains of
/// a data directory older than DKIM), and after a domain is added.
pub async fn keep_keys(store: &Store) {
    let domains = match store.all_domains() {
        Ok(domains) => domains,
        Err(e) => {
            tracing::error!(error = %e, "listing domains for their DKIM keys failed");
            return;
        }
    };
    for domain in domains {
        let signing = store
            .dkim_keys(&domain.name)
            .map(|keys| keys.iter().any(|k| k.state == DkimState::Active));
        if matches!(signing, Ok(true)) {
            continue;
        }
        match add_keys(store, &domain.name).await {
            Ok(keys) => tracing::info!(domain = %domain.name, keys = keys.len(), "DKIM keys made"),
            // A domain removed meanwhile has nothing to sign.
            Err(DkimError::Store(StoreError::NotFound(_))) => {}
            Err(e) => tracing::error!(domain = %domain.name, error = %e, "making DKIM keys failed"),
        }
    }
}

/// The `DKIM-Signature:` fields for `message`, one per active key of `domain` (that of its
/// `From:`), or nothing when that domain has no key here.
pub fn signatures(services: &Services, domain: &str, message: &[u8]) -> Result<Vec<u8>, DkimError> {
    let mut out = Vec::new();
    for secret in services.store.dkim_secrets(domain)? {
        if secret.key.state == DkimState::Active {
            let key = services.dkim_keys.parsed(&secret)?;
            out.extend_from_slice(sign(&key, &secret.key, message)?.as_bytes());
        }
    }
    Ok(out)
}

/// Private keys parsed once, by domain and selector: parsing an RSA key costs more than
/// signing a small message, and every submitted message is signed.
#[derive(Default)]
pub struct KeyCache(Mutex<HashMap<Selector, (Vec<u8>, SigningKey)>>);

/// A key's domain and selector.
type Selector = (String, String);

/// A parsed private key, shared by the signers that use it.
#[derive(Clone)]
pub enum SigningKey {
    Ed25519(Arc<Ed25519Key>),
    Rsa(Arc<RsaKey<Sha256>>),
}

impl KeyCache {
    /// The parsed key of `secret` (parsed anew if the stored key under its selector changed).
    fn parsed(&self, secret: &DkimSecret) -> Result<SigningKey, DkimError> {
        let id = (secret.key.domain.clone(), secret.key.selector.clone());
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((der, key)) = cache.get(&id)
            && *der == secret.private_der
        {
            return Ok(key.clone());
        }
        let key = parse(secret)?;
        cache.insert(id, (secret.private_der.clone(), key.clone()));
        Ok(key)
    }
}

fn parse(secret: &DkimSecret) -> Result<SigningKey, DkimError> {
    let bad = |why: String| DkimError::BadKey {
        selector: secret.key.selector.clone(),
        why,
    };
    Ok(match secret.key.algorithm {
        DkimAlgorithm::Ed25519 => {
            let pair =
                Ed25519Key::from_pkcs8_der(&secret.private_der).map_err(|e| bad(e.to_string()))?;
            SigningKey::Ed25519(Arc::new(pair))
        }
        DkimAlgorithm::Rsa => {
            let der = rustls_pki_types::PrivatePkcs8KeyDer::from(secret.private_der.as_slice());
            let pair =
                RsaKey::<Sha256>::from_key_der(der.into()).map_err(|e| bad(e.to_string()))?;
            SigningKey::Rsa(Arc::new(pair))
        }
    })
}

/// One signature, relaxed/relaxed (RFC 6376 §3.4: survives the re-folding relays do).
fn sign(key: &SigningKey, public: &DkimKey, message: &[u8]) -> Result<String, DkimError> {
    let header = match key {
        SigningKey::Ed25519(pair) => signed_with(Lent(pair.clone()), public, message),
        SigningKey::Rsa(pair) => signed_with(Lent(pair.clone()), public, message),
    };
    header.map_err(|e| DkimError::BadKey {
        selector: public.selector.clone(),
        why: e.to_string(),
    })
}

/// A cached key lent to one signer (`DkimSigner` takes its key by value).
struct Lent<K>(Arc<K>);

impl<K: crypto::SigningKey> crypto::SigningKey for Lent<K> {
    type Hasher = K::Hasher;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.sign(input)
    }

    fn algorithm(&self) -> mail_auth::common::crypto::Algorithm {
        self.0.algorithm()
    }
}

/// The `DKIM-Signature:` field `key` (its private half `pair`) makes for `message`.
fn signed_with(
    pair: impl crypto::SigningKey,
    key: &DkimKey,
    message: &[u8],
) -> mail_auth::Result<String> {
    use mail_auth::dkim::Canonicalization::Relaxed;
    DkimSigner::from_key(pair)
        .domain(&key.domain)
        .selector(&key.selector)
        .headers(SIGNED_FIELDS.iter().copied())
        .header_canonicalization(Relaxed)
        .body_canonicalization(Relaxed)
        .sign(message)
        .map(|signature| signature.to_header())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `new` as the store returns it, active under selector s1 of acme.example.
    fn secret(new: &NewDkimKey) -> DkimSecret {
        DkimSecret {
            key: DkimKey {
                domain: "acme.example".into(),
                selector: "s1".into(),
                algorithm: new.algorithm,
                state: DkimState::Active,
                created: 0,
                public_key: new.public_key.clone(),
            },
            private_der: new.private_der.clone(),
        }
    }

    #[test]
    fn made_keys_sign_and_their_published_halves_verify() {
        let made = make_keys().unwrap();
        assert_eq!(made.len(), 2);
        let message = b"From: Lucie <lucie@acme.example>\r\nTo: b@beta.example\r\nSubject: hi\r\n\r\nHello\r\n";
        for new in made {
            let secret = secret(&new);
            let header = sign(&parse(&secret).unwrap(), &secret.key, message).unwrap();
            assert!(header.starts_with("DKIM-Signature: "), "{header}");
            assert!(header.contains("d=acme.example"), "{header}");
            assert!(header.contains("s=s1"), "{header}");
            let algorithm = match new.algorithm {
                DkimAlgorithm::Ed25519 => "a=ed25519-sha256",
                DkimAlgorithm::Rsa => "a=rsa-sha256",
            };
            assert!(header.contains(algorithm), "{header}");
            let text = secret.key.dns_value();
            assert!(text.starts_with("v=DKIM1; k="), "{text}");
        }
    }

    /// A key is parsed once per selector; a different key stored under the selector is
    /// parsed anew.
    #[test]
    fn parsed_keys_are_kept_until_the_stored_key_changes() {
        let mut made = make_keys().unwrap();
        let cache = KeyCache::default();
        let first = secret(&made[0]);
        let same = |a: &SigningKey, b: &SigningKey| match (a, b) {
            (SigningKey::Ed25519(a), SigningKey::Ed25519(b)) => Arc::ptr_eq(a, b),
            (SigningKey::Rsa(a), SigningKey::Rsa(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        let a = cache.parsed(&first).unwrap();
        assert!(same(&a, &cache.parsed(&first).unwrap()));
        let other = make_keys().unwrap().remove(0);
        made[0] = other;
        let b = cache.parsed(&secret(&made[0])).unwrap();
        assert!(!same(&a, &b));
    }
}
