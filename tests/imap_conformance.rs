//! What imaptest and Thunderbird found (issue 11), each shown with Python's imaplib, a client
//! we did not write: subscriptions, LIST-EXTENDED, \Recent under EXAMINE, keywords in FLAGS,
//! CONDSTORE's first HIGHESTMODSEQ, ESEARCH's MODSEQ, the delegation login unquoted, a NUL
//! in a message, names that are not modified UTF-7, and FETCH racing EXPUNGE.

mod common;

use common::*;

/// A delegate and a user with a granted mailbox find its standard folders subscribed
/// without subscribing by hand (Thunderbird lists subscribed folders only), and may still
/// unsubscribe; creating a folder subscribes nothing; a subscription outlives DELETE.
#[test]
fn standard_folders_start_subscribed_and_subscriptions_are_the_clients() {
    let (_dir, _, server) = seeded_server("lrswipkxte");
    let out = imap_script(
        &server,
        "imap (TLS)",
        r#"
def names(lines):
    return sorted(l.decode().rsplit(' "/" ', 1)[1].strip('"') for l in lines if l)
# The delegation form, unquoted as imaplib sends it.
d = tls()
ok(d.login("contact@acme.example*lucie@gmail.example", "lucie-password"))
subscribed = names(ok(d.lsub()))
assert subscribed == ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"], subscribed
ok(d.unsubscribe("Junk"))
ok(d.create("Projects"))
assert names(ok(d.lsub())) == ["Archive", "Drafts", "INBOX", "Sent", "Trash"]
ok(d.subscribe("Projects"))
ok(d.delete("Projects"))
lines, tagged = raw(d, 'LIST (SUBSCRIBED) "" "Projects"')
assert tagged.split()[1] == "OK", tagged
assert lines == ['* LIST (\\NonExistent \\Subscribed) "/" Projects'], lines
d.logout()
# Her own login: the granted mailbox under Shared/, the same subscriptions.
u = tls()
ok(u.login("lucie@gmail.example", "lucie-password"))
lines, tagged = raw(u, 'LIST (SUBSCRIBED) "" "Shared/*"')
shown = sorted(l.rsplit(' "/" ', 1)[1].strip('"') for l in lines)
assert "Shared/contact@acme.example/INBOX" in shown and "Shared/contact@acme.example/Sent" in shown, shown
assert "Shared/contact@acme.example/Junk" not in shown, shown
assert "Shared/contact@acme.example/Projects" in shown, ("still subscribed", shown)
print("subscriptions ok")
"#,
    );
    assert!(out.contains("subscriptions ok"), "{out}");
}

/// RFC 5258 §3: unknown options and RECURSIVEMATCH alone are BAD; RECURSIVEMATCH shows a
/// parent for a subscribed child the pattern does not reach.
#[test]
fn list_extended_options_are_checked_and_recursivematch_gives_childinfo() {
    let (_dir, _, server) = seeded_server("lr");
    let out = imap_script(
        &server,
        "imap (TLS)",
        r#"
m = tls()
ok(m.login("contact@acme.example", "contact-password"))
for bad in ['LIST (IMAPTEST) "" ""', 'LIST (RECURSIVEMATCH) "" ""', 'LIST "" "" RETURN (IMAPTEST)']:
    lines, tagged = raw(m, bad)
    assert tagged.split()[1] == "BAD", (bad, tagged)
ok(m.create("Work/2024"))
ok(m.subscribe("Work/2024"))
lines, tagged = raw(m, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "W%"')
assert lines == ['* LIST (\\HasChildren) "/" Work ("CHILDINFO" ("SUBSCRIBED"))'], lines
# LSUB's %: the unsubscribed parent stands for its subscribed child.
lines, tagged = raw(m, 'LSUB "" "W%"')
assert lines == ['* LSUB (\\Noselect) "/" Work'], lines
print("list ok")
"#,
    );
    assert!(out.contains("list ok"), "{out}");
}

/// RFC 3501 §6.3.2: EXAMINE shows \Recent and leaves it to the next SELECT.
#[test]
fn examine_shows_recent_without_taking_it() {
    let (_dir, _, server) = seeded_server("lr");
    let out = imap_script(
        &server,
        "imap (TLS)",
        r#"
m = tls()
ok(m.login("contact@acme.example", "contact-password"))
for n in range(2):
    ok(m.append("INBOX", None, None, b"Subject: r\r\n\r\nx\r\n"))
ok(m.select("INBOX", readonly=True))
assert m.untagged_responses.get("RECENT") == [b"2"], m.untagged_responses
ok(m.unselect())
ok(m.select("INBOX"))
assert m.untagged_responses.get("RECENT") == [b"2"], ("still recent", m.untagged_responses)
print("recent ok")
"#,
    );
    assert!(out.contains("recent ok"), "{out}");
}

/// RFC 3501 §7.2.6: the folder's keywords are in FLAGS, a new one is announced by an
/// untagged FLAGS before it is shown, and PERMANENTFLAGS has \* for creating them.
#[test]
fn keywords_are_listed_in_flags() {
    let (_dir, _, server) = seeded_server("lr");
    let out = imap_script(
        &server,
        "imap (TLS)",
        r#"
m = tls()
ok(m.login("contact@acme.example", "contact-password"))
ok(m.append("INBOX", "($Label1)", None, b"Subject: k\r\n\r\nx\r\n"))
ok(m.append("INBOX", None, None, b"Subject: k2\r\n\r\nx\r\n"))
lines, tagged = raw(m, "SELECT INBOX")
flags = [l for l in lines if l.startswith("* FLAGS")]
assert flags and "$Label1" in flags[0], lines
assert any("PERMANENTFLAGS" in l and "\\*" in l for l in lines), lines
lines, tagged = raw(m, "STORE 2 +FLAGS ($Junk)")
assert lines[0].startswith("* FLAGS (") and "$Junk" in lines[0] and "$Label1" in lines[0], lines
assert "$Junk" in lines[1] and "FETCH" in lines[1], lines
print("keywords ok")
"#,
    );
    assert!(out.contains("keywords ok"), "{out}");
}

/// RFC 7162 §3.1: the first CONDSTORE-enabling command tells HIGHESTMODSEQ; §3.1.5: with
/// MIN or MAX alone, ESEARCH's MODSEQ is that message's.
#[test]
fn condstore_first_use_and_esearch_modseq() {
    let (_dir, _, server) = seeded_server("lr");
    let out = imap_script(
        &server,
        "imap (TLS)",
        r#"
m = tls()
ok(m.login("contact@acme.example", "contact-password"))
for n in range(3):
    ok(m.append("INBOX", None, None, b"Subject: c\r\n\r\nx\r\n"))
ok(m.select("INBOX"))
lines, tagged = raw(m, "FETCH 1 (MODSEQ)")
assert lines[0].startswith("* OK [HIGHESTMODSEQ "), lines
modseq = {}
for n in (1, 3, 2):
    lines, tagged = raw(m, f"STORE {n} +FLAGS (\\Seen)")
    modseq[n] = int(lines[-1].split("MODSEQ (")[1].split(")")[0])
lines, tagged = raw(m, 'SEARCH RETURN (MIN) 1:3 MODSEQ "/flags/\\\\seen" all 1')
assert lines[0].endswith(f"MIN 1 MODSEQ {modseq[1]}"), (lines, modseq)
lines, tagged = raw(m, 'SEARCH RETURN (MAX) 1:3 MODSEQ "/flags/\\\\seen" all 1')
assert lines[0].endswith(f"MAX 3 MODSEQ {modseq[3]}"), (lines, modseq)
lines, tagged = raw(m, 'SEARCH RETURN (ALL) 1:3 MODSEQ "/flags/\\\\seen" all 1')
assert lines[0].endswith(f"MODSEQ {modseq[2]}"), (lines, modseq)
print("condstore ok")
"#,
    );
    assert!(out.contains("condstore ok"), "{out}");
}

/// A name that is not modified UTF-7 gets NO, not a BAD that ends some clients' sessions;
/// a LIST pattern like it matches nothing.
#[test]
fn a_name_that_is_not_modified_utf7_gets_no() {
    let (_dir, _, server) = seeded_server("lr");
    let out = imap_script(
        &server,
        "imap (TLS)",
        r#"
m = tls()
ok(m.login("contact@acme.example", "contact-password"))
lines, tagged = raw(m, "SELECT a&b")
assert tagged.split()[1] == "NO", tagged
lines, tagged = raw(m, 'LIST "" a&b%')
assert tagged.split()[1] == "OK" and lines == [], (lines, tagged)
print("utf7 ok")
"#,
    );
    assert!(out.contains("utf7 ok"), "{out}");
}

/// RFC 3501 §4.3: no NUL in a literal; a message holding one is sent with 0x80 in its place,
/// its size unchanged.
#[test]
fn a_nul_in_a_message_never_reaches_a_literal() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lr");
    {
        use mailgate::store::AppendMessage;
        let store = common::open_store(&dir.path().join("data"));
        let mailbox = store.mailbox_by_address(CONTACT).unwrap().unwrap();
        let inbox = store.folder_by_name(mailbox.id, "INBOX").unwrap().unwrap();
        let raw = b"Subject: nul\r\n\r\nbefore\0after\r\n";
        store
            .append(mailbox.id, inbox.id, raw, AppendMessage::default())
            .unwrap();
        store.flush_blocking().unwrap();
    }
    let server = start(dir.path(), "");
    let out = imap_script(
        &server,
        "imap (TLS)",
        r#"
m = tls()
ok(m.login("contact@acme.example", "contact-password"))
ok(m.select("INBOX"))
data = ok(m.fetch("1", "(RFC822.SIZE BODY.PEEK[])"))
body = data[0][1]
assert b"\0" not in body and b"before\x80after" in body, body
assert b"RFC822.SIZE %d" % len(body) in data[0][0], data
print("nul ok")
"#,
    );
    assert!(out.contains("nul ok"), "{out}");
}

/// A FETCH of everything while another session expunges: what vanished is left out, the
/// rest answered, never a NO for the whole command (issue 11: "No such folder").
#[test]
fn fetch_racing_expunge_answers_the_rest() {
    let (_dir, _, server) = seeded_server("lr");
    let out = imap_script(
        &server,
        "imap (TLS)",
        r#"
import threading, traceback
done = threading.Event()
worker_errors = []
def churn():
    try:
        e = tls()
        ok(e.login("contact@acme.example", "contact-password"))
        ok(e.select("INBOX"))
        n = 0
        while not done.is_set():
            for _ in range(5):
                ok(e.append("INBOX", None, None, b"Subject: churn %d\r\n\r\n" % n + b"y" * 2000 + b"\r\n"))
                n += 1
            ok(e.store("1:5", "+FLAGS.SILENT", "(\\Deleted)"))
            ok(e.expunge())
        e.logout()
    except Exception:
        worker_errors.append(traceback.format_exc())
setup = tls()
ok(setup.login("contact@acme.example", "contact-password"))
for n in range(60):
    ok(setup.append("INBOX", None, None, b"Subject: seed %d\r\n\r\nx\r\n" % n))
setup.logout()
# Daemon threads, stopped in `finally`: a failure here must end the script, not leave the
# workers churning forever.
workers = [threading.Thread(target=churn, daemon=True) for _ in range(3)]
for w in workers:
    w.start()
failures = []
rounds = 0
try:
    f = tls()
    ok(f.login("contact@acme.example", "contact-password"))
    ok(f.select("INBOX"))
    deadline = time.time() + 10
    while time.time() < deadline:
        ok(f.noop())
        lines, tagged = raw(f, "FETCH 1:* (BODY.PEEK[] ENVELOPE)")
        rounds += 1
        if tagged.split()[1] != "OK":
            failures.append(tagged)
finally:
    done.set()
    for w in workers:
        w.join(60)
assert not failures, failures[:3]
assert not worker_errors, worker_errors[0]
print("race ok", rounds)
"#,
    );
    assert!(out.contains("race ok"), "{out}");
}

/// RFC 3516: BINARY gives a part with its transfer encoding undone (a literal8 when it
/// holds a NUL), BINARY.SIZE its decoded size, and an unknown encoding NO [UNKNOWN-CTE].
#[test]
fn binary_fetches_decoded_parts() {
    let (_dir, _, server) = seeded_server("lr");
    let out = imap_script(
        &server,
        "imap (TLS)",
        r#"
m = tls()
ok(m.login("contact@acme.example", "contact-password"))
msg = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\n"
       + base64.b64encode(b"hello\0world") + b"\r\n--b\r\nContent-Transfer-Encoding: x-unknown\r\n\r\nzzz\r\n--b--\r\n")
ok(m.append("INBOX", None, None, msg))
ok(m.select("INBOX"))
data = ok(m.fetch("1", "(BINARY.SIZE[1] BINARY.PEEK[1])"))
assert b"BINARY.SIZE[1] 11" in data[0][0] and b"~{11}" in data[0][0], data
assert data[0][1] == b"hello\0world", data
lines, tagged = raw(m, "FETCH 1 (BINARY.PEEK[2])")
assert tagged.split()[1] == "NO" and "[UNKNOWN-CTE]" in tagged, tagged
print("binary ok")
"#,
    );
    assert!(out.contains("binary ok"), "{out}");
}

/// RFC 8438 STATUS=SIZE and RFC 7889 APPENDLIMIT.
#[test]
fn status_size_and_appendlimit() {
    let (_dir, _, server) = seeded_server("lr");
    let out = imap_script(
        &server,
        "imap (TLS)",
        r#"
m = tls()
caps = ok(m.capability())[0].decode().split()
assert "STATUS=SIZE" in caps and "APPENDLIMIT=52428800" in caps, caps
ok(m.login("contact@acme.example", "contact-password"))
for body in (b"Subject: a\r\n\r\n12345\r\n", b"Subject: bb\r\n\r\n1\r\n"):
    ok(m.append("INBOX", None, None, body))
data = ok(m.status("INBOX", "(MESSAGES SIZE)"))
assert b"SIZE 39" in data[0] and b"MESSAGES 2" in data[0], data
print("status ok")
"#,
    );
    assert!(out.contains("status ok"), "{out}");
}

/// RFC 5256 SORT by base subject (reply and forward markers left out, ties in folder order)
/// and by reverse date; RFC 5957 DISPLAYFROM; RFC 5267 ESORT.
#[test]
fn sort_by_subject_date_and_display_name() {
    let (_dir, _, server) = seeded_server("lr");
    let out = imap_script(
        &server,
        "imap (TLS)",
        r#"
m = tls()
ok(m.login("contact@acme.example", "contact-password"))
for subject, date, sender in [
    ("Re: beta", "Mon, 1 Jan 2024 10:00:00 +0000", "Zoe <z@x.example>"),
    ("alpha", "Mon, 1 Jan 2024 09:00:00 +0000", "b@x.example"),
    ("[list] Fwd: Beta", "Mon, 1 Jan 2024 12:00:00 +0200", "Anna <y@x.example>"),
    ("_", "Tue, 2 Jan 2024 10:00:00 +0000", "a@x.example"),
]:
    msg = f"Subject: {subject}\r\nDate: {date}\r\nFrom: {sender}\r\n\r\nx\r\n".encode()
    ok(m.append("INBOX", None, None, msg))
ok(m.select("INBOX"))
assert ok(m.sort("(SUBJECT)", "UTF-8", "ALL")) == [b"2 1 3 4"]
assert ok(m.sort("(REVERSE DATE)", "UTF-8", "ALL")) == [b"4 1 3 2"]
assert ok(m.sort("(DISPLAYFROM)", "UTF-8", "ALL")) == [b"4 3 2 1"]
typ, data = m.uid("SORT", "(SIZE)", "UTF-8", "SUBJECT", "beta")
assert typ == "OK" and data[0].split() == [b"1", b"3"], data
lines, tagged = raw(m, "SORT RETURN (MIN MAX COUNT) (SUBJECT) UTF-8 ALL")
assert lines[0].endswith("MIN 2 MAX 4 COUNT 4"), lines
lines, tagged = raw(m, "SORT (COLOUR) UTF-8 ALL")
assert tagged.split()[1] == "BAD", tagged
print("sort ok")
"#,
    );
    assert!(out.contains("sort ok"), "{out}");
}

/// RFC 5256 §4: THREAD=REFERENCES follows References and In-Reply-To; ORDEREDSUBJECT
/// groups by base subject.
#[test]
fn thread_by_references_and_by_subject() {
    let (_dir, _, server) = seeded_server("lr");
    let out = imap_script(
        &server,
        "imap (TLS)",
        r#"
m = tls()
ok(m.login("contact@acme.example", "contact-password"))
for subject, mid, refs, day in [
    ("plans", "<a@x>", "", 1),
    ("Re: plans", "<b@x>", "In-Reply-To: <a@x>\r\n", 2),
    ("lunch", "<c@x>", "", 3),
    ("Re: plans", "<d@x>", "References: <a@x> <b@x>\r\n", 4),
]:
    msg = f"Subject: {subject}\r\nMessage-ID: {mid}\r\n{refs}Date: Mon, {day} Jan 2024 10:00:00 +0000\r\n\r\nx\r\n"
    ok(m.append("INBOX", None, None, msg.encode()))
ok(m.select("INBOX"))
assert ok(m.thread("REFERENCES", "UTF-8", "ALL")) == [b"(1 2 4)(3)"]
assert ok(m.thread("ORDEREDSUBJECT", "UTF-8", "ALL")) == [b"(1 (2)(4))(3)"]
typ, data = m.uid("THREAD", "REFERENCES", "UTF-8", "SUBJECT", "plans")
assert typ == "OK" and data == [b"(1 2 4)"], data
print("thread ok")
"#,
    );
    assert!(out.contains("thread ok"), "{out}");
}
