#!/usr/bin/env python3
"""N hostile connections against one well-behaved client from the same address (issue 10):
the server's resident memory throughout, the good client's latencies, and whether every
message it delivered arrived. Goals: RSS under 256 MiB, p99 under 500 ms, nothing lost.

    python3 bench/hostile_load.py [N] [--seconds S]    (default 1000 and 120; needs a release build)

Starts target/release/mailgate on loopback with its own data directory (connection caps
raised above N, plaintext passwords allowed from loopback, every other limit at its
default), seeds 50 mailboxes the attackers guess passwords for, box@bench.test (the good
client's, with a few messages delivered by SMTP first) and append@bench.test (the APPEND
attackers'). Then, all from 127.0.0.1, in equal fifths of N:
  a. wrong-password storms: IMAP LOGIN / AUTHENTICATE PLAIN and SMTP AUTH PLAIN
     (submission) against the 50 addresses, again after every disconnection;
  b. SMTP inbound transactions that send 40 MiB after DATA but never the final dot, then wait;
  c. IMAP sessions, logged in, that APPEND a 40 MiB literal ({n} after the "+", and {n+})
     but leave out its last 16 bytes, then wait;
  d. slowloris: one byte every 10 s of an IMAP or SMTP command;
  e. idle connections that never log in (IMAP, IMAPS without a handshake, SMTP, submission).
Hostile connections are plain TCP; the server may refuse or drop them, and they reconnect.
Meanwhile the good client loops: IMAPS connect, LOGIN, SELECT INBOX, FETCH 1:* (FLAGS
ENVELOPE), FETCH of the newest BODY[], LOGOUT; then one SMTP delivery (STARTTLS) of a unique
message to box@bench.test. A refusal or a timeout counts as a failure. Server RSS is read
from /proc every 0.5 s; the run stops early if it passes --abort-rss-mib (default 4096).
Exit status 0 whatever the outcome; the report says PASS or FAIL for each goal."""
import argparse, asyncio, base64, collections, math, os, random, re, resource, shutil
import signal, ssl, subprocess, sys, tempfile, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import api, rss_kib, seed, start_server

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("N", type=int, nargs="?", default=1000, help="hostile connections (default 1000)")
parser.add_argument("--seconds", type=float, default=120, help="duration of the attack (default 120)")
parser.add_argument("--warmup", type=float, default=5, help="good client alone first (default 5 s)")
parser.add_argument("--ramp", type=float, default=10, help="hostile connections open over this long (default 10 s)")
parser.add_argument("--abort-rss-mib", type=float, default=4096, help="stop the run beyond this server RSS (default 4096)")
ARGS = parser.parse_args()

HOST = "127.0.0.1"
BODY_BYTES = 40 * 1024 * 1024          # the 40 MiB of DATA and of the APPEND literal
HELD_BACK = 16                         # the APPEND literal's bytes never sent
TARGETS = [f"target{i:02d}@bench.test" for i in range(50)]
GOOD, GOOD_PASSWORD = "box@bench.test", "bench-password"
APPENDER, APPENDER_PASSWORD = "append@bench.test", "append-password"
RSS_GOAL_MIB, P99_GOAL_MS = 256, 500
OP_TIMEOUT = 60                        # one operation of the good client, at most
REPLY_TIMEOUT = 120                    # one answer to a hostile client, at most (login penalties)
SEEDED_MESSAGES = 5

# One reusable megabyte of message lines: bodies are streamed from it, never built whole.
LINE = b"x" * 78 + b"\r\n"
BLOB = memoryview(LINE * (1024 * 1024 // len(LINE)))
PIECE = 256 * 1024                     # written at a time: what a connection may buffer here
RUN = f"{os.getpid()}.{int(time.time())}"
LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")

def now():
    return time.monotonic()

class Refused(Exception):
    """The server answered no (or BYE/421) where the client wanted to go on."""

# ----- the hostile side -----

class Hostile:
    def __init__(self):
        self.events = collections.Counter()          # (kind, event) -> count
        self.replies = collections.defaultdict(collections.Counter)  # kind -> refusal texts
        self.open = 0                                # connections open now
        self.writers = set()                         # their streams, to cut them at the end
        self.stopping = False
        self.body_bytes = 0                          # bytes of DATA and literals sent

    def count(self, kind, event, n=1):
        self.events[kind, event] += n

    def refusal(self, kind, text):
        self.count(kind, "refused in session")
        self.replies[kind][text.strip()[:70]] += 1

HOSTILE = Hostile()

async def connect(kind, port, greeting=True):
    """A hostile connection, or None when refused (connect error, BYE/421, no greeting)."""
    HOSTILE.count(kind, "attempts")
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port, limit=1 << 20), 15)
    except (OSError, asyncio.TimeoutError):
        HOSTILE.count(kind, "refused at connect")
        return None
    if greeting:
        try:
            line = await asyncio.wait_for(r.readline(), 15)
        except (OSError, asyncio.TimeoutError, ValueError):
            line = b""
        if not line or line.startswith((b"* BYE", b"421", b"5")):
            HOSTILE.count(kind, "refused at greeting")
            if line:
                HOSTILE.replies[kind][line.decode(errors="replace").strip()[:70]] += 1
            w.close()
            return None
    HOSTILE.count(kind, "established")
    return r, w

async def imap_reply(r, tag, timeout=REPLY_TIMEOUT, want_continuation=False):
    """Reads to the tagged answer (or a "+" when asked); returns (ok, everything read)."""
    tagged = tag.encode() + b" "
    read = []
    async def go():
        while True:
            line = await r.readline()
            if not line:
                raise EOFError("connection closed")
            start = line
            read.append(line)
            while m := LITERAL.search(line):
                read.append(await r.readexactly(int(m.group(1))))
                line = await r.readline()
                if not line:
                    raise EOFError("connection closed")
                read.append(line)
            if want_continuation and start.startswith(b"+"):
                return True
            if start.startswith(tagged):
                return start[len(tagged):].startswith(b"OK")
    ok = await asyncio.wait_for(go(), timeout)
    return ok, b"".join(read)

async def smtp_reply(r, timeout=REPLY_TIMEOUT):
    """Reads one (multiline) SMTP reply; returns (code, last line)."""
    async def go():
        while True:
            line = await r.readline()
            if not line:
                raise EOFError("connection closed")
            if line[3:4] != b"-":
                return int(line[:3]) if line[:3].isdigit() else 0, line.decode(errors="replace")
    return await asyncio.wait_for(go(), timeout)

async def smtp_expect(kind, r, w, command, code):
    if command:
        w.write(command)
        await w.drain()
    got, line = await smtp_reply(r)
    if got != code:
        HOSTILE.refusal(kind, line)
        raise Refused(line)

async def send_body(w, n, head=b""):
    """n bytes (head, then message lines) from the shared buffer."""
    w.write(head)
    sent = len(head)
    HOSTILE.body_bytes += len(head)
    while sent < n:
        if HOSTILE.stopping:
            raise EOFError("the run is over")
        piece = BLOB[:min(PIECE, n - sent)]
        w.write(piece)
        await w.drain()
        sent += len(piece)
        HOSTILE.body_bytes += len(piece)

async def hold(r):
    """Waits, reading whatever the server says, until it closes the connection."""
    while await r.read(65536):
        pass
    raise EOFError("connection closed")

def b64(text):
    return base64.b64encode(text.encode()).decode()

async def imap_storm(kind, r, w, i):
    for n in range(10**6):
        target, tag = TARGETS[(i + n) % len(TARGETS)], f"s{n}"
        if n % 2:
            w.write(f"{tag} LOGIN {target} wrong-{i}-{n}\r\n".encode())
        else:
            w.write(f"{tag} AUTHENTICATE PLAIN {b64(chr(0) + target + chr(0) + f'wrong-{i}-{n}')}\r\n".encode())
        await w.drain()
        ok, text = await imap_reply(r, tag)
        HOSTILE.count(kind, "logins accepted (!)" if ok else "logins refused")

async def smtp_storm(kind, r, w, i):
    await smtp_expect(kind, r, w, b"EHLO storm.attacker.test\r\n", 250)
    for n in range(10**6):
        target = TARGETS[(i + n) % len(TARGETS)]
        w.write(f"AUTH PLAIN {b64(chr(0) + target + chr(0) + f'wrong-{i}-{n}')}\r\n".encode())
        await w.drain()
        code, line = await smtp_reply(r)
        HOSTILE.count(kind, "logins accepted (!)" if code == 235 else "logins refused")
        if code == 421:
            raise EOFError(line)

async def smtp_half_data(kind, r, w, i):
    await smtp_expect(kind, r, w, b"EHLO flood.attacker.test\r\n", 250)
    await smtp_expect(kind, r, w, f"MAIL FROM:<flood{i}@attacker.test> SIZE={BODY_BYTES}\r\n".encode(), 250)
    await smtp_expect(kind, r, w, f"RCPT TO:<{TARGETS[i % len(TARGETS)]}>\r\n".encode(), 250)
    await smtp_expect(kind, r, w, b"DATA\r\n", 354)
    head = f"From: flood{i}@attacker.test\r\nSubject: 40 MiB, no end\r\n\r\n".encode()
    await send_body(w, BODY_BYTES, head)
    HOSTILE.count(kind, "40 MiB sent, held")
    await hold(r)

async def imap_half_append(kind, r, w, i, plus):
    w.write(f"a LOGIN {APPENDER} {APPENDER_PASSWORD}\r\n".encode())
    await w.drain()
    ok, text = await imap_reply(r, "a")
    if not ok:
        HOSTILE.refusal(kind, text.splitlines()[-1].decode(errors="replace"))
        raise Refused("login")
    HOSTILE.count(kind, "logged in")
    if plus:
        w.write(f"b APPEND INBOX {{{BODY_BYTES}+}}\r\n".encode())
    else:
        w.write(f"b APPEND INBOX {{{BODY_BYTES}}}\r\n".encode())
        await w.drain()
        ok, text = await imap_reply(r, "b", want_continuation=True)
        if not ok:
            HOSTILE.refusal(kind, text.splitlines()[-1].decode(errors="replace"))
            raise Refused("append")
    head = f"From: big{i}@attacker.test\r\nSubject: 40 MiB, not all\r\n\r\n".encode()
    await send_body(w, BODY_BYTES - HELD_BACK, head)
    HOSTILE.count(kind, "40 MiB - 16 sent, held")
    await hold(r)

async def slowloris(kind, r, w, i, command):
    await asyncio.sleep(random.uniform(0, 10))
    for n in range(10**6):
        w.write(command[n % len(command):][:1])
        await w.drain()
        HOSTILE.count(kind, "bytes sent")
        try:
            if not await asyncio.wait_for(r.read(4096), 10):
                raise EOFError("connection closed")
        except asyncio.TimeoutError:
            pass

async def hostile_task(kind, port, start_at, deadline, work, greeting=True):
    await asyncio.sleep(max(0, start_at - now()))
    while now() < deadline and not HOSTILE.stopping:
        conn = await connect(kind, port, greeting)
        if conn is None:
            await asyncio.sleep(random.uniform(0.5, 1.5))
            continue
        r, w = conn
        HOSTILE.open += 1
        HOSTILE.writers.add(w)
        try:
            await work(r, w)
            HOSTILE.count(kind, "ended by the client")
        except (OSError, EOFError, asyncio.IncompleteReadError):
            HOSTILE.count(kind, "closed by the server")
        except asyncio.TimeoutError:
            HOSTILE.count(kind, "no answer in 120 s")
        except Refused:
            pass
        except Exception as e:   # never let one task die silently
            HOSTILE.count(kind, f"client error {type(e).__name__}")
        finally:
            HOSTILE.open -= 1
            HOSTILE.writers.discard(w)
            w.close()
        await asyncio.sleep(random.uniform(0.5, 1.5))

def hostile_tasks(ports, start, deadline):
    imap, smtp, sub = ports["imap (STARTTLS)"], ports["smtp (STARTTLS)"], ports["submission (STARTTLS)"]
    idle_ports = [("idle imap", imap, True), ("idle imaps (no TLS)", ports["imap (TLS)"], False),
                  ("idle smtp", smtp, True), ("idle submission", sub, True)]
    tasks = []
    for i in range(ARGS.N):
        later = start + 2 + random.uniform(0, max(0, ARGS.ramp - 2))
        match i % 10:
            case 0: spec = ("a. imap login storm", imap, later, lambda r, w, i=i: imap_storm("a. imap login storm", r, w, i))
            case 1: spec = ("a. smtp auth storm", sub, later, lambda r, w, i=i: smtp_storm("a. smtp auth storm", r, w, i))
            case 2 | 3: spec = ("b. smtp half DATA", smtp, later, lambda r, w, i=i: smtp_half_data("b. smtp half DATA", r, w, i))
            # The APPEND sessions log in first, before the password storm makes logins wait.
            case 4: spec = ("c. imap half APPEND {n}", imap, start + random.uniform(0, 1),
                            lambda r, w, i=i: imap_half_append("c. imap half APPEND {n}", r, w, i, False))
            case 5: spec = ("c. imap half APPEND {n+}", imap, start + random.uniform(0, 1),
                            lambda r, w, i=i: imap_half_append("c. imap half APPEND {n+}", r, w, i, True))
            case 6: spec = ("d. slowloris imap", imap, later,
                            lambda r, w, i=i: slowloris("d. slowloris imap", r, w, i, b"a LOGIN target00@bench.test wrong\r\n"))
            case 7: spec = ("d. slowloris smtp", smtp, later,
                            lambda r, w, i=i: slowloris("d. slowloris smtp", r, w, i, b"EHLO slow.attacker.test\r\n"))
            case _:
                name, port, greeting = idle_ports[(i // 10 + i % 2) % len(idle_ports)]
                tasks.append(asyncio.create_task(hostile_task("e. " + name, port, later, deadline, lambda r, w: hold(r), greeting)))
                continue
        kind, port, at, work = spec
        tasks.append(asyncio.create_task(hostile_task(kind, port, at, deadline, work)))
    return tasks

# ----- the well-behaved client -----

class Good:
    def __init__(self):
        self.ops = []                        # (started, op, seconds)
        self.failures = []                   # (started, op, why)
        self.delivered = []                  # Message-IDs answered 250

GOOD_CLIENT = Good()

async def timed(op, coro):
    started = now()
    try:
        result = await asyncio.wait_for(coro, OP_TIMEOUT)
    except Exception as e:
        why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        GOOD_CLIENT.failures.append((started, op, why[:100]))
        raise Refused(op) from e
    GOOD_CLIENT.ops.append((started, op, now() - started))
    return result

async def imap_command(r, w, tag, command):
    w.write(f"{tag} {command}\r\n".encode())
    await w.drain()
    ok, text = await imap_reply(r, tag, timeout=OP_TIMEOUT)
    if not ok:
        raise Refused(text.splitlines()[-1].decode(errors="replace") if text else "no answer")
    return text

async def imap_open(port, ctx):
    r, w = await asyncio.open_connection(HOST, port, ssl=ctx, limit=1 << 22)
    line = await r.readline()
    if not line.startswith(b"* OK"):
        w.close()
        raise Refused(line.decode(errors="replace").strip() or "closed at greeting")
    return r, w

async def imap_cycle(port, ctx):
    r, w = await timed("imap connect (TLS)", imap_open(port, ctx))
    try:
        await timed("imap LOGIN", imap_command(r, w, "g1", f"LOGIN {GOOD} {GOOD_PASSWORD}"))
        text = await timed("imap SELECT", imap_command(r, w, "g2", "SELECT INBOX"))
        exists = re.search(rb"\* (\d+) EXISTS", text)
        await timed("imap FETCH envelopes", imap_command(r, w, "g3", "FETCH 1:* (FLAGS ENVELOPE)"))
        # The newest message (the seeded ones make INBOX never empty).
        newest = exists.group(1).decode() if exists else "*"
        await timed("imap FETCH BODY[]", imap_command(r, w, "g4", f"FETCH {newest} BODY[]"))
        await timed("imap LOGOUT", imap_command(r, w, "g5", "LOGOUT"))
    finally:
        w.close()

async def smtp_delivery(port, ctx, n):
    r, w = await asyncio.open_connection(HOST, port, limit=1 << 20)
    try:
        async def expect(command, code):
            if command:
                w.write(command)
                await w.drain()
            got, line = await smtp_reply(r, OP_TIMEOUT)
            if got != code:
                raise Refused(line.strip())
        await expect(None, 220)
        await expect(b"EHLO good.sender.test\r\n", 250)
        await expect(b"STARTTLS\r\n", 220)
        await w.start_tls(ctx)
        await expect(b"EHLO good.sender.test\r\n", 250)
        await expect(b"MAIL FROM:<good@sender.test>\r\n", 250)
        await expect(f"RCPT TO:<{GOOD}>\r\n".encode(), 250)
        await expect(b"DATA\r\n", 354)
        message_id = f"<good-{n}.{RUN}@bench.test>"
        message = (f"From: good@sender.test\r\nTo: {GOOD}\r\nSubject: good {n}\r\n"
                   f"Message-ID: {message_id}\r\nDate: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n\r\n"
                   f"A well-behaved message, number {n}.\r\n" + "All is well.\r\n" * 20 + ".\r\n").encode()
        await expect(message, 250)
        GOOD_CLIENT.delivered.append(message_id)
        w.write(b"QUIT\r\n")
    finally:
        w.close()

async def good_client(ports, ctx, stop):
    for n in range(10**6):
        if stop.is_set():
            return
        try:
            await imap_cycle(ports["imap (TLS)"], ctx)
        except Refused:
            pass
        if stop.is_set():
            return
        try:
            await timed("smtp delivery (STARTTLS)", smtp_delivery(ports["smtp (STARTTLS)"], ctx, n))
        except Refused:
            pass
        await asyncio.sleep(0.1)

async def messages_in_inbox(port, ctx):
    """The Message-IDs in box@bench.test's INBOX (a login may wait out the storm's penalty)."""
    r, w = await imap_open(port, ctx)
    try:
        for tag, command in [("c1", f"LOGIN {GOOD} {GOOD_PASSWORD}"), ("c2", "EXAMINE INBOX")]:
            w.write(f"{tag} {command}\r\n".encode())
            await w.drain()
            ok, text = await imap_reply(r, tag, timeout=REPLY_TIMEOUT)
            if not ok:
                raise Refused(text.decode(errors="replace"))
        w.write(b"c3 FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])\r\n")
        await w.drain()
        ok, text = await imap_reply(r, "c3", timeout=REPLY_TIMEOUT)
        return set(m.decode() for m in re.findall(rb"(?i)Message-ID:\s*(<[^>\s]+>)", text))
    finally:
        w.close()

# ----- memory -----

class Sampler(threading.Thread):
    """Reads the server's RSS every 0.5 s, in a thread of its own so that a busy event loop
    does not delay it; past the abort limit it asks the run to stop, and past 1.5 times that
    it kills the server."""
    def __init__(self, proc, loop, abort):
        super().__init__(daemon=True)
        self.proc, self.loop, self.abort = proc, loop, abort
        self.samples = []  # (t, KiB, hostile open, body bytes sent, good ops ok, good ops failed)
        self.aborted_at = self.killed = None
        self.done = threading.Event()

    def run(self):
        limit = ARGS.abort_rss_mib * 1024
        while not self.done.is_set():
            try:
                kib = rss_kib(self.proc.pid)
            except (OSError, AttributeError):
                kib = None
            if kib is None or self.proc.poll() is not None:
                self.loop.call_soon_threadsafe(self.abort.set)
                return
            self.samples.append((now(), kib, HOSTILE.open, HOSTILE.body_bytes,
                                 len(GOOD_CLIENT.ops), len(GOOD_CLIENT.failures)))
            if kib > limit and self.aborted_at is None:
                self.aborted_at = now()
                self.loop.call_soon_threadsafe(self.abort.set)
            if kib > limit * 1.5 and self.killed is None:
                self.killed = now()
                self.proc.kill()
            self.done.wait(0.5)

# ----- the run -----

def percentile(values, p):
    values = sorted(values)
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)] if values else float("nan")

async def progress(sampler, t0, stop):
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 10)
        except asyncio.TimeoutError:
            pass
        if sampler.samples:
            t, kib, open_, body, ops, fails = sampler.samples[-1]
            print(f"  t={t - t0:5.0f} s  RSS {kib / 1024:7.1f} MiB  hostile open {open_:5d}  "
                  f"bodies sent {body / 2**20:8.0f} MiB  good ops {ops} ok, {fails} failed",
                  file=sys.stderr, flush=True)

async def stop_hostile(tasks):
    """Cuts every hostile connection and ends the tasks. Cancelling alone is not enough:
    Python 3.11's wait_for can swallow a cancellation that coincides with its answer."""
    HOSTILE.stopping = True
    pending = set(tasks)
    for _ in range(10 if pending else 0):
        for w in list(HOSTILE.writers):
            w.transport.abort()
        for task in pending:
            task.cancel()
        done, pending = await asyncio.wait(pending, timeout=3)
        if not pending:
            return
    print(f"{len(pending)} hostile tasks did not end", file=sys.stderr)

async def run(proc, ports, workdir):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    loop = asyncio.get_running_loop()
    for n in range(SEEDED_MESSAGES):
        await smtp_delivery(ports["smtp (STARTTLS)"], ctx, f"seed-{n}")
    seeded = list(GOOD_CLIENT.delivered)
    stop, abort = asyncio.Event(), asyncio.Event()
    sampler = Sampler(proc, loop, abort)
    sampler.start()
    t0 = now()
    attack_start = t0 + ARGS.warmup
    deadline = attack_start + ARGS.seconds
    print(f"good client alone for {ARGS.warmup:.0f} s, then {ARGS.N} hostile connections for "
          f"{ARGS.seconds:.0f} s (opened over {ARGS.ramp:.0f} s)", flush=True)
    good = asyncio.create_task(good_client(ports, ctx, stop))
    reporter = asyncio.create_task(progress(sampler, t0, stop))
    await asyncio.sleep(ARGS.warmup)
    hostile = hostile_tasks(ports, attack_start, deadline)
    try:
        await asyncio.wait_for(abort.wait(), max(0, deadline - now()))
    except asyncio.TimeoutError:
        pass
    ended = now()
    stop.set()
    if abort.is_set():
        good.cancel()
    # The good client finishes the operation it is in (each is bounded), under the load.
    try:
        await asyncio.wait_for(good, OP_TIMEOUT * 2 + 5)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        pass
    await stop_hostile(hostile)
    await reporter
    sampler.done.set()
    sampler.join()
    lost, check_error = None, None
    if proc.poll() is None:
        try:
            present = await asyncio.wait_for(messages_in_inbox(ports["imap (TLS)"], ctx), REPLY_TIMEOUT * 2)
            lost = [m for m in GOOD_CLIENT.delivered if m not in present]
        except Exception as e:
            check_error = f"{type(e).__name__}: {e}"[:200]
    else:
        check_error = f"the server exited with status {proc.returncode}"
    report(sampler, t0, attack_start, ended, seeded, lost, check_error, workdir)

def report(sampler, t0, attack_start, ended, seeded, lost, check_error, workdir):
    samples = sampler.samples
    attack = [s for s in samples if s[0] >= attack_start] or samples
    max_kib = max((s[1] for s in attack), default=0)
    before = [s[1] for s in samples if s[0] < attack_start]
    print(f"\n== hostile_load: N={ARGS.N}, {ended - attack_start:.0f} s of attack "
          f"(asked {ARGS.seconds:.0f} s), 127.0.0.1 only")
    if sampler.aborted_at is not None:
        print(f"ABORTED at t={sampler.aborted_at - t0:.0f} s: server RSS passed {ARGS.abort_rss_mib:.0f} MiB"
              + (" (server killed at 1.5 times that)" if sampler.killed else ""))
    print(f"\nserver RSS: {max(before, default=0) / 1024:.1f} MiB before the attack, "
          f"max {max_kib / 1024:.1f} MiB during it ({len(samples)} samples every 0.5 s)")
    print("timeline (10 s buckets; t from the start of the good client, attack from "
          f"t={attack_start - t0:.0f} s):")
    print("      t   max RSS MiB  hostile open  bodies sent MiB  good ops ok/failed  worst good op ms")
    bucket = collections.defaultdict(list)
    for s in samples:
        bucket[int((s[0] - t0) // 10)].append(s)
    prev_ops = prev_fails = 0
    for b in sorted(bucket):
        rows = bucket[b]
        lo, hi = t0 + b * 10, t0 + b * 10 + 10
        worst = max((d for st, _, d in GOOD_CLIENT.ops if lo <= st < hi), default=None)
        ops, fails = rows[-1][4], rows[-1][5]
        print(f"  {b * 10:5d}  {max(r[1] for r in rows) / 1024:11.1f}  {rows[-1][2]:12d}  "
              f"{rows[-1][3] / 2**20:15.0f}  {ops - prev_ops:9d}/{fails - prev_fails:<8d}  "
              f"{'-' if worst is None else f'{worst * 1000:.0f}':>16}")
        prev_ops, prev_fails = ops, fails

    print("\nhostile connections (counts over the run):")
    kinds = sorted({k for k, _ in HOSTILE.events})
    for kind in kinds:
        events = {e: n for (k, e), n in HOSTILE.events.items() if k == kind}
        order = ["attempts", "established", "refused at connect", "refused at greeting"]
        parts = [f"{e} {events.pop(e)}" for e in order if e in events]
        parts += [f"{e} {n}" for e, n in sorted(events.items())]
        print(f"  {kind:28s} " + ", ".join(parts))
        for text, n in HOSTILE.replies[kind].most_common(2):
            print(f"  {'':28s}   answer x{n}: {text}")
    total = lambda e: sum(n for (k, ev), n in HOSTILE.events.items() if ev == e)
    print(f"  all: {total('attempts')} attempts, {total('established')} established, "
          f"{total('refused at connect') + total('refused at greeting')} refused at connect or greeting, "
          f"{HOSTILE.body_bytes / 2**20:.0f} MiB of bodies sent")

    under = [(op, d) for st, op, d in GOOD_CLIENT.ops if st >= attack_start]
    failed = [(st, op, why) for st, op, why in GOOD_CLIENT.failures if st >= attack_start]
    base = [d for st, op, d in GOOD_CLIENT.ops if st < attack_start]
    print(f"\ngood client before the attack: {len(base)} operations, p50 "
          f"{percentile(base, 50) * 1000:.1f} ms, max {max(base, default=float('nan')) * 1000:.1f} ms")
    print("good client under attack (ms):")
    print(f"  {'operation':26s} {'count':>6s} {'failed':>6s} {'p50':>9s} {'p99':>9s} {'max':>9s}")
    ops = sorted({op for op, _ in under} | {op for _, op, _ in failed})
    worst_p99 = 0.0
    for op in ops:
        d = [x for o, x in under if o == op]
        f = sum(1 for _, o, _ in failed if o == op)
        p99 = percentile(d, 99)
        if d:
            worst_p99 = max(worst_p99, p99)
        print(f"  {op:26s} {len(d):6d} {f:6d} {percentile(d, 50) * 1000:9.1f} {p99 * 1000:9.1f} "
              f"{max(d, default=float('nan')) * 1000:9.1f}")
    alld = [d for _, d in under]
    print(f"  {'all operations':26s} {len(alld):6d} {len(failed):6d} {percentile(alld, 50) * 1000:9.1f} "
          f"{percentile(alld, 99) * 1000:9.1f} {max(alld, default=float('nan')) * 1000:9.1f}")
    for why, n in collections.Counter(f"{op}: {why}" for _, op, why in failed).most_common(5):
        print(f"  failure x{n}: {why}")

    delivered = len(GOOD_CLIENT.delivered)
    print(f"\nmessages acknowledged (250) to the good client: {delivered} "
          f"({len(seeded)} before the attack)")
    if check_error:
        print(f"  could not check the mailbox: {check_error}")
    else:
        print(f"  missing from box@bench.test's INBOX: {len(lost)}" + (f" (e.g. {lost[:3]})" if lost else ""))

    log = os.path.join(workdir, "server.log")
    levels = collections.Counter()
    with open(log, errors="replace") as f:
        for line in f:
            for level in ("ERROR", "WARN"):
                if f" {level} " in line:
                    levels[level] += 1
    print(f"\nserver log: {levels['ERROR']} ERROR, {levels['WARN']} WARN lines")

    rss_ok = max_kib < RSS_GOAL_MIB * 1024 and sampler.aborted_at is None
    p99_ok = bool(under) and worst_p99 * 1000 < P99_GOAL_MS and not failed
    lost_ok = check_error is None and not lost
    print("\ngoals:")
    print(f"  server RSS < {RSS_GOAL_MIB} MiB throughout: {'PASS' if rss_ok else 'FAIL'} (max {max_kib / 1024:.1f} MiB)")
    print(f"  good client p99 < {P99_GOAL_MS} ms for every operation, none failed: "
          f"{'PASS' if p99_ok else 'FAIL'} (worst p99 {worst_p99 * 1000:.1f} ms, {len(failed)} failed)")
    print(f"  nothing lost: {'PASS' if lost_ok else 'FAIL'} "
          f"({'not checked' if check_error else f'{len(lost)} of {delivered} missing'})")

def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, n)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

def main():
    raise_nofile(ARGS.N * 2 + 1000)
    cap = ARGS.N + 200
    config = ('hostname = "bench.test"\n'
              '[imap]\nlisten = ["127.0.0.1:0"]\nlisten_tls = ["127.0.0.1:0"]\n'
              '[smtp]\nlisten = ["127.0.0.1:0"]\n'
              '[submission]\nlisten = ["127.0.0.1:0"]\nlisten_tls = []\n'
              '[admin]\nlisten = ["127.0.0.1:0"]\nverify_domains = false\n'
              f'[limits]\nmax_connections = {cap}\nmax_connections_per_client = {cap}\n'
              'shutdown_grace_seconds = 5\n'
              '[auth]\nallow_plaintext_on_loopback = true\n')
    workdir = tempfile.mkdtemp(prefix="mailgate-hostile-")
    proc = None
    try:
        with open(os.path.join(workdir, "server.log"), "w") as log:
            proc, ports, password = start_server(workdir, ARGS.N, config_text=config, stderr=log)
        wanted = ["imap (STARTTLS)", "imap (TLS)", "smtp (STARTTLS)", "submission (STARTTLS)", "admin (HTTP)"]
        if any(k not in ports for k in wanted) or password is None:
            with open(os.path.join(workdir, "server.log"), errors="replace") as f:
                sys.exit(f"the server did not start as expected (listeners {ports}):\n{f.read()[-2000:]}")
        admin = ports["admin (HTTP)"]
        token, org = seed(admin, password)   # bench.test and box@bench.test
        for address, pw in [(APPENDER, APPENDER_PASSWORD)] + [(t, f"right-{t}") for t in TARGETS]:
            api(admin, "POST", f"/orgs/{org}/mailboxes", token, {"address": address, "password": pw})
        asyncio.run(run(proc, ports, workdir))
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)

main()
