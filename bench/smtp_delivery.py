#!/usr/bin/env python3
"""Accepted-and-durable messages per second over SMTP (issue 4): Postfix's smtp-source sends
N messages of 10 KiB over 20 parallel connections to mailgate's inbound port, once to a
mailbox and once to an alias; with --postfix, the same load goes to a local Postfix that
delivers to virtual Maildirs (bench/postfix_setup.sh prepares it).

    python3 bench/smtp_delivery.py [N]            (default 5000; needs a release build)
    python3 bench/smtp_delivery.py [N] --postfix  (Postfix on 127.0.0.1:25)"""
import os, shutil, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import start_server, seed, api

N = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 5000
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"

def load(port, recipient):
    started = time.time()
    subprocess.run([SMTP_SOURCE, "-s", "20", "-l", "10240", "-m", str(N), "-c",
                    "-f", "load@remote.test", "-t", recipient, f"127.0.0.1:{port}"],
                   check=True, stdout=subprocess.DEVNULL)
    return time.time() - started

def count_maildir(path):
    return sum(len(files) for _, _, files in os.walk(path))

if "--postfix" in sys.argv:
    before = count_maildir("/var/mail/vhosts")
    for recipient in ["box@bench.test", "alias@bench.test"]:
        elapsed = load(25, recipient)
        print(f"postfix {recipient}: {N} messages in {elapsed:.1f} s = {N / elapsed:.0f} accepted/s")
    # Postfix answers 250 once the message is in its queue; wait for the Maildirs too.
    deadline = time.time() + 600
    while count_maildir("/var/mail/vhosts") < before + 2 * N and time.time() < deadline:
        time.sleep(0.5)
    print(f"postfix: {count_maildir('/var/mail/vhosts') - before} messages in the Maildirs")
    sys.exit(0)

workdir = tempfile.mkdtemp()
proc, ports, password = start_server(workdir, smtp=True)
try:
    admin = ports["admin (HTTP)"]
    token, org = seed(admin, password)
    mailbox = api(admin, "GET", f"/orgs/{org}/mailboxes", token)["items"][0]["id"]
    api(admin, "POST", f"/orgs/{org}/aliases", token, {"address": "alias@bench.test", "mailbox_id": mailbox})
    for recipient in ["box@bench.test", "alias@bench.test"]:
        elapsed = load(ports["smtp (STARTTLS)"], recipient)
        print(f"mailgate {recipient}: {N} messages in {elapsed:.1f} s = {N / elapsed:.0f} accepted and durable/s")
finally:
    proc.terminate()
    proc.wait()
    shutil.rmtree(workdir, ignore_errors=True)
