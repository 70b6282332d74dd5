//! Where outbound mail goes: the smarthost, or the recipient domain's MX hosts found in the
//! DNS (RFC 5321 §5.1), and a connection to one of their addresses.

use super::{Failure, Target, wait};
use crate::config::{QueueConfig, SmarthostTls};
use hickory_resolver::TokioResolver;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::Name;
use hickory_resolver::proto::rr::RData;
use rand::seq::SliceRandom;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;

/// MX hosts tried in one attempt, and addresses of each (Postfix tries 5 in all): a domain
/// with a hundred dead hosts must not hold a delivery slot for hours.
const MAX_MX_HOSTS: usize = 5;
const MAX_ADDRESSES: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// Authenticated, may be sent a password, never spoken to in clear unless configured.
    Smarthost,
    /// TLS when offered, without authentication; in clear if TLS fails.
    Mx,
}

/// How a target's addresses are found.
#[derive(Clone)]
pub(super) enum Lookup {
    /// The smarthost's name, as the system resolves it (`/etc/hosts` included).
    System,
    /// An MX host's name, from the same DNS as the MX records.
    Dns(Arc<TokioResolver>),
}

impl Lookup {
    pub fn route(&self) -> Route {
        match self {
            Lookup::System => Route::Smarthost,
            Lookup::Dns(_) => Route::Mx,
        }
    }
}

/// Where to connect: the smarthost, else the MX hosts by preference, else the domain itself
/// when it has no MX (RFC 5321 §5.1).
pub(super) async fn targets(
    config: &QueueConfig,
    resolver: &Arc<TokioResolver>,
    domain: &str,
) -> Result<Vec<Target>, Failure> {
    if !config.smarthost.is_empty() {
        let (host, port) = host_and_port(&config.smarthost);
        let (tls, lookup) = (config.smarthost_tls, Lookup::System);
        return Ok(vec![Target {
            host,
            port,
            tls,
            lookup,
        }]);
    }
    let mx = |host: String| Target {
        host,
        port: config.mx_port,
        tls: SmarthostTls::Starttls,
        lookup: Lookup::Dns(resolver.clone()),
    };
    // The A-label form (IDNA), as a name never completed with resolv.conf's search list.
    let mut name = Name::from_utf8(domain)
        .map_err(|e| Failure::Permanent(format!("553 5.1.2 {domain} is not a domain: {e}")))?;
    name.set_fqdn(true);
    let ascii = name.to_ascii().trim_end_matches('.').to_string();
    match resolver.mx_lookup(name).await {
        Ok(answer) => {
            let records: Vec<(u16, String)> = answer
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => {
                        let host = mx.exchange.to_ascii();
                        Some((mx.preference, host.trim_end_matches('.').to_string()))
                    }
                    _ => None,
                })
                .collect();
            // RFC 7505 §4.2: a "null MX" says the domain takes no mail.
            if records.iter().any(|(_, host)| host.is_empty()) {
                return Err(Failure::Permanent(format!(
                    "556 5.1.10 {domain} accepts no mail (null MX)"
                )));
            }
            let hosts = by_preference(records).into_iter().take(MAX_MX_HOSTS);
            Ok(hosts.map(mx).collect())
        }
        Err(e) => match response_code(&e) {
            Some(ResponseCode::NoError) => Ok(vec![mx(ascii)]),
            Some(ResponseCode::NXDomain) => Err(Failure::Permanent(format!(
                "550 5.1.2 the domain {domain} does not exist"
            ))),
            _ => Err(Failure::Temporary(format!(
                "451 4.4.3 DNS lookup of {domain} failed: {e}"
            ))),
        },
    }
}

/// `host:port`, `[v6]:port`, or a host alone (port 25).
fn host_and_port(text: &str) -> (String, u16) {
    let split = match text.strip_prefix('[') {
        Some(rest) => rest
            .split_once("]:")
            .or(rest.strip_suffix(']').map(|h| (h, "25"))),
        None if text.matches(':').count() == 1 => text.split_once(':'),
        None => None,
    };
    split
        .and_then(|(host, port)| Some((host.to_string(), port.parse().ok()?)))
        .unwrap_or_else(|| (text.to_string(), 25))
}

/// The DNS answer's code when it had no records; None for a failure to get an answer.
fn response_code(e: &NetError) -> Option<ResponseCode> {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(none)) => Some(none.response_code),
        _ => None,
    }
}

/// Hosts by preference, those of equal preference in random order (RFC 5321 §5.1: "MUST
/// be randomized to spread the load").
fn by_preference(mut records: Vec<(u16, String)>) -> Vec<String> {
    records.shuffle(&mut rand::thread_rng());
    records.sort_by_key(|(preference, _)| *preference);
    records.into_iter().map(|(_, host)| host).collect()
}

/// An MX host's IPv4 and IPv6 addresses, asked for apart: "none" only when the DNS answers
/// so for both (RFC 5321 §5.1: an error, the domain's misconfiguration), a passing failure
/// of either otherwise.
async fn addresses(
    resolver: &TokioResolver,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, Failure> {
    let name = format!("{host}.");
    let (v4, v6) = tokio::join!(
        resolver.ipv4_lookup(name.as_str()),
        resolver.ipv6_lookup(name.as_str())
    );
    let mut addrs = Vec::new();
    let mut failed = None;
    let mut take = |answer: Result<Vec<std::net::IpAddr>, NetError>| match answer {
        Ok(ips) => addrs.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, port))),
        Err(e) => match response_code(&e) {
            Some(ResponseCode::NXDomain | ResponseCode::NoError) => {}
            _ => failed = Some(e.to_string()),
        },
    };
    let ips = |lookup: hickory_resolver::lookup::Lookup| {
        lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(std::net::IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(std::net::IpAddr::V6(a.0)),
                _ => None,
            })
            .collect()
    };
    take(v4.map(ips));
    take(v6.map(ips));
    match (addrs.is_empty(), failed) {
        (false, _) => Ok(addrs),
        (true, Some(e)) => Err(Failure::Temporary(format!("{host}: {e}"))),
        (true, None) => Err(Failure::Unusable(format!(
            "550 5.4.4 {host} has no address"
        ))),
    }
}

/// A connection to one of the target's addresses, each tried in turn (RFC 5321 §5.1).
pub(super) async fn connect(target: &Target) -> Result<TcpStream, Failure> {
    let Target { host, port, .. } = target;
    let addrs: Vec<SocketAddr> = match &target.lookup {
        Lookup::System => tokio::net::lookup_host((host.as_str(), *port))
            .await
            .map_err(|e| Failure::Temporary(format!("{host}: {e}")))?
            .collect(),
        Lookup::Dns(resolver) => addresses(resolver, host, *port).await?,
    };
    let mut last = format!("{host} has no address");
    for addr in addrs.into_iter().take(MAX_ADDRESSES) {
        match tokio::time::timeout(wait::CONNECT, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(e)) => last = format!("connection to {host} ({addr}) failed: {e}"),
            Err(_) => last = format!("connection to {host} ({addr}) timed out"),
        }
    }
    Err(Failure::Temporary(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_preferences_are_shuffled_and_lower_ones_come_first() {
        let records = || vec![(10, "a".to_string()), (10, "b".into()), (5, "c".into())];
        let mut seen = std::collections::HashSet::new();
        for _ in 0..64 {
            let order = by_preference(records());
            assert_eq!(order[0], "c");
            seen.insert(order);
        }
        assert_eq!(seen.len(), 2, "both orders of a and b: {seen:?}");
    }

    #[test]
    fn a_smarthost_is_a_name_or_an_address_with_or_without_a_port() {
        let hp = |t: &str| host_and_port(t);
        assert_eq!(hp("relay.example:587"), ("relay.example".into(), 587));
        assert_eq!(hp("relay.example"), ("relay.example".into(), 25));
        assert_eq!(hp("[2001:db8::1]:465"), ("2001:db8::1".into(), 465));
        assert_eq!(hp("[2001:db8::1]"), ("2001:db8::1".into(), 25));
        assert_eq!(hp("2001:db8::1"), ("2001:db8::1".into(), 25));
        assert_eq!(hp("192.0.2.1:2525"), ("192.0.2.1".into(), 2525));
    }
}
