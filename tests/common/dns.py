# An authoritative DNS server for the tests, over UDP and TCP on one port (printed first),
# built on dnspython. Its zone is the file given, read again for every question so that a
# test can add records while it runs, one per line:
#     name TYPE value            (TXT values unquoted; long ones are split into strings)
#     name SERVFAIL              (every question about the name or below it fails: a
#                                 temporary error)
# A name with no line is NXDOMAIN; a known name without the type asked is an empty answer.
# With a second argument, each question is appended to that file as "TYPE name".
import socket, sys, threading
import dns.flags, dns.message, dns.rcode, dns.rdata, dns.rdataclass, dns.rdatatype, dns.rrset

zone_path = sys.argv[1]
log_path = sys.argv[2] if len(sys.argv) > 2 else None
log_lock = threading.Lock()


def zone():
    records, failing = {}, set()
    try:
        text = open(zone_path).read()
    except FileNotFoundError:
        text = ""
    for line in text.splitlines():
        parts = line.strip().split(None, 2)
        if len(parts) == 2 and parts[1].upper() == "SERVFAIL":
            failing.add(parts[0].lower().rstrip("."))
        elif len(parts) == 3:
            name, rtype, value = parts
            records.setdefault((name.lower().rstrip("."), rtype.upper()), []).append(value)
    return records, failing


def rdata(rtype, value):
    if rtype == "TXT":
        raw = value.encode()
        value = " ".join('"%s"' % raw[i:i + 255].decode() for i in range(0, len(raw), 255))
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), value)


def answer(wire):
    query = dns.message.from_wire(wire)
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    question = query.question[0]
    name = question.name.to_text().lower().rstrip(".")
    rtype = dns.rdatatype.to_text(question.rdtype)
    if log_path:
        with log_lock, open(log_path, "a") as log:
            log.write(f"{rtype} {name}\n")
    records, failing = zone()
    if any(name == f or name.endswith("." + f) for f in failing):
        response.set_rcode(dns.rcode.SERVFAIL)
        return response.to_wire()
    if not any(n == name for n, _ in records):
        response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()
    values = records.get((name, rtype), [])
    if values:
        rrset = dns.rrset.RRset(question.name, dns.rdataclass.IN, question.rdtype)
        for v in values:
            rrset.add(rdata(rtype, v), 60)
        response.answer.append(rrset)
    return response.to_wire()


while True:  # one port number free for both UDP and TCP
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    port = udp.getsockname()[1]
    tcp = socket.socket()
    try:
        tcp.bind(("127.0.0.1", port))
        break
    except OSError:
        udp.close()
        tcp.close()
tcp.listen()


def serve_tcp():
    while True:
        conn, _ = tcp.accept()
        f = conn.makefile("rb")
        while len(head := f.read(2)) == 2:
            reply = answer(f.read(int.from_bytes(head, "big")))
            conn.sendall(len(reply).to_bytes(2, "big") + reply)
        conn.close()


threading.Thread(target=serve_tcp, daemon=True).start()
print(port, flush=True)
while True:
    wire, peer = udp.recvfrom(4096)
    try:
        reply = answer(wire)
    except Exception as e:  # a question the zone cannot answer must not stop the server
        print("dns:", e, file=sys.stderr, flush=True)
        continue
    if len(reply) > 512:  # too long for UDP: the client retries over TCP
        reply = dns.message.make_response(dns.message.from_wire(wire))
        reply.flags |= dns.flags.TC
        reply = reply.to_wire()
    udp.sendto(reply, peer)
