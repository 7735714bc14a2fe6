#!/usr/bin/env python3
"""Host side of the unikernel's vsock checks, over AF_VSOCK (vhost-vsock).

  vsock-peer.py connect CID PORT CONNS BYTES [halfclose]
      For vsock_server: open CONNS connections to the guest at once (retrying
      until it listens), send BYTES on each while reading the echo, compare,
      close. Prints "peer: conns=N bytes=N" (bytes echoed, all connections).
      With "halfclose", also check that a connection to PORT + 1 is refused,
      and shut each connection down for writing (SHUT_WR) once its data is
      sent, reading the echo to its end before closing.
  vsock-peer.py listen PORT BYTES [sink]
      For vsock_client: accept one connection and echo everything back; with
      "sink", read BYTES first, check them, then send BYTES of the pattern.
      Prints "peer: bytes=N crc32=XXXXXXXX" (what the guest must report).
The pattern is byte i = (i * 7 + 3) & 0xff.
"""
import socket
import sys
import threading
import time
import zlib


def pattern(off, n):
    return bytes(((off + i) * 7 + 3) & 0xFF for i in range(n))


PATTERN_PERIOD = 256  # the pattern repeats every 256 bytes
_block = pattern(0, 1 << 16)


def pattern_fast(off, n):
    start = off % PATTERN_PERIOD
    out = bytearray()
    while len(out) < n:
        take = min(n - len(out), len(_block) - start)
        out += _block[start:start + take]
        start = 0
    return bytes(out)


def connect_one(cid, port, deadline):
    while True:
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        try:
            s.connect((cid, port))
            return s
        except OSError:
            s.close()
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def run_connect(cid, port, conns, nbytes, halfclose):
    deadline = time.time() + 90
    first = connect_one(cid, port, deadline)  # the guest is listening now
    if halfclose:
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        try:
            s.connect((cid, port + 1))
            print("peer: FAIL a connection to port %d was accepted" % (port + 1), flush=True)
            return 1
        except OSError as e:
            print("peer: port %d refused (%s)" % (port + 1, e.strerror), flush=True)
        s.close()
    socks = [first] + [connect_one(cid, port, deadline) for _ in range(conns - 1)]
    results = [None] * conns

    def worker(i, s):
        data = pattern_fast(i * 13, nbytes)
        got = bytearray()

        def reader():
            while len(got) < nbytes:
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                got.extend(chunk)

        t = threading.Thread(target=reader)
        t.start()
        view = memoryview(data)
        while view:
            n = s.send(view[:1 << 16])
            view = view[n:]
        if halfclose:
            s.shutdown(socket.SHUT_WR)
        t.join(120)
        if halfclose and len(got) == nbytes and s.recv(1):
            got.extend(b"?")  # data after the echo: fail below
        results[i] = bytes(got) == data
        if not results[i]:
            print("peer: FAIL connection %d: echoed %d of %d bytes, %s" %
                  (i, len(got), nbytes, "differs" if len(got) == nbytes else "short"), flush=True)
        s.close()

    threads = [threading.Thread(target=worker, args=(i, s)) for i, s in enumerate(socks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    ok = all(results)
    print("peer: conns=%d bytes=%d" % (conns, conns * nbytes if ok else -1), flush=True)
    return 0 if ok else 1


def run_listen(port, nbytes, sink):
    ls = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    ls.bind((socket.VMADDR_CID_ANY, port))
    ls.listen(1)
    ls.settimeout(120)
    print("peer: listening on port %d" % port, flush=True)
    s, addr = ls.accept()
    print("peer: connection from cid %d port %d" % addr, flush=True)
    s.settimeout(120)
    crc, got = 0, 0
    if not sink:
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            if chunk != pattern_fast(got, len(chunk)):
                print("peer: FAIL data from the guest differs near byte %d" % got, flush=True)
                return 1
            crc = zlib.crc32(chunk, crc)
            got += len(chunk)
            view = memoryview(chunk)
            while view:
                n = s.send(view)
                view = view[n:]
        s.close()
        ok = got == nbytes
    else:
        while got < nbytes:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            if chunk != pattern_fast(got, len(chunk)):
                print("peer: FAIL data from the guest differs near byte %d" % got, flush=True)
                return 1
            got += len(chunk)
        ok = got == nbytes
        data = pattern_fast(0, nbytes)
        crc = zlib.crc32(data)
        s.sendall(data)
        # Wait for the guest to close (its SHUTDOWN makes recv return b"").
        while s.recv(1 << 16):
            pass
        s.close()
    print("peer: bytes=%d crc32=%08x%s" % (got, crc, "" if ok else " (short)"), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1] == "connect":
        sys.exit(run_connect(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
                             len(sys.argv) > 6 and sys.argv[6] == "halfclose"))
    sys.exit(run_listen(int(sys.argv[2]), int(sys.argv[3]), len(sys.argv) > 4 and sys.argv[4] == "sink"))
