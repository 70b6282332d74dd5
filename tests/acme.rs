//! Certificates from an ACME authority (issue 13), judged by Let's Encrypt's test authority,
//! pebble (Debian's package): it validates each name over HTTP-01 against the admin listener,
//! resolving the names through the test's DNS server, and issues; Python's `ssl`, trusting
//! only pebble's root, then checks what each listener presents for each name (SNI).

mod common;

use common::api::Api;
use common::pebble::*;
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

/// The hostname's certificate and each verified domain's come from pebble over HTTP-01, for
/// the names that resolve; every TLS listener presents the right one per name; a domain added
/// while the server runs gets its own at once, and a certificate near its end is renewed,
/// without a restart; the challenges are answered by a listener of their own, which serves
/// nothing else; after a restart the stored certificates are served at once, the authority
/// gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_come_from_the_acme_authority_and_follow_new_domains() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path(), "lr");
    let dns = Dns::start(dir.path());
    // Only these resolve; autoconfig.acme.example has no address, so it is not asked for.
    for name in ["mail.test", "mail.acme.example"] {
        dns.add(&format!("{name} A 127.0.0.1"));
    }
    let challenge_port = free_port();
    let pebble = Pebble::start(dir.path(), challenge_port, &dns);
    let ephemeral = EPHEMERAL.replace(
        "[admin]\nlisten = [\"127.0.0.1:0\"]",
        "[admin]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = [\"127.0.0.1:0\"]",
    );
    let config = format!(
        "{ephemeral}\n[queue]\nnameservers = [\"127.0.0.1:{}\"]\n[tls.acme]\ndirectory = \"{}\"\n\
         contact = \"postmaster@acme.example\"\nca = \"{}\"\n\
         challenge_listen = [\"127.0.0.1:{challenge_port}\"]\n",
        dns.server.port,
        pebble.directory,
        pebble.https_ca.display()
    );
    let server = start_with(dir.path(), &config);
    assert_eq!(server.addr("acme-challenge (HTTP)").port(), challenge_port);
    let root = dir.path().join("pebble-root.pem");
    pebble.root(&root);
    let imaps = server.addr("imap (TLS)").port();
    let submissions = server.addr("submission (TLS)").port();

    assert_eq!(certified_names(imaps, "mail.test", &root), ["mail.test"]);
    assert_eq!(
        certified_names(submissions, "mail.acme.example", &root),
        ["mail.acme.example"]
    );
    // A client that names nothing (no SNI) gets the server's own certificate.
    let unnamed = presented(imaps, None, &root).expect("verifies");
    assert_eq!(unnamed.names, ["mail.test"]);
    assert!(!verifies(imaps, "autoconfig.acme.example", &root));
    let http = reqwest::Client::new();
    // The challenge listener answers challenges only: not the API.
    for path in [
        "/.well-known/acme-challenge/unknown",
        "/api/v1/openapi.json",
        "/healthz",
    ] {
        let answer = http
            .get(format!("http://127.0.0.1:{challenge_port}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let first = fingerprint(imaps, "mail.test", &root);
    assert_eq!(fingerprint(submissions, "mail.test", &root), first);

    // A new domain, whose names resolve: its certificate follows without a restart, and the
    // STARTTLS listeners present it too.
    for name in ["mail", "autoconfig", "autodiscover"] {
        dns.add(&format!("{name}.new.example A 127.0.0.1"));
    }
    let api = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let (status, body) = api
        .post(
            &format!("/api/v1/orgs/{}/domains", seeded.org),
            json!({"name": "new.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        certified_names(imaps, "autoconfig.new.example", &root),
        [
            "autoconfig.new.example",
            "autodiscover.new.example",
            "mail.new.example"
        ]
    );
    // Thunderbird's autoconfig over HTTPS, on the admin API's TLS listener, by that name.
    let https = python(
        r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="autoconfig.new.example") as tls:
        tls.sendall(b"GET /mail/config-v1.1.xml?emailaddress=contact%40acme.example HTTP/1.1\r\n"
                    b"Host: autoconfig.new.example\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := tls.recv(4096):
            answer += chunk
print(answer.split(b"\r\n")[0].decode())
print("clientConfig" in answer.decode(errors="replace"))
"#,
        &[
            server.addr("admin (TLS)").port().to_string(),
            root.display().to_string(),
        ],
    );
    assert_eq!(
        https.lines().collect::<Vec<_>>(),
        ["HTTP/1.1 200 OK", "True"],
        "{https}"
    );
    let starttls = python(
        r#"
import imaplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[3])
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.host = sys.argv[2]  # the name asked for (SNI) and checked
m.starttls(ssl_context=ctx)
print(" ".join(v for _, v in m.sock.getpeercert()["subjectAltName"]))
m.logout()
"#,
        &[
            server.addr("imap (STARTTLS)").port().to_string(),
            "mail.new.example".into(),
            root.display().to_string(),
        ],
    );
    assert!(starttls.contains("mail.new.example"), "{starttls}");
    // Two minutes long, the hostname's certificate is renewed with 40 s left, by a round the
    // server schedules itself: IMAPS and submissions present the new one, without a restart.
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    let renewed = loop {
        let now = fingerprint(imaps, "mail.test", &root);
        if now != first || std::time::Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    assert_ne!(renewed, first, "renewed without a restart");
    assert_eq!(fingerprint(submissions, "mail.test", &root), renewed);
    drop(pebble);

    // Restarted with the authority gone: the stored certificates are served at once.
    let (status, _) = server.terminate();
    assert!(status.success());
    let server = start_with(dir.path(), &config);
    let imaps = server.addr("imap (TLS)").port();
    assert!(verifies(imaps, "mail.test", &root));
    assert!(verifies(imaps, "mail.acme.example", &root));
}
