//! The certificates the listeners present, chosen at each handshake by the name the client
//! asks for (SNI): an ACME certificate for its names, else the configured or self-signed
//! one. They are replaced while the server runs, so every listener serves a renewed or new
//! certificate from its next handshake on, without a restart.

use super::TlsError;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

#[derive(Debug)]
pub struct Certificates {
    provider: Arc<CryptoProvider>,
    /// The server's own name: its certificate also answers clients that name none.
    hostname: String,
    /// The configured or self-signed certificate, for every other name.
    fallback: RwLock<Arc<CertifiedKey>>,
    by_name: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl Certificates {
    pub fn new(
        provider: Arc<CryptoProvider>,
        hostname: &str,
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Certificates, TlsError> {
        let fallback = certified(&provider, certs, key)?;
        Ok(Certificates {
            provider,
            hostname: hostname.trim_end_matches('.').to_ascii_lowercase(),
            fallback: RwLock::new(fallback),
            by_name: RwLock::new(HashMap::new()),
        })
    }

    /// Replaces the certificate for names without one of their own.
    pub fn set_fallback(
        &self,
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), TlsError> {
        let new = certified(&self.provider, certs, key)?;
        *self.fallback.write().unwrap_or_else(|e| e.into_inner()) = new;
        Ok(())
    }

    /// Serves this chain and key for each of `names` from the next handshake on.
    pub fn set_for_names(
        &self,
        names: &[String],
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), TlsError> {
        let new = certified(&self.provider, certs, key)?;
        let mut by_name = self.by_name.write().unwrap_or_else(|e| e.into_inner());
        for name in names {
            by_name.insert(name.to_ascii_lowercase(), new.clone());
        }
        Ok(())
    }

    /// The names with a certificate of their own.
    #[cfg(test)]
    pub fn names(&self) -> Vec<String> {
        let by_name = self.by_name.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = by_name.keys().cloned().collect();
        names.sort();
        names
    }

    fn for_name(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let by_name = self.by_name.read().unwrap_or_else(|e| e.into_inner());
        let asked = name.map(|n| n.trim_end_matches('.').to_ascii_lowercase());
        if let Some(found) = asked.and_then(|n| by_name.get(&n)) {
            return found.clone();
        }
        if let Some(own) = by_name.get(&self.hostname) {
            return own.clone();
        }
        self.fallback
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.for_name(hello.server_name()))
    }
}

fn certified(
    provider: &CryptoProvider,
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let signing_key = provider.key_provider.load_private_key(key)?;
    Ok(Arc::new(CertifiedKey::new(certs, signing_key)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;

    fn made(name: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
        (vec![cert.der().clone()], key)
    }

    fn leaf(key: &CertifiedKey) -> Vec<u8> {
        key.cert[0].as_ref().to_vec()
    }

    /// By the name asked for; else the server's own name's; else the fallback, which can be
    /// replaced; names are matched without regard to case or a final dot.
    #[test]
    fn a_certificate_is_chosen_by_the_name_asked_for() {
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let (certs, key) = made("fallback.test");
        let fallback = certs[0].as_ref().to_vec();
        let all = Certificates::new(provider, "Mail.Test.", certs, key).unwrap();
        assert_eq!(leaf(&all.for_name(Some("mail.test"))), fallback);
        assert_eq!(leaf(&all.for_name(None)), fallback);

        let (certs, key) = made("mail.other.test");
        let other = certs[0].as_ref().to_vec();
        all.set_for_names(&["mail.other.test".into()], certs, key)
            .unwrap();
        assert_eq!(leaf(&all.for_name(Some("MAIL.other.test."))), other);
        assert_eq!(leaf(&all.for_name(Some("unknown.test"))), fallback);

        let (certs, key) = made("mail.test");
        let own = certs[0].as_ref().to_vec();
        all.set_for_names(&["mail.test".into()], certs, key)
            .unwrap();
        assert_eq!(leaf(&all.for_name(Some("unknown.test"))), own);
        assert_eq!(leaf(&all.for_name(None)), own);
        assert_eq!(all.names(), ["mail.other.test", "mail.test"]);

        let (certs, key) = made("renewed.test");
        let renewed = certs[0].as_ref().to_vec();
        all.set_fallback(certs, key).unwrap();
        assert_eq!(leaf(&all.fallback.read().unwrap()), renewed);
    }
}
