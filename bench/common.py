"""Helpers of the bench scripts: start a release mailgate on loopback, seed a mailbox."""
import json, os, re, resource, socket, subprocess, sys, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("MAILGATE_BIN") or os.path.join(ROOT, "target", "release", "mailgate")

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))

def start_server(workdir, N=100, smtp=False, config_text=None, stderr=None):
    """`config_text` replaces the configuration made here; `stderr` (a file) takes the log."""
    config = os.path.join(workdir, "mailgate.toml")
    if config_text is None:
        config_text = ('hostname = "bench.test"\n[imap]\nlisten = []\nlisten_tls = ["127.0.0.1:0"]\n'
                       f'[smtp]\nlisten = {["127.0.0.1:0"] if smtp else []}\n'.replace("'", '"') +
                       '[submission]\nlisten = []\nlisten_tls = []\n'
                       '[admin]\nlisten = ["127.0.0.1:0"]\nverify_domains = false\n'
                       f'[limits]\nmax_connections = {N + 100}\nmax_connections_per_client = {N + 100}\n')
    with open(config, "w") as f:
        f.write(config_text)
    proc = subprocess.Popen([BINARY, "serve", "--config", config, "--data", os.path.join(workdir, "data")],
                            stdout=subprocess.PIPE, stderr=stderr, text=True,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (N * 2 + 1000,) * 2))
    ports, password = {}, None
    for line in proc.stdout:
        if "password:" in line:
            password = line.split("password:")[1].strip()
        m = re.match(r"mailgate: (.*) listening on (.*):(\d+)", line)
        if m:
            ports[m.group(1)] = int(m.group(3))
        if line.startswith("mailgate: data in"):
            break
    return proc, ports, password

def api(port, method, path, token=None, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"content-type": "application/json",
                                          **({"authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(req) as r:
        text = r.read()
        return json.loads(text) if text else None

def owner_org(port, password, domain):
    """The first owner logged in (its initial password changed), its organization with `domain`."""
    token = api(port, "POST", "/session", body={"login": "owner@localhost", "password": password})["token"]
    api(port, "POST", "/me/password", token, {"current_password": password, "new_password": "bench-owner-pw"})
    org = api(port, "GET", "/me", token)["organizations"][0]["id"]
    api(port, "POST", f"/orgs/{org}/domains", token, {"name": domain})
    return token, org

def seed(port, password):
    token, org = owner_org(port, password, "bench.test")
    api(port, "POST", f"/orgs/{org}/mailboxes", token, {"address": "box@bench.test", "password": "bench-password"})
    return token, org

def stop(proc):
    """SIGTERM, then SIGKILL after a minute."""
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


# A server for Dovecot's imaptest: plaintext LOGIN on loopback, room for its connections.
IMAPTEST_CONFIG = ('hostname = "bench.example"\n[imap]\nlisten = ["127.0.0.1:0"]\nlisten_tls = []\n'
                   '[smtp]\nlisten = []\n[submission]\nlisten = []\nlisten_tls = []\n'
                   '[admin]\nlisten = ["127.0.0.1:0"]\nverify_domains = false\n[auth]\nallow_plaintext_on_loopback = true\n'
                   '[limits]\nmax_connections = 1000\nmax_connections_per_client = 1000\n')

def imaptest_users(admin, password, users, user_password):
    """Mailboxes user1..N@bench.example, as imaptest's USER_TEMPLATE names them."""
    token, org = owner_org(admin, password, "bench.example")
    for n in range(1, users + 1):
        api(admin, "POST", f"/orgs/{org}/mailboxes", token,
            {"address": f"user{n}@bench.example", "password": user_password})


# Debian's Dovecot 2.3 for the comparisons: a passwd-file and Maildirs under `{d}`, run as
# root with its mail processes as dovenull. Each script adds its own listeners and settings.
DOVECOT_BASE = """base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{d}/mail/%u
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid=dovenull gid=dovenull home={d}/home/%u
}}
"""

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def run_dovecot(d, conf_text, port):
    """Writes `d`/dovecot.conf, starts Dovecot and waits for `port`; returns the conf path."""
    conf = os.path.join(d, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    subprocess.run(["dovecot", "-c", conf], check=True)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return conf
        except OSError:
            time.sleep(0.1)
    sys.exit(f"Dovecot did not listen; see {d}/dovecot.log")


def postgres_cluster(workdir, options=""):
    """A throwaway PostgreSQL cluster (Debian's postgresql) in `workdir`, as the tests make
    one: run as `postgres` when we are root; `options` are more of the server's `-c` settings.
    Returns (base URL without a database, stop)."""
    bins = sorted(d for d in os.listdir("/usr/lib/postgresql")
                  if os.path.exists(f"/usr/lib/postgresql/{d}/bin/initdb"))
    if not bins:
        sys.exit("PostgreSQL's server is not installed: apt-get install postgresql")
    bin_dir = f"/usr/lib/postgresql/{bins[-1]}/bin"
    root = os.geteuid() == 0
    wrap = (lambda cmd: ["runuser", "-u", "postgres", "--"] + cmd) if root else (lambda cmd: cmd)
    d = os.path.join(workdir, "postgres")
    os.makedirs(d)
    if root:
        import shutil
        os.chmod(workdir, 0o755)
        shutil.chown(d, "postgres", "postgres")
    port = free_port()
    subprocess.run(wrap([f"{bin_dir}/initdb", "--auth=trust", "--username=mailgate", "--no-sync",
                         "-D", f"{d}/data"]), check=True, stdout=subprocess.DEVNULL)
    subprocess.run(wrap([f"{bin_dir}/pg_ctl", "-w", "-l", f"{d}/log", "-D", f"{d}/data", "-o",
                         f"-p {port} -k {d} -c listen_addresses=127.0.0.1 {options}", "start"]),
                   check=True, stdout=subprocess.DEVNULL)
    stop = lambda: subprocess.run(wrap([f"{bin_dir}/pg_ctl", "-m", "fast", "-D", f"{d}/data", "stop"]),
                                  check=False, stdout=subprocess.DEVNULL)
    return f"postgres://mailgate@127.0.0.1:{port}", stop


def psql(url, sql):
    """What `psql` prints for `sql` on the database at `url`."""
    return subprocess.run(["psql", url, "-q", "-c", sql], check=True, capture_output=True, text=True).stdout


def fresh_database(base, name):
    """An empty database `name` on the cluster at `base`; its URL."""
    for sql in (f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"):
        psql(f"{base}/postgres", sql)
    return f"{base}/{name}"


# What PostgreSQL spent its time on (the cluster started with
# `-c shared_preload_libraries=pg_stat_statements`, the counters reset before the load).
STATEMENTS = """SELECT calls, round(total_exec_time) AS total_ms, round(mean_exec_time::numeric, 3) AS mean_ms,
  left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS statement
  FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 30"""
STATEMENTS_RESET = "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()"
