#!/usr/bin/env python3
"""Disk use of the store over a long run with a steady set of live mail (issue 10): does sled's
database stay within 2x of what it holds, and does it give space back when idle or after a
restart?

    python3 bench/soak.py [--minutes 180] [--idle-minutes 10] [--mailboxes 50] [--keep 66]

Starts target/release/mailgate (needs a release build) on loopback with its own data
directory, makes `--mailboxes` mailboxes, then for `--minutes`: one IMAP client per 10
mailboxes APPENDs 5-20 KiB messages, flags some \\Seen and \\Flagged, and expunges the oldest
beyond `--keep` per mailbox (50 x 66 = 3,300 live messages, as in the issue's run), while an
SMTP client delivers 20 messages a second to random mailboxes. Then it stays idle for
`--idle-minutes`, restarts the server and measures once more. Every minute it prints the size
of data/db (sled), of data/blobs (message files), the live messages and their bytes, and the
server's RSS. The goal: disk (db + blobs) within 2x of the live messages' bytes. The run is bounded in time and talks to 127.0.0.1 only."""
import argparse, imaplib, os, random, shutil, smtplib, ssl, subprocess, sys, tempfile, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import api, owner_org, rss_kib, start_server, stop

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--minutes", type=float, default=180)
parser.add_argument("--idle-minutes", type=float, default=10)
parser.add_argument("--mailboxes", type=int, default=50)
parser.add_argument("--keep", type=int, default=66, help="live messages per mailbox")
parser.add_argument("--smtp-rate", type=float, default=20, help="SMTP deliveries a second")
parser.add_argument("--store-mode", default="high_throughput", help="[store] mode: high_throughput or low_space")
ARGS = parser.parse_args()
PASSWORD = "soak-password-1"

def config():
    return ('hostname = "bench.test"\n[imap]\nlisten = []\nlisten_tls = ["127.0.0.1:0"]\n'
            '[smtp]\nlisten = ["127.0.0.1:0"]\n[submission]\nlisten = []\nlisten_tls = []\n'
            '[admin]\nlisten = ["127.0.0.1:0"]\nverify_domains = false\n[limits]\nmax_connections = 500\n'
            f'max_connections_per_client = 500\n[store]\nmode = "{ARGS.store_mode}"\n')

def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total

def imap(ports):
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    return imaplib.IMAP4_SSL("127.0.0.1", ports["imap (TLS)"], ssl_context=ctx)

def body(n):
    size = random.randint(5, 20) * 1024
    return (b"Subject: soak %d\r\nMessage-ID: <%d.%f@bench.test>\r\n\r\n" % (n, n, time.time())
            + (b"s" * 78 + b"\r\n") * (size // 80))

def imap_worker(ports, addresses, stop, counts):
    n = 0
    while not stop.is_set():
        try:
            m = imap(ports)
            m.login(random.choice(addresses), PASSWORD)
            for _ in range(5):
                m.append("INBOX", None, None, body(n)); n += 1
            typ, data = m.select("INBOX")
            exists = int(data[0])
            if exists:
                m.store(f"{random.randint(1, exists)}", "+FLAGS", "(\\Seen)")
                m.store(f"{random.randint(1, exists)}", "+FLAGS", "(\\Flagged)")
            if exists > ARGS.keep:
                m.store(f"1:{exists - ARGS.keep}", "+FLAGS.SILENT", "(\\Deleted)")
                m.expunge()
            m.logout()
            counts["imap"] += 5
            time.sleep(0.2)  # a steady load, not a flood
        except Exception:  # a dropped connection: start again
            counts["imap errors"] += 1
            time.sleep(0.5)

def smtp_worker(ports, addresses, stop, counts):
    s = None
    n = 0
    while not stop.is_set():
        started = time.time()
        try:
            if s is None:
                s = smtplib.SMTP("127.0.0.1", ports["smtp (STARTTLS)"], timeout=60)
            s.sendmail("sender@remote.example", [random.choice(addresses)], body(n)); n += 1
            counts["smtp"] += 1
        except Exception:
            counts["smtp errors"] += 1
            s = None
        time.sleep(max(0, 1 / ARGS.smtp_rate - (time.time() - started)))

def live(ports, addresses):
    count = size = 0
    m = imap(ports)
    for address in addresses:
        m2 = imap(ports); m2.login(address, PASSWORD)
        typ, data = m2.select("INBOX", readonly=True)
        exists = int(data[0])
        if exists:
            typ, sizes = m2.fetch("1:*", "(RFC822.SIZE)")
            for line in sizes:
                text = line.decode() if isinstance(line, bytes) else line[0].decode()
                # Other sessions' flag changes come as unsolicited FETCH lines: skip them.
                if "RFC822.SIZE " in text:
                    size += int(text.rsplit("RFC822.SIZE ", 1)[1].split(")")[0].split()[0])
        count += exists
        m2.logout()
    m.logout()
    return count, size

def sample(label, t, proc, data, ports, addresses):
    messages, size = live(ports, addresses)
    db, blobs = du(os.path.join(data, "db")), du(os.path.join(data, "blobs"))
    print(f"{label:>8} t={t:7.1f} min  db {db / 2**20:8.1f} MiB  blobs {blobs / 2**20:8.1f} MiB  "
          f"live {messages:5d} messages {size / 2**20:7.1f} MiB  disk/live {(db + blobs) / max(size, 1):5.2f}  "
          f"RSS {rss_kib(proc.pid) / 1024:6.1f} MiB", flush=True)
    return db + blobs, size

def main():
    workdir = tempfile.mkdtemp()
    data = os.path.join(workdir, "data")
    proc, ports, password = start_server(workdir, config_text=config())
    try:
        admin = ports["admin (HTTP)"]
        token, org = owner_org(admin, password, "bench.test")
        addresses = [f"soak{i}@bench.test" for i in range(ARGS.mailboxes)]
        for a in addresses:
            api(admin, "POST", f"/orgs/{org}/mailboxes", token, {"address": a, "password": PASSWORD})
        stopping, counts = threading.Event(), {"imap": 0, "smtp": 0, "imap errors": 0, "smtp errors": 0}
        workers = [threading.Thread(target=imap_worker, args=(ports, addresses, stopping, counts))
                   for _ in range(max(1, ARGS.mailboxes // 10))]
        workers.append(threading.Thread(target=smtp_worker, args=(ports, addresses, stopping, counts)))
        for w in workers:
            w.start()
        started = time.time()
        peak = 0
        while time.time() - started < ARGS.minutes * 60:
            time.sleep(min(60, max(1, ARGS.minutes * 60 - (time.time() - started))))
            db, _ = sample("load", (time.time() - started) / 60, proc, data, ports, addresses)
            peak = max(peak, db)
        stopping.set()
        for w in workers:
            w.join()
        print(f"delivered: {counts}", flush=True)
        idle_started = time.time()
        while time.time() - idle_started < ARGS.idle_minutes * 60:
            time.sleep(min(60, ARGS.idle_minutes * 60))
            sample("idle", (time.time() - started) / 60, proc, data, ports, addresses)
        proc.terminate(); proc.wait(timeout=60)
        proc, ports, _ = start_server(workdir, config_text=config())
        time.sleep(5)
        db, size = sample("restart", (time.time() - started) / 60, proc, data, ports, addresses)
        print(f"\ndisk (db + blobs) peak {peak / 2**20:.1f} MiB, after the restart {db / 2**20:.1f} MiB, "
              f"live message bytes {size / 2**20:.1f} MiB; goal disk within 2x of live: "
              f"{'PASS' if peak <= 2 * size else 'FAIL'} (peak {peak / max(size, 1):.2f}x, "
              f"after the restart {db / max(size, 1):.2f}x)")
    finally:
        stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)

main()
