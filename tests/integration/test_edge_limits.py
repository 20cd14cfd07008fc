"""Admission limits (issue 5, "Limits"): max_connections,
max_connections_per_ip, the per-IP handshake token bucket
(handshake_rate_per_ip / handshake_burst_per_ip → 429) and the
per-connection message rate (message_rate / message_burst → error replies
"rate_limited", then close 1008 at twice the burst). Each refusal is
checked on the wire, in the log and in /metrics. And the default: no limit
at all, so 2000 connections from one address are all accepted.

A second client address is 127.0.0.2 (the whole of 127/8 is loopback):
the client socket is bound to it explicitly."""
import json
import resource
import socket
import time

from mbgw_harness import (Server, Client, BoundClient, OP_TEXT, OP_CLOSE, close_payload, frame,
                          connect_from, run_tests, scrape_metrics, wait_access, wait_metric)


def echo_ok(c, text=b"x"):
    c.send_frame(OP_TEXT, text)
    assert c.recv_message() == (OP_TEXT, text)


def refused_at_accept(port, source="127.0.0.1"):
    """Connects and reads: a connection refused by a limit gets a bare
    503 or is closed, never a 101. Returns what was read."""
    s = connect_from(port, source)
    try:
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    except OSError:
        pass
    got = b""
    closed = False
    deadline = time.monotonic() + 5
    try:
        while time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                closed = True
                break
            got += chunk
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        pass
    finally:
        s.close()
    assert closed, "a refused connection was left open: %r" % got[:200]
    assert not got or got.startswith(b"HTTP/1.1 503 "), got[:200]
    assert b" 101 " not in got
    return got


def close_cleanly(c):
    c.send_frame(OP_CLOSE, close_payload(1000))
    c.expect_close(1000)
    c.expect_eof()


def wait_upgrade(port, source="127.0.0.1", timeout=5):
    """A client that got its 101, retrying while the server has not yet
    reaped a connection just closed (its slot is given back then)."""
    deadline = time.monotonic() + timeout
    while True:
        c = BoundClient(port, source, handshake=False)
        try:
            if c.handshake() == 101:
                return c
        except (ConnectionError, OSError):
            pass
        c.close()
        assert time.monotonic() < deadline, "the slot of a closed connection was not given back"
        time.sleep(0.05)


def scrape_admitted(port, timeout=5):
    """Scrapes /metrics, retrying while the connection limit refuses the
    scrape (a slot is given back once the worker has reaped a closed
    connection). Returns (metrics, number of scrapes refused)."""
    deadline = time.monotonic() + timeout
    refused = 0
    while True:
        try:
            return scrape_metrics(port), refused
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            refused += 1
            time.sleep(0.05)


def test_max_connections():
    with Server(server_extra="max_connections = 3") as s:
        clients = [wait_upgrade(s.port) for _ in range(3)]
        try:
            for c in clients:
                assert c.status == 101
                echo_ok(c)
            refused_at_accept(s.port)
            # the limit is global: another address is refused too
            refused_at_accept(s.port, "127.0.0.2")
            assert s.wait_log("connection from 127.0.0.2:"), s.logtext()[-2000:]
            assert s.count_log("refused: max_connections reached") == 2, s.logtext()[-2000:]
            assert "connection from 127.0.0.1:" in s.logtext()
            # the connections already in are served on
            for c in clients:
                echo_ok(c, b"still here")
            # a closed connection gives its slot back (the scrape takes one)
            close_cleanly(clients.pop())
            m, refused = scrape_admitted(s.port)
            assert m.get("mbgw_handshakes_rejected_total", reason="limit") == 2 + refused
            assert m.get("mbgw_route_connections_open", route="echo") == 2
            clients.append(wait_upgrade(s.port))
            refused_at_accept(s.port)
        finally:
            for c in clients:
                c.close()


def test_max_connections_per_ip():
    with Server(server_extra="max_connections_per_ip = 2") as s:
        # (wait_upgrade: the server's start-up probe may still hold a slot)
        a1 = wait_upgrade(s.port)
        a2 = wait_upgrade(s.port)
        b1 = None
        try:
            assert a1.status == a2.status == 101
            refused_at_accept(s.port, "127.0.0.1")
            assert s.wait_log("refused: max_connections_per_ip reached"), s.logtext()[-2000:]
            # another address is not affected
            b1 = BoundClient(s.port, "127.0.0.2")
            assert b1.status == 101
            echo_ok(b1)
            wait_access(s, "open", remote="127.0.0.2:%d" % b1.local_port)
            b2 = BoundClient(s.port, "127.0.0.2")
            assert b2.status == 101
            refused_at_accept(s.port, "127.0.0.2")
            b2.close()
            # a closed connection gives its slot back
            close_cleanly(a2)
            a3 = wait_upgrade(s.port)
            echo_ok(a3)
            a3.close()
        finally:
            for c in (a1, a2, b1):
                if c:
                    c.close()
        assert s.count_log("refused: max_connections_per_ip reached") >= 2


def test_handshake_rate_per_ip():
    # 1 token per second: the test takes far less than a second per step,
    # so the bucket does not refill in between.
    with Server(server_extra="handshake_rate_per_ip = 1\nhandshake_burst_per_ip = 3") as s:
        for _ in range(3):
            c = Client(s.port)
            assert c.status == 101
            c.close()
        c = Client(s.port)
        t_empty = time.monotonic()  # the bucket is empty from here
        try:
            assert c.status == 429, c.status
            assert c.response_headers.get("x-content-type-options") == "nosniff"
        finally:
            c.close()
        assert s.wait_log("429 Too many handshakes from this address (handshake_rate_per_ip) (GET /ws)"), \
            s.logtext()[-2000:]
        # per address: 127.0.0.2 has its own bucket
        b = BoundClient(s.port, "127.0.0.2")
        assert b.status == 101
        b.close()
        # plain HTTP requests (health checks) do not take tokens
        from mbgw_harness import http_get
        assert http_get(s.port, "/healthz").status == 200
        m = scrape_metrics(s.port)
        assert m.get("mbgw_handshakes_rejected_total", reason="limit") == 1
        assert m.get("mbgw_route_connections_total", route="echo") == 4
        # the bucket refills at the configured rate: one token a second
        time.sleep(max(0.0, t_empty + 1.1 - time.monotonic()))
        c = Client(s.port)
        assert c.status == 101
        c.close()
        c = Client(s.port)
        c.close()
        if time.monotonic() - t_empty < 1.9:  # (a slow machine may have earned a second token)
            assert c.status == 429, c.status


def recv_until_close(c, limit=50):
    """Messages up to and including the close frame: [(op, data)]."""
    out = []
    for _ in range(limit):
        op, data = c.recv_message()
        out.append((op, data))
        if op == OP_CLOSE:
            return out
    raise AssertionError("no close among %d messages: %r" % (limit, out[-3:]))


def test_message_rate_error_then_1008():
    # burst 4: messages 1-4 pass, 5-8 (down to minus the burst) get an
    # error reply, the 9th closes with 1008. All nine go out in one write,
    # so they are processed at the same instant and nothing refills.
    with Server(server_extra="message_rate = 2\nmessage_burst = 4") as s:
        c = Client(s.port)
        try:
            c.send(b"".join(frame(OP_TEXT, b"m%d" % i) for i in range(1, 12)))
            got = recv_until_close(c)
            echoes = [d for op, d in got if op == OP_TEXT and not d.startswith(b"error")]
            errors = [d for op, d in got if op == OP_TEXT and d.startswith(b"error")]
            assert echoes == [b"m1", b"m2", b"m3", b"m4"], got
            assert len(errors) == 4, got
            for e in errors:
                head, _, body = e.partition(b"\n")
                assert head == b"error", e
                assert json.loads(body)["code"] == "rate_limited", e
            op, payload = got[-1]
            assert payload[:2] == close_payload(1008)[:2], payload
            assert payload[2:] == b"Message rate exceeded", payload
            c.send_frame(OP_CLOSE, payload[:2])  # our half of the close handshake
            c.expect_eof()
        finally:
            c.close()
        assert s.wait_log("with 1008: message rate over 2/s"), s.logtext()[-2000:]
        wait_metric(s.port, "mbgw_close_codes_total", 1, code="1008")


def test_message_rate_recovers():
    """Under the close threshold, a client that slows down is served
    again (the policy is: error replies first, close only when it keeps
    going)."""
    with Server(server_extra="message_rate = 10\nmessage_burst = 2") as s:
        c = Client(s.port)
        try:
            c.send(frame(OP_TEXT, b"a") + frame(OP_TEXT, b"b") + frame(OP_TEXT, b"c"))
            assert c.recv_message() == (OP_TEXT, b"a")
            assert c.recv_message() == (OP_TEXT, b"b")
            op, d = c.recv_message()
            assert op == OP_TEXT and json.loads(d.partition(b"\n")[2])["code"] == "rate_limited", d
            time.sleep(0.5)  # 5 tokens at 10/s: back to the full burst
            echo_ok(c, b"d")
            echo_ok(c, b"e")
            close_cleanly(c)
        finally:
            c.close()


def test_no_limits_by_default_2000_connections_from_one_address():
    n = 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * n + 200  # our sockets; the server inherits the limit
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert soft >= need, "RLIMIT_NOFILE %d is too low for %d connections" % (soft, n)
    with Server(log_level="warn", workers=2) as s:
        socks = []
        try:
            req = Client(s.port, handshake=False)
            request = req.request_bytes()
            req.close()
            for _ in range(n):
                x = socket.create_connection(("127.0.0.1", s.port), timeout=10)
                x.sendall(request)
                socks.append(x)
            ok = 0
            for x in socks:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = x.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                ok += head.startswith(b"HTTP/1.1 101 ")
            assert ok == n, "%d of %d upgrades accepted" % (ok, n)
            m = scrape_metrics(s.port)
            assert m.get("mbgw_route_connections_open", route="echo") == n
            assert m.get("mbgw_handshakes_rejected_total", reason="limit") == 0
            assert "refused" not in s.logtext()
        finally:
            for x in socks:
                x.close()


if __name__ == "__main__":
    run_tests([
        test_max_connections,
        test_max_connections_per_ip,
        test_handshake_rate_per_ip,
        test_message_rate_error_then_1008,
        test_message_rate_recovers,
        test_no_limits_by_default_2000_connections_from_one_address,
    ])
