#!/usr/bin/env python3
"""Memory of large IMAP APPENDs (issue 10): how much more than its size does the server hold
while a spooled message is stored?

    python3 bench/append_memory.py [--mib 40] [--count 3]

Starts target/release/mailgate (or $MAILGATE_BIN) on loopback, APPENDs `--count` messages of
`--mib` MiB one after another over IMAPS, and prints the server's peak RSS (VmHWM) before and
after, and the peak's growth in multiples of one message."""
import argparse, imaplib, os, re, ssl, sys, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import seed, start_server, stop

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--mib", type=int, default=40)
parser.add_argument("--count", type=int, default=3)
ARGS = parser.parse_args()

def peak_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))

with tempfile.TemporaryDirectory() as work:
    proc, ports, password = start_server(work, N=10)
    try:
        seed(ports["admin (HTTP)"], password)
        ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
        m = imaplib.IMAP4_SSL("127.0.0.1", ports["imap (TLS)"], ssl_context=ctx)
        m.login("box@bench.test", "bench-password")
        before = peak_kib(proc.pid)
        line = b"a" * 998 + b"\r\n"
        body = b"Subject: large\r\n\r\n" + line * (ARGS.mib * 1024 * 1024 // len(line))
        for n in range(ARGS.count):
            typ, data = m.append("INBOX", None, None, body)
            assert typ == "OK", data
        after = peak_kib(proc.pid)
        m.logout()
        size = len(body) / 1024
        print(f"{ARGS.count} APPENDs of {size / 1024:.1f} MiB: peak RSS {before / 1024:.1f} MiB "
              f"before, {after / 1024:.1f} MiB after: +{(after - before) / size:.2f}x one message")
    finally:
        stop(proc)
