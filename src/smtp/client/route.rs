//! Where outbound mail goes: the smarthost, or the recipient domain's MX hosts found in the
//! DNS (RFC 5321 §5.1), and a connection to one of their addresses.

use super::{Failure, Target, wait};
use crate::config::{QueueConfig, SmarthostTls};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::xfer::Protocol;
use rand::seq::SliceRandom;
use std::net::SocketAddr;
use tokio::net::TcpStream;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// Reached by its name as the system resolves it; authenticated, may be sent a password.
    Smarthost,
    /// Found in the DNS, its addresses too; TLS when offered, without authentication.
    Mx,
}

/// The configured name servers, else the system's; IPv4 and IPv6 addresses alike.
pub(super) fn resolver(config: &QueueConfig) -> Result<TokioResolver, Failure> {
    let mut builder = if config.nameservers.is_empty() {
        TokioResolver::builder_tokio()
            .map_err(|e| Failure::Temporary(format!("DNS resolver: {e}")))?
    } else {
        let servers: Vec<NameServerConfig> = config
            .nameservers
            .iter()
            .flat_map(|ns| [Protocol::Udp, Protocol::Tcp].map(|p| NameServerConfig::new(ns.0, p)))
            .collect();
        let config = ResolverConfig::from_parts(None, Vec::new(), servers);
        TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
    };
    builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    Ok(builder.build())
}

/// Where to connect: the smarthost, else the MX hosts by preference, else the domain itself
/// when it has no MX (RFC 5321 §5.1).
pub(super) async fn targets(
    config: &QueueConfig,
    resolver: &TokioResolver,
    domain: &str,
) -> Result<Vec<Target>, Failure> {
    if !config.smarthost.is_empty() {
        let (host, port) = config
            .smarthost
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
            .unwrap_or((config.smarthost.clone(), 25));
        let (tls, route) = (config.smarthost_tls, Route::Smarthost);
        return Ok(vec![Target {
            host,
            port,
            tls,
            route,
        }]);
    }
    let mx = |host: String| Target {
        host,
        port: config.mx_port,
        tls: SmarthostTls::Starttls,
        route: Route::Mx,
    };
    // A trailing dot: the name as it is, never completed with resolv.conf's search list.
    match resolver.mx_lookup(format!("{domain}.")).await {
        Ok(answer) => {
            let records: Vec<(u16, String)> = answer
                .iter()
                .map(|r| {
                    let host = r.exchange().to_utf8();
                    (r.preference(), host.trim_end_matches('.').to_string())
                })
                .collect();
            // RFC 7505 §4.2: a "null MX" says the domain takes no mail.
            if records.iter().any(|(_, host)| host.is_empty()) {
                return Err(Failure::Permanent(format!(
                    "550 5.1.10 {domain} accepts no mail (null MX)"
                )));
            }
            Ok(by_preference(records).into_iter().map(mx).collect())
        }
        Err(e) => match response_code(&e) {
            Some(ResponseCode::NoError) => Ok(vec![mx(domain.to_string())]),
            Some(ResponseCode::NXDomain) => Err(Failure::Permanent(format!(
                "550 5.1.2 the domain {domain} does not exist"
            ))),
            _ => Err(Failure::Temporary(format!(
                "451 4.4.3 DNS lookup of {domain} failed: {e}"
            ))),
        },
    }
}

/// The DNS answer's code when it had no records; None for a failure to get an answer.
fn response_code(e: &hickory_resolver::ResolveError) -> Option<ResponseCode> {
    match e.proto()?.kind() {
        ProtoErrorKind::NoRecordsFound { response_code, .. } => Some(*response_code),
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

/// A connection to the target: an MX host's addresses come from the same resolver as its
/// name, and each is tried in turn (RFC 5321 §5.1).
pub(super) async fn connect(
    resolver: &TokioResolver,
    target: &Target,
) -> Result<TcpStream, Failure> {
    let Target { host, port, .. } = target;
    let addrs: Vec<SocketAddr> = match target.route {
        Route::Smarthost => tokio::net::lookup_host((host.as_str(), *port))
            .await
            .map_err(|e| Failure::Temporary(format!("{host}: {e}")))?
            .collect(),
        Route::Mx => resolver
            .lookup_ip(format!("{host}."))
            .await
            .map_err(|e| Failure::Temporary(format!("{host}: {e}")))?
            .iter()
            .map(|ip| SocketAddr::new(ip, *port))
            .collect(),
    };
    let mut last = format!("{host} has no address");
    for addr in addrs {
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
}
