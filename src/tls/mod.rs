//! TLS: one acceptor for STARTTLS and implicit TLS alike, TLS 1.2 and 1.3 only, on ring,
//! with the certificate chosen per name (`certificates`) and kept current (`keep`): ACME
//! (`acme`), configured files, or a generated one; and the client side of the outbound queue.

pub mod acme;
mod certificates;

pub use certificates::Certificates;

use crate::config::{QueueConfig, TlsConfig};
use crate::services::Services;
use crate::store::Store;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, ClientConfig, ServerConfig};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("cannot generate the self-signed certificate: {0}")]
    Generate(String),
    #[error("the stored self-signed certificate is unreadable: {0}")]
    Stored(String),
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The server's certificates to begin with: the configured PEM files, or the certificate
/// generated for `hostname` on first start and kept in the store; ACME's join them in `keep`.
pub fn certificates(
    config: &TlsConfig,
    hostname: &str,
    store: &Store,
) -> Result<Arc<Certificates>, TlsError> {
    let (certs, key) = match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => (read_certs(cert)?, read_key(key)?),
        _ => self_signed(hostname, store)?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(Certificates::new(provider, hostname, certs, key)?))
}

/// The acceptor of every listener, presenting `certificates` as they are at each handshake.
pub fn acceptor(certificates: Arc<Certificates>) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(certificates);
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Certificates are looked at this often, and at once when a domain is added or verified or
/// another node obtained one.
const CHECK_EVERY: Duration = Duration::from_secs(12 * 3600);

/// Keeps the certificates current while the server runs: the generated one made anew before
/// it ends, and with `[tls.acme]` the authority's obtained and renewed.
pub async fn keep(services: Arc<Services>, shutdown: CancellationToken) {
    let mut acme = services.config.tls.acme.clone().map(acme::Client::new);
    // Whichever node was told (a domain added or verified, a certificate obtained), this
    // one hears of it (`ServerChange::Certificates`).
    let mut changes = services.store.hub().subscribe_server();
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = renew(&services, acme.as_mut()) => next,
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(next) => {}
            // Lagging behind is a change heard all the same.
            _ = changes.recv() => {}
        }
        crate::store::hub::drain(&mut changes);
    }
}

/// How long until the next look: the usual, or sooner for ACME (a failed order retried
/// within the hour, a certificate due before then).
async fn renew(services: &Services, acme: Option<&mut acme::Client>) -> Duration {
    let tls = &services.config.tls;
    if tls.cert.is_none() {
        let generated = self_signed(&services.config.hostname, &services.store);
        let served =
            generated.and_then(|(certs, key)| services.certificates.set_fallback(certs, key));
        if let Err(e) = served {
            tracing::error!(error = %e, "renewing the generated certificate failed");
        }
    }
    match acme {
        Some(acme) => acme.round(services, CHECK_EVERY).await,
        None => CHECK_EVERY,
    }
}

/// The outbound queue's TLS: the smarthost, which is sent a password, is authenticated
/// against the web's roots and `queue.smarthost_ca`; MX hosts are not authenticated, since
/// private CAs and mismatched names are common among them and RFC 3207 §4.1 lets a client
/// deliver over an unauthenticated channel rather than not at all.
pub struct OutboundTls {
    pub smarthost: Arc<ClientConfig>,
    pub mx: Arc<ClientConfig>,
}

pub fn outbound(queue: &QueueConfig) -> Result<OutboundTls, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = || {
        ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    };
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &queue.smarthost_ca {
        for cert in read_certs(path)? {
            roots.add(cert).map_err(|e| TlsError::Pem {
                path: path.clone(),
                message: format!("not a usable CA certificate: {e}"),
            })?;
        }
    }
    let smarthost = builder()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mx = builder()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.clone())))
        .with_no_client_auth();
    Ok(OutboundTls {
        smarthost: Arc::new(smarthost),
        mx: Arc::new(mx),
    })
}

/// Encrypts without authenticating the peer: the signatures are checked, the name and the
/// issuer are not.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_err = |e: rustls_pki_types::pem::Error| TlsError::Pem {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The self-signed certificate for `hostname`: generated once, kept in the store, reused on
/// restart until it nears its end. A new hostname gets a new certificate.
fn self_signed(
    hostname: &str,
    store: &Store,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let name = format!("tls/self-signed/{hostname}");
    let now = chrono::Utc::now().timestamp();
    let good = |pem: &[u8]| not_after(pem).is_some_and(|end| end - now > RENEW_BEFORE_SECONDS);
    let pem = store.server_secret_while(&name, good, || generate(hostname))?;
    let stored = |e: rustls_pki_types::pem::Error| TlsError::Stored(e.to_string());
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(stored)?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(stored)?;
    Ok((certs, key))
}

/// Apple's clients refuse a server certificate valid for more than 825 days, and browsers
/// one of more than 398: the generated one is valid for 397, from yesterday (clocks differ).
const VALID_DAYS: i64 = 397;
/// A generated certificate is made anew at the first start within this of its end.
const RENEW_BEFORE_SECONDS: i64 = 30 * 24 * 3600;
/// The line before the PEM blocks that says when the certificate ends (Unix seconds), so
/// that no X.509 parser is needed to know; PEM readers skip it.
const NOT_AFTER: &str = "mailgate-not-after: ";

/// A certificate for `hostname` (its subject and only name), with its key, as stored.
fn generate(hostname: &str) -> Result<Vec<u8>, String> {
    let mut params =
        rcgen::CertificateParams::new(vec![hostname.to_string()]).map_err(|e| e.to_string())?;
    let mut subject = rcgen::DistinguishedName::new();
    subject.push(rcgen::DnType::CommonName, hostname);
    params.distinguished_name = subject;
    let day = |offset: i64| {
        let d = (chrono::Utc::now() + chrono::Duration::days(offset)).date_naive();
        use chrono::Datelike;
        (d.year(), d.month() as u8, d.day() as u8)
    };
    let (y, m, d) = day(-1);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = day(VALID_DAYS - 1);
    params.not_after = rcgen::date_time_ymd(y, m, d);
    let end = params.not_after.unix_timestamp();
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    tracing::info!(hostname, "generated a self-signed TLS certificate");
    Ok(format!("{NOT_AFTER}{end}\n{}{}", cert.pem(), key.serialize_pem()).into_bytes())
}

/// When a stored certificate ends; `None` for one stored before this was written down (the
/// old generator's, valid until 4096: made anew).
fn not_after(stored: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(stored).ok()?;
    text.lines()
        .next()?
        .strip_prefix(NOT_AFTER)?
        .trim()
        .parse()
        .ok()
}

/// The PEM of the self-signed certificate, for clients to trust (tests, the README).
pub fn self_signed_certificate_pem(hostname: &str, store: &Store) -> Result<String, TlsError> {
    let (certs, _) = self_signed(hostname, store)?;
    Ok(certs
        .iter()
        .map(|c| pem_block("CERTIFICATE", c.as_ref()))
        .collect())
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// Named for the host, valid for at most 397 days from yesterday; one stored by the old
    /// generator (no end written down, valid until 4096) or near its end is made anew.
    #[test]
    fn the_generated_certificate_is_short_lived_and_renewed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = chrono::Utc::now().timestamp();
        let stored = store
            .server_secret("tls/self-signed/mail.test", || generate("mail.test"))
            .unwrap();
        let end = not_after(&stored).unwrap();
        assert!(
            end > now + 390 * 86_400 && end <= now + 397 * 86_400,
            "{end}"
        );
        let (certs, _) = self_signed("mail.test", &store).unwrap();
        let der = certs[0].as_ref();
        // The subject's common name is the hostname (not "rcgen self signed cert").
        assert!(der.windows(9).any(|w| w == b"mail.test"));
        assert!(!der.windows(5).any(|w| w == b"rcgen"));
        for old in [
            b"-----BEGIN CERTIFICATE-----\n".to_vec(),
            format!("{NOT_AFTER}{}\n", now + 86_400).into_bytes(),
        ] {
            let name = "tls/self-signed/old.test";
            store
                .server_secret_while(name, |_| false, || Ok(old.clone()))
                .unwrap();
            let (fresh, _) = self_signed("old.test", &store).unwrap();
            assert!(!fresh.is_empty());
            let kept = store.server_secret(name, || Err("kept".into())).unwrap();
            assert!(not_after(&kept).unwrap() > now + 390 * 86_400);
        }
    }

    #[test]
    fn the_generated_certificate_is_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let store = Store::open(dir.path()).unwrap();
            certificates(&TlsConfig::default(), "mail.test", &store).unwrap();
            self_signed_certificate_pem("mail.test", &store).unwrap()
        };
        let store = Store::open(dir.path()).unwrap();
        let again = self_signed_certificate_pem("mail.test", &store).unwrap();
        assert_eq!(first, again);
        assert!(first.starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn a_missing_pem_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let config = TlsConfig {
            cert: Some("/nonexistent/cert.pem".into()),
            key: Some("/nonexistent/key.pem".into()),
            acme: None,
        };
        let err = certificates(&config, "x", &store)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("/nonexistent/cert.pem"), "{err}");
    }
}
