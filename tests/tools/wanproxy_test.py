#!/usr/bin/env python3
"""Checks build/wanproxy against servers of its own (run by t_wan.sh).

    wanproxy_test.py PATH/TO/wanproxy [DELAY_MS]

Each direction is delayed by D (measured one way, in one process, on an
established connection), a round trip costs 2 x D, a new connection pays
the handshake's round trip once, a bulk stream keeps its throughput and
its bytes, half-close travels both ways, a reset reaches the client, a
target that is not there resets the client (no hang), and many connections
at once all get their own bytes back. Prints one line per check; exits 1 on
the first failure.
"""
import hashlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

PROXY = sys.argv[1]
D = int(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0.05
SLACK = 0.025  # scheduling noise allowed on a shared two-core machine


def fail(msg):
    print("FAIL: wanproxy: " + msg)
    sys.exit(1)


def ok(msg):
    print("ok: wanproxy: " + msg, flush=True)


class Server:
    """A loopback server running handler(conn) per connection in a thread."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.run, args=(c,), daemon=True).start()

    def run(self, c):
        try:
            self.handler(c)
        except OSError:
            pass
        finally:
            c.close()


def start_proxy(target_port, delay_ms, tmp):
    port_file = os.path.join(tmp, "port.%d" % target_port)
    p = subprocess.Popen([PROXY, "--listen", "127.0.0.1:0", "--target",
                          "127.0.0.1:%d" % target_port, "--delay-ms", str(delay_ms),
                          "--port-file", port_file])
    for _ in range(100):
        if os.path.exists(port_file):
            return p, int(open(port_file).read())
        time.sleep(0.02)
    p.kill()
    fail("no port file from the proxy")


def connect(port):
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c


def recv_exact(c, n):
    buf = b""
    while len(buf) < n:
        b = c.recv(n - len(buf))
        if not b:
            fail("connection ended after %d of %d bytes" % (len(buf), n))
        buf += b
    return buf


def recv_all(c):
    parts = []
    while True:
        b = c.recv(1 << 20)
        if not b:
            return b"".join(parts)
        parts.append(b)


def echo(c):
    while True:
        b = c.recv(65536)
        if not b:
            return
        c.sendall(b)


def check_one_way(port_of):
    """client->server and server->client each take D, measured in-process"""
    arrivals = []

    def stamp(c):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            b = c.recv(1)
            if not b:
                return
            arrivals.append(time.monotonic())
            c.sendall(b"%020.9f\n" % time.monotonic())

    port = port_of(stamp)
    c = connect(port)
    c.sendall(b"w")  # pays the handshake
    recv_exact(c, 21)
    up, down, rtt = [], [], []
    for _ in range(5):
        t0 = time.monotonic()
        c.sendall(b"x")
        line = recv_exact(c, 21)
        t1 = time.monotonic()
        up.append(arrivals[-1] - t0)
        down.append(t1 - float(line))
        rtt.append(t1 - t0)
    c.close()
    for name, v in (("client->target", up), ("target->client", down)):
        m = statistics.median(v)
        if not D <= m <= D + SLACK:
            fail("%s one way took %.1f ms, expected %.0f ms" % (name, m * 1000, D * 1000))
    m = statistics.median(rtt)
    if not 2 * D <= m <= 2 * D + SLACK:
        fail("round trip took %.1f ms, expected %.0f ms" % (m * 1000, 2 * D * 1000))
    ok("one way %.1f / %.1f ms, round trip %.1f ms (D = %.0f ms)" %
       (statistics.median(up) * 1000, statistics.median(down) * 1000, m * 1000, D * 1000))


def check_handshake(port):
    t0 = time.monotonic()
    c = connect(port)
    c.sendall(b"a")
    recv_exact(c, 1)
    first = time.monotonic() - t0
    t0 = time.monotonic()
    c.sendall(b"b")
    recv_exact(c, 1)
    second = time.monotonic() - t0
    c.close()
    if not 4 * D <= first <= 4 * D + SLACK:
        fail("first round trip of a connection %.1f ms, expected 4 x D" % (first * 1000))
    if not 2 * D <= second <= 2 * D + SLACK:
        fail("second round trip %.1f ms, expected 2 x D" % (second * 1000))
    ok("a new connection's first round trip %.1f ms (handshake + request), then %.1f ms" %
       (first * 1000, second * 1000))


def bulk_round(port, data, delay):
    """upload data, half-close, read its digest and the data back: MiB/s up, down"""
    c = connect(port)
    t0 = time.monotonic()
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)  # half-close: the answer still comes back
    digest = recv_exact(c, 32)
    t1 = time.monotonic()
    back = recv_all(c)
    t2 = time.monotonic()
    c.close()
    if digest != hashlib.sha256(data).digest():
        fail("the upload arrived changed")
    if back != data:
        fail("the download arrived changed (%d of %d bytes)" % (len(back), len(data)))
    mib = len(data) >> 20
    # the first bytes wait for the handshake, the digest for one way back
    return mib / max(t1 - t0 - 4 * delay, 1e-3), mib / max(t2 - t1, 1e-3)


def check_bulk(proxy_for, mib):
    data = os.urandom(1 << 20) * mib

    def sink_then_send(c):
        got = recv_all(c)
        c.sendall(hashlib.sha256(got).digest())
        c.sendall(data)

    srv = Server(sink_then_send)
    direct = bulk_round(srv.port, data, 0)
    up, down = bulk_round(proxy_for(srv), data, D)
    # a proxy that waited for each read's delay before the next read would
    # move one 256 KiB buffer per D: 10 MiB/s at 25 ms. The machine is shared:
    # the floor follows what the same transfer did straight, within reason
    floor = max(20, min(50, min(direct) / 4))
    if min(up, down) < floor:
        fail("bulk throughput %.0f MiB/s up, %.0f MiB/s down: the proxy limits throughput" % (up, down))
    ok("%d MiB intact across a half-close: up %.0f MiB/s, down %.0f MiB/s (direct: %.0f, %.0f)" %
       (mib, up, down, direct[0], direct[1]))


def check_reset(port_of):
    def reset(c):
        c.recv(1)
        time.sleep(0.01)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")

    port = port_of(reset)
    c = connect(port)
    c.sendall(b"x")
    t0 = time.monotonic()
    try:
        b = c.recv(10)
        fail("a reset by the target reached the client as %r, not a reset" % b)
    except ConnectionResetError:
        pass
    c.close()
    ok("a reset by the target resets the client (%.1f ms)" % ((time.monotonic() - t0) * 1000))


def check_no_target(tmp):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()  # nobody listens there now
    p, port = start_proxy(dead, int(D * 1000), tmp)
    try:
        t0 = time.monotonic()
        c = connect(port)
        try:
            c.sendall(b"GET / HTTP/1.1\r\n\r\n")
            b = c.recv(10)
            if b:
                fail("got %r from a target that is not there" % b)
        except ConnectionResetError:
            pass
        took = time.monotonic() - t0
        c.close()
        if took > 2 * D + 1:
            fail("a missing target took %.1f s to show" % took)
        ok("a missing target resets the client after %.1f ms" % (took * 1000))
    finally:
        p.terminate()
        p.wait()


def check_many(port, n):
    results = [None] * n

    def one(i):
        try:
            c = connect(port)
            msg = (b"%06d" % i) * 1000
            c.sendall(msg)
            results[i] = recv_exact(c, len(msg)) == msg
            c.close()
        except OSError as e:
            results[i] = e

    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bad = [r for r in results if r is not True]
    if bad:
        fail("%d of %d concurrent connections failed: %r" % (len(bad), n, bad[:3]))
    ok("%d concurrent connections each got their own bytes back (%.2f s)" %
       (n, time.monotonic() - t0))


def main():
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        def proxy_for(srv):
            p, port = start_proxy(srv.port, int(D * 1000), tmp)
            procs.append(p)
            return port

        def port_of(handler):
            return proxy_for(Server(handler))
        try:
            check_one_way(port_of)
            check_handshake(port_of(echo))
            check_bulk(proxy_for, 100)
            check_reset(port_of)
            check_no_target(tmp)
            check_many(port_of(echo), 200)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                if p.wait() != 0:
                    fail("the proxy exited %d on SIGTERM" % p.returncode)


main()
