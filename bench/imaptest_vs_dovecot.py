#!/usr/bin/env python3
"""imaptest's load against mailgate and against Dovecot on the same machine, in alternating
rounds (issue 11's speed goal: at least 1.5x Dovecot's commands/s with logout=0, no
command's average slower than Dovecot's).

    IMAPTEST=/path/to/imaptest python3 bench/imaptest_vs_dovecot.py [--rounds 2]
        [--secs 30] [--clients 10] [--users 100] [--args "logout=0"] [--binary B]
        [--postgres [--statements]]

Each round starts each server fresh with 100 mailboxes user1..100@bench.example (mailgate:
through its admin API; Dovecot 2.3 from Debian's dovecot-core: a passwd-file, Maildir under
a temporary directory, plaintext on loopback), then runs `../shared/tools/imaptest/run.sh`
in bench mode and prints its per-command table. Needs root for Dovecot (its mail processes
run as dovenull). Loopback only; everything is removed afterwards."""
import argparse, os, re, resource, shutil, socket, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, "..", "..", "shared", "tools", "imaptest", "run.sh")
PASSWORD = "imaptest-pass"
parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--rounds", type=int, default=2)
parser.add_argument("--secs", type=int, default=30)
parser.add_argument("--clients", type=int, default=10)
parser.add_argument("--users", type=int, default=100)
parser.add_argument("--args", default="logout=0")
parser.add_argument("--binary", default=common.BINARY)
parser.add_argument("--postgres", action="store_true",
                    help="mailgate on PostgreSQL (a throwaway cluster, a fresh database each round)")
parser.add_argument("--statements", action="store_true",
                    help="with --postgres: after each mailgate round, the statements PostgreSQL ran"
                         " most often and longest (pg_stat_statements)")
parser.add_argument("--nodes", type=int, default=1,
                    help="with --postgres: this many mailgate nodes on the one database, the clients"
                         " split evenly between them (one imaptest each); their commands/s added up")
ARGS = parser.parse_args()
if (ARGS.statements or ARGS.nodes > 1) and not ARGS.postgres:
    sys.exit("--statements and --nodes need --postgres")
if ARGS.statements and ARGS.nodes > 1:
    sys.exit("--statements counts one node's round: not with --nodes")
if not os.environ.get("IMAPTEST"):
    sys.exit("set IMAPTEST to the imaptest binary (bash ../shared/tools/imaptest/build.sh)")

DOVECOT_CONF = common.DOVECOT_BASE + """ssl = no
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
mail_max_userip_connections = 1000
"""


def start_dovecot(workdir):
    d = os.path.join(workdir, "dovecot")
    # Dovecot's auth and mail processes run as other users: they must reach in.
    os.chmod(workdir, 0o755)
    for sub in ("run", "state", "mail", "home"):
        os.makedirs(os.path.join(d, sub))
    shutil.chown(os.path.join(d, "mail"), "dovenull", "dovenull")
    shutil.chown(os.path.join(d, "home"), "dovenull", "dovenull")
    with open(os.path.join(d, "users"), "w") as f:
        for n in range(1, ARGS.users + 1):
            f.write(f"user{n}@bench.example:{{PLAIN}}{PASSWORD}\n")
    port = common.free_port()
    return common.run_dovecot(d, DOVECOT_CONF.format(d=d, port=port), port), port


def busy_seconds():
    """CPU time the whole machine spent busy (all cores), from /proc/stat."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def bench(port, out, clients=None):
    clients = clients or ARGS.clients
    env = dict(os.environ, MODE="bench", BENCH_SECS=str(ARGS.secs), BENCH_CLIENTS=str(clients),
               BENCH_USERS=str(ARGS.users), BENCH_ARGS=ARGS.args, OUT=out)
    busy, client = busy_seconds(), children_cpu()
    result = subprocess.run(["bash", RUN, "127.0.0.1", str(port), "user%d@bench.example", PASSWORD],
                            env=env, text=True, capture_output=True, timeout=ARGS.secs + 600)
    busy, client = busy_seconds() - busy, children_cpu() - client
    # imaptest (run.sh's child) and the machine as a whole; the server is most of the rest.
    commands = commands_per_second(result.stdout) * ARGS.secs
    per = lambda s: f"{s / commands * 1e6:.0f} us/command" if commands else "-"
    cpu = (f"  CPU: machine {busy:.1f} s, imaptest {client:.1f} s ({per(client)}),"
           f" the rest (mostly the server) {busy - client:.1f} s ({per(busy - client)})")
    return result.stdout + cpu + "\n"


POSTGRES = None


def mailgate_round(workdir):
    common.BINARY = ARGS.binary
    config = common.IMAPTEST_CONFIG
    if POSTGRES:
        url = common.fresh_database(POSTGRES, "imaptest")
        config += f'\n[store]\npostgres_url = "{url}"\n'
    if ARGS.nodes > 1:
        return nodes_round(workdir, config)
    proc, ports, password = common.start_server(workdir, config_text=config,
                                                stderr=open(os.path.join(workdir, "server.log"), "w"))
    try:
        common.imaptest_users(ports["admin (HTTP)"], password, ARGS.users, PASSWORD)
        if ARGS.statements:
            common.psql(url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()")
        report = bench(ports["imap (STARTTLS)"], os.path.join(workdir, "results"))
        if ARGS.statements:
            report += common.psql(url, common.STATEMENTS)
        return report
    finally:
        common.stop(proc)


def nodes_round(workdir, config):
    """ARGS.nodes mailgate processes on one database, an imaptest for each at once."""
    import threading
    procs, imap_ports = [], []
    try:
        for n in range(ARGS.nodes):
            d = os.path.join(workdir, f"node{n}")
            os.makedirs(d)
            proc, ports, password = common.start_server(d, config_text=config,
                                                        stderr=open(os.path.join(d, "server.log"), "w"))
            procs.append(proc)
            imap_ports.append(ports["imap (STARTTLS)"])
            if n == 0:
                common.imaptest_users(ports["admin (HTTP)"], password, ARGS.users, PASSWORD)
        reports = [None] * ARGS.nodes
        def run(n):
            reports[n] = bench(imap_ports[n], os.path.join(workdir, f"results{n}"),
                               max(1, ARGS.clients // ARGS.nodes))
        threads = [threading.Thread(target=run, args=(n,)) for n in range(ARGS.nodes)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = sum(commands_per_second(r or "") for r in reports)
        per_node = ", ".join(f"{commands_per_second(r or ''):.1f}" for r in reports)
        # The total first: it is the figure the round is counted by.
        return (f"  nodes: {ARGS.nodes}, commands/s per node: {per_node}\n"
                f"  all nodes: commands/s (all kinds): {total:.1f}\n" + "\n".join(filter(None, reports)))
    finally:
        for proc in procs:
            common.stop(proc)







def dovecot_round(workdir):
    conf, port = start_dovecot(workdir)
    try:
        return bench(port, os.path.join(workdir, "results"))
    finally:
        subprocess.run(["dovecot", "-c", conf, "stop"], check=False)


def commands_per_second(report):
    m = re.search(r"commands/s \(all kinds\): ([0-9.]+)", report)
    return float(m.group(1)) if m else 0.0


def main():
    totals = {"mailgate": [], "dovecot": []}
    for r in range(ARGS.rounds):
        for name, run in (("mailgate", mailgate_round), ("dovecot", dovecot_round)):
            workdir = tempfile.mkdtemp()
            try:
                report = run(workdir)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            print(f"== round {r + 1}: {name}\n{report}", flush=True)
            totals[name].append(commands_per_second(report))
    m, d = (sum(v) / max(len(v), 1) for v in (totals["mailgate"], totals["dovecot"]))
    print(f"commands/s, mean of {ARGS.rounds} rounds: mailgate {m:.1f}, Dovecot {d:.1f}"
          f" ({m / d if d else 0:.2f}x)")


if ARGS.postgres:
    cluster_dir = tempfile.mkdtemp()
    POSTGRES, stop_cluster = common.postgres_cluster(
        cluster_dir, "-c shared_preload_libraries=pg_stat_statements" if ARGS.statements else "")
    try:
        main()
    finally:
        stop_cluster()
        shutil.rmtree(cluster_dir, ignore_errors=True)
else:
    main()
