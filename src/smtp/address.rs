//! Envelope addresses: which are ours, what they deliver to, and which are someone else's.
//! Domains compare without case; local parts as configured; `+tag` subaddresses deliver to
//! their base address.

use crate::model::*;
use crate::services::Services;
use crate::store::{AddressEntry, StoreResult};

/// Where a recipient address leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A mailbox of this server (directly or through an alias).
    Local { mailbox: MailboxId },
    /// The domain is ours but no mailbox or alias has this address.
    UnknownLocal,
    /// Another server's address.
    Remote { domain: String },
}

/// Why an address cannot be used at all, before any lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Source routes (`@a,@b:user@c`), `%` and `!` routing, quoted local parts: forms that
    /// once made servers relay (RFC 5321 §3.6.1, §7.1), refused outright.
    Routing,
    NotAnAddress,
}

/// Splits `local@domain` after refusing the forms used for relay tricks.
pub fn split(address: &str) -> Result<(&str, &str), Malformed> {
    if address.starts_with('@') || address.contains(':') {
        return Err(Malformed::Routing);
    }
    let (local, domain) = address.rsplit_once('@').ok_or(Malformed::NotAnAddress)?;
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return Err(Malformed::NotAnAddress);
    }
    if local.starts_with('"') || local.contains('%') || local.contains('!') || local.contains('@') {
        return Err(Malformed::Routing);
    }
    Ok((local, domain))
}

/// Where `address` leads on this server.
pub fn destination(services: &Services, address: &str) -> Result<Destination, Malformed> {
    let (local, domain) = split(address)?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    // A domain waiting for its ownership proof is not ours for mail (issue 13).
    let ours = services.store.domain(&domain).ok().flatten().is_some()
        && services.store.is_domain_verified(&domain).unwrap_or(false);
    if !ours {
        return Ok(Destination::Remote { domain });
    }
    let found = lookup(services, local, &domain).unwrap_or_else(|e| {
        tracing::error!(error = %e, "address lookup failed");
        None
    });
    Ok(match found {
        Some(mailbox) => Destination::Local { mailbox },
        None => Destination::UnknownLocal,
    })
}

/// The mailbox `local@domain` delivers to: the address itself, else its base address without
/// the `+tag`.
fn lookup(services: &Services, local: &str, domain: &str) -> StoreResult<Option<MailboxId>> {
    if let Some(found) = exact(services, local, domain)? {
        return Ok(Some(found));
    }
    let separator = services.config.smtp.subaddress_separator.as_str();
    match local.split_once(separator) {
        Some((base, _)) if !separator.is_empty() && !base.is_empty() => {
            exact(services, base, domain)
        }
        _ => Ok(None),
    }
}

fn exact(services: &Services, local: &str, domain: &str) -> StoreResult<Option<MailboxId>> {
    let address = format!("{local}@{domain}");
    let (stored, mailbox) = match services.store.resolve_address(&address)? {
        None => return Ok(None),
        Some(AddressEntry::Mailbox(id)) => match services.store.mailbox(id)? {
            Some(m) => (m.address, id),
            None => return Ok(None),
        },
        Some(AddressEntry::Alias(alias)) => (alias.address, alias.mailbox),
    };
    // The store keeps addresses in lower case; where local parts are case-sensitive, the
    // address must be given as it was created.
    let case_matches = !services.config.smtp.local_part_case_sensitive
        || stored.rsplit_once('@').is_some_and(|(l, _)| l == local);
    Ok(case_matches.then_some(mailbox))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_tricks_are_refused_before_any_lookup() {
        for bad in [
            "@relay.example:user@remote.example",
            "user%remote.example@acme.example",
            "remote.example!user@acme.example",
            "\"user@remote.example\"@acme.example",
        ] {
            assert_eq!(split(bad), Err(Malformed::Routing), "{bad}");
        }
        assert_eq!(split("nobody"), Err(Malformed::NotAnAddress));
        assert_eq!(split("a@b.example"), Ok(("a", "b.example")));
    }

    #[test]
    fn domains_never_care_about_case_and_local_parts_only_when_configured() {
        let is_local = |h: &crate::harness::Harness, address: &str| {
            matches!(
                destination(&h.services, address),
                Ok(Destination::Local { .. })
            )
        };
        let relaxed = crate::harness::Harness::new();
        for address in [
            "box@harness.test",
            "BOX@HARNESS.TEST",
            "Box+tag@Harness.Test",
        ] {
            assert!(is_local(&relaxed, address), "{address}");
        }
        let strict =
            crate::harness::Harness::with_config(|c| c.smtp.local_part_case_sensitive = true);
        assert!(is_local(&strict, "box@HARNESS.test"));
        assert!(is_local(&strict, "box+tag@harness.test"));
        assert!(!is_local(&strict, "BOX@harness.test"));
        let plus_off =
            crate::harness::Harness::with_config(|c| c.smtp.subaddress_separator = "-".into());
        assert!(!is_local(&plus_off, "box+tag@harness.test"));
        assert!(is_local(&plus_off, "box-tag@harness.test"));
    }
}
