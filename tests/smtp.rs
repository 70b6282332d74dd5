//! SMTP as clients and other servers use it, driven by Python's smtplib, swaks and curl
//! (clients we did not write): inbound delivery, submission with send-as rules, relay
//! refusals, and what arrives over IMAP afterwards.

mod common;

use common::*;
use mailgate::model::SendMode;

/// Python helpers: an SMTP connection of each kind, IMAP to look at the result.
const PRELUDE: &str = r#"
import smtplib, imaplib, ssl, sys, time, base64, socket
host = sys.argv[1]
ports = dict(zip(["smtp", "sub", "subtls", "imaps"], map(int, sys.argv[2:6])))
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def inbound():
    return smtplib.SMTP(host, ports["smtp"], local_hostname="client.test")
def submission():
    s = smtplib.SMTP(host, ports["sub"], local_hostname="client.test")
    s.starttls(context=ctx)
    s.ehlo("client.test")
    return s
def submission_tls():
    return smtplib.SMTP_SSL(host, ports["subtls"], local_hostname="client.test", context=ctx)
def imap(user, password):
    m = imaplib.IMAP4_SSL(host, ports["imaps"], ssl_context=ctx)
    m.login(user, password)
    return m
def inbox(user, password, folder="INBOX"):
    """Every message of a folder, as bytes, waiting a little for deliveries in flight."""
    m = imap(user, password)
    m.select(folder)
    typ, data = m.uid("SEARCH", None, "ALL")
    out = []
    for uid in data[0].split():
        typ, msg = m.uid("FETCH", uid, "(BODY.PEEK[])")
        out.append(msg[0][1])
    m.logout()
    return out
def refused(call, code, text=""):
    try:
        call()
    except smtplib.SMTPRecipientsRefused as e:
        (c, msg), = e.recipients.values()
        assert c == code and text.encode() in msg, (code, text, c, msg)
        return
    except smtplib.SMTPResponseException as e:
        assert e.smtp_code == code and text.encode() in e.smtp_error, (code, text, e.smtp_code, e.smtp_error)
        return
    raise AssertionError(f"expected {code}")
"#;

fn run(server: &TestServer, script: &str) -> String {
    let port = |kind: &str| server.addr(kind).port().to_string();
    python(
        &format!("{PRELUDE}\n{script}"),
        &[
            "127.0.0.1".into(),
            port("smtp (STARTTLS)"),
            port("submission (STARTTLS)"),
            port("submission (TLS)"),
            port("imap (TLS)"),
        ],
    )
}

#[test]
fn inbound_mail_reaches_mailboxes_and_aliases_and_nothing_is_relayed() {
    let (_dir, _, server) = seeded_server("lr");
    let out = run(
        &server,
        r#"
s = inbound()
code, caps = s.ehlo("client.test")
for cap in [b"PIPELINING", b"8BITMIME", b"SMTPUTF8", b"ENHANCEDSTATUSCODES", b"SIZE", b"CHUNKING", b"STARTTLS"]:
    assert cap in caps, (cap, caps)
assert b"AUTH" not in caps, "no AUTH on the inbound port"
msg = b"From: someone@remote.example\r\nTo: hello@acme.example\r\nSubject: for the alias\r\nMessage-ID: <in-1@remote.example>\r\n\r\nhi\r\n"
# One message to the mailbox, its alias and a +tag: stored once, delivered once.
s.sendmail("someone@remote.example", ["contact@acme.example", "HELLO@ACME.EXAMPLE", "contact+news@acme.example"], msg)
refused(lambda: s.sendmail("a@remote.example", ["nobody@acme.example"], msg), 550, "5.1.1")
refused(lambda: s.sendmail("a@remote.example", ["victim@elsewhere.example"], msg), 554, "5.7.1")
for trick in ["victim%elsewhere.example@acme.example", '"victim@elsewhere.example"@acme.example',
              "@acme.example:victim@elsewhere.example", "elsewhere.example!victim@acme.example"]:
    code, text = s.docmd("RSET")
    code, text = s.docmd("MAIL FROM:<a@remote.example>")
    assert code == 250, (code, text)
    code, text = s.docmd(f"RCPT TO:<{trick}>")
    assert code >= 500 and code != 250, (trick, code, text)
s.quit()
msgs = inbox("contact@acme.example", "contact-password")
assert len(msgs) == 1, len(msgs)
assert msgs[0].startswith(b"Received: from client.test ([127.0.0.1])"), msgs[0][:200]
assert msgs[0].endswith(msg), msgs[0]
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

#[test]
fn submission_sends_as_the_mailbox_and_its_alias_and_refuses_others() {
    let (_dir, _, server) = seeded_server("lr");
    let out = run(
        &server,
        r#"
s = submission()
code, caps = s.ehlo("client.test")
assert b"AUTH PLAIN LOGIN" in caps, caps
refused(lambda: s.sendmail("contact@acme.example", ["contact@acme.example"], b"Subject: x\r\n\r\nx\r\n"), 530, "5.7.0")
s.login("contact@acme.example", "contact-password")
# Byte for byte: sent to the alias, fetched over IMAP (only signatures and the trace field are added).
msg = b"From: Contact <hello@acme.example>\r\nTo: hello@acme.example\r\nSubject: note to self\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <sub-1@acme.example>\r\n\r\nline one\r\n..dotted line\r\n"
s.sendmail("hello@acme.example", ["hello@acme.example"], msg)
refused(lambda: s.sendmail("boss@acme.example", ["contact@acme.example"], msg), 550, "5.7.1")
forged = msg.replace(b"From: Contact <hello@acme.example>", b"From: The Boss <boss@acme.example>")
refused(lambda: s.sendmail("contact@acme.example", ["contact@acme.example"], forged), 550, "boss@acme.example")
# A second From: field must not hide the forged one.
doubled = b"From: The Boss <boss@acme.example>\r\n" + msg
refused(lambda: s.sendmail("contact@acme.example", ["contact@acme.example"], doubled), 550, "5.6.0")
s.quit()
# AUTH LOGIN over implicit TLS, as older Outlook does.
t = submission_tls()
t.ehlo("client.test")
t.user, t.password = "contact@acme.example", "contact-password"
code, text = t.auth("LOGIN", t.auth_login, initial_response_ok=False)
assert code == 235, (code, text)
t.sendmail("contact@acme.example", ["contact@acme.example"], b"From: contact@acme.example\r\nSubject: no id\r\n\r\nbody\r\n")
t.quit()
msgs = inbox("contact@acme.example", "contact-password")
assert len(msgs) == 2, msgs
# The server adds its DKIM signatures (Ed25519 and RSA), then the trace field, nothing else.
import re
signatures = re.match(rb"(DKIM-Signature: [^\r]*\r\n(?:[ \t][^\r]*\r\n)*){2}", msgs[0])
assert signatures, msgs[0][:600]
unsigned = msgs[0][signatures.end():]
assert unsigned.startswith(b"Received: ") and unsigned.endswith(msg), msgs[0]
assert b"ESMTPSA" in msgs[0], msgs[0][:300]
assert b"\r\nMessage-ID: <" in msgs[1] and b"\r\nDate: " in msgs[1], ("added when missing", msgs[1])
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

#[test]
fn a_delegate_sends_as_or_on_behalf_as_the_grant_says() {
    for (send, expect_sender) in [(SendMode::As, false), (SendMode::OnBehalf, true)] {
        let dir = tempfile::tempdir().unwrap();
        seed_with_send(dir.path(), "lr", Some(send));
        let server = start(dir.path(), "");
        let script = format!(
            r#"
expect_sender = {expect}
s = submission()
s.login("lucie@gmail.example", "lucie-password")
msg = b"From: Contact <contact@acme.example>\r\nSender: forged@x.example\r\nTo: contact@acme.example\r\nSubject: from the assistant\r\n\r\nhello\r\n"
s.sendmail("contact@acme.example", ["contact@acme.example"], msg)
refused(lambda: s.sendmail("lucie@gmail.example", ["contact@acme.example"], msg), 550, "5.7.1")
s.quit()
# mailbox*user and SASL authzid act as the mailbox with the same rule.
s = submission()
s.login("contact@acme.example*lucie@gmail.example", "lucie-password")
s.sendmail("hello@acme.example", ["contact@acme.example"], msg.replace(b"From: Contact <contact@acme.example>", b"From: hello@acme.example"))
s.quit()
s = submission()
plain = base64.b64encode(b"contact@acme.example\0lucie@gmail.example\0lucie-password").decode()
code, text = s.docmd("AUTH", "PLAIN " + plain)
assert code == 235, (code, text)
s.quit()
msgs = inbox("contact@acme.example", "contact-password")
assert len(msgs) == 2, msgs
for m in msgs:
    # On behalf: the server's Sender names the delegate and replaces the client's.
    assert (b"\r\nSender: <lucie@gmail.example>\r\n" in m) == expect_sender, m
    assert (b"forged@x.example" in m) != expect_sender, m
print("done")
"#,
            expect = if expect_sender { "True" } else { "False" }
        );
        let out = run(&server, &script);
        assert!(out.contains("done"), "{send:?}: {out}");
    }
}

#[test]
fn a_user_without_send_rights_may_not_send_as_the_mailbox() {
    let (_dir, _, server) = seeded_server("lrswi");
    let out = run(
        &server,
        r#"
s = submission()
s.login("lucie@gmail.example", "lucie-password")
refused(lambda: s.sendmail("contact@acme.example", ["contact@acme.example"], b"From: contact@acme.example\r\n\r\nx\r\n"), 550, "5.7.1")
s.quit()
s = submission()
refused(lambda: s.login("lucie@gmail.example", "wrong"), 535, "5.7.8")
s.quit()
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

#[test]
fn pipelining_bdat_and_smtputf8_work_as_smtplib_sends_them() {
    let (_dir, _, server) = seeded_server("lr");
    let out = run(
        &server,
        r#"
# smtplib has no pipelining or BDAT of its own: its connection sends the commands as a
# client that has them would, and its reply parser reads the answers.
s = inbound()
s.ehlo("client.test")
assert s.has_extn("pipelining") and s.has_extn("chunking"), s.esmtp_features
# A pipelined transaction in one write (RFC 2920).
body = b"Subject: piped\r\n\r\n.leading dot stays\r\n"
s.send(b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<contact@acme.example>\r\nDATA\r\n")
assert s.getreply()[1].startswith(b"2.1.0"), "MAIL"
assert s.getreply()[1].startswith(b"2.1.5"), "RCPT"
assert s.getreply()[0] == 354, "DATA"
s.send(b"Subject: piped\r\n\r\n..leading dot stays\r\n.\r\n")
assert s.getreply()[1].startswith(b"2.0.0"), "end of data"
# BDAT in two chunks (RFC 3030), pipelined behind MAIL and RCPT, after STARTTLS.
s.starttls(context=ctx)
s.ehlo("client.test")
assert s.has_extn("chunking"), "CHUNKING is offered again after STARTTLS"
chunk1 = b"Subject: chunked\r\n\r\nfirst part, "
chunk2 = b"second part\r\n"
s.send(b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<contact@acme.example>\r\n"
       + b"BDAT %d\r\n" % len(chunk1) + chunk1 + b"BDAT %d LAST\r\n" % len(chunk2) + chunk2)
assert [s.getreply()[0] for _ in range(2)] == [250, 250], "MAIL, RCPT"
code, text = s.getreply()
assert (code, text) == (250, b"2.0.0 %d octets received" % len(chunk1)), (code, text)
assert s.getreply()[1].startswith(b"2.0.0"), "last chunk"
s.quit()
s = inbound()
s.ehlo("client.test")
s.sendmail("jörg@remote.example", ["contact@acme.example"], "Subject: utf8\r\nFrom: jörg@remote.example\r\n\r\nGrüße\r\n".encode(), mail_options=["SMTPUTF8"])
s.quit()
msgs = inbox("contact@acme.example", "contact-password")
assert len(msgs) == 3, msgs
assert msgs[0].endswith(body), msgs[0]
assert msgs[1].endswith(chunk1 + chunk2), msgs[1]
assert b"with UTF8SMTP " in msgs[2] and "Grüße".encode() in msgs[2], msgs[2]
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

/// Runs swaks against `server` with the envelope and further options; its transcript, once
/// it succeeded.
fn swaks(server: std::net::SocketAddr, envelope: &[&str], options: &[&str]) -> String {
    let out = std::process::Command::new("swaks")
        .args(["--server", &server.ip().to_string(), "--port"])
        .arg(server.port().to_string())
        .args(envelope)
        .args(options)
        .output()
        .expect("swaks must be installed (.ci/run installs it)");
    let transcript = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{transcript}");
    transcript
}

#[test]
fn swaks_and_curl_deliver_and_submit() {
    let (dir, _, server) = seeded_server("lr");
    let inbound = server.addr("smtp (STARTTLS)");
    let submission = server.addr("submission (STARTTLS)");
    swaks(
        inbound,
        &["--to", "hello@acme.example", "--from", "x@remote.example"],
        &["--tls", "--header", "Subject: by swaks"],
    );
    swaks(
        submission,
        &["--to", "contact@acme.example", "--from", CONTACT],
        &[
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            CONTACT,
            "--auth-password",
            CONTACT_PASSWORD,
            "--header",
            "From: contact@acme.example",
            "--header",
            "Subject: swaks submission",
        ],
    );
    // swaks pipelines MAIL, RCPT and DATA in one write when PIPELINING is offered.
    let transcript = swaks(
        inbound,
        &["--to", "contact@acme.example", "--from", "x@remote.example"],
        &["--pipeline", "--header", "Subject: swaks pipelined"],
    );
    let sent_data = transcript.find(" -> DATA").expect(&transcript);
    let mail_answered = transcript.find("<-  250 2.1.0").expect(&transcript);
    assert!(sent_data < mail_answered, "not pipelined: {transcript}");
    let mail = dir.path().join("curl.eml");
    std::fs::write(
        &mail,
        "From: x@remote.example\r\nSubject: by curl\r\n\r\ncurl body\r\n",
    )
    .unwrap();
    let curl = std::process::Command::new("curl")
        .arg(format!("smtp://{inbound}"))
        .args(["--mail-from", "x@remote.example", "--mail-rcpt", CONTACT])
        .args(["--ssl-reqd", "--insecure", "--upload-file"])
        .arg(&mail)
        .output()
        .expect("curl must be installed");
    assert!(
        curl.status.success(),
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );
    let out = run(
        &server,
        r#"
msgs = inbox("contact@acme.example", "contact-password")
subjects = sorted(m.split(b"Subject: ")[1].split(b"\r\n")[0] for m in msgs)
assert subjects == [b"by curl", b"by swaks", b"swaks pipelined", b"swaks submission"], subjects
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

#[test]
fn a_full_mailbox_answers_452_and_the_client_keeps_the_message() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lr");
    adjust_mailbox(dir.path(), CONTACT, |m| m.quota_bytes = 1000);
    let server = start(dir.path(), "");
    let out = run(
        &server,
        r#"
s = inbound()
s.ehlo("client.test")
s.sendmail("a@remote.example", ["contact@acme.example"], b"Subject: fits\r\n\r\n" + b"x" * 400 + b"\r\n")
big = b"Subject: too big\r\n\r\n" + b"y" * 700 + b"\r\n"
# Announced with SIZE: refused at RCPT.
s.docmd("MAIL FROM:<a@remote.example> SIZE=%d" % len(big))
code, text = s.docmd("RCPT TO:<contact@acme.example>")
assert (code, text[:5]) == (452, b"4.2.2"), (code, text)
s.rset()
# Unannounced: refused at the end of DATA, temporarily (the sender's server keeps it).
refused(lambda: s.sendmail("a@remote.example", ["contact@acme.example"], big), 452, "4.2.2")
s.quit()
assert len(inbox("contact@acme.example", "contact-password")) == 1
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

#[test]
fn limits_get_specific_replies() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lr");
    let limits = "[smtp]\nmax_message_bytes = 2000\nmax_recipients = 2\nmax_errors = 4\n";
    let server = start_with(dir.path(), &EPHEMERAL.replace("[smtp]\n", limits));
    let out = run(
        &server,
        r#"
s = inbound()
s.ehlo("client.test")
refused(lambda: s.sendmail("a@remote.example", ["contact@acme.example"], b"Subject: big\r\n\r\n" + b"x" * 3000 + b"\r\n"), 552, "5.3.4")
s.rset()
s.docmd("MAIL FROM:<a@remote.example>")
assert s.docmd("RCPT TO:<contact@acme.example>")[0] == 250
assert s.docmd("RCPT TO:<hello@acme.example>")[0] == 250
code, text = s.docmd("RCPT TO:<contact+x@acme.example>")
assert (code, text[:5]) == (452, b"4.5.3"), (code, text)
s.rset()
# The fourth error (the 552 was the first) ends the session.
for i in range(3):
    assert s.docmd("BOGUS")[0] == 500
code, text = s.getreply()
assert (code, text[:5]) == (421, b"4.7.0"), (code, text)
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

/// RFC 4954 §4 as Outlook uses it (AUTH LOGIN with the user name as initial response);
/// wrong passwords are slowed down (1 s, then 2 s) and show in the organization's audit log;
/// a client that never authenticates is cut off after `smtp.max_commands_before_auth`.
#[tokio::test]
async fn submission_auth_failures_are_slowed_down_and_audited_and_idlers_cut_off() {
    let (_dir, seeded, server) = seeded_server("lr");
    let out = run(
        &server,
        r#"
s = submission()
def plain(password):
    # One AUTH each: smtplib's login() would try PLAIN, then LOGIN.
    s.user, s.password = "contact@acme.example", password
    return s.auth("PLAIN", s.auth_plain)
started = time.time()
refused(lambda: plain("wrong"), 535, "5.7.8")
first = time.time() - started
refused(lambda: plain("wrong again"), 535, "5.7.8")
second = time.time() - started - first
assert first >= 1 and second >= 2, (first, second)
s.close()
t = submission_tls()
t.ehlo("client.test")
t.user, t.password = "contact@acme.example", "contact-password"
code, text = t.auth("LOGIN", t.auth_login, initial_response_ok=True)
assert code == 235, (code, text)
t.quit()
u = submission()
# The count starts over with TLS (RFC 3207 §4.2): the EHLO after it was one; the limit is 20.
for n in range(19):
    assert u.docmd("NOOP")[0] == 250, n
code, text = u.docmd("NOOP")
assert (code, text[:5]) == (421, b"4.7.0"), (code, text)
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
    let owner = api::Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let (status, page) = owner
        .get(&format!(
            "/api/v1/orgs/{}/audit?action=smtp.login",
            seeded.org
        ))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    let outcomes: Vec<(&str, &str)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["target"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes.iter().filter(|(_, o)| *o == "failure").count(),
        2,
        "{page}"
    );
    assert!(outcomes.iter().all(|(t, _)| *t == CONTACT), "{page}");
}

/// RFC 5321 §4.5.3.2.7: a server waits at least 5 minutes for the next command (default 300
/// s); set to one second here, a silent client is told why and dropped, mid-message too.
#[test]
fn a_silent_client_gets_421_after_the_timeout_and_a_half_message_is_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lr");
    let server = start_with(
        dir.path(),
        &EPHEMERAL.replace("[smtp]\n", "[smtp]\ntimeout_seconds = 1\n"),
    );
    let out = run(
        &server,
        r#"
def dropped(s):
    code, text = s.getreply()
    assert (code, text[:5]) == (421, b"4.4.2"), (code, text)
    assert s.sock.recv(1) == b"", "the connection is closed"
s = inbound()
s.ehlo("client.test")
started = time.time()
# The configured second, not the default 300 s: the 421 must come before this generous
# socket timeout (60 s) ends the read with an error, and not before the second is up.
s.sock.settimeout(60)
dropped(s)
waited = time.time() - started
assert waited > 0.9, ("the server waited the configured second", waited)
print("421 after", round(waited, 3), "s")
s = inbound()
s.ehlo("client.test")
assert s.docmd("MAIL FROM:<a@remote.example>")[0] == 250
assert s.docmd("RCPT TO:<contact@acme.example>")[0] == 250
assert s.docmd("DATA")[0] == 354
s.send(b"Subject: half\r\n\r\nthe rest never comes\r\n")
time.sleep(1.5)
dropped(s)
assert inbox("contact@acme.example", "contact-password") == []
print("done")
"#,
    );
    if let Some(waited) = out.lines().find(|l| l.starts_with("421 after")) {
        eprintln!("{waited}");
    }
    assert!(out.contains("done"), "{out}");
}

/// Sends numbered messages over two connections until it is cut off, printing `ACK n` for
/// every message answered 250.
const STREAM: &str = r#"
import smtplib, sys, threading
host, port = sys.argv[1], int(sys.argv[2])
lock = threading.Lock()
def say(*words):
    # One thread at a time: two prints at once can share a line.
    with lock:
        print(*words, flush=True)
def stream(first):
    try:
        s = smtplib.SMTP(host, port, local_hostname="client.test")
        for n in range(first, first + 100000, 2):
            msg = b"Message-ID: <%d@stream.test>\r\nSubject: %d\r\n\r\n" % (n, n) + b"y" * (n * 131 % 9000) + b"\r\n"
            s.sendmail("load@remote.example", ["contact@acme.example"], msg)
            say("ACK", n)
    except Exception as e:
        say("CUT", first, repr(e))
threads = [threading.Thread(target=stream, args=(i,)) for i in (0, 1)]
[t.start() for t in threads]
[t.join() for t in threads]
"#;

#[test]
fn sigkill_mid_stream_loses_no_acknowledged_message() {
    use std::io::BufRead;
    let (dir, _, server) = seeded_server("lr");
    let smtp = server.addr("smtp (STARTTLS)");
    let mut client = std::process::Command::new("python3")
        .arg("-c")
        .arg(STREAM)
        .args([smtp.ip().to_string(), smtp.port().to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let lines = std::io::BufReader::new(client.stdout.take().unwrap()).lines();
    let mut acked = std::collections::BTreeSet::new();
    let mut server = Some(server);
    for line in lines.map_while(Result::ok) {
        if let Some(n) = line.strip_prefix("ACK ") {
            acked.insert(n.parse::<u64>().unwrap());
        }
        if acked.len() == 60
            && let Some(s) = server.take()
        {
            s.kill(); // mid-stream: both connections have a message in flight
        }
    }
    client.wait().unwrap();
    assert!(acked.len() >= 60, "the stream should have run: {acked:?}");
    let server = start(dir.path(), "");
    let out = run(
        &server,
        r#"
import re, collections
msgs = inbox("contact@acme.example", "contact-password")
ids = collections.Counter(int(re.search(rb"Message-ID: <(\d+)@stream.test>", m).group(1)) for m in msgs)
print("IDS", " ".join(f"{k}:{v}" for k, v in sorted(ids.items())))
"#,
    );
    let stored: std::collections::HashMap<u64, u32> = out
        .lines()
        .find_map(|l| l.strip_prefix("IDS "))
        .unwrap_or("")
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once(':').unwrap();
            (k.parse().unwrap(), v.parse().unwrap())
        })
        .collect();
    for n in &acked {
        assert_eq!(
            stored.get(n),
            Some(&1),
            "message {n} was acknowledged: stored once"
        );
    }
    assert!(
        stored.values().all(|v| *v == 1),
        "nothing is stored twice: {stored:?}"
    );
}

/// A smarthost that refuses the first delivery to friend@ temporarily, refuses bad@ for good,
/// and writes what it accepts to the file given.
const SINK: &str = r#"
import socket, sys, threading
out = sys.argv[1]
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
print(srv.getsockname()[1], flush=True)
attempts = {"friend": 0}
def serve(conn):
    f = conn.makefile("rb")
    send = lambda s: conn.sendall(s.encode() + b"\r\n")
    send("220 sink.test ESMTP")
    rcpts = []
    while True:
        line = f.readline().decode().strip()
        if not line:
            return
        verb = line.split(" ")[0].upper()
        if verb == "EHLO":
            send("250-sink.test\r\n250 8BITMIME")
        elif verb == "MAIL":
            send("250 2.1.0 ok")
        elif verb == "RCPT":
            if "bad@" in line:
                send("550 5.1.1 no such user here")
            elif "friend@" in line:
                attempts["friend"] += 1
                if attempts["friend"] == 1:
                    send("451 4.3.0 come back later")
                else:
                    rcpts.append(line)
                    send("250 2.1.5 ok")
        elif verb == "DATA":
            send("354 go on")
            data = b""
            while True:
                l = f.readline()
                if l == b".\r\n":
                    break
                data += l
            with open(out, "ab") as o:
                o.write(b"ATTEMPT %d\n" % attempts["friend"] + data)
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

#[test]
fn outbound_mail_is_retried_until_delivered_and_a_refusal_bounces() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lr");
    let received = dir.path().join("sink.eml");
    let smarthost = sink(SINK, &received);
    let queue = format!("{}first_retry_seconds = 1\n", smarthost.queue_config());
    let server = start(dir.path(), &queue);
    let out = run(
        &server,
        r#"
s = submission()
s.login("contact@acme.example", "contact-password")
msg = b"From: contact@acme.example\r\nTo: friend@remote.example\r\nSubject: outbound\r\n\r\n.dot line\r\n"
s.sendmail("contact@acme.example", ["friend@remote.example", "bad@remote.example"], msg)
s.quit()
deadline = time.time() + 60
while True:
    msgs = inbox("contact@acme.example", "contact-password")
    if msgs or time.time() > deadline:
        break
    time.sleep(0.2)
assert len(msgs) == 1, msgs
dsn = msgs[0]
assert b"multipart/report; report-type=delivery-status" in dsn, dsn
assert b"Final-Recipient: rfc822; bad@remote.example\r\nAction: failed\r\nStatus: 5.1.1" in dsn, dsn
assert b"friend@remote.example" not in dsn.split(b"message/delivery-status")[1].split(b"text/rfc822-headers")[0], dsn
assert b"Subject: outbound" in dsn, "the original header comes back"
# The client keeps its Sent copy (APPEND); the server stores none of its own.
assert inbox("contact@acme.example", "contact-password", "Sent") == []
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let delivered = loop {
        let text = std::fs::read_to_string(&received).unwrap_or_default();
        if text.contains("Subject: outbound") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    drop(smarthost);
    assert!(
        delivered.starts_with("ATTEMPT 2\n"),
        "delivered on the retry after a 451: {delivered}"
    );
    assert!(
        delivered.contains("\r\n..dot line\r\n"),
        "dot-stuffed on the wire: {delivered}"
    );
    assert_eq!(
        delivered.matches("Subject: outbound").count(),
        1,
        "{delivered}"
    );
}

#[test]
fn delivered_mail_reaches_an_idle_session() {
    let (_dir, _, server) = seeded_server("lr");
    let out = run(
        &server,
        r#"
m = imap("contact@acme.example", "contact-password")
m.select("INBOX")
tag = m._new_tag().decode()
m.send(f"{tag} IDLE\r\n".encode())
assert m.readline().startswith(b"+"), "idling"
s = inbound()
s.sendmail("a@remote.example", ["hello@acme.example"], b"Subject: ping\r\n\r\nping\r\n")
sent = time.time()
# A generous wait: the EXISTS must come; how soon is reported, not asserted.
m.sock.settimeout(60)
line = m.readline()
waited = time.time() - sent
assert line.strip() == b"* 1 EXISTS", line
m.send(b"DONE\r\n")
s.quit()
print("done", waited)
"#,
    );
    if let Some(waited) = out.lines().find_map(|l| l.strip_prefix("done ")) {
        eprintln!("EXISTS {waited} s after the 250");
    }
    assert!(out.contains("done"), "{out}");
}

#[tokio::test]
async fn a_revoked_send_grant_stops_an_open_submission_session_at_the_next_message() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed_with_send(dir.path(), "lr", Some(SendMode::As));
    let server = start(dir.path(), "");
    let sub = server.addr("submission (TLS)");
    let mut client = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP_SSL(sys.argv[1], int(sys.argv[2]), context=ctx)
s.login("lucie@gmail.example", "lucie-password")
msg = b"From: contact@acme.example\r\nSubject: x\r\n\r\nx\r\n"
s.sendmail("contact@acme.example", ["contact@acme.example"], msg)
print("first sent", flush=True)
sys.stdin.readline()
try:
    s.sendmail("contact@acme.example", ["contact@acme.example"], msg)
    print("second sent", flush=True)
except smtplib.SMTPException as e:
    print("refused", e, flush=True)
"#,
        )
        .args([sub.ip().to_string(), sub.port().to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::{BufRead, Write};
    let mut lines = std::io::BufReader::new(client.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "first sent");
    let owner = common::api::Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let (status, _) = owner
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/orgs/{}/grants/{}", seeded.org, seeded.grant),
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT);
    client.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let answer = lines.next().unwrap().unwrap();
    assert!(answer.starts_with("refused"), "{answer}");
    client.wait().unwrap();
}

#[test]
fn queued_mail_survives_a_crash_and_goes_out_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lr");
    // Nothing listens on port 1: the first attempts fail and the message waits in the queue.
    let down =
        "[queue]\nsmarthost = \"127.0.0.1:1\"\nsmarthost_tls = \"none\"\nfirst_retry_seconds = 1\n";
    let server = start(dir.path(), down);
    run(
        &server,
        r#"
s = submission()
s.login("contact@acme.example", "contact-password")
s.sendmail("contact@acme.example", ["far@away.example"], b"From: contact@acme.example\r\nSubject: survivor\r\n\r\nx\r\n")
s.quit()
time.sleep(1.5)
"#,
    );
    server.kill(); // SIGKILL: no flush, no goodbye
    let received = dir.path().join("sink.eml");
    let smarthost = sink(ACCEPTING_SINK, &received);
    let _server = start(dir.path(), &smarthost.queue_config());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&received).unwrap_or_default();
        if text.contains("Subject: survivor") {
            assert_eq!(text.matches("Subject: survivor").count(), 1, "{text}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the queued message never left"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Issue 12: what a delegate does with an organization's mailbox is in that organization's
/// audit log with both identities: opening it over IMAP (once a session, however often she
/// selects it), sending as it, and exporting it through the API. The mailbox's own login
/// opening its own folders is not such an event.
#[tokio::test]
async fn opening_sending_for_and_exporting_a_mailbox_are_in_its_organizations_log() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed_with_send(dir.path(), "lrs", Some(SendMode::As));
    let server = start(dir.path(), "");
    let out = run(
        &server,
        r#"
m = imap("lucie@gmail.example", "lucie-password")
for verb in (m.select, m.select, lambda f: m.select(f, readonly=True)):
    typ, data = verb('"Shared/contact@acme.example/INBOX"')
    assert typ == "OK", data
m.logout()
m = imap("contact@acme.example", "contact-password")
m.select("INBOX")
m.logout()
s = submission()
s.login("lucie@gmail.example", "lucie-password")
s.sendmail("contact@acme.example", ["contact@acme.example"],
           b"From: contact@acme.example\r\nTo: contact@acme.example\r\nSubject: hi\r\n\r\nhello\r\n")
s.quit()
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
    let (org, contact) = (seeded.org, seeded.contact);
    let lucie = common::api::Api::login(&server, LUCIE, LUCIE_PASSWORD).await;
    let (status, _) = lucie
        .text(
            reqwest::Method::GET,
            &format!("/api/v1/orgs/{org}/mailboxes/{contact}/export"),
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let owner = common::api::Api::login(&server, OWNER, OWNER_PASSWORD).await;
    for (action, count) in [("imap.open", 1), ("smtp.send_as", 1), ("mailbox.export", 1)] {
        let (_, page) = owner
            .get(&format!("/api/v1/orgs/{org}/audit?action={action}"))
            .await;
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), count, "{action}: {page}");
        assert_eq!(items[0]["actor"]["user"], seeded.lucie, "{action}: {page}");
        assert_eq!(items[0]["target"], CONTACT, "{action}: {page}");
    }
}

/// Issue 12, the other ways in: a delegate login (`mailbox*user`) opening the mailbox's own
/// INBOX, and sending on its behalf, are in the mailbox organization's log with both
/// identities, as the `Shared/` path and send-as are.
#[tokio::test]
async fn a_delegate_login_and_sending_on_behalf_are_in_the_organizations_log() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed_with_send(dir.path(), "lrs", Some(SendMode::OnBehalf));
    let server = start(dir.path(), "");
    let out = run(
        &server,
        r#"
m = imap("contact@acme.example*lucie@gmail.example", "lucie-password")
typ, data = m.select("INBOX")
assert typ == "OK", data
m.logout()
s = submission()
s.login("lucie@gmail.example", "lucie-password")
s.sendmail("contact@acme.example", ["contact@acme.example"],
           b"From: contact@acme.example\r\nTo: contact@acme.example\r\nSubject: hi\r\n\r\nhello\r\n")
s.quit()
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
    let owner = common::api::Api::login(&server, OWNER, OWNER_PASSWORD).await;
    for action in ["imap.open", "smtp.send_on_behalf"] {
        let (_, page) = owner
            .get(&format!(
                "/api/v1/orgs/{}/audit?action={action}",
                seeded.org
            ))
            .await;
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{action}: {page}");
        let actor = items[0]["actor"].to_string();
        assert!(
            actor.contains(&seeded.lucie.to_string()),
            "{action}: {page}"
        );
        assert_eq!(items[0]["target"], CONTACT, "{action}: {page}");
    }
}

/// RFC 5322 §3.6.3, as Postfix's cleanup does: a submitted message's `Bcc:` field reaches no
/// recipient, neither the blind one nor the others; a received message is left as it came.
#[test]
fn submission_removes_bcc_from_every_copy() {
    let (_dir, _, server) = seeded_server("lrs");
    let out = run(
        &server,
        r#"
s = submission()
s.login("contact@acme.example", "contact-password")
msg = b"From: contact@acme.example\r\nTo: contact@acme.example\r\nBcc: secret@acme.example,\r\n hidden@acme.example\r\nSubject: blind\r\n\r\nbody\r\n"
s.sendmail("contact@acme.example", ["contact@acme.example"], msg)
s.quit()
msgs = inbox("contact@acme.example", "contact-password")
assert len(msgs) == 1, msgs
assert b"Bcc" not in msgs[0] and b"secret@" not in msgs[0] and b"hidden@" not in msgs[0], msgs[0]
assert b"Subject: blind\r\n" in msgs[0], msgs[0]
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

/// A smarthost that offers DSN when its second argument says `dsn`; it writes each MAIL and
/// RCPT line it gets to the file given, refuses `bad@` and `never@`, and takes the rest.
const DSN_SINK: &str = r#"
import socket, sys, threading
out, offers = sys.argv[1], sys.argv[2] == "dsn"
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
print(srv.getsockname()[1], flush=True)
def log(text):
    with open(out, "a") as o:
        o.write(text + "\n")
def serve(conn):
    f = conn.makefile("rb")
    send = lambda s: conn.sendall(s.encode() + b"\r\n")
    send("220 sink.test ESMTP")
    while True:
        line = f.readline().decode().strip()
        if not line:
            return
        verb = line.split(" ")[0].upper()
        if verb == "EHLO":
            send("250-sink.test\r\n250-8BITMIME\r\n250 " + ("DSN" if offers else "PIPELINING"))
        elif verb in ("MAIL", "RCPT"):
            log(line)
            send("550 5.1.1 no such user" if "bad@" in line or "never@" in line else "250 ok")
        elif verb == "DATA":
            send("354 go on")
            while f.readline() != b".\r\n":
                pass
            log("DATA")
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

/// The submitting client's per-recipient DSN requests (RFC 3461), as smtplib sends them.
const DSN_SUBMIT: &str = r#"
s = submission()
s.login("contact@acme.example", "contact-password")
assert s.has_extn("dsn"), s.esmtp_features
msg = b"From: contact@acme.example\r\nTo: friend@remote.example\r\nSubject: with dsn\r\n\r\nthe body\r\n"
def send(recipients):
    assert s.mail("contact@acme.example", ["RET=FULL", "ENVID=env+2B1"])[0] == 250
    for rcpt, options in recipients:
        assert s.rcpt(rcpt, options)[0] == 250, rcpt
    assert s.data(msg)[0] == 250
"#;

/// Waits for `count` messages (set before it) in contact@'s INBOX and prints them, split by
/// a marker line.
const DSN_INBOX: &str = r#"
deadline = time.time() + 60
while True:
    msgs = inbox("contact@acme.example", "contact-password")
    if len(msgs) >= count or time.time() > deadline:
        break
    time.sleep(0.2)
time.sleep(1)  # and nothing more comes
print("\n=====\n".join(m.decode(errors="replace") for m in inbox("contact@acme.example", "contact-password")))
"#;

/// contact@'s INBOX once it holds `count` messages (and a second later), one string each.
fn dsn_inbox(server: &TestServer, count: usize) -> Vec<String> {
    let out = run(server, &format!("count = {count}\n{DSN_INBOX}"));
    out.split("\n=====\n").map(str::to_string).collect()
}

/// Submission offers DSN (RFC 3461): a failure comes back with the whole message (RET=FULL),
/// the ENVID and the ORCPT; NOTIFY=NEVER silences one; NOTIFY=SUCCESS reports a local
/// delivery; a smarthost that offers DSN gets the requests passed on (and no report is made
/// for it), one that does not leads to a "relayed" report.
#[test]
fn dsn_requests_are_honoured_and_passed_on() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lr");
    let log = dir.path().join("dsn-sink.log");
    let smarthost = sink_with(DSN_SINK, &log, &[std::ffi::OsStr::new("dsn")]);
    let server = start(dir.path(), &smarthost.queue_config());
    let out = run(
        &server,
        &format!(
            "{DSN_SUBMIT}
send([
    (\"contact@acme.example\", [\"NOTIFY=SUCCESS\"]),
    (\"friend@remote.example\", [\"NOTIFY=SUCCESS,FAILURE\", \"ORCPT=rfc822;Friend+2B@remote.example\"]),
    (\"bad@remote.example\", [\"NOTIFY=FAILURE\", \"ORCPT=rfc822;first-bad@remote.example\"]),
    (\"never@remote.example\", [\"NOTIFY=NEVER\"]),
])
s.mail(\"contact@acme.example\", [\"RET=FULL\"])
code, text = s.rcpt(\"x@remote.example\", [\"NOTIFY=NEVER,SUCCESS\"])
assert code == 501 and b\"5.5.4\" in text, (code, text)
s.quit()
print(\"sent\")
"
        ),
    );
    assert!(out.contains("sent"), "{out}");
    // The message itself, the report of its delivery to contact@, the failure for bad@.
    let inbox = dsn_inbox(&server, 3);
    assert_eq!(inbox.len(), 3, "{inbox:?}");
    let delivered = inbox
        .iter()
        .find(|m| m.contains("Subject: Successful Mail Delivery Report"))
        .unwrap_or_else(|| panic!("no delivery report: {inbox:?}"));
    assert!(
        delivered.contains(
            "Final-Recipient: rfc822; contact@acme.example\r\nAction: delivered\r\nStatus: 2.0.0"
        ),
        "{delivered}"
    );
    assert!(
        delivered.contains("Original-Envelope-Id: env+1\r\n"),
        "{delivered}"
    );
    assert!(!delivered.contains("the body"), "headers only: {delivered}");
    let failed = inbox
        .iter()
        .find(|m| m.contains("Subject: Undelivered Mail Returned to Sender"))
        .unwrap_or_else(|| panic!("no failure report: {inbox:?}"));
    assert!(
        failed.contains("Original-Envelope-Id: env+1\r\n"),
        "{failed}"
    );
    assert!(
        failed.contains("Original-Recipient: rfc822; first-bad@remote.example\r\nFinal-Recipient: rfc822; bad@remote.example\r\nAction: failed\r\nStatus: 5.1.1"),
        "{failed}"
    );
    assert!(
        !failed.contains("never@remote.example"),
        "NOTIFY=NEVER: {failed}"
    );
    assert!(
        failed.contains("Content-Type: message/rfc822\r\n\r\n") && failed.contains("the body"),
        "RET=FULL: {failed}"
    );
    // Passed on to a smarthost that offers DSN, in xtext.
    let sent = std::fs::read_to_string(&log).unwrap();
    assert!(
        sent.contains("MAIL FROM:<contact@acme.example> RET=FULL ENVID=env+2B1"),
        "{sent}"
    );
    assert!(
        sent.contains("RCPT TO:<friend@remote.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Friend+2B@remote.example"),
        "{sent}"
    );
    assert!(
        sent.contains("RCPT TO:<never@remote.example> NOTIFY=NEVER"),
        "{sent}"
    );
    drop(smarthost);
    server.terminate();

    // A smarthost without DSN: the sender who asked is told the message was relayed.
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lr");
    let log = dir.path().join("plain-sink.log");
    let smarthost = sink_with(DSN_SINK, &log, &[std::ffi::OsStr::new("plain")]);
    let server = start(dir.path(), &smarthost.queue_config());
    let out = run(
        &server,
        &format!(
            "{DSN_SUBMIT}
send([(\"friend@remote.example\", [\"NOTIFY=SUCCESS\"]), (\"other@remote.example\", [])])
s.quit()
print(\"sent\")
"
        ),
    );
    assert!(out.contains("sent"), "{out}");
    let inbox = dsn_inbox(&server, 1);
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert!(
        inbox[0].contains(
            "Final-Recipient: rfc822; friend@remote.example\r\nAction: relayed\r\nStatus: 2.0.0"
        ),
        "{inbox:?}"
    );
    assert!(!inbox[0].contains("other@remote.example\r\n"), "{inbox:?}");
    let sent = std::fs::read_to_string(&log).unwrap();
    assert!(!sent.contains("NOTIFY") && !sent.contains("RET="), "{sent}");
}
