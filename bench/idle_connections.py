#!/usr/bin/env python3
"""N concurrent IMAP connections over TLS, each logged in with INBOX selected and IDLE:
the server's resident memory before and after, per connection (issue 3: at most 50 KiB).

    python3 bench/idle_connections.py [N]     (default 5000; needs a release build)

Starts target/release/mailgate on loopback with its own data directory, seeds a mailbox,
opens the connections from this process, reads /proc/<pid>/status, and stops everything.
Only loopback addresses are used."""
import asyncio, os, resource, shutil, ssl, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import rss_kib, start_server, seed

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000

async def idle_connection(port, ctx, ready):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    await reader.readline()
    writer.write(b"a LOGIN box@bench.test bench-password\r\nb SELECT INBOX\r\nc IDLE\r\n")
    while not (await reader.readline()).startswith(b"+"):
        pass
    ready.append(1)
    return reader, writer

async def main():
    resource.setrlimit(resource.RLIMIT_NOFILE, (N * 2 + 1000,) * 2)
    workdir = tempfile.mkdtemp()
    proc, ports, password = start_server(workdir, N)
    try:
        seed(ports["admin (HTTP)"], password)
        port = ports["imap (TLS)"]
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        # One connection first, so that what is measured is per connection, not start-up.
        ready = []
        first = await idle_connection(port, ctx, ready)
        time.sleep(1)
        before = rss_kib(proc.pid)
        started = time.time()
        conns = []
        for i in range(0, N, 250):
            conns += await asyncio.gather(*(idle_connection(port, ctx, ready)
                                            for _ in range(min(250, N - i))))
        elapsed = time.time() - started
        time.sleep(2)
        after = rss_kib(proc.pid)
        print(f"connections idling: {len(ready) - 1} (opened in {elapsed:.1f} s)")
        print(f"server RSS: {before} KiB before, {after} KiB after")
        print(f"per idle connection: {(after - before) / N:.1f} KiB")
        for _, w in conns + [first]:
            w.close()
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)

asyncio.run(main())
