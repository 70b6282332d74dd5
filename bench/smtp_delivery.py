#!/usr/bin/env python3
"""Accepted-and-durable messages per second over SMTP (issue 4): Postfix's smtp-source sends
N messages of 10 KiB over 20 parallel connections to mailgate's inbound port, once to a
mailbox and once to an alias; with --postfix, the same load goes to a local Postfix that
delivers to virtual Maildirs (bench/postfix_setup.sh prepares it).

With --postgres the store is a throwaway PostgreSQL cluster on the same machine (issue 14),
and --nodes K starts K mailgate processes on its one database, the load split evenly between
them (each node's 20 connections sending N/K messages at the same time).

    python3 bench/smtp_delivery.py [N]            (default 5000; needs a release build)
    python3 bench/smtp_delivery.py [N] --postgres [--nodes 2]
    python3 bench/smtp_delivery.py [N] --postfix  (Postfix on 127.0.0.1:25)"""
import os, shutil, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common
from common import start_server, seed, api

N = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 5000
NODES = int(sys.argv[sys.argv.index("--nodes") + 1]) if "--nodes" in sys.argv else 1
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
if not os.path.exists(SMTP_SOURCE):
    sys.exit("smtp-source (Postfix's) is missing: bash bench/postfix_setup.sh installs it")

def load(ports, recipient):
    """N messages to `recipient`, split between the nodes listening on `ports`."""
    started = time.time()
    senders = [subprocess.Popen([SMTP_SOURCE, "-s", "20", "-l", "10240", "-m", str(N // len(ports)),
                                 "-c", "-f", "load@remote.test", "-t", recipient, f"127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL) for port in ports]
    for sender in senders:
        if sender.wait() != 0:
            sys.exit("smtp-source failed")
    return time.time() - started

def count_maildir(path):
    return sum(len(files) for _, _, files in os.walk(path))

if "--postfix" in sys.argv:
    before = count_maildir("/var/mail/vhosts")
    for recipient in ["box@bench.test", "alias@bench.test"]:
        elapsed = load([25], recipient)
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

workdir = tempfile.mkdtemp()
stop_cluster, procs = None, []
try:
    store = ""
    if "--postgres" in sys.argv:
        base, stop_cluster = common.postgres_cluster(workdir)
        store = f'[store]\npostgres_url = "{common.fresh_database(base, "smtp")}"\n'
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
    for recipient in ["box@bench.test", "alias@bench.test"]:
        elapsed = load(smtp_ports, recipient)
        sent = N // NODES * NODES
        print(f"mailgate ({what}) {recipient}: {sent} messages in {elapsed:.1f} s"
              f" = {sent / elapsed:.0f} accepted and durable/s", flush=True)
finally:
    for proc in procs:
        common.stop(proc)
    if stop_cluster:
        stop_cluster()
    shutil.rmtree(workdir, ignore_errors=True)
