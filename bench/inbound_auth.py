#!/usr/bin/env python3
"""Inbound messages per second with the SPF, DKIM, ARC and DMARC checks on, against the same
load with them off (issue 13). The sender's records (SPF, a DKIM key, DMARC p=reject) are
served by the tests' DNS server (tests/common/dns.py, dnspython) on loopback; every message
is DKIM-signed by dkimpy (RSA-2048), passes, and is delivered and durable before its 250.

    python3 bench/inbound_auth.py [--messages 2000] [--senders 10] [--rounds 2]

Needs a release build, openssl, and dkimpy + dnspython (pip). Rounds alternate on and off,
each on a fresh server; only rounds of one run compare (this machine's speed varies)."""
import argparse, base64, multiprocessing, os, shutil, smtplib, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

HERE = os.path.dirname(os.path.abspath(__file__))
DNS = os.path.join(HERE, "..", "tests", "common", "dns.py")
parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--messages", type=int, default=2000)
parser.add_argument("--senders", type=int, default=10)
parser.add_argument("--rounds", type=int, default=2)
ARGS = parser.parse_args()


def zone_and_message(workdir):
    """The sender domain's records, and one signed message of about 10 KiB."""
    import dkim
    key = os.path.join(workdir, "signer.pem")
    subprocess.run(["openssl", "genrsa", "-out", key, "2048"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", key, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    zone = os.path.join(workdir, "zone.txt")
    with open(zone, "w") as f:
        f.write("sender.test TXT v=spf1 ip4:127.0.0.1 -all\n"
                "_dmarc.sender.test TXT v=DMARC1; p=reject\n"
                f"s1._domainkey.sender.test TXT v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}\n")
    body = ("A line of a newsletter, long enough to look like one.\r\n" * 190).encode()
    raw = (b"From: news@sender.test\r\nTo: box@bench.test\r\nSubject: bench\r\n"
           b"Date: Wed, 02 Dec 2026 10:00:00 +0000\r\nMessage-ID: <bench@sender.test>\r\n\r\n" + body)
    signed = dkim.sign(raw, b"s1", b"sender.test", open(key, "rb").read(),
                       include_headers=[b"from", b"to", b"subject", b"date", b"message-id"]) + raw
    return zone, signed


def send(args):
    port, count, message = args
    s = smtplib.SMTP("127.0.0.1", port)
    s.ehlo("mx.sender.test")
    for _ in range(count):
        s.sendmail("bounces@sender.test", ["box@bench.test"], message)
    s.quit()


def one_round(checks, zone, message):
    # Run as -c: a file named dns.py would shadow dnspython's package.
    dns = subprocess.Popen([sys.executable, "-c", open(DNS).read(), zone],
                           stdout=subprocess.PIPE, text=True)
    dns_port = int(dns.stdout.readline())
    workdir = tempfile.mkdtemp()
    config = ('hostname = "bench.test"\n[imap]\nlisten = []\nlisten_tls = []\n'
              '[smtp]\nlisten = ["127.0.0.1:0"]\n[submission]\nlisten = []\nlisten_tls = []\n'
              '[admin]\nlisten = ["127.0.0.1:0"]\nverify_domains = false\n'
              f'[queue]\nnameservers = ["127.0.0.1:{dns_port}"]\n'
              f'[inbound]\nchecks = {"true" if checks else "false"}\ntrusted_networks = []\n')
    proc, ports, password = common.start_server(workdir, config_text=config)
    try:
        common.seed(ports["admin (HTTP)"], password)
        port = ports["smtp (STARTTLS)"]
        send((port, 5, message))  # the DNS answers cached, the first blob written
        per = ARGS.messages // ARGS.senders
        started = time.time()
        with multiprocessing.Pool(ARGS.senders) as pool:
            pool.map(send, [(port, per, message)] * ARGS.senders)
        elapsed = time.time() - started
        return per * ARGS.senders / elapsed
    finally:
        common.stop(proc)
        dns.kill()
        shutil.rmtree(workdir, ignore_errors=True)


workdir = tempfile.mkdtemp()
zone, message = zone_and_message(workdir)
results = {True: [], False: []}
for r in range(ARGS.rounds):
    for checks in (True, False):
        rate = one_round(checks, zone, message)
        results[checks].append(rate)
        print(f"round {r + 1}, checks {'on ' if checks else 'off'}: {rate:.0f} messages/s", flush=True)
for checks in (True, False):
    rates = ", ".join(f"{x:.0f}" for x in results[checks])
    print(f"checks {'on ' if checks else 'off'}: {rates} messages/s")
shutil.rmtree(workdir, ignore_errors=True)
