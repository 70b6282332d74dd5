//! curl as an IMAP client (a client we did not write), over implicit TLS and STARTTLS.

mod common;

use common::*;
use std::process::Command;

fn curl(args: &[String]) -> String {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--insecure", "--max-time", "60"])
        .args(args)
        .output()
        .expect("curl must be installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn append(server: &TestServer) {
    let addr = server.addr("imap (TLS)");
    python(
        r#"
import imaplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL(sys.argv[1], int(sys.argv[2]), ssl_context=ctx)
m.login("contact@acme.example", "contact-password")
m.append("INBOX", None, None, b"Subject: via curl\r\n\r\nHello from the store\r\n")
m.logout()
"#,
        &[addr.ip().to_string(), addr.port().to_string()],
    );
}

#[test]
fn curl_lists_and_fetches_over_imaps_and_starttls() {
    let (_dir, _, server) = seeded_server("lr");
    append(&server);
    let user = format!("{CONTACT}:{CONTACT_PASSWORD}");
    let tls = server.addr("imap (TLS)");
    let listing = curl(&[format!("imaps://{tls}/"), "-u".into(), user.clone()]);
    assert!(
        listing.contains("INBOX") && listing.contains("Sent"),
        "{listing}"
    );
    let message = curl(&[
        format!("imaps://{tls}/INBOX;UID=1"),
        "-u".into(),
        user.clone(),
    ]);
    assert_eq!(message, "Subject: via curl\r\n\r\nHello from the store\r\n");
    let plain = server.addr("imap (STARTTLS)");
    let message = curl(&[
        format!("imap://{plain}/INBOX;UID=1;SECTION=TEXT"),
        "--ssl-reqd".into(),
        "-u".into(),
        user,
    ]);
    assert_eq!(message, "Hello from the store\r\n");
}
