#!/usr/bin/env python3
"""APPEND of N messages of 20 KiB through one IMAP connection (imaplib, over TLS), then FETCH
of all of them back (issue 3). Every APPEND is acknowledged only once durable (fsync).

    python3 bench/append_fetch.py [N]     (default 10000; needs a release build)"""
import imaplib, os, shutil, ssl, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import start_server, seed

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
workdir = tempfile.mkdtemp()
proc, ports, password = start_server(workdir)
try:
    seed(ports["admin (HTTP)"], password)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    m = imaplib.IMAP4_SSL("127.0.0.1", ports["imap (TLS)"], ssl_context=ctx)
    # imaplib writes a literal and its line end separately; without TCP_NODELAY the client's
    # Nagle algorithm waits for the server's delayed ACK (40 ms) on every APPEND.
    import socket
    m.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    m.login("box@bench.test", "bench-password")
    body = (b"x" * 76 + b"\r\n") * 262  # about 20 KiB
    started = time.time()
    for i in range(N):
        message = b"Subject: message %d\r\nMessage-ID: <%d@bench.test>\r\n\r\n" % (i, i) + body
        typ, _ = m.append("INBOX", None, None, message)
        assert typ == "OK", (i, typ, _)
    appended = time.time() - started
    m.select("INBOX")
    started = time.time()
    typ, data = m.fetch("1:*", "(BODY.PEEK[])")
    fetched = time.time() - started
    got = sum(len(d[1]) for d in data if isinstance(d, tuple))
    print(f"APPEND {N} x {len(message)} bytes: {appended:.1f} s ({N / appended:.0f} messages/s)")
    print(f"FETCH 1:* BODY.PEEK[]: {fetched:.1f} s ({got / fetched / 1e6:.0f} MB/s, {got} bytes)")
    m.logout()
finally:
    proc.terminate()
    proc.wait()
    shutil.rmtree(workdir, ignore_errors=True)
