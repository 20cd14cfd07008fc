"""The plain HTTP side (issue 5, "HTTP endpoints and CORS"): /healthz,
/readyz, /metrics (Prometheus text format, parsed by prometheus_client),
CORS for the endpoints (cors_origins: echo of an allowed Origin, Vary:
Origin, preflight OPTIONS 204), 405 with Allow for other methods, the
security headers on every plain answer, and a metrics-only listener that
serves nothing else while /metrics is then 404 on the others."""
import json
import signal
import socket
import time

from mbgw_harness import (Server, Client, OP_TEXT, free_port, http_exchange, http_get, probe_route, run_tests,
                          scrape_metrics)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'",
    "Cache-Control": "no-store",
}


def assert_security_headers(r):
    for k, v in SECURITY_HEADERS.items():
        assert r.header(k) == v, "%s: %r in %r" % (k, r.header(k), r.raw[:400])


def test_healthz_readyz_metrics():
    with Server() as s:
        r = http_get(s.port, "/healthz")
        assert (r.status, r.body) == (200, b"ok\n"), r
        assert_security_headers(r)
        r = http_get(s.port, "/readyz")
        assert (r.status, r.body) == (200, b"ready\n"), r
        assert_security_headers(r)
        r = http_get(s.port, "/metrics")
        assert r.status == 200
        assert r.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
        assert int(r.header("Content-Length")) == len(r.body)
        assert_security_headers(r)
        m = scrape_metrics(s.port)
        assert m.get("mbgw_up") == 1
        for fam, kind in (("mbgw_up", "gauge"), ("mbgw_connections_accepted", "counter"),
                          ("mbgw_handshakes_rejected", "counter"), ("mbgw_message_size_bytes", "histogram"),
                          ("mbgw_plugin_callback_seconds", "histogram")):
            assert m.families[fam].type == kind, (fam, m.families[fam].type)
        # HEAD: the same headers, no body
        h = http_get(s.port, "/metrics", method="HEAD")
        assert h.status == 200 and h.body == b"" and int(h.header("Content-Length")) > 0, h
        h = http_get(s.port, "/readyz", method="HEAD")
        assert h.status == 200 and h.body == b"" and h.header("Content-Length") == "6", h
        # the query string does not matter
        assert http_get(s.port, "/healthz?probe=1").status == 200


def _flood(c, n, mid):
    """Asks the probe plugin to send n compressed 1 MiB messages to c
    from its message callback: a callback that keeps the worker busy for
    a while (deflate), with little memory (the messages compress to a
    few KiB)."""
    c.send_frame(OP_TEXT, ("flood id=%s\n" % mid).encode() +
                 json.dumps({"size": 1 << 20, "max": n, "conn": c.conn}).encode())


def _flood_done(c, mid):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        fin, rsv, op, data = c.recv_frame()  # floods are compressed (RSV1), the reply is not
        if not rsv and data.startswith(b"r cmd=flood id=%s\n" % mid.encode()):
            body = json.loads(data.partition(b"\n")[2])
            assert body["rc"] == 0, body
            return
    raise AssertionError("no flood reply")


def _busy_client(port):
    c = Client(port, "/p", headers={"Sec-WebSocket-Extensions": "permessage-deflate"}, timeout=30)
    assert c.status == 101 and "permessage-deflate" in c.response_headers.get("sec-websocket-extensions", "")
    op, data = c.recv_message()
    assert data.startswith(b"greet"), data
    c.conn = json.loads(data.partition(b"\n")[2])["conn"]
    return c


def _readyz_at_stop():
    """One server (one worker): the worker is kept busy by a slow message
    callback (Z) while a second slow message (A) and the last bytes of 10
    /readyz requests arrive, so that A and the requests come out of the
    same epoll_wait, in that order. SIGTERM is sent while A runs: the
    requests are then handled with the server stopping. Returns their
    status lines."""
    s = Server(routes=probe_route(greet=True), workers=1, log_level="info", server_extra="drain_timeout = 5s")
    s.start()
    socks, busy = [], []
    try:
        w, w2 = _busy_client(s.port), _busy_client(s.port)
        busy += [w, w2]
        t0 = time.monotonic()
        _flood(w, 50, "cal")
        _flood_done(w, "cal")
        n = max(50, min(5000, int(0.5 / ((time.monotonic() - t0) / 50))))  # ~0.5 s per flood
        for _ in range(10):
            x = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            x.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n")
            socks.append(x)
        time.sleep(0.1)  # the heads are read; the requests are not complete
        t0 = time.monotonic()
        _flood(w, n, "z")
        time.sleep(0.1)
        _flood(w2, n, "a")
        for x in socks:
            x.sendall(b"\r\n")
        _flood_done(w, "z")  # Z is over: A runs now, for about as long
        time.sleep((time.monotonic() - t0) / 3)
        s.proc.send_signal(signal.SIGTERM)
        lines = []
        for x in socks:
            got = b""
            try:
                while True:
                    chunk = x.recv(4096)
                    if not chunk:
                        break
                    got += chunk
            except (ConnectionResetError, socket.timeout):
                pass
            x.close()
            lines.append(got.split(b"\r\n", 1)[0])
        for c in busy:
            c.close()
        assert s.proc.wait(timeout=15) == 0
        return lines
    finally:
        for x in socks + busy:
            x.close()
        s.__exit__(None, None, None)


def test_readyz_during_shutdown():
    """/readyz is 503 once the server is stopping (load balancers take the
    node out while it drains)."""
    ok, unavailable = b"HTTP/1.1 200 OK", b"HTTP/1.1 503 Service Unavailable"
    for attempt in range(3):
        lines = _readyz_at_stop()
        assert set(lines) <= {ok, unavailable}, lines
        if unavailable in lines:
            break
    assert unavailable in lines, "no 503 from /readyz while stopping in %d attempts: %r" % (attempt + 1, lines)


def test_cors():
    with Server(server_extra="cors_origins = https://ops.example.com, https://grafana.example.com") as s:
        for path in ("/metrics", "/healthz", "/readyz"):
            r = http_get(s.port, path, headers={"Origin": "https://ops.example.com"})
            assert r.status == 200
            assert r.header("Access-Control-Allow-Origin") == "https://ops.example.com", r
            assert "Origin" in (r.header("Vary") or ""), r
        r = http_get(s.port, "/metrics", headers={"Origin": "https://grafana.example.com"})
        assert r.header("Access-Control-Allow-Origin") == "https://grafana.example.com"
        # not allowed: the page is served (CORS is enforced by browsers),
        # but without the header that would let a script read it
        for origin in ("https://evil.example.net", "https://ops.example.com.evil.net", "null"):
            r = http_get(s.port, "/metrics", headers={"Origin": origin})
            assert r.status == 200
            assert r.header("Access-Control-Allow-Origin") is None, (origin, r)
        # preflight
        r = http_get(s.port, "/metrics", method="OPTIONS",
                     headers={"Origin": "https://ops.example.com", "Access-Control-Request-Method": "GET"})
        assert r.status == 204, r
        assert r.header("Access-Control-Allow-Origin") == "https://ops.example.com"
        methods = {m.strip() for m in r.header("Access-Control-Allow-Methods").split(",")}
        assert methods == {"GET", "HEAD", "OPTIONS"}, methods
        assert int(r.header("Access-Control-Max-Age")) > 0
        assert "Origin" in (r.header("Vary") or "")
        assert r.body == b""
        assert_security_headers(r)
        r = http_get(s.port, "/metrics", method="OPTIONS",
                     headers={"Origin": "https://evil.example.net", "Access-Control-Request-Method": "GET"})
        assert r.status == 204
        assert r.header("Access-Control-Allow-Origin") is None, r
        assert r.header("Access-Control-Allow-Methods") is None, r
    # without cors_origins nobody gets CORS headers
    with Server() as s:
        r = http_get(s.port, "/metrics", headers={"Origin": "https://ops.example.com"})
        assert r.status == 200 and r.header("Access-Control-Allow-Origin") is None, r
        r = http_get(s.port, "/healthz", method="OPTIONS", headers={"Origin": "https://ops.example.com"})
        assert r.status == 204 and r.header("Access-Control-Allow-Origin") is None, r
    # "*": any origin
    with Server(server_extra="cors_origins = *") as s:
        r = http_get(s.port, "/healthz", headers={"Origin": "https://anyone.example"})
        assert r.header("Access-Control-Allow-Origin") in ("*", "https://anyone.example"), r


def test_other_methods_are_405_with_allow():
    with Server() as s:
        for method in ("POST", "PUT", "DELETE", "PATCH", "TRACE"):
            for path in ("/metrics", "/healthz", "/readyz"):
                r = http_get(s.port, path, method=method, headers={"Content-Length": "0"})
                assert r.status == 405, (method, path, r)
                allow = {m.strip() for m in r.header("Allow").split(",")}
                assert allow == {"GET", "HEAD", "OPTIONS"}, (method, path, allow)
                assert_security_headers(r)
        assert s.wait_log("405 Only GET, HEAD and OPTIONS are allowed here (TRACE /readyz)")
        m = scrape_metrics(s.port)
        assert m.get("mbgw_handshakes_rejected_total", reason="method_not_allowed") == 15


def test_security_headers_on_every_plain_answer():
    routes = """
[route echo]
path = /ws
plugin = echo
format = raw
origins = https://app.example.com
"""
    with Server(routes=routes, server_extra="handshake_rate_per_ip = 1\nhandshake_burst_per_ip = 1") as s:
        answers = {
            404: http_get(s.port, "/nothing-here"),
            426: http_get(s.port, "/ws"),
            405: http_get(s.port, "/ws", method="POST", headers={"Content-Length": "0"}),
            400: http_exchange(s.port, b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                       b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"),
            431: http_exchange(s.port, b"GET /ws HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"),
        }
        c = Client(s.port, headers={"Origin": "https://evil.example.net"})
        answers[403] = c
        ok = Client(s.port, headers={"Origin": "https://app.example.com"})
        assert ok.status == 101
        ok.close()
        answers[429] = Client(s.port, headers={"Origin": "https://app.example.com"})
        for status, r in answers.items():
            if isinstance(r, Client):
                assert r.status == status, (status, r.status)
                for k, v in SECURITY_HEADERS.items():
                    assert r.response_headers.get(k.lower()) == v, (status, k, r.response_headers)
                r.close()
            else:
                assert r.status == status, (status, r)
                assert_security_headers(r)
        # the 101 carries none of them (it is not an HTTP document)
        assert "x-frame-options" not in ok.response_headers


def test_metrics_listener_isolation():
    mport = free_port()
    with Server(server_extra="listen = 127.0.0.1:%d metrics" % mport) as s:
        # the metrics listener: the three endpoints and nothing else
        for path in ("/metrics", "/healthz", "/readyz"):
            assert http_get(mport, path).status == 200, path
        scrape_metrics(mport)
        c = Client(mport)  # a WebSocket route's path
        try:
            assert c.status == 404, c.status
        finally:
            c.close()
        assert http_get(mport, "/").status == 404
        assert http_get(mport, "/ws").status == 404
        # the public listener: no /metrics any more, the rest as before
        r = http_get(s.port, "/metrics")
        assert r.status == 404, r
        assert b"mbgw_" not in r.body
        assert http_get(s.port, "/healthz").status == 200
        assert http_get(s.port, "/readyz").status == 200
        c = Client(s.port)
        try:
            assert c.status == 101
            c.send_frame(OP_TEXT, b"x")
            assert c.recv_message() == (OP_TEXT, b"x")
        finally:
            c.close()
        m = scrape_metrics(mport)
        assert m.get("mbgw_route_connections_total", route="echo") == 1
    # without a metrics listener, /metrics is on the public one
    with Server() as s:
        assert http_get(s.port, "/metrics").status == 200


def test_a_route_may_claim_an_endpoint_path():
    """A WebSocket route at /healthz takes the path on the public
    listener (upgrade 101, plain GET 426); the metrics listener still
    answers it."""
    routes = "[route h]\npath = /healthz\nplugin = echo\nformat = raw\n"
    mport = free_port()
    with Server(routes=routes, server_extra="listen = 127.0.0.1:%d metrics" % mport) as s:
        c = Client(s.port, "/healthz")
        try:
            assert c.status == 101
        finally:
            c.close()
        assert http_get(s.port, "/healthz").status == 426
        assert http_get(mport, "/healthz").status == 200


if __name__ == "__main__":
    run_tests([
        test_healthz_readyz_metrics,
        test_readyz_during_shutdown,
        test_cors,
        test_other_methods_are_405_with_allow,
        test_security_headers_on_every_plain_answer,
        test_metrics_listener_isolation,
        test_a_route_may_claim_an_endpoint_path,
    ])
