//! DKIM for the hosted domains (issue 13): each domain's keys made (Ed25519 and RSA-2048,
//! both signing: RFC 8463 §4), and submitted mail signed with the keys of its `From:` domain
//! before it is queued or delivered, so that a local copy verifies as a remote one does.
//! The cryptography and the canonicalization are `mail-auth`'s.

use crate::model::*;
use crate::services::Services;
use crate::store::{DkimSecret, NewDkimKey, Store, StoreError};
use base64::Engine;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;

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

/// The `DKIM-Signature:` fields for `message`, one per active key of the domain of its
/// `From:` (the first address of it), or nothing when that domain has no key here.
pub fn signatures(services: &Services, message: &[u8]) -> Result<Vec<u8>, DkimError> {
    let from = match crate::smtp::submission::from_addresses(message) {
        Ok(addresses) => addresses,
        Err(_) => return Ok(Vec::new()),
    };
    let Some(domain) = from
        .first()
        .and_then(|a| a.rsplit_once('@'))
        .map(|(_, d)| d)
    else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for secret in services.store.dkim_secrets(domain)? {
        if secret.key.state == DkimState::Active {
            out.extend_from_slice(sign(&secret, message)?.as_bytes());
        }
    }
    Ok(out)
}

/// One signature, relaxed/relaxed (RFC 6376 §3.4: survives the re-folding relays do).
fn sign(secret: &DkimSecret, message: &[u8]) -> Result<String, DkimError> {
    let bad = |why: String| DkimError::BadKey {
        selector: secret.key.selector.clone(),
        why,
    };
    let header = match secret.key.algorithm {
        DkimAlgorithm::Ed25519 => {
            let pair =
                Ed25519Key::from_pkcs8_der(&secret.private_der).map_err(|e| bad(e.to_string()))?;
            signed_with(pair, &secret.key, message)
        }
        DkimAlgorithm::Rsa => {
            let der = rustls_pki_types::PrivatePkcs8KeyDer::from(secret.private_der.as_slice());
            let pair =
                RsaKey::<Sha256>::from_key_der(der.into()).map_err(|e| bad(e.to_string()))?;
            signed_with(pair, &secret.key, message)
        }
    };
    header.map_err(|e| bad(e.to_string()))
}

/// The `DKIM-Signature:` field `key` (its private half `pair`) makes for `message`.
fn signed_with(
    pair: impl mail_auth::common::crypto::SigningKey,
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

    #[test]
    fn made_keys_sign_and_their_published_halves_verify() {
        let made = make_keys().unwrap();
        assert_eq!(made.len(), 2);
        let message = b"From: Lucie <lucie@acme.example>\r\nTo: b@beta.example\r\nSubject: hi\r\n\r\nHello\r\n";
        for new in made {
            let secret = DkimSecret {
                key: DkimKey {
                    domain: "acme.example".into(),
                    selector: "s1".into(),
                    algorithm: new.algorithm,
                    state: DkimState::Active,
                    created: 0,
                    public_key: new.public_key.clone(),
                },
                private_der: new.private_der,
            };
            let header = sign(&secret, message).unwrap();
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
}
