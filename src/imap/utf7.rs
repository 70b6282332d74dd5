//! Modified UTF-7 folder names (RFC 3501 §5.1.3): clients send and receive names in it, the
//! store keeps them as UTF-8 (so that the admin API and every other reader see real text).

use base64::Engine;
use base64::alphabet::Alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use std::sync::LazyLock;

/// RFC 3501 §5.1.3: "modified BASE64, with ',' used instead of '/'", without padding.
static MODIFIED_BASE64: LazyLock<GeneralPurpose> = LazyLock::new(|| {
    let alphabet =
        Alphabet::new("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")
            .expect("a valid 64-character alphabet");
    let config = GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone);
    GeneralPurpose::new(&alphabet, config)
});

/// A name as the wire carries it, from its UTF-8 form.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut out, &mut pending);
            match c {
                '&' => out.push_str("&-"),
                c => out.push(c),
            }
        } else {
            pending.extend_from_slice(c.encode_utf16(&mut [0; 2]));
        }
    }
    flush(&mut out, &mut pending);
    out
}

fn flush(out: &mut String, pending: &mut Vec<u16>) {
    if pending.is_empty() {
        return;
    }
    let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
    out.push('&');
    out.push_str(&MODIFIED_BASE64.encode(bytes));
    out.push('-');
    pending.clear();
}

/// The UTF-8 form of a name from the wire; `None` when it is not valid modified UTF-7.
pub fn decode(wire: &str) -> Option<String> {
    let mut out = String::with_capacity(wire.len());
    let mut rest = wire;
    let printable = |s: &str| s.chars().all(|c| (' '..='~').contains(&c));
    while let Some(start) = rest.find('&') {
        if !printable(&rest[..start]) {
            return None;
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after.find('-')?;
        let encoded = &after[..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            let bytes = MODIFIED_BASE64.decode(encoded).ok()?;
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            let text = String::from_utf16(&units).ok()?;
            // Printable ASCII must appear as itself, never encoded (§5.1.3).
            if text.chars().any(|c| (' '..='~').contains(&c)) {
                return None;
            }
            out.push_str(&text);
        }
        rest = &after[end + 1..];
    }
    if !printable(rest) {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_3501_example_round_trips() {
        let utf8 = "~peter/mail/台北/日本語";
        let wire = "~peter/mail/&U,BTFw-/&ZeVnLIqe-";
        assert_eq!(encode(utf8), wire);
        assert_eq!(decode(wire).as_deref(), Some(utf8));
    }

    #[test]
    fn ampersand_and_plain_names() {
        assert_eq!(encode("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(decode("Tom &- Jerry").as_deref(), Some("Tom & Jerry"));
        assert_eq!(encode("INBOX"), "INBOX");
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(decode("Entw&APw-rfe").as_deref(), Some("Entwürfe"));
        // Outside the BMP: a surrogate pair.
        assert_eq!(decode(&encode("📁 files")).as_deref(), Some("📁 files"));
    }

    #[test]
    fn invalid_forms_are_refused() {
        for bad in [
            "&",
            "&AAA",
            "a&ZeVnLIqe",
            "&AGE-",
            "&Zé-",
            "naïve",
            "naïve&-",
            "tab\t&-",
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
