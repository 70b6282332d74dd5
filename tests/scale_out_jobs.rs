//! The server-wide work several nodes on one PostgreSQL database share (issue 14): a queue
//! entry's recipients as each is settled, the periodic jobs held by one node at a time and
//! taken over when it dies, and ACME certificates ordered by one node and served by all. A
//! throwaway PostgreSQL cluster (Debian's `postgresql`) and real server processes.

mod common;

#[path = "../src/store/postgres/testing.rs"]
#[allow(dead_code)]
mod postgres;

use common::api::Api;
use common::pebble::{Pebble, certified_names};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A database of a new cluster, seeded as `common::seed` seeds (acme.example, `contact@`,
/// its owner, Lucie granted `lr`), and the configuration naming it.
async fn seeded_cluster() -> (postgres::TempCluster, String, Seeded) {
    tokio::task::spawn_blocking(|| {
        let cluster = postgres::TempCluster::start();
        let url = cluster.new_database("mailgate");
        let dir = tempfile::tempdir().unwrap();
        let settings = mailgate::config::StoreConfig {
            postgres_url: Some(url.clone()),
            ..Default::default()
        };
        let store = mailgate::store::Store::open_with(dir.path(), &settings).unwrap();
        let seeded = seed_into(&store, "lr", None);
        (cluster, url, seeded)
    })
    .await
    .unwrap()
}

/// Takes `contact@`'s messages to `kept@far.example` and refuses `refused@far.example`
/// (550); writes a line `to <recipient>` for each recipient of each message it stored.
const REFUSING_SINK: &str = r#"
import socket, sys, threading
out = sys.argv[1]
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
print(srv.getsockname()[1], flush=True)
def serve(conn):
    f = conn.makefile("rb")
    send = lambda s: conn.sendall(s.encode() + b"\r\n")
    send("220 sink.test ESMTP")
    taken = []
    while True:
        line = f.readline().decode().strip()
        if not line:
            return
        verb = line.split(" ")[0].upper()
        if verb == "RCPT":
            if "refused@" in line:
                send("550 5.1.1 no such user")
            else:
                taken.append(line.split(":", 1)[1].strip())
                send("250 ok")
        elif verb == "DATA":
            send("354 go on")
            while f.readline() != b".\r\n":
                pass
            with open(out, "a") as o:
                o.writelines(f"to {r}\n" for r in taken)
            taken = []
            send("250 2.0.0 stored")
        elif verb == "QUIT":
            send("221 bye")
            return
        else:
            send("250 ok")
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;

const SUBMIT_TO_TWO: &str = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP_SSL("127.0.0.1", int(sys.argv[1]), context=ctx, timeout=60)
s.login("contact@acme.example", "contact-password")
s.sendmail("contact@acme.example", ["kept@far.example", "refused@far.example"],
           b"From: contact@acme.example\r\nSubject: Two\r\n\r\nhi\r\n")
s.quit()
print("submitted")
"#;

/// `contact@`'s INBOX, as the store's SQL names it.
const CONTACT_INBOX: &str = "SELECT f.id FROM folders f JOIN addresses a ON a.mailbox = f.mailbox \
     WHERE a.address = 'contact@acme.example' AND f.name_key = 'INBOX'";

/// A message for two recipients of one remote domain: the remote server takes one and refuses
/// the other. Node A writes that down at once; then, delivering the bounce into the sender's
/// INBOX, it waits on a database lock (as on a loaded database) and is killed there. Node B
/// takes the entry over once A's lease has passed and attempts only the refused recipient:
/// the accepted one receives the message once, and the bounce arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_before_its_bounce_leaves_only_the_unsettled_recipients() {
    let (_cluster, url, _) = seeded_cluster().await;
    let work = tempfile::tempdir().unwrap();
    let received = work.path().join("received");
    let remote = sink(REFUSING_SINK, &received);
    let config = format!(
        "[store]\npostgres_url = \"{url}\"\n{}lease_seconds = 3\n",
        remote.queue_config()
    );
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(dir_a.path(), &config);

    // Another client of the database holds the sender's INBOX row: a delivery into it waits.
    let mut holder = Command::new("psql")
        .args([url.as_str(), "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("psql");
    let lock = format!("BEGIN;\nSELECT 1 FROM folders WHERE id = ({CONTACT_INBOX}) FOR UPDATE;\n");
    let mut stdin = holder.stdin.take().unwrap();
    stdin.write_all(lock.as_bytes()).unwrap();
    stdin.flush().unwrap();
    eventually("the lock taken", Duration::from_secs(30), || {
        let open = "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'";
        (psql(&url, open) == "1").then_some(())
    });

    let out = python(
        SUBMIT_TO_TWO,
        &[a.addr("submission (TLS)").port().to_string()],
    );
    assert!(out.contains("submitted"), "{out}");
    // The remote took kept@ (recorded: the entry is narrowed to refused@), and A's bounce
    // waits for the lock.
    eventually("A's bounce waiting", Duration::from_secs(60), || {
        let recipients = psql(&url, "SELECT recipients FROM queue");
        let waiting = psql(
            &url,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
        );
        (recipients == "{refused@far.example}" && waiting == "1").then_some(())
    });
    a.kill();
    drop(stdin);
    wait_with_timeout(&mut holder, Duration::from_secs(30));

    let b = start(dir_b.path(), &config);
    let bounces = format!("SELECT count(*) FROM messages WHERE folder = ({CONTACT_INBOX})");
    eventually("B's bounce", Duration::from_secs(60), || {
        (psql(&url, &bounces) != "0").then_some(())
    });
    eventually("the queue empty", Duration::from_secs(30), || {
        (psql(&url, "SELECT count(*) FROM queue") == "0").then_some(())
    });
    drop(b);
    assert_eq!(psql(&url, &bounces), "1", "one bounce");
    let log = std::fs::read_to_string(&received).unwrap_or_default();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["to <kept@far.example>"],
        "the accepted recipient received it once"
    );
}

/// The grant clock runs on one node at a time: with A and B up, A (started first) holds it
/// and ends a grant, recorded once. Once A is killed, B takes the clock over: a grant that
/// ends then ends Lucie's session on B and is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grant_clock_runs_on_one_node_and_another_takes_it_over() {
    let (_cluster, url, seeded) = seeded_cluster().await;
    let config = format!("[store]\npostgres_url = \"{url}\"\n");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(dir_a.path(), &config);
    let holder = "SELECT node FROM job_leases WHERE name = 'grant-clock'";
    let node_a = eventually("A holding the clock", Duration::from_secs(30), || {
        Some(psql(&url, holder)).filter(|n| !n.is_empty())
    });
    let b = start(dir_b.path(), &config);
    let owner = Api::login(&b, OWNER, OWNER_PASSWORD).await;
    let grants = format!("/api/v1/orgs/{}/grants", seeded.org);
    let (status, _) = owner
        .call(Method::DELETE, &format!("{grants}/{}", seeded.grant), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let ending_in = |millis: i64| {
        let until = chrono::Utc::now().timestamp_millis() + millis;
        json!({"grantee": {"user": seeded.lucie}, "target": {"mailbox": seeded.contact},
               "preset": "read", "valid_until": until})
    };

    let (status, first) = owner.post(&grants, ending_in(3_000)).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let expiries = async || {
        let (_, log) = owner
            .get(&format!(
                "/api/v1/orgs/{}/audit?action=grant.expire",
                seeded.org
            ))
            .await;
        log["items"].as_array().cloned().unwrap_or_default()
    };
    let mut recorded = Vec::new();
    for _ in 0..300 {
        recorded = expiries().await;
        if !recorded.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(recorded.len(), 1, "recorded once: {recorded:?}");
    assert_eq!(recorded[0]["target"], format!("grant {}", first["id"]));
    assert_eq!(
        psql(&url, holder),
        node_a,
        "A kept the clock while it lived"
    );

    a.kill();
    let (status, second) = owner.post(&grants, ending_in(6_000)).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let lucie = IdleDelegate::start(&b);
    let (_, line) = lucie.next_line();
    assert!(line.starts_with("* BYE"), "B ended Lucie's session: {line}");
    let node_b = psql(&url, holder);
    assert_ne!(node_b, node_a, "B holds the clock now");
    let mut recorded = Vec::new();
    for _ in 0..300 {
        recorded = expiries().await;
        if recorded.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let targets: Vec<_> = recorded.iter().map(|e| e["target"].clone()).collect();
    assert!(
        targets.contains(&json!(format!("grant {}", second["id"]))) && targets.len() == 2,
        "{recorded:?}"
    );
}

/// ACME on two nodes: A holds the ordering job (its first order failed: pebble validates on
/// B's challenge port, where nothing listened yet). A domain added through B reaches A, which
/// orders its certificate; pebble's validation reaches B, which answers from the database;
/// both nodes then present the new certificate, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_orders_certificates_and_every_node_serves_them() {
    let (_cluster, url, seeded) = seeded_cluster().await;
    let work = tempfile::tempdir().unwrap();
    let dns = Dns::start(work.path());
    dns.add("mail.test A 127.0.0.1");
    let (challenge_a, challenge_b) = (free_port(), free_port());
    let pebble = Pebble::start(work.path(), challenge_b, &dns);
    let config = |challenge: u16| {
        format!(
            "{EPHEMERAL}\n[store]\npostgres_url = \"{url}\"\n[queue]\nnameservers = [\"127.0.0.1:{}\"]\n\
             [tls.acme]\ndirectory = \"{}\"\ncontact = \"postmaster@acme.example\"\nca = \"{}\"\n\
             challenge_listen = [\"127.0.0.1:{challenge}\"]\n",
            dns.server.port,
            pebble.directory,
            pebble.https_ca.display()
        )
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let log_a = dir_a.path().join("log");
    let a = start_logging(
        dir_a.path(),
        &config(challenge_a),
        std::fs::File::create(&log_a).unwrap(),
    );
    let failed = "obtaining an ACME certificate failed";
    eventually("A's first order to fail", Duration::from_secs(90), || {
        let text = std::fs::read_to_string(&log_a).unwrap_or_default();
        text.contains(failed).then_some(())
    });
    let orderer = "SELECT node FROM job_leases WHERE name = 'acme-orders'";
    let node_a = psql(&url, orderer);
    let b = start_with(dir_b.path(), &config(challenge_b));
    assert_eq!(b.addr("acme-challenge (HTTP)").port(), challenge_b);
    let root = work.path().join("pebble-root.pem");
    pebble.root(&root);

    for name in ["mail", "autoconfig", "autodiscover"] {
        dns.add(&format!("{name}.new.example A 127.0.0.1"));
    }
    let owner = Api::login(&b, OWNER, OWNER_PASSWORD).await;
    let (status, body) = owner
        .post(
            &format!("/api/v1/orgs/{}/domains", seeded.org),
            json!({"name": "new.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let names = [
        "autoconfig.new.example",
        "autodiscover.new.example",
        "mail.new.example",
    ];
    for node in [&b, &a] {
        let imaps = node.addr("imap (TLS)").port();
        assert_eq!(certified_names(imaps, "mail.new.example", &root), names);
    }
    let log = std::fs::read_to_string(&log_a).unwrap_or_default();
    assert_eq!(log.matches(failed).count(), 1, "{log}");
    assert_eq!(psql(&url, orderer), node_a, "A alone ordered");
    drop((a, b));
}
