#!/usr/bin/env python3
"""Host side of the unikernel's `net` check under QEMU.

QEMU's `-netdev socket,udp=127.0.0.1:PEER,localaddr=127.0.0.1:QEMU` carries
each Ethernet frame as one UDP datagram, so this script plays the rest of the
LAN with raw frames: it ARPs for the guest until it answers, pings it, sends
UDP datagrams to the echo port, sends frames the guest must ignore (wrong
port, bad checksums, other addresses), a burst that needs many receive
buffers, and finally "quit". Every reply is checked byte for byte.

Prints "peer: arp=N icmp=N udp=N" (what the guest must report) and exits 0 when
everything was answered correctly.
    net-peer.py PEER_PORT QEMU_PORT [GUEST_IP] [UDP_PORT]
"""
import os
import socket
import struct
import sys
import time

peer_port, qemu_port = int(sys.argv[1]), int(sys.argv[2])
guest_ip = socket.inet_aton(sys.argv[3] if len(sys.argv) > 3 else "10.0.2.15")
udp_port = int(sys.argv[4]) if len(sys.argv) > 4 else 7
my_mac = bytes.fromhex("020000000002")
my_ip = socket.inet_aton("10.0.2.2")
bcast = b"\xff" * 6
other_ip = guest_ip[:3] + bytes([guest_ip[3] ^ 1])  # a neighbour, not the guest

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
sock.bind(("127.0.0.1", peer_port))
failures = []
sent = {"arp": 0, "icmp": 0, "udp": 0}


def fail(msg):
    failures.append(msg)
    print("peer: FAIL " + msg, flush=True)


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def send(frame):
    sock.sendto(frame, ("127.0.0.1", qemu_port))


def recv(timeout):
    sock.settimeout(timeout)
    try:
        return sock.recv(65536)
    except socket.timeout:
        return None


def arp_request():
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, my_mac, my_ip, b"\0" * 6, guest_ip)
    return bcast + my_mac + b"\x08\x06" + arp


def ip_packet(proto, payload, dst=None, bad_csum=False, ident=1):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0, 64, proto, 0,
                      my_ip, dst or guest_ip)
    c = csum(hdr) ^ (0x5555 if bad_csum else 0)
    return hdr[:10] + struct.pack("!H", c) + hdr[12:] + payload


def icmp_echo(ident, seq, data, bad_csum=False):
    msg = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + data
    c = csum(msg) ^ (0x1111 if bad_csum else 0)
    return msg[:2] + struct.pack("!H", c) + msg[4:]


def udp_dgram(sport, dport, data, zero_csum=False, bad_csum=False):
    length = 8 + len(data)
    u = struct.pack("!HHHH", sport, dport, length, 0) + data
    if zero_csum:
        return u
    pseudo = my_ip + guest_ip + struct.pack("!BBH", 0, 17, length)
    c = csum(pseudo + u) or 0xFFFF
    if bad_csum:
        c ^= 0x2222
    return u[:6] + struct.pack("!H", c) + u[8:]


def eth(dst, payload, ethertype=0x0800):
    return dst + my_mac + struct.pack("!H", ethertype) + payload


def check_ip_reply(frame, guest_mac, proto):
    """Returns the IP payload of a well-formed reply from the guest, or None."""
    if len(frame) < 34 or frame[0:6] != my_mac or frame[6:12] != guest_mac:
        fail("reply with bad Ethernet addresses: %s" % frame[:14].hex())
        return None
    if frame[12:14] != b"\x08\x00":
        fail("expected IPv4, got ethertype %s" % frame[12:14].hex())
        return None
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    if ip[0] >> 4 != 4 or csum(ip[:ihl]) != 0 or total > len(ip):
        fail("bad IPv4 header in reply: %s" % ip[:20].hex())
        return None
    if ip[9] != proto or ip[12:16] != guest_ip or ip[16:20] != my_ip:
        fail("reply with wrong protocol or addresses: %s" % ip[:20].hex())
        return None
    return ip[ihl:total]


# 1. ARP until the guest answers (it may still be booting).
guest_mac = None
deadline = time.time() + 60
while guest_mac is None and time.time() < deadline:
    send(arp_request())
    sent["arp"] += 1
    end = time.time() + 0.2
    while time.time() < end:
        f = recv(max(0.01, end - time.time()))
        if f is None:
            break
        if len(f) >= 42 and f[12:14] == b"\x08\x06":
            op, sha, spa, tha, tpa = struct.unpack("!6xH6s4s6s4s", f[14:42])
            if op == 2 and spa == guest_ip and tha == my_mac and tpa == my_ip and f[0:6] == my_mac:
                guest_mac = sha
                if f[6:12] != sha:
                    fail("ARP reply source MAC %s differs from sender %s" % (f[6:12].hex(), sha.hex()))
                break
if guest_mac is None:
    print("peer: FAIL no ARP reply within 60 s", flush=True)
    sys.exit(1)
# Requests sent before the guest posted its buffers were lost; count the
# replies from here on instead.
arp_answered = 1
print("peer: guest mac=%s" % guest_mac.hex(":"), flush=True)
# Late replies to earlier ARP requests.
while True:
    f = recv(0.3)
    if f is None:
        break
    if f[12:14] == b"\x08\x06":
        arp_answered += 1
for _ in range(3):
    send(arp_request())
    f = recv(2)
    if f is None or f[12:14] != b"\x08\x06":
        fail("no reply to a later ARP request")
    else:
        arp_answered += 1


def exchange(frame, want_proto, expect_payload, what):
    send(frame)
    f = recv(3)
    if f is None:
        fail("no reply to " + what)
        return False
    p = check_ip_reply(f, guest_mac, want_proto)
    if p is None:
        return False
    return expect_payload(p, what)


def icmp_ok(ident, seq, data):
    def check(p, what):
        if len(p) != 8 + len(data) or csum(p) != 0:
            fail("%s: reply length %d or checksum wrong" % (what, len(p)))
            return False
        t, code, _, i, s = struct.unpack("!BBHHH", p[:8])
        if (t, code, i, s) != (0, 0, ident, seq) or p[8:] != data:
            fail("%s: wrong echo reply" % what)
            return False
        return True
    return check


def udp_ok(sport, data):
    def check(p, what):
        if len(p) < 8:
            fail(what + ": short UDP reply")
            return False
        s, d, length, c = struct.unpack("!HHHH", p[:8])
        pseudo = guest_ip + my_ip + struct.pack("!BBH", 0, 17, length)
        if (s, d) != (udp_port, sport) or length != 8 + len(data) or p[8:length] != data:
            fail("%s: wrong UDP echo (ports %d->%d, length %d)" % (what, s, d, length))
            return False
        if c == 0 or csum(pseudo + p[:length]) != 0:
            fail("%s: bad UDP checksum 0x%04x" % (what, c))
            return False
        return True
    return check


# 2. Pings of several sizes, up to a full 1500-byte packet.
icmp = 0
for seq, size in enumerate([0, 1, 56, 63, 64, 100, 512, 1000, 1471, 1472]):
    data = os.urandom(size)
    if exchange(eth(guest_mac, ip_packet(1, icmp_echo(0x4242, seq, data))), 1,
                icmp_ok(0x4242, seq, data), "ping size %d" % size):
        icmp += 1

# 3. UDP echo, several sizes; one without a checksum (0 = none in IPv4).
udp = 0
for i, size in enumerate([1, 2, 3, 17, 100, 600, 1472]):
    data = os.urandom(size)
    if exchange(eth(guest_mac, ip_packet(17, udp_dgram(40000 + i, udp_port, data))), 17,
                udp_ok(40000 + i, data), "udp size %d" % size):
        udp += 1
data = b"no checksum here"
if exchange(eth(guest_mac, ip_packet(17, udp_dgram(41000, udp_port, data, zero_csum=True))), 17,
            udp_ok(41000, data), "udp without checksum"):
    udp += 1

# 4. Frames the guest must not answer.
ignored = [
    ("udp to another port", eth(guest_mac, ip_packet(17, udp_dgram(1, udp_port + 1, b"x")))),
    ("udp with a bad checksum", eth(guest_mac, ip_packet(17, udp_dgram(2, udp_port, b"x", bad_csum=True)))),
    ("ip with a bad header checksum",
     eth(guest_mac, ip_packet(17, udp_dgram(3, udp_port, b"x"), bad_csum=True))),
    ("ping with a bad checksum", eth(guest_mac, ip_packet(1, icmp_echo(1, 1, b"abc", bad_csum=True)))),
    ("ping to another address", eth(guest_mac, ip_packet(1, icmp_echo(1, 2, b"abc"), dst=other_ip))),
    ("ping to another MAC", eth(bytes.fromhex("020000000099"), ip_packet(1, icmp_echo(1, 3, b"abc")))),
    ("ARP for another address", bcast + my_mac + b"\x08\x06" +
     struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, my_mac, my_ip, b"\0" * 6, other_ip)),
    ("unknown ethertype", eth(guest_mac, b"\0" * 46, ethertype=0x88B5)),
    ("runt frame", guest_mac + my_mac),
]
for what, frame in ignored:
    send(frame)
f = recv(1)
if f is not None:
    fail("the guest answered a frame it should ignore: %s" % f[:48].hex())

# 5. A burst: 200 datagrams back to back, all echoed. Replies are read while
# sending: a loopback UDP sender is charged for datagrams its receiver has not
# read yet, so a peer that only sends can stall QEMU's socket backend.
burst = {}
got = 0


def take_burst_reply(f):
    global got
    p = check_ip_reply(f, guest_mac, 17)
    if p is None:
        return
    sport = struct.unpack("!H", p[2:4])[0]
    if sport in burst and udp_ok(sport, burst.pop(sport))(p, "burst %d" % sport):
        got += 1


for i in range(200):
    data = struct.pack("!I", i) + os.urandom(i % 700)
    burst[42000 + i] = data
    send(eth(guest_mac, ip_packet(17, udp_dgram(42000 + i, udp_port, data), ident=i)))
    while True:
        f = recv(0.0001)
        if f is None:
            break
        take_burst_reply(f)
while burst:
    f = recv(5)
    if f is None:
        break
    take_burst_reply(f)
if burst:
    fail("burst: %d of 200 datagrams not echoed" % len(burst))
udp += got

# 6. quit: echoed and counted like any datagram, then the guest ends.
if exchange(eth(guest_mac, ip_packet(17, udp_dgram(43000, udp_port, b"quit"))), 17,
            udp_ok(43000, b"quit"), "quit"):
    udp += 1

print("peer: arp=%d icmp=%d udp=%d" % (arp_answered, icmp, udp), flush=True)
sys.exit(1 if failures else 0)
