"""Thunderbird (Debian's ESR, headless) against mailgate, through Marionette: the accounts
staff use — a mailbox's own login, a user with a granted mailbox under Shared/, and the
delegated login `mailbox*user` — each discovering its folders, reading, flagging, moving and
sending, checked on the server with imaplib.

    python3 driver.py IMAP_PORT SUBMISSION_PORT

Run by tests/thunderbird.rs against a seeded server (plaintext allowed on loopback)."""
import imaplib, os, shutil, socket, subprocess, sys, tempfile, time
try:
    from marionette_driver.marionette import Marionette
except ImportError:
    sys.exit("the Marionette client is missing: pip install marionette-driver==3.7.1 (.ci/run does)")

IMAP, SUBMISSION = int(sys.argv[1]), int(sys.argv[2])
HERE = os.path.dirname(os.path.abspath(__file__))
CONTACT, CONTACT_PW = "contact@acme.example", "contact-password"
LUCIE, LUCIE_PW = "lucie@gmail.example", "lucie-password"
SHARED = "Shared/contact@acme.example"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server(user=CONTACT, password=CONTACT_PW):
    m = imaplib.IMAP4("127.0.0.1", IMAP)
    m.login(user, password)
    return m


def subjects(m, folder, criteria="ALL"):
    m.select(f'"{folder}"', readonly=True)
    found = []
    for num in m.search(None, criteria)[1][0].split():
        data = m.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1][0][1]
        found.append(data.decode().strip().removeprefix("Subject: "))
    return sorted(found)


def wait_for(what, check):
    """Thunderbird's writes (a STORE, a COPY) may land just after its listener returns."""
    for _ in range(120):
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"never happened: {what}")


def start_thunderbird(profile, port):
    with open(os.path.join(profile, "user.js"), "w") as f:
        f.write(f'user_pref("marionette.port", {port});\n'
                'user_pref("mail.shell.checkDefaultClient", false);\n')
    log = open(os.path.join(profile, "thunderbird.log"), "w")
    return subprocess.Popen(["thunderbird", "--headless", "--marionette", "-remote-allow-system-access",
                             "--no-remote", "--profile", profile], stdout=log, stderr=subprocess.STDOUT)


class Thunderbird:
    def __init__(self, client):
        self.c = client
        self.c.execute_script(open(os.path.join(HERE, "mg.js")).read(), new_sandbox=False)

    def __getattr__(self, action):
        def call(*args):
            result = self.c.execute_async_script(
                f"let done = arguments[arguments.length - 1];"
                f"Promise.resolve().then(() => mg.{action}(...Array.from(arguments).slice(0, -1)))"
                f".then(done, e => done('ERROR ' + e));",
                script_args=list(args), new_sandbox=False, script_timeout=120000)
            assert not (isinstance(result, str) and result.startswith("ERROR")), (action, args, result)
            return result
        return call


def mailbox_login(tb):
    key = tb.addAccount(CONTACT, IMAP, CONTACT_PW, SUBMISSION)
    folders = tb.discover(key)
    for name in ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"]:
        assert name in folders, folders
    assert tb.update(key, "INBOX") == ["hello 0", "hello 1", "hello 2"]
    tb.flag(key, "INBOX", "hello 1")
    m = server()
    wait_for("hello 1 flagged", lambda: subjects(m, "INBOX", "FLAGGED") == ["hello 1"])
    tb.move(key, "INBOX", "hello 2", "Archive")
    wait_for("hello 2 in Archive", lambda: subjects(m, "Archive") == ["hello 2"])
    assert subjects(m, "INBOX") == ["hello 0", "hello 1"]
    tb.update(key, "Sent")
    tb.send(key, "hello@acme.example", "from the mailbox")
    wait_for("the sent copy in Sent", lambda: subjects(m, "Sent") == ["from the mailbox"])
    wait_for("delivered through the alias", lambda: "from the mailbox" in subjects(m, "INBOX"))
    m.logout()


def user_login(tb):
    key = tb.addAccount(LUCIE, IMAP, LUCIE_PW, SUBMISSION)
    folders = tb.discover(key)
    assert f"{SHARED}/INBOX" in folders and f"{SHARED}/Sent" in folders, folders
    seen = tb.update(key, f"{SHARED}/INBOX")
    assert seen == ["from the mailbox", "hello 0", "hello 1"], seen
    tb.flag(key, f"{SHARED}/INBOX", "hello 0")
    m = server()
    wait_for("hello 0 flagged", lambda: subjects(m, "INBOX", "FLAGGED") == ["hello 0", "hello 1"])
    m.logout()


def delegated_login(tb):
    key = tb.addAccount(f"{CONTACT}*{LUCIE}", IMAP, LUCIE_PW, SUBMISSION)
    folders = tb.discover(key)
    for name in ["INBOX", "Sent", "Drafts", "Archive"]:
        assert name in folders, folders
    assert tb.update(key, "INBOX") == ["from the mailbox", "hello 0", "hello 1"]
    tb.move(key, "INBOX", "hello 0", "Archive")
    m = server()
    wait_for("hello 0 in Archive", lambda: subjects(m, "Archive") == ["hello 0", "hello 2"])
    tb.update(key, "Sent")
    tb.send(key, "hello@acme.example", "from the delegate")
    wait_for("the delegate's copy in Sent",
             lambda: subjects(m, "Sent") == ["from the delegate", "from the mailbox"])
    m.logout()


def main():
    m = server()
    for i in range(3):
        msg = f"From: a@b.example\r\nSubject: hello {i}\r\nMessage-ID: <{i}@b.example>\r\n\r\nbody {i}\r\n"
        m.append("INBOX", None, None, msg.encode())
    m.logout()
    profile = tempfile.mkdtemp(prefix="mailgate-thunderbird-")
    port = free_port()
    process = start_thunderbird(profile, port)
    try:
        client = Marionette(host="127.0.0.1", port=port, startup_timeout=120)
        client.start_session()
        client.set_context(client.CONTEXT_CHROME)
        tb = Thunderbird(client)
        mailbox_login(tb)
        user_login(tb)
        delegated_login(tb)
        client.delete_session()
        print("done")
    except Exception:
        sys.stderr.write(open(os.path.join(profile, "thunderbird.log")).read()[-3000:])
        raise
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(profile, ignore_errors=True)


main()
