//! An email address as mailgate takes it for anything it creates (a mailbox, an alias, a
//! user's login, an invitation): parsed once, with a reason for every refusal.
//!
//! - The local part is an RFC 5321 §4.1.2 dot-atom: atext characters (RFC 5322 §3.2.3, and
//!   UTF-8 beyond ASCII as RFC 6531 allows), dots only between them, at most 64 octets. No
//!   quoted forms, no controls, no white space, no invisible or bidirectional formatting
//!   characters (a right-to-left override makes one address display as another), and not the
//!   configured delegation separator (`*`), which would split the mailbox's own login in two.
//! - The domain is kept as IDNA A-labels (`xn--bcher-kva.example`) in lower case, each label
//!   letters, digits and inner hyphens; its Unicode form is for display.
//! - Domains never differ by case; the store compares local parts without case too (whether
//!   delivery does is `smtp.local_part_case_sensitive`).

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    local: String,
    domain: String,
}

/// Why a text is not an address mailgate takes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("has no @ between a local part and a domain")]
    NoAt,
    #[error("has an empty local part")]
    EmptyLocal,
    #[error("has a local part longer than 64 octets")]
    LocalTooLong,
    #[error("has a dot at the start or end of its local part, or two in a row")]
    Dots,
    #[error("contains {0}, which an address cannot hold")]
    Character(String),
    #[error(
        "contains the delegation separator {0:?}, which logins use between a mailbox and a user"
    )]
    Separator(String),
    #[error("has an invalid domain: {0}")]
    Domain(String),
}

/// What the configuration adds to the rules.
#[derive(Clone, Copy, Debug, Default)]
pub struct AddressRules<'a> {
    /// `auth.delegation_separator`; empty for none.
    pub delegation_separator: &'a str,
}

impl Address {
    pub fn parse(text: &str, rules: AddressRules<'_>) -> Result<Address, AddressError> {
        let text = text.trim();
        let (local, domain) = text.rsplit_once('@').ok_or(AddressError::NoAt)?;
        check_local(local, rules)?;
        Ok(Address {
            local: local.to_string(),
            domain: parse_domain(domain)?,
        })
    }

    pub fn local(&self) -> &str {
        &self.local
    }

    /// The domain in A-labels, lower case.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The form the store keys it by: lower case throughout, A-label domain.
    pub fn key(&self) -> String {
        format!("{}@{}", self.local.to_lowercase(), self.domain)
    }

    /// The address as people read it, with the domain in Unicode.
    pub fn display(&self) -> String {
        let (unicode, result) = idna::domain_to_unicode(&self.domain);
        match result {
            Ok(()) => format!("{}@{unicode}", self.local),
            Err(_) => self.to_string(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

fn check_local(local: &str, rules: AddressRules<'_>) -> Result<(), AddressError> {
    if local.is_empty() {
        return Err(AddressError::EmptyLocal);
    }
    if local.len() > 64 {
        return Err(AddressError::LocalTooLong);
    }
    let sep = rules.delegation_separator;
    if !sep.is_empty() && local.contains(sep) {
        return Err(AddressError::Separator(sep.to_string()));
    }
    if let Some(c) = local.chars().find(|c| !is_atext(*c) && *c != '.') {
        return Err(AddressError::Character(describe(c)));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(AddressError::Dots);
    }
    Ok(())
}

/// RFC 5322 §3.2.3 atext, with RFC 6531's UTF-8 beyond ASCII, less what cannot be seen.
fn is_atext(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    }
    !c.is_control() && !c.is_whitespace() && !is_invisible(c)
}

/// Formatting characters that change how text displays without showing: bidirectional
/// controls, zero-width characters, joiners, variation selectors, tags, fillers.
fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFFB | 0xE0000..=0xE0FFF)
}

fn describe(c: char) -> String {
    if c.is_ascii_graphic() {
        format!("{c:?}")
    } else {
        format!("the character U+{:04X}", c as u32)
    }
}

/// A domain as the store keeps it: IDNA A-labels, lower case, letters, digits and inner
/// hyphens, at most 253 octets; a trailing dot is dropped.
pub fn parse_domain(text: &str) -> Result<String, AddressError> {
    let text = text.trim().trim_end_matches('.');
    if text.is_empty() {
        return Err(AddressError::Domain("it is empty".into()));
    }
    if let Some(c) = text.chars().find(|c| c.is_control() || is_invisible(*c)) {
        return Err(AddressError::Domain(format!("it contains {}", describe(c))));
    }
    let ascii = idna::domain_to_ascii(text)
        .map_err(|_| AddressError::Domain(format!("{text:?} is not a valid domain name")))?;
    let labels_ok = ascii.len() <= 253
        && ascii.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !labels_ok {
        return Err(AddressError::Domain(format!(
            "{text:?} is not a host name (letters, digits and inner hyphens, dot-separated)"
        )));
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: AddressRules<'static> = AddressRules {
        delegation_separator: "*",
    };

    fn refused(text: &str) -> AddressError {
        Address::parse(text, RULES).expect_err(text)
    }

    #[test]
    fn ordinary_addresses_parse_with_their_case_kept_and_the_domain_lowered() {
        let a = Address::parse(" Lucie.Martin+news@Acme.Example ", RULES).unwrap();
        assert_eq!(a.to_string(), "Lucie.Martin+news@acme.example");
        assert_eq!(a.key(), "lucie.martin+news@acme.example");
        assert_eq!(a.local(), "Lucie.Martin+news");
    }

    #[test]
    fn international_domains_become_a_labels_and_display_in_unicode() {
        let a = Address::parse("info@Bücher.example", RULES).unwrap();
        assert_eq!(a.domain(), "xn--bcher-kva.example");
        assert_eq!(a.display(), "info@bücher.example");
        let local = Address::parse("jürgen@acme.example", RULES).unwrap();
        assert_eq!(local.local(), "jürgen");
    }

    #[test]
    fn hostile_forms_are_refused_with_their_reason() {
        assert_eq!(
            refused("a@b@acme.example"),
            AddressError::Character("'@'".into())
        );
        assert_eq!(refused("../x@acme.example"), AddressError::Dots);
        assert_eq!(refused("a..b@acme.example"), AddressError::Dots);
        assert_eq!(
            refused("a*b@acme.example"),
            AddressError::Separator("*".into())
        );
        assert_eq!(
            refused("ab\u{202e}cd@acme.example"),
            AddressError::Character("the character U+202E".into())
        );
        assert_eq!(
            refused("a\u{200b}b@acme.example"),
            AddressError::Character("the character U+200B".into())
        );
        assert_eq!(
            refused("\"a b\"@acme.example"),
            AddressError::Character("'\"'".into())
        );
        assert_eq!(
            refused("a b@acme.example"),
            AddressError::Character("the character U+0020".into())
        );
        assert_eq!(refused("nobody"), AddressError::NoAt);
        assert_eq!(refused("@acme.example"), AddressError::EmptyLocal);
        assert_eq!(
            refused(&format!("{}@acme.example", "a".repeat(65))),
            AddressError::LocalTooLong
        );
        assert!(matches!(
            refused("a@acme..example"),
            AddressError::Domain(_)
        ));
        assert!(matches!(
            refused("a@-acme.example"),
            AddressError::Domain(_)
        ));
        assert!(matches!(
            refused("a@acme_x.example"),
            AddressError::Domain(_)
        ));
        assert!(matches!(
            refused("a@acme\u{202e}.example"),
            AddressError::Domain(_)
        ));
    }

    #[test]
    fn without_a_separator_configured_a_star_is_plain_atext() {
        let none = AddressRules::default();
        assert!(Address::parse("a*b@acme.example", none).is_ok());
    }
}
