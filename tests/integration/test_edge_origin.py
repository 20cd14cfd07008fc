"""Origin allow-lists per route (issue 5, "Who may connect"): exact origins
and https://*.example.org patterns are let in, anything else is refused
with 403, logged with its reason and counted as
mbgw_handshakes_rejected_total{reason="origin"}; a request without an
Origin header is let in or refused as the route's allow_missing_origin
says (default yes: non-browser clients send none)."""
from mbgw_harness import (Server, Client, OP_TEXT, frame, http_get, run_tests, scrape_metrics,
                          wait_metric)

ROUTES = """
[route app]
path = /app
plugin = echo
format = raw
origins = https://app.example.com, https://*.example.org

[route strict]
path = /strict
plugin = echo
format = raw
origins = https://app.example.com
allow_missing_origin = no

[route open]
path = /open
plugin = echo
format = raw
"""


def upgrade(port, path, origin=None):
    """Upgrade with this Origin (None: no Origin header). Returns the
    status; a 101 connection is checked to echo and then closed."""
    c = Client(port, path, headers={"Origin": origin} if origin is not None else None)
    try:
        if c.status == 101:
            c.send_frame(OP_TEXT, b"hi")
            assert c.recv_message() == (OP_TEXT, b"hi")
        return c.status
    finally:
        c.close()


def test_allowed_exact_and_wildcard():
    with Server(routes=ROUTES) as s:
        for origin in ("https://app.example.com",
                       "HTTPS://APP.Example.COM",      # scheme and host compare without case
                       "https://a.example.org",
                       "https://deep.sub.example.org"):
            assert upgrade(s.port, "/app", origin) == 101, origin
        m = scrape_metrics(s.port)
        assert m.get("mbgw_handshakes_rejected_total", reason="origin") == 0
        assert m.get("mbgw_route_connections_total", route="app") == 4


def test_refused_origins_are_403_logged_and_counted():
    refused = [
        "https://evil.example.net",
        "http://app.example.com",          # another scheme is another origin
        "https://app.example.com:8443",    # and so is another port
        "https://app.example.com.evil.net",
        "https://example.org",             # the wildcard means subdomains only
        "https://evilexample.org",
        "https://a.example.org:444",
        "http://a.example.org",
        "https://a.example.org.evil.net",
        "null",                            # sandboxed documents, file: URLs
    ]
    with Server(routes=ROUTES) as s:
        for origin in refused:
            c = Client(s.port, "/app", headers={"Origin": origin})
            try:
                assert c.status == 403, (origin, c.status)
                # an answer, not an upgrade
                assert "sec-websocket-accept" not in c.response_headers, origin
                assert c.response_headers.get("x-content-type-options") == "nosniff"
            finally:
                c.close()
            line = "403 Origin %s not allowed on route app (GET /app)" % origin
            assert s.wait_log(line), "no log line %r:\n%s" % (line, s.logtext()[-2000:])
        assert "handshake rejected from 127.0.0.1:" in s.logtext()
        m = wait_metric(s.port, "mbgw_handshakes_rejected_total", len(refused), reason="origin")
        assert m.get("mbgw_route_connections_total", route="app") == 0
        # the other reasons are not charged with these refusals
        for reason in ("bad_request", "not_found", "limit", "auth", "plugin"):
            assert m.get("mbgw_handshakes_rejected_total", reason=reason) == 0, reason
        # an allowed origin still gets in afterwards
        assert upgrade(s.port, "/app", "https://x.example.org") == 101


def test_missing_origin_per_route():
    with Server(routes=ROUTES) as s:
        # default allow_missing_origin = yes, with and without an allow-list
        assert upgrade(s.port, "/app") == 101
        assert upgrade(s.port, "/open") == 101
        # allow_missing_origin = no
        assert upgrade(s.port, "/strict") == 403
        assert s.wait_log("403 Origin (none) not allowed on route strict (GET /strict)"), s.logtext()
        assert upgrade(s.port, "/strict", "https://app.example.com") == 101
        assert upgrade(s.port, "/strict", "https://a.example.org") == 403
        # no allow-list: any origin
        assert upgrade(s.port, "/open", "https://anything.example.net") == 101
        wait_metric(s.port, "mbgw_handshakes_rejected_total", 2, reason="origin")


def test_empty_origin_header_is_not_a_missing_one():
    """An Origin header with an empty value is present (and matches no
    pattern): it must not slip through as "missing"."""
    with Server(routes=ROUTES) as s:
        assert upgrade(s.port, "/app", "") == 403
        assert upgrade(s.port, "/strict", "") == 403


def test_refusal_happens_before_the_plugin_and_sends_no_frames():
    """The 403 ends the connection: nothing after the request is read as
    frames (pipelined frames are not echoed)."""
    with Server(routes=ROUTES) as s:
        c = Client(s.port, handshake=False)
        try:
            c.handshake("/app", {"Origin": "https://evil.example.net"},
                        extra=frame(OP_TEXT, b"smuggled"))
            assert c.status == 403
            c.expect_eof()
            assert b"smuggled" not in c.buf
        finally:
            c.close()
        r = http_get(s.port, "/metrics")
        assert r.status == 200


if __name__ == "__main__":
    run_tests([
        test_allowed_exact_and_wildcard,
        test_refused_origins_are_403_logged_and_counted,
        test_missing_origin_per_route,
        test_empty_origin_header_is_not_a_missing_one,
        test_refusal_happens_before_the_plugin_and_sends_no_frames,
    ])
