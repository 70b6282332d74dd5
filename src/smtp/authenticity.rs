//! Whether inbound mail comes from whom it says (issue 13): SPF on the HELO and MAIL FROM
//! names (RFC 7208), DKIM (RFC 6376) and ARC (RFC 8617) signatures, and the DMARC policy of
//! the `From:` domain (RFC 7489), all by `mail-auth` through the server's one resolver. The
//! verdicts become an `Authentication-Results:` field (RFC 8601) and decide where the message
//! goes. A DNS failure is a temporary error: it never turns into a refusal.

use super::delivery::Filing;
use crate::config::DmarcAction;
use crate::services::Services;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, AuthenticationResults, DmarcResult, MessageAuthenticator};
use std::net::IpAddr;

/// What the checks decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered to `filing`, with this `Authentication-Results:` field (CRLF included) on top.
    Deliver { header: String, filing: Filing },
    /// Refused at the end of DATA with `550 5.7.1` and this text.
    Reject(String),
}

/// The envelope facts the checks need.
pub struct Sender<'a> {
    pub ip: IpAddr,
    pub helo: &'a str,
    /// The MAIL FROM address; empty for a bounce (`<>`).
    pub mail_from: &'a str,
}

/// Checks `message` from `sender`; None when checks are off or the peer is trusted.
pub async fn check(services: &Services, sender: &Sender<'_>, message: &[u8]) -> Option<Verdict> {
    let config = &services.config.inbound;
    if !config.checks
        || config
            .trusted_networks
            .iter()
            .any(|n| n.contains(sender.ip))
    {
        return None;
    }
    let hostname = services.config.hostname.as_str();
    let authenticator = MessageAuthenticator(services.dns.as_ref().clone());
    let helo = sender.helo;
    let spf_helo = authenticator
        .verify_spf(SpfParameters::verify_ehlo(sender.ip, helo, hostname))
        .await;
    // RFC 7208 §2.4: a bounce's MAIL FROM identity is postmaster at the HELO name.
    let postmaster = format!("postmaster@{helo}");
    let mail_from = if sender.mail_from.is_empty() {
        postmaster.as_str()
    } else {
        sender.mail_from
    };
    let spf_mail = authenticator
        .verify_spf(SpfParameters::verify_mail_from(
            sender.ip, helo, hostname, mail_from,
        ))
        .await;
    let mut results = AuthenticationResults::new(hostname)
        .with_spf_ehlo_result(&spf_helo, sender.ip, helo)
        .with_spf_mailfrom_result(&spf_mail, sender.ip, sender.mail_from, helo);
    let Some(parsed) = AuthenticatedMessage::parse(message) else {
        // Nothing to find a signature or a From: domain in.
        let header = results.to_header();
        return Some(Verdict::Deliver {
            header,
            filing: Filing::Inbox,
        });
    };
    let dkim = authenticator.verify_dkim(&parsed).await;
    let arc = authenticator.verify_arc(&parsed).await;
    let mail_from_domain = mail_from.rsplit_once('@').map_or(helo, |(_, d)| d);
    let dmarc = authenticator
        .verify_dmarc(DmarcParameters::new(
            &parsed,
            &dkim,
            mail_from_domain,
            &spf_mail,
        ))
        .await;
    results = results
        .with_dkim_results(&dkim, parsed.from())
        .with_arc_result(&arc, sender.ip)
        .with_dmarc_result(&dmarc);
    let header = results.to_header();
    // Fail only with a policy record and neither check passing nor in temporary error.
    if !matches!(dmarc.result(), DmarcResult::Fail(_)) {
        // A pass, no policy, or a temporary error: the INBOX.
        return Some(Verdict::Deliver {
            header,
            filing: Filing::Inbox,
        });
    }
    let action = match dmarc.policy() {
        Policy::Reject => config.dmarc_reject,
        Policy::Quarantine => config.dmarc_quarantine,
        Policy::None | Policy::Unspecified => DmarcAction::Deliver,
    };
    Some(match action {
        DmarcAction::Reject => Verdict::Reject(format!(
            "{} asks that mail failing its DMARC checks be refused, and this message fails them",
            dmarc.domain()
        )),
        DmarcAction::Junk => Verdict::Deliver {
            header,
            filing: Filing::Junk,
        },
        DmarcAction::Deliver => Verdict::Deliver {
            header,
            filing: Filing::Inbox,
        },
    })
}

/// The header without any `Authentication-Results:` field claiming to be this server's
/// (RFC 8601 §5: a forged one would be trusted downstream). Others' fields stay.
pub fn without_forged_results(raw: &[u8], hostname: &str) -> Option<Vec<u8>> {
    let forged = |field: &[u8]| {
        let text = String::from_utf8_lossy(field);
        let Some((name, value)) = text.split_once(':') else {
            return false;
        };
        if !name.trim().eq_ignore_ascii_case("authentication-results") {
            return false;
        }
        // The authserv-id is the value's first token, before any ';' or version.
        let id = value
            .trim_start()
            .split(|c: char| c == ';' || c.is_whitespace())
            .next()
            .unwrap_or("");
        id.eq_ignore_ascii_case(hostname)
    };
    super::submission::without_fields_where(raw, forged)
}
