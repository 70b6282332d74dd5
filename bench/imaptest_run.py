#!/usr/bin/env python3
"""Dovecot's imaptest against a fresh mailgate: 100 mailboxes user1..100@bench.example, then
`../shared/tools/imaptest/run.sh` (its scripted groups, its load, or both).

    IMAPTEST=/path/to/imaptest python3 bench/imaptest_run.py [--mode compliance|bench|all]
        [--binary B] [--out DIR] [--secs 30] [--clients 10] [--args "logout=0"]

Build imaptest first: IMAPTEST=$(bash ../shared/tools/imaptest/build.sh). Each failing group
leaves its log in --out (default: a temporary directory, printed). Loopback only."""
import argparse, os, shutil, subprocess, sys, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common
from common import start_server

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, "..", "..", "shared", "tools", "imaptest", "run.sh")
parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--mode", default="compliance")
parser.add_argument("--binary", default=common.BINARY)
parser.add_argument("--out")
parser.add_argument("--secs", type=int, default=30)
parser.add_argument("--clients", type=int, default=10)
parser.add_argument("--users", type=int, default=100)
parser.add_argument("--args", default="", help="extra imaptest arguments for the load")
ARGS = parser.parse_args()
PASSWORD = "imaptest-pass"
if not os.environ.get("IMAPTEST"):
    sys.exit("set IMAPTEST to the imaptest binary (bash ../shared/tools/imaptest/build.sh)")


def main():
    common.BINARY = ARGS.binary
    workdir = tempfile.mkdtemp()
    out = ARGS.out or os.path.join(workdir, "results")
    log = open(os.path.join(workdir, "server.log"), "w")
    proc, ports, password = start_server(workdir, config_text=common.IMAPTEST_CONFIG, stderr=log)
    try:
        admin = ports["admin (HTTP)"]
        common.imaptest_users(admin, password, ARGS.users, PASSWORD)
        env = dict(os.environ, MODE=ARGS.mode, BENCH_SECS=str(ARGS.secs),
                   BENCH_CLIENTS=str(ARGS.clients), BENCH_USERS=str(ARGS.users),
                   BENCH_ARGS=ARGS.args, OUT=out)
        result = subprocess.run(["bash", RUN, "127.0.0.1", str(ports["imap (STARTTLS)"]),
                                 "user%d@bench.example", PASSWORD], env=env, text=True,
                                timeout=ARGS.secs + 3600)
        print(f"results in {out}")
        sys.exit(result.returncode)
    finally:
        common.stop(proc)
        if not ARGS.out:
            print("(temporary; give --out to keep them)")

main()
