#!/usr/bin/env python3
"""Accepted-and-durable messages per second over SMTP (issue 4): Postfix's smtp-source sends
N messages of 10 KiB over 20 parallel connections to mailgate's inbound port, once to a
mailbox and once to an alias; with --postfix, the same load goes to a local Postfix that
delivers to virtual Maildirs (bench/postfix_setup.sh prepares it).

With --postgres the store is a throwaway PostgreSQL cluster on the same machine (issue 14),
and --nodes K starts K mailgate processes on its one database, the load split evenly between
them (each node's 20 connections sending N/K messages at the same time). --spread M sends
to M mailboxes instead of one (2 connections each per node, so that deliveries are not
serialised by one folder) and reports what one message costs each party: CPU time of the
mailgate nodes, of PostgreSQL and of the load generator, and the WAL written, from which
how throughput grows with nodes, and where it stops, follow.

    python3 bench/smtp_delivery.py [N]            (default 5000; needs a release build)
    python3 bench/smtp_delivery.py [N] --postgres [--nodes 2] [--spread 10] [--statements]
    python3 bench/smtp_delivery.py [N] --postfix  (Postfix on 127.0.0.1:25)"""
import os, resource, shutil, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common
from common import start_server, seed, api

N = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 5000
NODES = int(sys.argv[sys.argv.index("--nodes") + 1]) if "--nodes" in sys.argv else 1
STATEMENTS = "--statements" in sys.argv
if (STATEMENTS or "--spread" in sys.argv) and "--postgres" not in sys.argv:
    sys.exit("--statements and --spread need --postgres")
SPREAD = int(sys.argv[sys.argv.index("--spread") + 1]) if "--spread" in sys.argv else 0
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
if not os.path.exists(SMTP_SOURCE):
    sys.exit("smtp-source (Postfix's) is missing: bash bench/postfix_setup.sh installs it")

def load(ports, recipients):
    """N messages, split evenly between the nodes listening on `ports` and between
    `recipients` (20 connections per node in all)."""
    started = time.time()
    each = N // (len(ports) * len(recipients))
    sessions = str(max(1, 20 // len(recipients)))
    senders = [subprocess.Popen([SMTP_SOURCE, "-s", sessions, "-l", "10240", "-m", str(each),
                                 "-c", "-f", "load@remote.test", "-t", recipient, f"127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL)
               for port in ports for recipient in recipients]
    for sender in senders:
        if sender.wait() != 0:
            sys.exit("smtp-source failed")
    return time.time() - started, each * len(ports) * len(recipients)

def count_maildir(path):
    return sum(len(files) for _, _, files in os.walk(path))

if "--postfix" in sys.argv:
    before = count_maildir("/var/mail/vhosts")
    for recipient in ["box@bench.test", "alias@bench.test"]:
        elapsed, _ = load([25], [recipient])
        print(f"postfix {recipient}: {N} messages in {elapsed:.1f} s = {N / elapsed:.0f} accepted/s")
    # Postfix answers 250 once the message is in its queue; wait for the Maildirs too.
    deadline = time.time() + 600
    while count_maildir("/var/mail/vhosts") < before + 2 * N and time.time() < deadline:
        time.sleep(0.5)
    print(f"postfix: {count_maildir('/var/mail/vhosts') - before} messages in the Maildirs")
    sys.exit(0)

def config(store):
    return ('hostname = "bench.test"\n[imap]\nlisten = []\nlisten_tls = []\n'
            '[smtp]\nlisten = ["127.0.0.1:0"]\n[submission]\nlisten = []\nlisten_tls = []\n'
            '[admin]\nlisten = ["127.0.0.1:0"]\nverify_domains = false\n'
            '[limits]\nmax_connections = 200\nmax_connections_per_client = 200\n' + store)

def cpu_seconds(pid, children=False):
    """User and system CPU time of process `pid` (with `children`: of its waited-for children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:13] + (fields[13:15] if children else []))
    return ticks / os.sysconf("SC_CLK_TCK")

def postgres_cpu():
    """CPU time of every PostgreSQL server process, and of those that have ended."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "postgres":
                    continue
            parent = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1]
            total += cpu_seconds(pid, children=open(f"/proc/{parent}/comm").read().strip() != "postgres")
        except OSError:
            pass
    return total

def costs(procs, database):
    """(mailgate CPU, PostgreSQL CPU, load generator CPU, WAL position) now."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    wal = 0
    if database:
        lsn = common.psql(database, "SELECT pg_current_wal_lsn() - '0/0'").split()
        wal = int(float(lsn[2]))
    return (sum(cpu_seconds(p.pid) for p in procs), postgres_cpu() if database else 0.0,
            usage.ru_utime + usage.ru_stime, wal)

def report(before, after, sent, elapsed):
    node, db, source, wal = (a - b for a, b in zip(after, before))
    per = lambda seconds: seconds / sent * 1e6
    print(f"  per message: mailgate {per(node):.0f} µs CPU, PostgreSQL {per(db):.0f} µs CPU,"
          f" load generator {per(source):.0f} µs CPU, WAL {wal / sent / 1024:.1f} KiB;"
          f" machine busy {(node + db + source) / elapsed / os.cpu_count():.0%}", flush=True)

workdir = tempfile.mkdtemp()
stop_cluster, procs = None, []
try:
    store, database = "", None
    if "--postgres" in sys.argv:
        base, stop_cluster = common.postgres_cluster(
            workdir, "-c shared_preload_libraries=pg_stat_statements" if STATEMENTS else "")
        database = common.fresh_database(base, "smtp")
        store = f'[store]\npostgres_url = "{database}"\n'
    nodes = []
    for n in range(NODES):
        node_dir = os.path.join(workdir, f"node{n}")
        os.makedirs(node_dir)
        proc, ports, password = start_server(node_dir, config_text=config(store),
                                             stderr=open(os.path.join(node_dir, "log"), "w"))
        procs.append(proc)
        nodes.append((ports, password))
    admin, password = nodes[0][0]["admin (HTTP)"], nodes[0][1]
    token, org = seed(admin, password)
    mailbox = api(admin, "GET", f"/orgs/{org}/mailboxes", token)["items"][0]["id"]
    api(admin, "POST", f"/orgs/{org}/aliases", token, {"address": "alias@bench.test", "mailbox_id": mailbox})
    smtp_ports = [ports["smtp (STARTTLS)"] for ports, _ in nodes]
    what = ("PostgreSQL, " if store else "sled, ") + f"{NODES} node(s)"
    if SPREAD:
        boxes = [f"box{n}@bench.test" for n in range(1, SPREAD + 1)]
        for box in boxes:
            api(admin, "POST", f"/orgs/{org}/mailboxes", token, {"address": box, "password": "bench-password"})
        loads = [boxes]
    else:
        loads = [["box@bench.test"], ["alias@bench.test"]]
    for recipients in loads:
        if STATEMENTS:
            common.psql(database, common.STATEMENTS_RESET)
        before = costs(procs, database)
        elapsed, sent = load(smtp_ports, recipients)
        after = costs(procs, database)
        to = recipients[0] if len(recipients) == 1 else f"{len(recipients)} mailboxes"
        print(f"mailgate ({what}) {to}: {sent} messages in {elapsed:.1f} s"
              f" = {sent / elapsed:.0f} accepted and durable/s", flush=True)
        if SPREAD:
            report(before, after, sent, elapsed)
        if STATEMENTS:
            print(common.psql(database, common.STATEMENTS), flush=True)
finally:
    for proc in procs:
        common.stop(proc)
    if stop_cluster:
        stop_cluster()
    shutil.rmtree(workdir, ignore_errors=True)
