#!/usr/bin/env python3
"""Messages per second moved in from a local Dovecot (issue 12).

    python3 bench/import_from_dovecot.py [--messages 10000] [--tls none|tls] [--rounds 3]

Dovecot 2.3 (Debian's dovecot-core and dovecot-imapd) serves one user from a Maildir of
`--messages` messages (sizes 1-40 KiB, three folders, flags and keywords) on a loopback port;
a release mailgate (`cargo build --release`) imports it into a new mailbox through the admin
API, as `mailgate admin mailboxes import` does. Reported per round: the import's own
messages/s and MiB/s (from its start to its end, as the API shows them), and mailgate's CPU
seconds.
"""
import argparse, json, os, shutil, socket, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

parser = argparse.ArgumentParser()
parser.add_argument("--messages", type=int, default=10000)
parser.add_argument("--tls", choices=["none", "tls"], default="none")
parser.add_argument("--rounds", type=int, default=3)
ARGS = parser.parse_args()

LOGIN, PASSWORD = "old@source.example", "source-password"
CONF = common.DOVECOT_BASE + """ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {plain}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls}
  }}
}}
"""


def fill(d, n):
    root = os.path.join(d, "mail", LOGIN)
    folders = [("", 0.7), (".Sent", 0.2), (".Archive.2024", 0.1)]
    total_bytes, made = 0, 0
    for sub, share in folders:
        count = n - made if sub == folders[-1][0] else int(n * share)
        path = os.path.join(root, sub)
        for part in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(path, part), exist_ok=True)
        with open(os.path.join(path, "dovecot-keywords"), "w") as f:
            f.write("0 $Forwarded\n1 Work\n")
        for i in range(count):
            size = 1024 + (i * 7919) % (39 * 1024)
            body = ("x" * 76 + "\r\n") * (size // 78)
            msg = (f"From: s{i}@elsewhere.example\r\nTo: {LOGIN}\r\nSubject: message {i}\r\n"
                   f"Message-ID: <{i}.{sub}@source.example>\r\n\r\n{body}")
            flags = ["", "S", "FRS", "Sa", "Sb"][i % 5]
            name = os.path.join(path, "cur", f"{1700000000 + i}.M{i}P1.src:2,{flags}")
            with open(name, "w") as f:
                f.write(msg)
            os.utime(name, (1700000000 + i * 60,) * 2)
            total_bytes += len(msg)
        made += count
    return total_bytes


def start_dovecot(work):
    d = os.path.join(work, "dovecot")
    for sub in ("run", "state", "home"):
        os.makedirs(os.path.join(d, sub))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", f"{d}/key.pem", "-out", f"{d}/cert.pem"],
                   check=True, stderr=subprocess.DEVNULL)
    with open(os.path.join(d, "users"), "w") as f:
        f.write(f"{LOGIN}:{{PLAIN}}{PASSWORD}\n")
    size = fill(d, ARGS.messages)
    subprocess.run(["chown", "-R", "dovenull:dovenull", d], check=True)
    plain, tls = common.free_port(), common.free_port()
    port = tls if ARGS.tls == "tls" else plain
    conf = common.run_dovecot(d, CONF.format(d=d, plain=plain, tls=tls), port)
    return conf, port, size


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_round(work, dovecot_port):
    config = ('hostname = "bench.test"\n[imap]\nlisten = []\nlisten_tls = ["127.0.0.1:0"]\n'
              '[smtp]\nlisten = []\n[submission]\nlisten = []\nlisten_tls = []\n'
              '[admin]\nlisten = ["127.0.0.1:0"]\nverify_domains = false\n[import]\nallow_private_sources = true\n')
    proc, ports, password = common.start_server(work, config_text=config, stderr=subprocess.DEVNULL)
    try:
        admin = ports["admin (HTTP)"]
        token, org = common.seed(admin, password)
        box = common.api(admin, "GET", f"/orgs/{org}/mailboxes", token)["items"][0]["id"]
        before = cpu_seconds(proc.pid)
        started = common.api(admin, "POST", f"/orgs/{org}/mailboxes/{box}/imports", token, {
            "host": "127.0.0.1", "port": dovecot_port, "tls": ARGS.tls,
            "accept_invalid_certificates": True, "login": LOGIN, "password": PASSWORD})
        path = f"/orgs/{org}/mailboxes/{box}/imports/{started['id']}"
        while True:
            view = common.api(admin, "GET", path, token)
            if view["state"] != "running":
                break
            time.sleep(0.2)
        cpu = cpu_seconds(proc.pid) - before
        assert view["state"] == "done" and view["messages"] == ARGS.messages, view
        seconds = (view["finished"] - view["run_started"]) / 1000
        return view["messages"] / seconds, view["bytes"] / seconds / 2**20, cpu, seconds
    finally:
        common.stop(proc)


def main():
    if not os.path.exists(common.BINARY):
        sys.exit(f"build it first: cargo build --release ({common.BINARY})")
    work = tempfile.mkdtemp(prefix="mailgate-import-bench-")
    os.chmod(work, 0o755)
    conf, port, size = start_dovecot(work)
    try:
        print(f"{ARGS.messages} messages, {size / 2**20:.1f} MiB, from Dovecot over {ARGS.tls}")
        for n in range(ARGS.rounds):
            round_dir = os.path.join(work, f"round{n}")
            os.makedirs(round_dir)
            rate, mib, cpu, seconds = one_round(round_dir, port)
            print(f"round {n + 1}: {rate:,.0f} messages/s, {mib:.1f} MiB/s "
                  f"({seconds:.1f} s; mailgate CPU {cpu:.1f} s)")
    finally:
        subprocess.run(["dovecot", "-c", conf, "stop"], check=False)
        shutil.rmtree(work, ignore_errors=True)


main()
