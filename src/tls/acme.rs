//! Certificates from an ACME authority (RFC 8555) such as Let's Encrypt, for the server's
//! hostname and each verified domain's `mail.`, `autoconfig.` and `autodiscover.` names: obtained over the
//! HTTP-01 challenge (§8.3), which the admin listener answers; kept in the store; renewed 30
//! days before they end; and handed to [`super::Certificates`] so that every listener serves them
//! from its next handshake on.

use super::{NOT_AFTER, TlsError};
use crate::config::AcmeConfig;
use crate::services::{Job, Services};
use crate::store::Store;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("the ACME server: {0}")]
    Protocol(#[from] instant_acme::Error),
    #[error("the ACME server offers no HTTP-01 challenge for {0}")]
    NoHttpChallenge(String),
    #[error("the ACME server did not validate {names}: the order is {status:?}")]
    NotValidated { names: String, status: OrderStatus },
    #[error("the authorization for {name} is {status:?}")]
    Authorization {
        name: String,
        status: AuthorizationStatus,
    },
    #[error("the ACME server took more than {} s", ORDER_LIMIT.as_secs())]
    TimedOut,
    #[error("the issued certificate is unreadable: {0}")]
    Issued(String),
    #[error("the stored ACME account is unreadable: {0}")]
    Account(#[from] serde_json::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A certificate is renewed when it ends within this.
const RENEW_BEFORE_SECONDS: i64 = 30 * 24 * 3600;
/// A set of names whose order failed is not asked for again before this, so that a name
/// whose DNS is wrong does not use up the authority's limit on failed validations.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(3600);
/// Rounds are at least this far apart (seconds), whatever a certificate's renewal time.
const MIN_WAIT: i64 = 60;
/// How long the authority may take to validate and to issue.
const ORDER_TIMEOUT: Duration = Duration::from_secs(90);
/// How long one order may take in all (each request of it included: a server that stops
/// answering must not hold up the renewals for good).
const ORDER_LIMIT: Duration = Duration::from_secs(300);

/// Where a pending challenge's answer is kept in the store: behind a balancer, the
/// authority's request may reach any node, not only the one whose order it validates.
fn challenge_secret(token: &str) -> String {
    format!("acme-challenge/{token}")
}

/// Whether `token` can be an ACME token (base64url, RFC 8555 §8.1): anything else is not
/// looked up in the store.
fn well_formed(token: &str) -> bool {
    (1..=128).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The answer to the HTTP-01 challenge `token` (RFC 8555 §8.3), while its order (this
/// node's or another's) runs.
pub fn key_authorization(store: &Store, token: &str) -> Option<String> {
    if !well_formed(token) {
        return None;
    }
    match store.secret(&challenge_secret(token)) {
        Ok(answer) => answer.and_then(|a| String::from_utf8(a).ok()),
        Err(e) => {
            tracing::error!(error = %e, "reading an ACME challenge's answer failed");
            None
        }
    }
}

/// Keeps the answer to a challenge of this node's order, for whichever node is asked.
fn answer(store: &Store, token: &str, key_authorization: &str) -> Result<(), AcmeError> {
    Ok(store.set_secret(&challenge_secret(token), key_authorization.as_bytes())?)
}

fn forget(store: &Store, tokens: &[String]) {
    for token in tokens {
        if let Err(e) = store.remove_secret(&challenge_secret(token)) {
            tracing::warn!(error = %e, "removing an ACME challenge's answer failed");
        }
    }
}

/// One certificate's worth of names: the server's own, or one domain's.
#[derive(Debug, PartialEq)]
struct Group {
    /// What the certificate is stored under: `server`, or the domain.
    key: String,
    names: Vec<String>,
}

/// A certificate as the store keeps it: three lines that say when it ends and began and what
/// it covers (so that no X.509 parsing is needed to decide on renewal), then the chain and
/// key in PEM.
struct Stored {
    not_after: i64,
    not_before: i64,
    names: Vec<String>,
    pem: Vec<u8>,
}

const NOT_BEFORE: &str = "mailgate-not-before: ";
const NAMES: &str = "mailgate-names: ";

impl Stored {
    fn encode(&self) -> Vec<u8> {
        let mut out = format!(
            "{NOT_AFTER}{}\n{NOT_BEFORE}{}\n{NAMES}{}\n",
            self.not_after,
            self.not_before,
            self.names.join(" ")
        )
        .into_bytes();
        out.extend_from_slice(&self.pem);
        out
    }

    fn decode(bytes: &[u8]) -> Option<Stored> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (first, rest) = text.split_once('\n')?;
        let (second, rest) = rest.split_once('\n')?;
        let (third, pem) = rest.split_once('\n')?;
        let not_after = first.strip_prefix(NOT_AFTER)?.trim().parse().ok()?;
        let not_before = second.strip_prefix(NOT_BEFORE)?.trim().parse().ok()?;
        let names = third.strip_prefix(NAMES)?;
        let names = names.split_whitespace().map(str::to_string).collect();
        Some(Stored {
            not_after,
            not_before,
            names,
            pem: pem.as_bytes().to_vec(),
        })
    }

    /// When it is renewed: 30 days before its end, or with a third of its life left when it
    /// lives less than 90 days (else a short-lived one would be ordered again every round).
    fn renew_at(&self) -> i64 {
        let lifetime = (self.not_after - self.not_before).max(0);
        self.not_after - RENEW_BEFORE_SECONDS.min(lifetime / 3)
    }

    /// Whether it serves `wanted` and is not yet to be renewed.
    fn serves(&self, wanted: &[String], now: i64) -> bool {
        now < self.renew_at() && wanted.iter().all(|n| self.names.contains(n))
    }

    fn parts(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let stored = |e: rustls_pki_types::pem::Error| TlsError::Stored(e.to_string());
        let certs = CertificateDer::pem_slice_iter(&self.pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(stored)?;
        let key = PrivateKeyDer::from_pem_slice(&self.pem).map_err(stored)?;
        Ok((certs, key))
    }
}

fn stored_name(group: &str) -> String {
    format!("tls/acme/certificate/{group}")
}

/// The ACME client's state between rounds.
pub struct Client {
    config: AcmeConfig,
    account: Option<Account>,
    failed: HashMap<Vec<String>, Instant>,
}

impl Client {
    pub fn new(config: AcmeConfig) -> Client {
        Client {
            config,
            account: None,
            failed: HashMap::new(),
        }
    }

    /// Serves every stored certificate, then obtains the missing and renews the ending ones;
    /// returns how long until the next round: sooner after a failure, or when a certificate
    /// is to be renewed before the usual check.
    pub async fn round(&mut self, services: &Services, usual: Duration) -> Duration {
        let groups = match groups(services) {
            Ok(groups) => groups,
            Err(e) => {
                tracing::error!(error = %e, "listing the names that need certificates failed");
                return RETRY_AFTER_FAILURE;
            }
        };
        let mut stored = load(services, &groups);
        for (group, certificate) in &stored {
            serve(services, group, certificate);
        }
        let mut failed = false;
        for group in &groups {
            // A certificate for every name of the group, not due, serves any part of it: no
            // need to look the names up.
            let now = chrono::Utc::now().timestamp();
            if stored
                .get(&group.key)
                .is_some_and(|s| s.serves(&group.names, now))
            {
                continue;
            }
            let names = resolvable(services, &group.names).await;
            if names.is_empty() || !self.due(stored.get(&group.key), &names) {
                continue;
            }
            // Asked before each order, which renews the hold for as long as it may take.
            if !services.runs(Job::AcmeOrders).await {
                // Another node orders, and announces what it obtains. Should it die, its hold
                // runs out: this node looks again then, to order in its place.
                return usual.min(Job::AcmeOrders.hold());
            }
            let order = tokio::time::timeout(ORDER_LIMIT, self.obtain(services, &names));
            let obtained = order.await.unwrap_or(Err(AcmeError::TimedOut));
            match obtained {
                Ok(certificate) => {
                    tracing::info!(names = %names.join(" "), "obtained an ACME certificate");
                    let key = stored_name(&group.key);
                    if let Err(e) = services.store.set_secret(&key, &certificate.encode()) {
                        tracing::error!(error = %e, "keeping the new certificate failed");
                        continue;
                    }
                    serve(services, &group.key, &certificate);
                    stored.insert(group.key.clone(), certificate);
                    announce(services);
                }
                Err(e) => {
                    tracing::warn!(names = %names.join(" "), error = %e, "obtaining an ACME certificate failed; retrying in an hour");
                    self.failed.insert(names, Instant::now());
                    failed = true;
                }
            }
        }
        if failed {
            return RETRY_AFTER_FAILURE;
        }
        let next_renewal = stored.values().map(Stored::renew_at).min();
        next_renewal.map_or(usual, |at| {
            let wait = at - chrono::Utc::now().timestamp();
            Duration::from_secs(wait.max(MIN_WAIT) as u64).min(usual)
        })
    }

    /// Whether `names` need a certificate now: the `stored` one does not cover them or is to
    /// be renewed, and no order for them failed within the hour.
    fn due(&self, stored: Option<&Stored>, names: &[String]) -> bool {
        let now = chrono::Utc::now().timestamp();
        if stored.is_some_and(|s| s.serves(names, now)) {
            return false;
        }
        self.failed
            .get(names)
            .is_none_or(|at| at.elapsed() >= RETRY_AFTER_FAILURE)
    }

    async fn obtain(&mut self, services: &Services, names: &[String]) -> Result<Stored, AcmeError> {
        let account = self.account(services).await?;
        let identifiers: Vec<Identifier> =
            names.iter().map(|n| Identifier::Dns(n.clone())).collect();
        let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
        let mut tokens = Vec::new();
        let ready = async {
            let mut authorizations = order.authorizations();
            while let Some(authorization) = authorizations.next().await {
                let mut authorization = authorization?;
                let name = format!("{:?}", authorization.identifier());
                match authorization.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    status => return Err(AcmeError::Authorization { name, status }),
                }
                let mut challenge = authorization
                    .challenge(ChallengeType::Http01)
                    .ok_or_else(|| AcmeError::NoHttpChallenge(name))?;
                let key_authorization = challenge.key_authorization();
                answer(
                    &services.store,
                    &challenge.token,
                    key_authorization.as_str(),
                )?;
                tokens.push(challenge.token.clone());
                challenge.set_ready().await?;
            }
            Ok(order.poll_ready(&retry()).await?)
        }
        .await;
        forget(&services.store, &tokens);
        let status = ready?;
        if status != OrderStatus::Ready {
            return Err(AcmeError::NotValidated {
                names: names.join(" "),
                status,
            });
        }
        let key = order.finalize().await?;
        let chain = order.poll_certificate(&retry()).await?;
        let (not_before, not_after) = validity(&chain).map_err(AcmeError::Issued)?;
        Ok(Stored {
            not_after,
            not_before,
            names: names.to_vec(),
            pem: format!("{chain}\n{key}").into_bytes(),
        })
    }

    /// The account at the configured directory: the stored one, or a new one (stored).
    async fn account(&mut self, services: &Services) -> Result<Account, AcmeError> {
        if let Some(account) = &self.account {
            return Ok(account.clone());
        }
        let builder = match &self.config.ca {
            Some(ca) => Account::builder_with_root(ca)?,
            None => Account::builder()?,
        };
        let name = format!("tls/acme/account/{}", self.config.directory);
        let account = match services.store.secret(&name)? {
            Some(json) => {
                builder
                    .from_credentials(serde_json::from_slice(&json)?)
                    .await?
            }
            None => {
                let contact: Vec<String> = self.config.contact.iter().map(|c| mailto(c)).collect();
                let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
                let new = NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                };
                let (account, credentials) = builder
                    .create(&new, self.config.directory.clone(), None)
                    .await?;
                services
                    .store
                    .set_secret(&name, &serde_json::to_vec(&credentials)?)?;
                account
            }
        };
        self.account = Some(account.clone());
        Ok(account)
    }
}

/// Tells every node (this one too) that the certificates changed: the others serve the new
/// one from the store. A hint: should it be lost, they load it at their next round.
pub fn announce(services: &Services) {
    let change = crate::store::ServerChange::Certificates;
    if let Err(e) = services.store.announce(change) {
        tracing::warn!(error = %e, "telling the other nodes of a certificate change failed");
    }
}

fn retry() -> RetryPolicy {
    RetryPolicy::new().timeout(ORDER_TIMEOUT)
}

fn mailto(contact: &str) -> String {
    if contact.starts_with("mailto:") {
        contact.to_string()
    } else {
        format!("mailto:{contact}")
    }
}

/// The server's names, and each verified domain's `mail.`, `autoconfig.` and `autodiscover.`
/// names (the last two for clients' set-up over HTTPS, `[admin] listen_tls`).
fn groups(services: &Services) -> Result<Vec<Group>, AcmeError> {
    let config = &services.config;
    let mut own = vec![host(&config.hostname)];
    if let Some(public) = &config.public.hostname
        && !own.contains(&host(public))
    {
        own.push(host(public));
    }
    let mut groups = vec![Group {
        key: "server".into(),
        names: own,
    }];
    for domain in services.store.all_domains()? {
        if services.store.is_domain_verified(&domain.name)? {
            let names = ["mail", "autoconfig", "autodiscover"]
                .map(|sub| format!("{sub}.{}", host(&domain.name)));
            groups.push(Group {
                key: host(&domain.name),
                names: names.to_vec(),
            });
        }
    }
    Ok(groups)
}

fn host(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// At start, before the listeners take connections: the stored certificates, so that none is
/// met with the fallback while the first round asks the authority.
pub fn serve_stored_at_start(services: &Services) {
    if services.config.tls.acme.is_none() {
        return;
    }
    match groups(services) {
        Ok(groups) => {
            for (group, certificate) in load(services, &groups) {
                serve(services, &group, &certificate);
            }
        }
        Err(e) => tracing::error!(error = %e, "listing the names that need certificates failed"),
    }
}

/// The groups' stored certificates, by group.
fn load(services: &Services, groups: &[Group]) -> HashMap<String, Stored> {
    let stored = |g: &Group| services.store.secret(&stored_name(&g.key)).ok().flatten();
    groups
        .iter()
        .filter_map(|g| Some((g.key.clone(), Stored::decode(&stored(g)?)?)))
        .collect()
}

/// Serves `certificate` for the names it covers, from the next handshake on.
fn serve(services: &Services, group: &str, certificate: &Stored) {
    let served = certificate.parts().and_then(|(certs, key)| {
        services
            .certificates
            .set_for_names(&certificate.names, certs, key)
    });
    if let Err(e) = served {
        tracing::error!(group, error = %e, "an ACME certificate is unusable");
    }
}

/// The names that resolve to an address: the authority would fail to validate the others
/// (and count the failure against the account).
async fn resolvable(services: &Services, names: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for name in names {
        match services.dns.lookup_ip(name.as_str()).await {
            Ok(found) if found.iter().next().is_some() => out.push(name.clone()),
            _ => tracing::debug!(name, "no address in DNS: no certificate asked for"),
        }
    }
    out
}

/// When the first certificate of a PEM chain begins and ends (Unix seconds).
fn validity(chain: &str) -> Result<(i64, i64), String> {
    let first = CertificateDer::pem_slice_iter(chain.as_bytes())
        .next()
        .ok_or("no certificate in the chain")?
        .map_err(|e| e.to_string())?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(first.as_ref()).map_err(|e| e.to_string())?;
    let validity = cert.validity();
    Ok((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(not_after: i64, names: &[&str]) -> Stored {
        Stored {
            not_after,
            not_before: not_after - 90 * 24 * 3600,
            names: names.iter().map(|n| n.to_string()).collect(),
            pem: b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n".to_vec(),
        }
    }

    #[test]
    fn a_stored_certificate_reads_back() {
        let s = stored(1_900_000_000, &["mail.a.test", "autoconfig.a.test"]);
        let back = Stored::decode(&s.encode()).unwrap();
        assert_eq!(back.not_after, 1_900_000_000);
        assert_eq!(back.not_before, s.not_before);
        assert_eq!(back.names, ["mail.a.test", "autoconfig.a.test"]);
        assert_eq!(back.pem, s.pem);
        assert!(Stored::decode(b"-----BEGIN CERTIFICATE-----\n").is_none());
    }

    /// Renewed 30 days before it ends (a third of its life for a short-lived one), or when a
    /// name it lacks is wanted; a name it covers that is no longer wanted (its DNS gone) does
    /// not make it due.
    #[test]
    fn a_certificate_is_due_30_days_or_a_third_of_its_life_before_its_end_or_for_a_new_name() {
        let day = 24 * 3600;
        let now = 1_800_000_000;
        let wanted = ["mail.a.test".to_string()];
        let s = stored(now + 31 * day, &["mail.a.test", "autoconfig.a.test"]);
        assert!(s.serves(&wanted, now));
        assert!(!s.serves(&wanted, now + 2 * day));
        let more = ["mail.a.test".to_string(), "new.a.test".to_string()];
        assert!(!s.serves(&more, now));
        // One that lives 6 days is renewed with 2 left, not at every round.
        let short = Stored {
            not_before: now,
            not_after: now + 6 * day,
            ..stored(0, &["mail.a.test"])
        };
        assert_eq!(short.renew_at(), now + 4 * day);
        assert!(short.serves(&wanted, now + 3 * day));
        assert!(!short.serves(&wanted, now + 4 * day));
    }

    /// A challenge is answered while it is validated, whichever node is asked (they share
    /// the store), and not after; a token that cannot be one is not looked up.
    #[test]
    fn challenge_answers_are_forgotten_once_used() {
        let h = crate::harness::Harness::new();
        let store = &h.services.store;
        answer(store, "t1", "t1.key").unwrap();
        answer(store, "t2", "t2.key").unwrap();
        assert_eq!(key_authorization(store, "t1").as_deref(), Some("t1.key"));
        assert_eq!(key_authorization(store, "t2").as_deref(), Some("t2.key"));
        assert_eq!(key_authorization(store, "t2/../x"), None);
        forget(store, &["t1".into(), "t2".into()]);
        assert_eq!(key_authorization(store, "t1"), None);
        assert_eq!(key_authorization(store, "t2"), None);
    }

    #[test]
    fn contacts_are_mailto_urls() {
        assert_eq!(mailto("pm@a.test"), "mailto:pm@a.test");
        assert_eq!(mailto("mailto:pm@a.test"), "mailto:pm@a.test");
    }
}
