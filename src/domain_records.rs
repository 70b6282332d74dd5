//! The DNS records a hosted domain needs (issue 13), each with what the DNS says of it now:
//! the ownership token, MX, SPF, the DKIM keys, DMARC, and what clients use to find the server
//! (autoconfig and autodiscover names, RFC 6186 / RFC 8314 SRV records).

use crate::services::Services;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::{RData, RecordType};
use serde::Serialize;

/// Where a domain's ownership token is published.
pub fn verification_name(domain: &str) -> String {
    format!("_mailgate.{domain}")
}

/// The text of that record.
pub fn verification_value(token: &str) -> String {
    format!("mailgate-verification={token}")
}

/// One record the domain needs.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DnsRecord {
    /// What it is for: `verification`, `mx`, `spf`, `dkim`, `dmarc`, `autoconfig`,
    /// `autodiscover`, `imaps`, `submissions`.
    pub purpose: String,
    pub name: String,
    /// `MX`, `TXT`, `CNAME` or `SRV`.
    #[serde(rename = "type")]
    pub record_type: String,
    /// The value to publish, as in a zone file.
    pub value: String,
    pub state: RecordState,
    /// What the DNS holds now for this name and type.
    pub found: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// Published as needed.
    Ok,
    /// Nothing of this type at this name.
    Missing,
    /// Something else is published there.
    Different,
    /// The DNS could not be asked (a timeout, a server failure): try again.
    Unknown,
}

/// How a found value is judged against the one needed.
#[derive(Clone, Copy)]
enum Judge {
    /// The same, without case or a final dot.
    Same,
    /// An SPF policy that lets the MX hosts send.
    Spf,
    /// A DMARC policy of any kind: the domain's to choose.
    Dmarc,
    /// A DKIM record with the same public key.
    DkimKey,
    /// A TXT record holding the value.
    Contains,
}

struct Needed {
    purpose: &'static str,
    name: String,
    record_type: RecordType,
    value: String,
    judge: Judge,
}

/// The records `domain` needs on this server, in the order to publish them.
fn needed(services: &Services, domain: &str) -> Vec<Needed> {
    let config = &services.config;
    let host = config
        .public
        .hostname
        .as_deref()
        .unwrap_or(&config.hostname);
    let host = format!("{}.", host.trim_end_matches('.'));
    let mx = config.hostname.trim_end_matches('.');
    let port = |configured: Option<u16>, listeners: &[std::net::SocketAddr], standard: u16| {
        configured
            .or(listeners.first().map(|a| a.port()))
            .unwrap_or(standard)
    };
    let imaps = port(config.public.imap_port, &config.imap.listen_tls, 993);
    let submissions = port(
        config.public.submission_port,
        &config.submission.listen_tls,
        465,
    );
    let record = |purpose, name: String, record_type, value: String, judge| Needed {
        purpose,
        name,
        record_type,
        value,
        judge,
    };
    let mut out = Vec::new();
    if let Ok(Some(claim)) = services.store.domain_claim(domain) {
        out.push(record(
            "verification",
            verification_name(domain),
            RecordType::TXT,
            verification_value(&claim.token),
            Judge::Contains,
        ));
    }
    out.push(record(
        "mx",
        domain.into(),
        RecordType::MX,
        format!("10 {mx}."),
        Judge::Same,
    ));
    out.push(record(
        "spf",
        domain.into(),
        RecordType::TXT,
        "v=spf1 mx ~all".into(),
        Judge::Spf,
    ));
    for key in services.store.dkim_keys(domain).unwrap_or_default() {
        out.push(record(
            "dkim",
            key.dns_name(),
            RecordType::TXT,
            key.dns_value(),
            Judge::DkimKey,
        ));
    }
    out.push(record(
        "dmarc",
        format!("_dmarc.{domain}"),
        RecordType::TXT,
        format!("v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}"),
        Judge::Dmarc,
    ));
    for purpose in ["autoconfig", "autodiscover"] {
        out.push(record(
            purpose,
            format!("{purpose}.{domain}"),
            RecordType::CNAME,
            host.clone(),
            Judge::Same,
        ));
    }
    out.push(record(
        "imaps",
        format!("_imaps._tcp.{domain}"),
        RecordType::SRV,
        format!("0 1 {imaps} {host}"),
        Judge::Same,
    ));
    out.push(record(
        "submissions",
        format!("_submissions._tcp.{domain}"),
        RecordType::SRV,
        format!("0 1 {submissions} {host}"),
        Judge::Same,
    ));
    out
}

/// Every record `domain` needs, each with its state from a live lookup (all asked at once).
pub async fn records(services: &Services, domain: &str) -> Vec<DnsRecord> {
    let needed = needed(services, domain);
    let answers = futures_util::future::join_all(
        needed
            .iter()
            .map(|need| lookup(services, &need.name, need.record_type)),
    )
    .await;
    needed
        .into_iter()
        .zip(answers)
        .map(|(need, answer)| {
            let (state, found) = assess(&need, answer);
            DnsRecord {
                purpose: need.purpose.into(),
                name: need.name,
                record_type: need.record_type.to_string(),
                value: need.value,
                state,
                found,
            }
        })
        .collect()
}

/// A record's state from what the DNS answered for its name and type.
fn assess(need: &Needed, answer: Result<Vec<String>, String>) -> (RecordState, Vec<String>) {
    match answer {
        Ok(found) if found.is_empty() => (RecordState::Missing, found),
        Ok(found) if found.iter().any(|f| judge(need.judge, f, &need.value)) => {
            (RecordState::Ok, found)
        }
        Ok(found) if matches!(need.judge, Judge::Spf | Judge::Dmarc) => {
            // Other TXT records at the name are not this record: missing unless one of its
            // kind is there.
            let prefix = if matches!(need.judge, Judge::Spf) {
                "v=spf1"
            } else {
                "v=DMARC1"
            };
            let ours: Vec<String> = found
                .into_iter()
                .filter(|f| starts_with_ci(f, prefix))
                .collect();
            if ours.is_empty() {
                (RecordState::Missing, ours)
            } else {
                (RecordState::Different, ours)
            }
        }
        Ok(found) => (RecordState::Different, found),
        Err(why) => (RecordState::Unknown, vec![why]),
    }
}

/// The records as a zone-file snippet, each with its state as a comment.
pub fn zone_file(records: &[DnsRecord]) -> String {
    let mut out = String::new();
    for r in records {
        let value = if r.record_type == "TXT" {
            quoted_txt(&r.value)
        } else {
            r.value.clone()
        };
        let state = match r.state {
            RecordState::Ok => "ok".to_string(),
            RecordState::Missing => "missing".to_string(),
            RecordState::Different => format!("different, found: {}", r.found.join(" | ")),
            RecordState::Unknown => format!("unknown: {}", r.found.join(" | ")),
        };
        out.push_str(&format!(
            "; {} ({state})\n{}. 3600 IN {} {value}\n",
            r.purpose, r.name, r.record_type
        ));
    }
    out
}

/// A TXT value in zone-file form: quoted strings of at most 255 bytes (RFC 1035 §3.3.14).
fn quoted_txt(value: &str) -> String {
    let mut parts = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let mut end = rest.len().min(255);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        parts.push(format!("\"{}\"", rest[..end].replace('"', "\\\"")));
        rest = &rest[end..];
    }
    parts.join(" ")
}

fn starts_with_ci(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

fn judge(how: Judge, found: &str, needed: &str) -> bool {
    let bare = |s: &str| s.trim().trim_end_matches('.').to_ascii_lowercase();
    match how {
        Judge::Same => bare(found) == bare(needed),
        Judge::Contains => found.contains(needed),
        Judge::Dmarc => starts_with_ci(found, "v=DMARC1"),
        Judge::Spf => {
            starts_with_ci(found, "v=spf1")
                && found.split_whitespace().any(|t| {
                    let t = t.trim_start_matches(['+', '~', '?']).to_ascii_lowercase();
                    t == "mx" || t.starts_with("mx:") || t.starts_with("include:")
                })
        }
        Judge::DkimKey => {
            let key = |s: &str| {
                s.split(';')
                    .filter_map(|t| t.trim().strip_prefix("p="))
                    .map(|p| p.split_whitespace().collect::<String>())
                    .next()
            };
            key(found).is_some_and(|k| Some(k) == key(needed))
        }
    }
}

/// The records of `record_type` at `name`, as zone-file values; empty when there are none.
async fn lookup(
    services: &Services,
    name: &str,
    record_type: RecordType,
) -> Result<Vec<String>, String> {
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    match services.dns.lookup(fqdn.as_str(), record_type).await {
        Ok(answer) => Ok(answer
            .answers()
            .iter()
            .filter(|r| r.record_type() == record_type)
            .map(|r| match &r.data {
                RData::TXT(txt) => txt
                    .txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s))
                    .collect::<String>(),
                other => other.to_string(),
            })
            .collect()),
        Err(NetError::Dns(DnsError::NoRecordsFound(_))) => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_values_are_judged_as_the_record_needs() {
        assert!(judge(Judge::Same, "10 MAIL.test.", "10 mail.test."));
        assert!(!judge(Judge::Same, "20 mail.test.", "10 mail.test."));
        assert!(judge(Judge::Spf, "v=spf1 mx -all", "v=spf1 mx ~all"));
        assert!(judge(Judge::Spf, "v=spf1 include:_spf.example ~all", ""));
        assert!(!judge(Judge::Spf, "v=spf1 ip4:192.0.2.1 -all", ""));
        assert!(judge(Judge::Dmarc, "v=DMARC1; p=reject", ""));
        assert!(judge(
            Judge::DkimKey,
            "v=DKIM1; k=rsa; p=MIIB AQAB",
            "v=DKIM1; k=rsa; p=MIIBAQAB"
        ));
        assert!(!judge(
            Judge::DkimKey,
            "v=DKIM1; p=other",
            "v=DKIM1; p=MIIBAQAB"
        ));
        let long = "a".repeat(300);
        assert_eq!(
            quoted_txt(&long),
            format!("\"{}\" \"{}\"", "a".repeat(255), "a".repeat(45))
        );
    }
}
