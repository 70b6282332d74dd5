//! IMAP as mail clients use it, driven by Python's imaplib (a client we did not write) over
//! TLS, STARTTLS and plain loopback: logins of every kind, folders, APPEND, FETCH, STORE,
//! SEARCH, COPY/MOVE, EXPUNGE, IDLE, delegation and revocation.

mod common;

use common::*;

fn run(server: &TestServer, kind: &str, script: &str) -> String {
    imap_script(server, kind, script)
}

#[test]
fn a_mailbox_login_reads_and_writes_its_folders() {
    let (_dir, _, server) = seeded_server("lr");
    let out = run(
        &server,
        "imap (TLS)",
        r#"
m = tls()
ok(m.login("contact@acme.example", "contact-password"))
typ, folders = m.list()
names = [f.decode() for f in folders]
assert any('\\Sent' in n and '"Sent"' in n or 'Sent' in n and '\\Sent' in n for n in names), names
assert any('INBOX' in n for n in names), names
msg = b"From: Lucie <lucie@gmail.example>\r\nTo: contact@acme.example\r\nSubject: Hello there\r\nMessage-ID: <1@test>\r\n\r\nFirst line\r\nSecond line\r\n"
data = ok(m.append("INBOX", "(\\Flagged)", None, msg))
assert b"APPENDUID" in data[0], data
typ, data = m.select("INBOX")
assert data == [b"1"], data
data = ok(m.fetch("1", "(FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
text = data[0][0].decode()
assert "\\Flagged" in text and "\\Seen" not in text, text
assert '"Hello there"' in text and '"lucie" "gmail.example"' in text, text
assert '("TEXT" "PLAIN"' in text, text
assert data[0][1] == b"Subject: Hello there\r\n\r\n", data
data = ok(m.fetch("1", "(BODY[TEXT])"))
assert data[0][1] == b"First line\r\nSecond line\r\n", data
data = ok(m.fetch("1", "(FLAGS)"))
assert b"\\Seen" in data[0], ("BODY[] sets \\Seen", data)
data = ok(m.fetch("1", "(BODY[]<0.4>)"))
assert data[0][1] == b"From", data
assert ok(m.search(None, "FROM", "lucie")) == [b"1"]
assert ok(m.search(None, "SUBJECT", "nothing")) == [b""]
assert ok(m.uid("SEARCH", None, "ALL")) == [b"1"]
ok(m.store("1", "+FLAGS", "(\\Deleted $Important)"))
data = ok(m.fetch("1", "(FLAGS)"))
assert b"$Important" in data[0] and b"\\Deleted" in data[0], data
data = ok(m.copy("1", "Archive"))
ok(m.create("Projects/2026"))
typ, data = m.list('""', "Projects*")
assert len(data) == 2, data
ok(m.create("Old/Child"))
ok(m.delete("Old"))
typ, data = m.list('""', "Old*")
assert any(b"\\Noselect" in d and d.endswith(b" Old") for d in data), ("a deleted parent stays \\Noselect", data)
assert ok(m.expunge()) == [b"1"]
typ, data = m.select("Archive")
assert data == [b"1"], data
typ, data = m.uid("MOVE", "1:*", "Projects/2026")
assert typ == "OK", data
typ, data = m.status("Projects/2026", "(MESSAGES UIDNEXT)")
assert b"MESSAGES 1" in data[0], data
no(lambda: m.select("Nope"), "NONEXISTENT")
ok(m.rename("Projects", "Done"))
typ, data = m.list('""', "Done/*")
assert b"Done/2026" in data[0], data
# RFC 3501 §6.3.5: renaming INBOX moves its messages and leaves INBOX, empty.
ok(m.append("INBOX", None, None, b"Subject: keep\r\n\r\nx\r\n"))
ok(m.rename("INBOX", "Old-Inbox"))
typ, data = m.status("INBOX", "(MESSAGES)")
assert b"MESSAGES 0" in data[0], data
typ, data = m.status("Old-Inbox", "(MESSAGES)")
assert b"MESSAGES 1" in data[0], data
m.logout()
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

#[test]
fn plaintext_login_is_refused_until_starttls() {
    let (_dir, _, server) = seeded_server("lr");
    let out = run(
        &server,
        "imap (STARTTLS)",
        r#"
m = imaplib.IMAP4(host, port)
assert "LOGINDISABLED" in m.capabilities and "STARTTLS" in m.capabilities, m.capabilities
no(lambda: m.login("contact@acme.example", "contact-password"), "PRIVACYREQUIRED")
m.starttls(ssl_context=ctx)
assert "LOGINDISABLED" not in m.capabilities, m.capabilities
ok(m.login("contact@acme.example", "contact-password"))
m.logout()
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

#[test]
fn wrong_passwords_aliases_and_unknown_users_are_refused() {
    let (_dir, _, server) = seeded_server("lr");
    let out = run(
        &server,
        "imap (TLS)",
        r#"
for login, password, expect in [
    ("contact@acme.example", "wrong", "AUTHENTICATIONFAILED"),
    ("hello@acme.example", "contact-password", "alias"),
    ("nobody@acme.example", "x", "AUTHENTICATIONFAILED"),
]:
    m = tls()
    no(lambda: m.login(login, password), expect)
    m.logout()
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

#[test]
fn a_delegate_sees_the_shared_namespace_with_only_the_granted_rights() {
    let (_dir, _, server) = seeded_server("lrs");
    let out = run(
        &server,
        "imap (TLS)",
        r#"
owner = tls()
ok(owner.login("contact@acme.example", "contact-password"))
ok(owner.append("INBOX", None, None, b"Subject: for the team\r\n\r\nbody\r\n"))
owner.logout()

m = tls()
ok(m.login("lucie@gmail.example", "lucie-password"))
typ, data = m.namespace()
assert b'"Shared/"' in data[0], data
typ, folders = m.list()
names = b"\n".join(folders).decode()
assert "Shared/contact@acme.example/INBOX" in names, names
assert "\\Noselect" in names, names
typ, data = m.select("INBOX", readonly=True)
assert data == [b"0"], ("a user's own INBOX is empty", data)
typ, data = m.uid("FETCH", "1:*", "(FLAGS)")
assert typ == "OK", ("the empty INBOX is selected: clients fetch from it at start-up", data)
assert ok(m.search(None, "ALL")) == [b""]
typ, data = m.select('"Shared/contact@acme.example/INBOX"')
assert typ == "OK" and data == [b"1"], data
data = ok(m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
assert b"for the team" in data[0][1], data
no(lambda: m.store("1", "+FLAGS", "(\\Flagged)"), "NOPERM")
no(lambda: m.append('"Shared/contact@acme.example/Sent"', None, None, b"Subject: x\r\n\r\ny\r\n"), "NOPERM")
ok(m.subscribe('"Shared/contact@acme.example/INBOX"'))
typ, data = m.lsub()
assert b"Shared/contact@acme.example/INBOX" in b"".join(data), data
m.logout()

# The same user reaches the mailbox itself, by separator or by SASL authzid.
d = tls()
# '*' is not an atom character (RFC 3501 §9): clients send the name quoted.
ok(d.login('"contact@acme.example*lucie@gmail.example"', "lucie-password"))
typ, data = d.select("INBOX")
assert data == [b"1"], data
d.logout()

s = tls()
payload = b"contact@acme.example\0lucie@gmail.example\0lucie-password"
ok(s.authenticate("PLAIN", lambda _: payload))
typ, data = s.select("INBOX")
assert data == [b"1"], data
no(lambda: s.store("1", "+FLAGS", "(\\Deleted)"), "NOPERM")
s.logout()
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

#[test]
fn idle_reports_new_mail_from_another_session() {
    let (_dir, _, server) = seeded_server("lr");
    let out = run(
        &server,
        "imap (TLS)",
        r#"
a = tls()
ok(a.login("contact@acme.example", "contact-password"))
a.select("INBOX")
tag = a._new_tag().decode()
a.send(f"{tag} IDLE\r\n".encode())
assert a.readline().startswith(b"+"), "IDLE continuation"
b = tls()
ok(b.login("contact@acme.example", "contact-password"))
start = time.time()
ok(b.append("INBOX", None, None, b"Subject: new\r\n\r\nnew\r\n"))
# A generous wait: the EXISTS must come; how soon is reported, not asserted.
a.sock.settimeout(60)
line = a.readline()
assert line == b"* 1 EXISTS\r\n", line
print("EXISTS after", round(time.time() - start, 3), "s")
assert a.readline() == b"* 1 RECENT\r\n"
a.send(b"DONE\r\n")
line = a.readline()
assert line.startswith(tag.encode() + b" OK"), line
print("done")
"#,
    );
    if let Some(latency) = out.lines().find(|l| l.starts_with("EXISTS after")) {
        eprintln!("{latency}");
    }
    assert!(out.contains("done"), "{out}");
}

/// Revoking a grant through the admin API ends the delegate's sessions that are IDLE in the
/// mailbox or have it selected with BYE, and the next login sees nothing of it. How soon the
/// BYE comes is printed, not asserted: a loaded machine must not fail the test.
#[tokio::test]
async fn revoking_a_grant_ends_idle_and_selected_delegate_sessions() {
    use std::io::{BufRead, BufReader};
    let (_dir, seeded, server) = seeded_server("lrs");
    let addr = server.addr("imap (TLS)");
    let script = format!(
        "{IMAP_PRELUDE}\n{}",
        r#"
m = tls()
ok(m.login("lucie@gmail.example", "lucie-password"))
typ, data = m.select('"Shared/contact@acme.example/INBOX"')
assert typ == "OK", data
# A second session has the folder selected but sends nothing.
s = tls()
ok(s.login("lucie@gmail.example", "lucie-password"))
typ, data = s.select('"Shared/contact@acme.example/INBOX"')
assert typ == "OK", data
m.send(b"i1 IDLE\r\n")
assert m.readline().startswith(b"+")
print("idling", flush=True)
m.sock.settimeout(60)
line = m.readline()
print("bye_at", time.time(), line.decode().strip(), flush=True)
s.sock.settimeout(60)
line = s.readline()
print("selected_bye_at", time.time(), line.decode().strip(), flush=True)
m2 = tls()
ok(m2.login("lucie@gmail.example", "lucie-password"))
typ, data = m2.list()
assert b"contact@acme.example" not in b"".join(d for d in data if d), data
# The next command on that mailbox says why it fails.
no(lambda: m2.select('"Shared/contact@acme.example/INBOX"'), "NOPERM")
print("done", flush=True)
"#
    );
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .args([addr.ip().to_string(), addr.port().to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "idling");

    let api = format!("http://{}/api/v1", server.addr("admin (HTTP)"));
    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("{api}/session"))
        .json(&serde_json::json!({"login": OWNER, "password": OWNER_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap();
    let revoked_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let status = client
        .delete(format!("{api}/orgs/{}/grants/{}", seeded.org, seeded.grant))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);

    let bye = lines.next().unwrap().unwrap();
    let mut parts = bye.splitn(3, ' ');
    assert_eq!(parts.next(), Some("bye_at"));
    let bye_at: f64 = parts.next().unwrap().parse().unwrap();
    let text = parts.next().unwrap_or_default();
    assert!(text.starts_with("* BYE"), "{text}");
    eprintln!(
        "the IDLE session's BYE came {:.3} s after the revocation",
        bye_at - revoked_at
    );
    let selected = lines.next().unwrap().unwrap();
    let mut parts = selected.splitn(3, ' ');
    assert_eq!(parts.next(), Some("selected_bye_at"));
    let at: f64 = parts.next().unwrap().parse().unwrap();
    assert!(
        parts.next().unwrap_or_default().starts_with("* BYE"),
        "{selected}"
    );
    eprintln!(
        "the selected session's BYE came {:.3} s after the revocation",
        at - revoked_at
    );
    assert_eq!(lines.next().unwrap().unwrap(), "done");
    assert!(child.wait().unwrap().success());
}

#[test]
fn acl_commands_read_and_change_the_grants() {
    let (_dir, _, server) = seeded_server("lrs");
    let out = run(
        &server,
        "imap (TLS)",
        r#"
m = tls()
ok(m.login("contact@acme.example", "contact-password"))
data = ok(m.myrights("INBOX"))
assert data == [b"INBOX lrswipkxtea"], data
data = ok(m.getacl("INBOX"))
assert data == [b"INBOX contact@acme.example lrswipkxtea lucie@gmail.example lrs"], data
imaplib.Commands["LISTRIGHTS"] = ("AUTH", "SELECTED")
data = ok(m._untagged_response(*m._simple_command("LISTRIGHTS", "INBOX", "lucie@gmail.example"), "LISTRIGHTS"))
assert b'"" l r s w i p k x t e a' in data[0], data
ok(m.setacl("INBOX", "lucie@gmail.example", "+w"))
data = ok(m.getacl("INBOX"))
assert b"lucie@gmail.example lrsw" in data[0], data
no(lambda: m.setacl("INBOX", "stranger@nowhere.example", "lr"), "NONEXISTENT")

l = tls()
ok(l.login("lucie@gmail.example", "lucie-password"))
data = ok(l.myrights('"Shared/contact@acme.example/INBOX"'))
assert data[0].endswith(b" lrsw"), data
no(lambda: l.getacl('"Shared/contact@acme.example/INBOX"'), "NOPERM")
no(lambda: l.setacl('"Shared/contact@acme.example/INBOX"', "lucie@gmail.example", "+a"), "NOPERM")
l.logout()

ok(m.deleteacl("INBOX", "lucie@gmail.example"))
data = ok(m.getacl("INBOX"))
assert data == [b"INBOX contact@acme.example lrswipkxtea"], data
l = tls()
ok(l.login("lucie@gmail.example", "lucie-password"))
typ, data = l.list()
assert b"contact@acme.example" not in b"".join(d for d in data if d), data
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

#[test]
fn quota_is_reported_and_enforced() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lr");
    adjust_mailbox(dir.path(), CONTACT, |m| m.quota_bytes = 2048);
    let server = start(dir.path(), "");
    let out = run(
        &server,
        "imap (TLS)",
        r#"
m = tls()
ok(m.login("contact@acme.example", "contact-password"))
typ, data = m.getquotaroot("INBOX")
assert typ == "OK", data
assert data[0] == [b"INBOX contact@acme.example"], data
assert data[1] == [b"contact@acme.example (STORAGE 0 2)"], data
ok(m.append("INBOX", None, None, b"Subject: small\r\n\r\n" + b"x" * 1000 + b"\r\n"))
no(lambda: m.append("INBOX", None, None, b"Subject: big\r\n\r\n" + b"y" * 1500 + b"\r\n"), "OVERQUOTA")
typ, data = m.getquota("contact@acme.example")
assert data == [b"contact@acme.example (STORAGE 1 2)"], data
no(lambda: m.setquota("contact@acme.example", "(STORAGE 99999)"), "NOPERM")
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

#[test]
fn a_copy_that_would_exceed_the_quota_copies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lr");
    adjust_mailbox(dir.path(), CONTACT, |m| m.quota_bytes = 2048);
    let server = start(dir.path(), "");
    let out = run(
        &server,
        "imap (TLS)",
        r#"
m = tls()
ok(m.login("contact@acme.example", "contact-password"))
for i in range(3):
    ok(m.append("INBOX", None, None, b"Subject: %d\r\n\r\n" % i + b"x" * 480 + b"\r\n"))
m.select("INBOX")
# The first copy alone would fit; all three do not. RFC 3501 6.4.7: nothing is copied.
no(lambda: m.copy("1:3", "Archive"), "OVERQUOTA")
typ, data = m.status("Archive", "(MESSAGES)")
assert b"MESSAGES 0" in data[0], ("no partial copy", data)
data = ok(m.copy("1", "Archive"))
assert b"COPYUID" in data[0], data
typ, data = m.status("Archive", "(MESSAGES)")
assert b"MESSAGES 1" in data[0], data
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

#[test]
fn seen_is_kept_per_user_when_the_mailbox_says_so() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lrsi");
    adjust_mailbox(dir.path(), CONTACT, |m| {
        m.seen = mailgate::model::SeenPolicy::PerUser
    });
    let server = start(dir.path(), "");
    let out = run(
        &server,
        "imap (TLS)",
        r#"
owner = tls()
ok(owner.login("contact@acme.example", "contact-password"))
ok(owner.append("INBOX", None, None, b"Subject: boss mail\r\n\r\nconfidential\r\n"))
owner.select("INBOX")

l = tls()
ok(l.login("lucie@gmail.example", "lucie-password"))
l.select('"Shared/contact@acme.example/INBOX"')
phone = tls()
ok(phone.login("lucie@gmail.example", "lucie-password"))
typ, data = phone.select('"Shared/contact@acme.example/INBOX"')
data = ok(phone.fetch("1", "(MODSEQ)"))
before = int(data[0].decode().split("MODSEQ (")[1].split(")")[0])
data = ok(l.fetch("1", "(BODY[TEXT])"))
data = ok(l.fetch("1", "(FLAGS)"))
assert b"\\Seen" in data[0], ("the assistant has read it", data)
# Her phone hears of it at its next command, and CONDSTORE counts it as a change.
lines, tagged = raw(phone, "NOOP")
assert any("FETCH" in x and "\\Seen" in x for x in lines), ("her other device is told", lines)
lines, tagged = raw(phone, f"FETCH 1 (FLAGS) (CHANGEDSINCE {before})")
assert any("\\Seen" in x for x in lines), ("a CONDSTORE client resyncs it", lines)
phone.logout()
# Her copy to Archive carries her own \Seen; an APPEND of hers with \Seen marks it for her.
ok(l.copy("1", '"Shared/contact@acme.example/Archive"'))
ok(l.append('"Shared/contact@acme.example/INBOX"', "(\\Seen)", None, b"Subject: note\r\n\r\nnote\r\n"))
l.select('"Shared/contact@acme.example/Archive"')
data = ok(l.fetch("1", "(FLAGS)"))
assert b"\\Seen" in data[0], ("her copy is seen for her", data)
l.select('"Shared/contact@acme.example/INBOX"')

data = ok(owner.fetch("1", "(FLAGS)"))
assert b"\\Seen" not in data[0], ("the manager has not", data)
typ, data = l.status('"Shared/contact@acme.example/INBOX"', "(UNSEEN)")
assert b"UNSEEN 0" in data[0], ("her own count", data)
typ, data = owner.status("INBOX", "(UNSEEN)")
assert b"UNSEEN 2" in data[0], ("his own count: her reading and her note are hers", data)
typ, data = owner.status("Archive", "(UNSEEN)")
assert b"UNSEEN 1" in data[0], ("her copy is unseen for him", data)
ok(owner.store("1", "+FLAGS", "(\\Flagged)"))
l.logout()

l = tls()
ok(l.login("lucie@gmail.example", "lucie-password"))
l.select('"Shared/contact@acme.example/INBOX"')
data = ok(l.fetch("1", "(FLAGS)"))
assert b"\\Seen" in data[0] and b"\\Flagged" in data[0], ("her \\Seen stays, shared flags show", data)
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

#[test]
fn condstore_and_qresync_report_what_changed() {
    let (_dir, _, server) = seeded_server("lr");
    let out = run(
        &server,
        "imap (TLS)",
        r#"
m = tls()
ok(m.login("contact@acme.example", "contact-password"))
for i in range(4):
    ok(m.append("INBOX", None, None, f"Subject: m{i}\r\n\r\nx\r\n".encode()))
untagged, done = raw(m, "ENABLE QRESYNC")
assert "* ENABLED QRESYNC" in untagged, untagged
untagged, done = raw(m, "SELECT INBOX")
highest = [l for l in untagged if "HIGHESTMODSEQ" in l]
assert highest, untagged
modseq = int(highest[0].split("HIGHESTMODSEQ ")[1].split("]")[0])
typ, data = m.status("INBOX", "(UIDVALIDITY HIGHESTMODSEQ)")
uidvalidity = int(data[0].decode().split("UIDVALIDITY ")[1].split()[0].strip(")"))
# Another session changes a flag and expunges a message.
o = tls()
ok(o.login("contact@acme.example", "contact-password"))
o.select("INBOX")
ok(o.store("2", "+FLAGS", "(\\Flagged)"))
ok(o.store("3", "+FLAGS", "(\\Deleted)"))
ok(o.expunge())
o.logout()
untagged, done = raw(m, "NOOP")
assert "* VANISHED 3" in untagged, ("QRESYNC reports UIDs", untagged)
assert any("FETCH (UID 2 FLAGS (\\Flagged \\Recent) MODSEQ" in l for l in untagged), untagged
raw(m, "CLOSE")
# A reconnecting client asks what changed since it last knew.
untagged, done = raw(m, f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:4))")
assert "OK" in done, done
assert "* VANISHED (EARLIER) 3" in untagged, untagged
assert any(l.startswith("* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ") for l in untagged), untagged  # claimed by the first SELECT: no \\Recent now
untagged, done = raw(m, f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
assert "* VANISHED (EARLIER) 3" in untagged and len(untagged) == 2, untagged
untagged, done = raw(m, f"STORE 1 (UNCHANGEDSINCE 1) +FLAGS (\\Seen)")
assert "[MODIFIED 1]" in done, done
# RFC 7162 3.1.3: a .SILENT STORE still tells a CONDSTORE client the new MODSEQ.
untagged, done = raw(m, "UID STORE 2 (UNCHANGEDSINCE 999999999) +FLAGS.SILENT (\\Answered)")
assert "OK" in done and len(untagged) == 1, (done, untagged)
assert "FETCH (UID 2 MODSEQ (" in untagged[0] and "FLAGS" not in untagged[0], untagged
untagged, done = raw(m, f"SEARCH MODSEQ {modseq + 1}")
assert untagged[0].startswith("* SEARCH 2 (MODSEQ "), untagged
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

#[test]
fn list_extended_list_status_esearch_and_searchres() {
    let (_dir, _, server) = seeded_server("lr");
    let out = run(
        &server,
        "imap (TLS)",
        r#"
m = tls()
ok(m.login("contact@acme.example", "contact-password"))
for i in range(3):
    ok(m.append("INBOX", None, None, f"Subject: m{i}\r\n\r\nx\r\n".encode()))
ok(m.unsubscribe("Junk"))
untagged, done = raw(m, 'LIST (SPECIAL-USE) "" "*" RETURN (SUBSCRIBED)')
assert "OK" in done, done
names = [l.rsplit(" ", 1)[1] for l in untagged]
assert sorted(names) == ["Archive", "Drafts", "Junk", "Sent", "Trash"], untagged
assert any("\\Sent" in l and "\\Subscribed" in l for l in untagged), untagged
assert any("Junk" in l and "\\Subscribed" not in l for l in untagged), untagged
untagged, done = raw(m, 'LIST "" ("INBOX" "Sent") RETURN (STATUS (MESSAGES UNSEEN))')
assert untagged[0].startswith("* LIST") and untagged[1] == "* STATUS INBOX (MESSAGES 3 UNSEEN 3)", untagged
assert untagged[3] == "* STATUS Sent (MESSAGES 0 UNSEEN 0)", untagged
untagged, done = raw(m, 'LIST (SUBSCRIBED) "" "%"')
assert not any("Junk" in l for l in untagged), untagged
m.select("INBOX")
untagged, done = raw(m, "SEARCH RETURN (MIN MAX COUNT) ALL")
assert untagged == ['* ESEARCH (TAG "' + done.split()[0] + '") MIN 1 MAX 3 COUNT 3'], untagged
untagged, done = raw(m, "UID SEARCH RETURN () SUBJECT m1")
assert untagged[0].endswith("UID ALL 2"), untagged
untagged, done = raw(m, "SEARCH RETURN (COUNT) SUBJECT nothing")
assert untagged[0].endswith("COUNT 0"), untagged
untagged, done = raw(m, "SEARCH RETURN (BOGUS) ALL")
assert " BAD " in done, done
# SEARCHRES (RFC 5182): SAVE keeps the result, $ names it.
untagged, done = raw(m, "SEARCH RETURN (SAVE) SUBJECT m1")
assert untagged == [] and " OK " in done, (untagged, done)
untagged, done = raw(m, "FETCH $ (UID)")
assert untagged == ["* 2 FETCH (UID 2)"], untagged
untagged, done = raw(m, "SEARCH NOT $")
assert untagged == ["* SEARCH 1 3"], untagged
untagged, done = raw(m, "UID SEARCH RETURN (SAVE MIN) ALL")
assert untagged[0].endswith("UID MIN 1"), untagged
untagged, done = raw(m, "UID FETCH $ (UID)")
assert untagged == ["* 1 FETCH (UID 1)"], untagged
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

/// RFC 3501 §7.4.1 and §5.2: another session's changes reach this one at its next command;
/// EXPUNGE never during FETCH, STORE or SEARCH (their UID forms may report it).
#[test]
fn two_sessions_see_each_others_changes_by_the_rules() {
    let (_dir, _, server) = seeded_server("lr");
    let out = run(
        &server,
        "imap (TLS)",
        r#"
a = tls(); b = tls()
for s in (a, b):
    ok(s.login("contact@acme.example", "contact-password"))
for i in range(3):
    ok(a.append("INBOX", None, None, f"Subject: m{i}\r\n\r\nx\r\n".encode()))
raw(a, "SELECT INBOX"); raw(b, "SELECT INBOX")
raw(b, "STORE 2 +FLAGS (\\Deleted)")
raw(b, "EXPUNGE")
ok(b.append("INBOX", None, None, b"Subject: new\r\n\r\nx\r\n"))
raw(b, "STORE 1 +FLAGS (\\Flagged)")
untagged, done = raw(a, "FETCH 1:3 (FLAGS)")
assert not any("EXPUNGE" in l for l in untagged), ("no EXPUNGE during FETCH", untagged)
assert "* 1 FETCH (FLAGS (\\Flagged \\Recent))" in untagged, untagged
assert "* 4 EXISTS" in untagged, ("EXISTS may come at any time; the expunged one still counts", untagged)
untagged, done = raw(a, "SEARCH ALL")
assert not any("EXPUNGE" in l for l in untagged), ("no EXPUNGE during SEARCH", untagged)
untagged, done = raw(a, "NOOP")
assert untagged == ["* 2 EXPUNGE"], ("EXPUNGE at NOOP", untagged)
untagged, done = raw(a, "FETCH 1:* (UID)")
assert [l.split()[1] for l in untagged] == ["1", "2", "3"], untagged
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

/// RFC 3501 §2.3.2: a message is \Recent in the first session that sees it, only there.
#[test]
fn recent_goes_to_the_first_session_only() {
    let (_dir, _, server) = seeded_server("lr");
    let out = run(
        &server,
        "imap (TLS)",
        r#"
a = tls(); b = tls(); c = tls()
for s in (a, b, c):
    ok(s.login("contact@acme.example", "contact-password"))
ok(c.append("INBOX", None, None, b"Subject: one\r\n\r\nx\r\n"))
raw(c, "EXAMINE INBOX")
untagged, done = raw(a, "SELECT INBOX")
assert "* 1 RECENT" in untagged, ("EXAMINE did not take it", untagged)
untagged, done = raw(b, "SELECT INBOX")
assert "* 0 RECENT" in untagged, untagged
ok(c.append("INBOX", None, None, b"Subject: two\r\n\r\nx\r\n"))
untagged, done = raw(a, "NOOP")
assert "* 2 EXISTS" in untagged and "* 2 RECENT" in untagged, untagged
untagged, done = raw(b, "NOOP")
assert "* 2 EXISTS" in untagged and "* 0 RECENT" in untagged, untagged
untagged, done = raw(a, "FETCH 2 (FLAGS)")
assert untagged == ["* 2 FETCH (FLAGS (\\Recent))"], untagged
untagged, done = raw(a, "SEARCH RECENT")
assert untagged == ["* SEARCH 1 2"], untagged
untagged, done = raw(b, "SEARCH NEW")
assert untagged == ["* SEARCH"], untagged
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

/// Each RFC 4314 right, taken away in turn from a delegate who holds all the others, refuses
/// exactly the command that needs it (and the command works again once it is given back).
#[test]
fn each_right_missing_in_turn_refuses_its_command() {
    let (_dir, _, server) = seeded_server("lrswipkxte");
    let out = run(
        &server,
        "imap (TLS)",
        r#"
owner = tls()
ok(owner.login("contact@acme.example", "contact-password"))
ok(owner.create("Work"))
B = '"Shared/contact@acme.example/INBOX"'
def setacl(rights):
    ok(owner.setacl("INBOX", "lucie@gmail.example", rights))
def lucie():
    l = tls()
    ok(l.login("lucie@gmail.example", "lucie-password"))
    return l
def fresh_message():
    ok(owner.append("INBOX", None, None, b"Subject: t\r\n\r\nx\r\n"))
def check(right, action):
    """action(l) returns True when the command was allowed, False on NO [NOPERM]."""
    setacl("lrswipkxte".replace(right, ""))
    l = lucie()
    allowed = action(l)
    assert allowed is False, ("without", right, "it must be refused")
    l.logout()
    setacl("lrswipkxte")
    l = lucie()
    assert action(l) is True, ("with", right, "it must work")
    l.logout()
def refused(result):
    typ, data = result
    if typ == "OK":
        return True
    assert b"NOPERM" in b" ".join(d for d in data if isinstance(d, bytes)), data
    return False
def try_(call):
    try:
        return refused(call())
    except imaplib.IMAP4.error as e:
        assert "NOPERM" in str(e), e
        return False
def select(l):
    typ, data = l.select(B)
    return refused((typ, data))
def listed(l):
    typ, data = l.list('""', '"Shared/contact@acme.example/*"')
    return any(d for d in data if d)
def store(flag):
    def go(l):
        fresh_message()
        l.select(B)
        return try_(lambda: l.store("1", "+FLAGS", flag))
    return go
def append(l):
    return try_(lambda: l.append(B, None, None, b"Subject: x\r\n\r\ny\r\n"))
def create(l):
    ok_ = try_(lambda: l.create('"Shared/contact@acme.example/Work/Sub"'))
    if ok_:
        owner.delete("Work/Sub")
    return ok_
def delete(l):
    owner.create("Tmp")
    return try_(lambda: l.delete('"Shared/contact@acme.example/Tmp"'))
def expunge(l):
    fresh_message()
    l.select(B)
    l.store("1", "+FLAGS", "(\\Deleted)")
    return try_(lambda: l.expunge())
def getacl(l):
    return try_(lambda: l.getacl(B))
check("l", listed)
check("r", select)
check("s", store("(\\Seen)"))
check("w", store("(\\Flagged)"))
check("i", append)
check("k", create)
check("x", delete)
check("t", store("(\\Deleted)"))
check("e", expunge)
setacl("lrswipkxte")
l = lucie()
assert try_(lambda: l.getacl(B)) is False, "a is not held"
setacl("lrswipkxtea")
l = lucie()
assert try_(lambda: l.getacl(B)) is True
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

/// Every login, success or failure, is audited with both identities, the client address,
/// TLS, the mechanism and the client's ID (RFC 2971).
#[test]
fn logins_are_audited_with_identities_tls_mechanism_and_client_id() {
    use mailgate::model::{Actor, Outcome};
    let (dir, seeded, server) = seeded_server("lr");
    run(
        &server,
        "imap (TLS)",
        r#"
m = tls()
raw(m, 'ID ("name" "interop-test")')
ok(m.login('"contact@acme.example*lucie@gmail.example"', "lucie-password"))
m.logout()
m = tls()
no(lambda: m.login("contact@acme.example", "wrong"), "AUTHENTICATIONFAILED")
"#,
    );
    let (status, _) = server.terminate();
    assert!(status.success());
    let store = common::open_store(&dir.path().join("data"));
    let query = mailgate::store::AuditQuery {
        action_prefix: Some("imap.login".into()),
        ..Default::default()
    };
    let events = store.audit_events(&query).unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    let failure = &events[0];
    assert_eq!(failure.outcome, Outcome::Failure);
    assert_eq!(failure.target, CONTACT);
    let success = &events[1];
    assert_eq!(success.outcome, Outcome::Success);
    assert_eq!(
        success.actor,
        Actor::Delegate {
            user: mailgate::model::UserId(seeded.lucie),
            mailbox: mailgate::model::MailboxId(seeded.contact),
        }
    );
    assert_eq!(success.client.as_deref(), Some("127.0.0.1"));
    for part in ["mechanism=LOGIN", "tls=true", "name=interop-test"] {
        assert!(
            success.detail.contains(part),
            "{part} in {}",
            success.detail
        );
    }
}

#[test]
fn connections_over_the_per_client_limit_are_refused_with_bye() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lr");
    let server = start(dir.path(), "max_connections_per_client = 2\n");
    let out = run(
        &server,
        "imap (TLS)",
        r#"
a = tls(); b = tls()
try:
    c = tls()
    raise AssertionError("a third connection was accepted")
except imaplib.IMAP4.error as e:
    assert "Too many connections" in str(e), e
b.logout()
# The place b held is freed once the server has seen it go: wait for it, generously.
deadline = time.time() + 60
c = None
while c is None and time.time() < deadline:
    try:
        c = tls()
    except imaplib.IMAP4.error as e:
        assert "Too many connections" in str(e), e
        time.sleep(0.2)
assert c is not None, "the place of the closed connection was never freed"
ok(c.login("contact@acme.example", "contact-password"))
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

#[test]
fn an_idle_session_is_logged_out_after_the_autologout_time() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lr");
    let config = EPHEMERAL.replace("[imap]\n", "[imap]\nautologout_seconds = 1\n");
    let server = start_with(dir.path(), &config);
    let out = run(
        &server,
        "imap (TLS)",
        r#"
m = tls()
ok(m.login("contact@acme.example", "contact-password"))
# A generous wait: a BYE within the minute shows the configured second in use, not the
# default half hour.
m.sock.settimeout(60)
started = time.time()
line = m.readline()
waited = time.time() - started
assert line.startswith(b"* BYE Autologout"), line
assert waited > 0.9, ("not before the configured second", waited)
print("BYE Autologout after", round(waited, 3), "s")
print("done")
"#,
    );
    if let Some(waited) = out.lines().find(|l| l.starts_with("BYE Autologout after")) {
        eprintln!("{waited}");
    }
    assert!(out.contains("done"), "{out}");
}

#[test]
fn the_rest_of_rfc_3501_as_imaplib_sends_it() {
    let (_dir, _, server) = seeded_server("lr");
    let out = run(
        &server,
        "imap (TLS)",
        r#"
m = tls()
# AUTHENTICATE LOGIN, answering each challenge.
answers = {b"Username:": b"contact@acme.example", b"Password:": b"contact-password"}
ok(m.authenticate("LOGIN", lambda challenge: answers[challenge]))
when = imaplib.Time2Internaldate(time.mktime((2024, 2, 29, 12, 30, 0, 0, 0, -1)))
mixed = (b"From: a@b.example\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
         b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
         + base64.b64encode("Grüße aus Köln\r\n".encode()) + b"\r\n--XX--\r\n")
ok(m.append("INBOX", "(\\Deleted)", when, mixed))
ok(m.append("INBOX", None, None, b"Subject: two\r\nX-Drop: me\r\n\r\nsecond\r\n"))
m.select("INBOX")
data = ok(m.fetch("1", "(INTERNALDATE RFC822.HEADER BODY.PEEK[1.MIME])"))
text = b"".join(d if isinstance(d, bytes) else d[0] + d[1] for d in data)
assert b'INTERNALDATE "29-Feb-2024 12:30:00' in text, text
assert b"Subject: parts\r\n" in text and b"Content-Transfer-Encoding: base64\r\n" in text, text
data = ok(m.fetch("2", "(BODY.PEEK[HEADER.FIELDS.NOT (X-DROP)])"))
assert data[0][1] == b"Subject: two\r\n\r\n", data
# SEARCH looks in the decoded text, with a UTF-8 literal.
m.literal = "Köln".encode()
typ, data = m.search("UTF-8", "BODY")
assert typ == "OK" and data == [b"1"], data
ok(m.check())
# UID EXPUNGE removes only the UIDs named, and only if \Deleted.
ok(m.uid("STORE", "2", "+FLAGS", "(\\Deleted)"))
typ, data = m.uid("EXPUNGE", "1")
assert typ == "OK", data
typ, data = m.search(None, "ALL")
assert data == [b"1"], ("UID 2 stays", data)
ok(m.unselect())
typ, data = m.status("INBOX", "(MESSAGES)")
assert b"MESSAGES 1" in data[0], ("UNSELECT does not expunge", data)
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}

/// RFC 5465: a folder NOTIFY watches sends its STATUS when another session adds to it, with
/// no command in progress; a flag change counts only where FlagChange was asked for.
#[test]
fn notify_reports_a_watched_folder_as_it_changes() {
    let (_dir, _, server) = seeded_server("lr");
    let out = run(
        &server,
        "imap (TLS)",
        r#"
m = tls()
ok(m.login("contact@acme.example", "contact-password"))
untagged, done = raw(m, "NOTIFY SET STATUS (SELECTED (MessageNew MessageExpunge)) (MAILBOXES Archive (MessageNew MessageExpunge))")
assert done.endswith("OK NOTIFY completed"), done
assert untagged and untagged[0].startswith("* STATUS Archive (MESSAGES 0 UIDNEXT 1 UIDVALIDITY"), untagged
o = tls()
ok(o.login("contact@acme.example", "contact-password"))
ok(o.append("Archive", None, None, b"Subject: filed\r\n\r\nx\r\n"))
m.sock.settimeout(60)
line = m.readline().decode()
assert line.startswith("* STATUS Archive (MESSAGES 1 UIDNEXT 2 UIDVALIDITY"), line
untagged, done = raw(m, "NOTIFY SET (MAILBOXES Archive (MessageNew MailboxName))")
assert "NO [BADEVENT (MessageNew MessageExpunge FlagChange)]" in done, done
untagged, done = raw(m, "NOTIFY NONE")
assert "OK" in done, done
o.logout()
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}
