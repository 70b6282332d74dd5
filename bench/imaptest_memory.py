#!/usr/bin/env python3
"""Server memory under Dovecot's imaptest load (issue 10's store-cache figure): 100 mailboxes
user1..100@bench.example, then `../shared/tools/imaptest/run.sh` in bench mode with 50
clients, RSS sampled every half second.

    IMAPTEST=/path/to/imaptest python3 bench/imaptest_memory.py [--binary B] [--secs 60] [--clients 50]

Build imaptest first: IMAPTEST=$(bash ../shared/tools/imaptest/build.sh). --binary defaults to
target/release/mailgate; give an older build to compare. Loopback only, bounded in time."""
import argparse, os, shutil, subprocess, sys, tempfile, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common
from common import rss_kib, start_server

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, "..", "..", "shared", "tools", "imaptest", "run.sh")
parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--binary", default=common.BINARY)
parser.add_argument("--secs", type=int, default=60)
parser.add_argument("--clients", type=int, default=50)
parser.add_argument("--users", type=int, default=100)
ARGS = parser.parse_args()
PASSWORD = "imaptest-pass"
if not os.environ.get("IMAPTEST"):
    sys.exit("set IMAPTEST to the imaptest binary (bash ../shared/tools/imaptest/build.sh)")


def main():
    common.BINARY = ARGS.binary
    workdir = tempfile.mkdtemp()
    proc, ports, password = start_server(workdir, config_text=common.IMAPTEST_CONFIG, stderr=subprocess.DEVNULL)
    samples, finished = [], threading.Event()
    try:
        admin = ports["admin (HTTP)"]
        common.imaptest_users(admin, password, ARGS.users, PASSWORD)
        def sampler():
            while not finished.is_set():
                samples.append(rss_kib(proc.pid) / 1024)
                time.sleep(0.5)
        thread = threading.Thread(target=sampler)
        before = rss_kib(proc.pid) / 1024
        thread.start()
        env = dict(os.environ, MODE="bench", BENCH_SECS=str(ARGS.secs),
                   BENCH_CLIENTS=str(ARGS.clients), BENCH_USERS=str(ARGS.users),
                   OUT=os.path.join(workdir, "results"))
        out = subprocess.run(["bash", RUN, "127.0.0.1", str(ports["imap (STARTTLS)"]),
                              "user%d@bench.example", PASSWORD],
                             env=env, capture_output=True, text=True, timeout=ARGS.secs + 300)
        finished.set(); thread.join()
        print(out.stdout[-3000:])
        print(f"{os.path.basename(ARGS.binary)}: RSS {before:.1f} MiB before the load, "
              f"max {max(samples):.1f} MiB during it, {samples[-1]:.1f} MiB at its end "
              f"({len(samples)} samples)")
    finally:
        finished.set()
        common.stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)

main()
