"""The opening handshake (RFC 6455 §4) and the plain-HTTP side of the
listener: exact 101 answers, every refusal with its status, headers and
log line, limits, the slowloris guard, pipelined frames, subprotocol
negotiation and request-smuggling guards."""
import base64
import os
import re
import socket
import time

from mbgw_harness import (Server, Client, Response, OP_TEXT, OP_BINARY, OP_CLOSE, accept_key,
                          close_payload, frame, http_exchange, http_get, run_tests)


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info  \[c\d+\.\d+\] handshake rejected from ")


def upgrade_headers(**over):
    h = {
        "Host": "127.0.0.1",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
    }
    for k, v in over.items():
        k = k.replace("_", "-")
        if v is None:
            h.pop(k, None)
        else:
            h[k] = v
    return h


def raw_request(path="/ws", method="GET", version="HTTP/1.1", headers=None, extra_lines=()):
    """Builds a request; headers maps names to values (None drops one),
    extra_lines are appended verbatim (for duplicates and odd forms)."""
    h = upgrade_headers() if headers is None else headers
    lines = ["%s %s %s" % (method, path, version)]
    lines += ["%s: %s" % (k, v) for k, v in h.items() if v is not None]
    lines += list(extra_lines)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def assert_rejected(s, data, status, reason_in_log, extra_check=None):
    """Sends data on a fresh connection; the server must answer `status`,
    close the connection and log one line naming the peer and the
    reason."""
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    port = sock.getsockname()[1]
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            raw += chunk
    finally:
        sock.close()
    r = Response(raw)
    assert r.status == status, "expected %d, got %r for %r" % (status, r, data[:120])
    assert r.version == "HTTP/1.1", r.status_line
    assert r.header("Connection") == "close", r.headers
    assert int(r.header("Content-Length")) == len(r.body), r
    needle = "handshake rejected from 127.0.0.1:%d: %d %s" % (port, status, reason_in_log)
    assert s.wait_log(needle), "log lacks %r:\n%s" % (needle, s.logtext()[-2000:])
    # Exactly one line per rejection, with timestamp, level and connection id.
    lines = [l for l in s.logtext().splitlines()
             if "handshake rejected from 127.0.0.1:%d:" % port in l]
    assert len(lines) == 1, lines
    assert LOG_LINE.match(lines[0]), lines[0]
    if extra_check:
        extra_check(r)
    return r


# --- the successful upgrade ---------------------------------------------------

def test_upgrade_exact_101():
    with Server() as s:
        key = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3 example
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        h = upgrade_headers(Sec_WebSocket_Key=key)
        sock.sendall(raw_request(headers=h))
        raw = b""
        for _ in range(100):
            if b"\r\n\r\n" in raw:
                break
            chunk = sock.recv(4096)
            assert chunk, raw
            raw += chunk
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0] == "HTTP/1.1 101 Switching Protocols", lines
        hdrs = {}
        for line in lines[1:]:
            k, v = line.split(": ", 1)
            assert k.lower() not in hdrs, "duplicate header %s" % k
            hdrs[k.lower()] = v
        assert hdrs["upgrade"].lower() == "websocket", hdrs
        assert hdrs["connection"].lower() == "upgrade", hdrs
        assert hdrs["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", hdrs
        assert accept_key(key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        # No subprotocol offered or configured, no extension negotiated.
        assert "sec-websocket-protocol" not in hdrs, hdrs
        assert "sec-websocket-extensions" not in hdrs, hdrs
        # Nothing else follows the 101 until we send something.
        assert rest == b"", rest
        sock.sendall(frame(OP_TEXT, "after upgrade"))
        c = Client.__new__(Client)
        c.sock, c.buf, c.timeout = sock, b"", 5
        assert c.recv_message() == (OP_TEXT, b"after upgrade")
        c.send_frame(OP_CLOSE, close_payload(1000))
        assert c.expect_close() == (1000, b"")
        c.expect_eof()
        assert s.wait_log("open remote=127.0.0.1:")


def test_random_keys_accepted_with_correct_accept():
    with Server() as s:
        for _ in range(20):
            with Client(s.port) as c:
                assert c.status == 101
                assert c.response_headers["sec-websocket-accept"] == accept_key(c.key)


def test_connection_token_list_and_case_insensitive_upgrade():
    variants = [
        {"Connection": "keep-alive, Upgrade"},
        {"Connection": "Upgrade, keep-alive"},
        {"Connection": "keep-alive,upgrade"},
        {"Connection": "UPGRADE"},
        {"Upgrade": "WebSocket"},
        {"Upgrade": "WEBSOCKET"},
        {"Upgrade": "h2c, websocket"},
        {"Sec-WebSocket-Version": " 13 "},
    ]
    with Server() as s:
        for v in variants:
            with Client(s.port, headers=v) as c:
                assert c.status == 101, (v, c.status)
                c.send_frame(OP_TEXT, "ok")
                assert c.recv_message() == (OP_TEXT, b"ok"), v
        # The Connection tokens may also be spread over two header lines.
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        h = upgrade_headers(Connection="keep-alive")
        sock.sendall(raw_request(headers=h, extra_lines=["Connection: Upgrade"]))
        assert sock.recv(4096).startswith(b"HTTP/1.1 101 ")
        sock.close()


def test_query_string_and_absolute_form():
    with Server() as s:
        with Client(s.port, path="/ws?token=abc&x=1") as c:
            assert c.status == 101
        with Client(s.port, path="http://127.0.0.1/ws") as c:
            assert c.status == 101


def test_frames_pipelined_with_the_request_are_answered():
    with Server() as s:
        c = Client(s.port, handshake=False)
        extra = frame(OP_TEXT, "first") + frame(OP_BINARY, b"\x01\x02") + frame(OP_TEXT, "third")
        assert c.handshake(extra=extra) == 101
        assert c.recv_message() == (OP_TEXT, b"first")
        assert c.recv_message() == (OP_BINARY, b"\x01\x02")
        assert c.recv_message() == (OP_TEXT, b"third")
        # A close pipelined too: answered after the echo.
        c2 = Client(s.port, handshake=False)
        assert c2.handshake(extra=frame(OP_TEXT, "x") + frame(OP_CLOSE, close_payload(1000))) == 101
        assert c2.recv_message() == (OP_TEXT, b"x")
        assert c2.expect_close() == (1000, b"")
        c2.expect_eof()
        c.close()


def test_large_frames_pipelined_with_the_request():
    """Frames behind the request that are larger than a read buffer."""
    with Server() as s:
        c = Client(s.port, handshake=False, timeout=10)
        big = os.urandom(300000)
        extra = frame(OP_BINARY, big) + frame(OP_TEXT, "tail")
        assert c.handshake(extra=extra) == 101
        assert c.recv_message() == (OP_BINARY, big)
        assert c.recv_message() == (OP_TEXT, b"tail")
        c.close()


def test_request_and_frame_split_around_the_head_end():
    """The read boundary falls anywhere near the blank line that ends the
    head: the frame behind it is never lost or misparsed."""
    with Server() as s:
        for delta in range(-6, 8):
            c = Client(s.port, handshake=False)
            req = c.request_bytes()
            data = req + frame(OP_TEXT, "pipelined %d" % delta)
            cut = len(req) + delta
            c.send(data[:cut])
            time.sleep(0.02)
            c.send(data[cut:])
            assert c.read_response() == 101, delta
            assert c.response_headers["sec-websocket-accept"] == accept_key(c.key)
            assert c.recv_message() == (OP_TEXT, b"pipelined %d" % delta), delta
            c.close()


def test_request_split_in_single_bytes():
    with Server() as s:
        c = Client(s.port, handshake=False)
        c.send_chunks(c.request_bytes() + frame(OP_TEXT, "slow"), 1)
        assert c.read_response() == 101
        assert c.response_headers["sec-websocket-accept"] == accept_key(c.key)
        assert c.recv_message() == (OP_TEXT, b"slow")
        c.close()


def test_unsupported_extension_not_negotiated():
    """An offered extension the server does not implement is not accepted,
    and RSV1 (which only an extension could give meaning) is then 1002."""
    with Server() as s:
        with Client(s.port, headers={
                "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits, x-webkit-deflate-frame, foo"}) as c:
            assert c.status == 101
            ext = c.response_headers.get("sec-websocket-extensions")
            assert ext is None or ext.split(";")[0].strip() == "permessage-deflate", ext
            if ext is None:
                c.send_frame(OP_TEXT, b"\xf2\x48\xcd\xc9\xc9\x07\x00", rsv=4)
                c.fail_expected(1002)
        with Client(s.port, headers={"Sec-WebSocket-Extensions": "x-unknown-ext"}) as c:
            assert c.status == 101
            assert "sec-websocket-extensions" not in c.response_headers, c.response_headers


# --- plain HTTP ----------------------------------------------------------------

def test_healthz():
    with Server() as s:
        r = http_get(s.port, "/healthz")
        assert r.status == 200, r
        assert r.body == b"ok\n", r.body
        assert r.header("Content-Length") == "3", r.headers
        assert r.header("Content-Type").startswith("text/plain"), r.headers


def test_head_healthz_has_no_body():
    with Server() as s:
        r = http_get(s.port, "/healthz", method="HEAD")
        assert r.status == 200, r
        assert r.header("Content-Length") == "3", r.headers
        # RFC 9110 §9.3.2: a response to HEAD carries no content.
        assert r.body == b"", r.body


def test_post_healthz_is_405():
    with Server() as s:
        r = http_get(s.port, "/healthz", method="POST", headers={"Content-Length": "0"})
        assert r.status == 405, r
        allow = r.header("Allow")
        assert allow == "GET, HEAD, OPTIONS", r.headers


def test_unknown_path_404():
    with Server() as s:
        assert_rejected(s, raw_request(path="/nope"), 404, "No WebSocket route at this path (GET /nope)")
        # Without upgrade headers too.
        assert_rejected(s, raw_request(path="/nope/deeper", headers={"Host": "x"}), 404,
                        "No WebSocket route at this path (GET /nope/deeper)")
        # The route is matched exactly: no prefix or trailing-slash match.
        assert_rejected(s, raw_request(path="/ws/"), 404, "No WebSocket route at this path")
        assert_rejected(s, raw_request(path="/wsx"), 404, "No WebSocket route at this path")


def test_plain_get_on_ws_path_426():
    with Server() as s:
        def check(r):
            assert r.header("Sec-WebSocket-Version") == "13", r.headers
            assert (r.header("Upgrade") or "").lower() == "websocket", r.headers
        assert_rejected(s, raw_request(headers={"Host": "x"}), 426,
                        "This path serves WebSocket only", check)


def test_post_405():
    with Server() as s:
        def check(r):
            assert r.header("Allow") == "GET", r.headers
        assert_rejected(s, raw_request(method="POST"), 405, "WebSocket upgrade requires GET", check)
        assert_rejected(s, raw_request(method="PUT", headers={"Host": "x"}), 405,
                        "WebSocket upgrade requires GET", check)


def test_wrong_version_426():
    with Server() as s:
        def check(r):
            assert r.header("Sec-WebSocket-Version") == "13", r.headers
        for v in ("8", "12", "14", "13, 8", ""):
            h = upgrade_headers(Sec_WebSocket_Version=v)
            assert_rejected(s, raw_request(headers=h), 426,
                            "Unsupported Sec-WebSocket-Version (13 required)", check)
        h = upgrade_headers(Sec_WebSocket_Version=None)
        assert_rejected(s, raw_request(headers=h), 426,
                        "Unsupported Sec-WebSocket-Version (13 required)", check)


def test_bad_keys_400():
    with Server() as s:
        assert_rejected(s, raw_request(headers=upgrade_headers(Sec_WebSocket_Key=None)), 400,
                        "Missing Sec-WebSocket-Key")
        h = upgrade_headers()
        assert_rejected(s, raw_request(headers=h, extra_lines=[
            "Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)).decode()]), 400,
            "Duplicate Sec-WebSocket-Key")
        bad = [
            base64.b64encode(os.urandom(15)).decode(),      # 15 bytes
            base64.b64encode(os.urandom(17)).decode(),      # 17 bytes
            "not base64 at all!!!!!==",                     # 24 chars, bad alphabet
            "dGhlIHNhbXBsZSBub25jZQ",                       # missing padding
            "dGhlIHNhbXBsZSBub25jZR==",                     # non-zero trailing bits
            "",
        ]
        for k in bad:
            assert_rejected(s, raw_request(headers=upgrade_headers(Sec_WebSocket_Key=k)), 400,
                            "Sec-WebSocket-Key is not base64 of 16 bytes" if k else
                            "Sec-WebSocket-Key is not base64 of 16 bytes")


def test_missing_or_bad_upgrade_headers():
    with Server() as s:
        assert_rejected(s, raw_request(headers=upgrade_headers(Host=None)), 400, "Missing Host header")
        h = upgrade_headers()
        assert_rejected(s, raw_request(headers=h, extra_lines=["Host: other"]), 400,
                        "Duplicate Host header")
        assert_rejected(s, raw_request(headers=upgrade_headers(Connection=None)), 400,
                        "Connection header must contain 'Upgrade'")
        assert_rejected(s, raw_request(headers=upgrade_headers(Connection="keep-alive")), 400,
                        "Connection header must contain 'Upgrade'")
        # An Upgrade header that does not name websocket is no WebSocket
        # request: a plain GET on a WebSocket path.
        assert_rejected(s, raw_request(headers=upgrade_headers(Upgrade="h2c")), 426,
                        "This path serves WebSocket only")


def test_http_versions():
    with Server() as s:
        assert_rejected(s, raw_request(version="HTTP/1.0"), 400, "WebSocket upgrade requires HTTP/1.1")
        assert_rejected(s, raw_request(version="HTTP/2.0"), 505,
                        "HTTP version not supported (HTTP/1.1 required)")
        assert_rejected(s, raw_request(version="HTTP/1.2"), 505,
                        "HTTP version not supported (HTTP/1.1 required)")
        assert_rejected(s, raw_request(version="HTCPCP/1.0"), 400, "Malformed request line")


def test_oversized_head_431():
    with Server() as s:  # max_header_size 8KiB (default)
        h = upgrade_headers(X_Big="a" * 9000)
        assert_rejected(s, raw_request(headers=h), 431, "Request header fields too large")
    with Server(server_extra="max_header_size = 1KiB\n") as s:
        # Just under the limit passes, just over is refused.
        h = upgrade_headers(X_Pad="p" * 700)
        with Client(s.port, headers={"X-Pad": "p" * 700}) as c:
            assert c.status == 101
        h = upgrade_headers(X_Pad="p" * 1100)
        assert_rejected(s, raw_request(headers=h), 431, "Request header fields too large")


def test_too_many_headers_431():
    with Server(server_extra="max_headers = 16\n") as s:
        lines = ["X-H%d: v" % i for i in range(11)]  # 5 upgrade headers + 11 = 16
        with Client(s.port, handshake=False) as c:
            c.send(raw_request(extra_lines=lines))
            assert c.read_response() == 101
        lines = ["X-H%d: v" % i for i in range(12)]
        assert_rejected(s, raw_request(extra_lines=lines), 431, "Too many request header fields")


def test_slowloris_dropped_after_handshake_timeout():
    with Server(server_extra="handshake_timeout = 1s\n") as s:
        partial = socket.create_connection(("127.0.0.1", s.port), timeout=6)
        port = partial.getsockname()[1]
        partial.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        silent = socket.create_connection(("127.0.0.1", s.port), timeout=6)
        # A well-behaved client connecting meanwhile is served.
        with Client(s.port) as c:
            c.send_frame(OP_TEXT, "alive")
            assert c.recv_message() == (OP_TEXT, b"alive")
        t0 = time.monotonic()
        raw = b""
        while time.monotonic() - t0 < 8:
            chunk = partial.recv(4096)  # bounded by the 6 s socket timeout
            if not chunk:
                break
            raw += chunk
        assert raw.startswith(b"HTTP/1.1 408 "), raw
        assert time.monotonic() - t0 < 6
        assert silent.recv(4096).startswith(b"HTTP/1.1 408 ")
        partial.close()
        silent.close()
        assert s.wait_log("[c") and s.wait_log(
            "handshake timeout: 127.0.0.1:%d sent no complete request within 1000 ms" % port)


def test_trickling_client_still_dropped():
    """Bytes that never complete the head do not extend the deadline."""
    with Server(server_extra="handshake_timeout = 1s\n") as s:
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=6)
        sock.sendall(b"GET /ws HTTP/1.1\r\n")
        deadline = time.monotonic() + 5
        got = b""
        sock.settimeout(0.25)
        while time.monotonic() < deadline:
            try:
                sock.sendall(b"X-A: b\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                got += chunk
            except socket.timeout:
                pass
            except ConnectionResetError:
                break
        sock.close()
        assert time.monotonic() < deadline, "trickling client was never dropped"
        assert s.wait_log("handshake timeout"), s.logtext()[-1000:]


# --- subprotocols -------------------------------------------------------------

SUBPROTO_ROUTES = """
[route echo]
path = /ws
plugin = echo
format = raw
subprotocols = chat.v2, chat.v1

[route strict]
path = /strict
plugin = echo
format = raw
subprotocols = chat.v2, chat.v1
require_subprotocol = yes
"""


def test_subprotocol_server_preference():
    with Server(routes=SUBPROTO_ROUTES) as s:
        cases = [
            ("chat.v1, chat.v2", "chat.v2"),   # our first one wins, not the client's
            ("chat.v2, chat.v1", "chat.v2"),
            ("chat.v1", "chat.v1"),
            ("other, chat.v1", "chat.v1"),
            ("other", None),
            ("chat", None),                    # no prefix matches
            ("chat.v1x", None),
        ]
        for offer, want in cases:
            with Client(s.port, headers={"Sec-WebSocket-Protocol": offer}) as c:
                assert c.status == 101, (offer, c.status)
                assert c.response_headers.get("sec-websocket-protocol") == want, \
                    (offer, c.response_headers)
        with Client(s.port) as c:
            assert c.status == 101
            assert "sec-websocket-protocol" not in c.response_headers
        # Offers spread over several header lines count together.
        with Client(s.port, handshake=False) as c:
            c.send(raw_request(headers=upgrade_headers(Sec_WebSocket_Protocol="x"),
                               extra_lines=["Sec-WebSocket-Protocol: chat.v1"]))
            assert c.read_response() == 101
            assert c.response_headers.get("sec-websocket-protocol") == "chat.v1"


def test_subprotocol_never_answers_one_not_offered():
    """Subprotocol names are compared exactly: answering 'chat.v1' to an
    offer of 'CHAT.V1' would name a protocol the client did not offer,
    which a client must fail (RFC 6455 §4.1)."""
    with Server(routes=SUBPROTO_ROUTES) as s:
        with Client(s.port, headers={"Sec-WebSocket-Protocol": "CHAT.V1"}) as c:
            assert c.status == 101
            got = c.response_headers.get("sec-websocket-protocol")
            assert got is None or got == "CHAT.V1", c.response_headers


def test_require_subprotocol():
    with Server(routes=SUBPROTO_ROUTES) as s:
        assert_rejected(s, raw_request(path="/strict"), 400, "No supported subprotocol offered")
        assert_rejected(s, raw_request(path="/strict",
                                       headers=upgrade_headers(Sec_WebSocket_Protocol="other")),
                        400, "No supported subprotocol offered")
        with Client(s.port, path="/strict", headers={"Sec-WebSocket-Protocol": "chat.v1"}) as c:
            assert c.status == 101
            assert c.response_headers["sec-websocket-protocol"] == "chat.v1"
            c.send_frame(OP_TEXT, "hi")
            assert c.recv_message() == (OP_TEXT, b"hi")


# --- smuggling guards -------------------------------------------------------------

def test_request_smuggling_guards():
    with Server() as s:
        assert_rejected(s, raw_request(extra_lines=["Transfer-Encoding: chunked"]), 501,
                        "Request bodies are not supported (Transfer-Encoding)")
        assert_rejected(s, raw_request(extra_lines=["Content-Length: 5"]), 413,
                        "Request bodies are not supported")
        assert_rejected(s, raw_request(extra_lines=["Content-Length: 0", "Content-Length: 0"]), 400,
                        "Duplicate Content-Length header")
        assert_rejected(s, raw_request(extra_lines=["X-Folded: a", " continued"]), 400,
                        "Obsolete header line folding")
        assert_rejected(s, raw_request(extra_lines=["X-Space : a"]), 400,
                        "Whitespace before colon in header field")
        req = raw_request().replace(b"\r\nUpgrade:", b"\nUpgrade:")
        assert_rejected(s, req, 400, "Bare LF in request head")
        req = raw_request().replace(b"\r\nUpgrade:", b"\rUpgrade:")
        assert_rejected(s, req, 400, "Bare CR in request head")
        assert_rejected(s, raw_request(extra_lines=["X-Ctl: a\x01b"]), 400,
                        "Control character in header field value")
        assert_rejected(s, raw_request(extra_lines=["X-Nul: a\x00b"]), 400, "NUL byte in request head")
        # A TLS ClientHello on a plain port: refused at once as garbage
        # (which of its defects is named first is the parser's business).
        assert_rejected(s, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 400, "")
        # Content-Length: 0 is no body and is accepted.
        with Client(s.port, headers={"Content-Length": "0"}) as c:
            assert c.status == 101


def test_server_keeps_serving_after_rejections():
    with Server() as s:
        for _ in range(30):
            http_exchange(s.port, b"GARBAGE\x00\r\n\r\n")
        with Client(s.port) as c:
            c.send_frame(OP_TEXT, "still here")
            assert c.recv_message() == (OP_TEXT, b"still here")


if __name__ == "__main__":
    run_tests([
        test_upgrade_exact_101,
        test_random_keys_accepted_with_correct_accept,
        test_connection_token_list_and_case_insensitive_upgrade,
        test_query_string_and_absolute_form,
        test_frames_pipelined_with_the_request_are_answered,
        test_large_frames_pipelined_with_the_request,
        test_request_and_frame_split_around_the_head_end,
        test_request_split_in_single_bytes,
        test_unsupported_extension_not_negotiated,
        test_healthz,
        test_head_healthz_has_no_body,
        test_post_healthz_is_405,
        test_unknown_path_404,
        test_plain_get_on_ws_path_426,
        test_post_405,
        test_wrong_version_426,
        test_bad_keys_400,
        test_missing_or_bad_upgrade_headers,
        test_http_versions,
        test_oversized_head_431,
        test_too_many_headers_431,
        test_slowloris_dropped_after_handshake_timeout,
        test_trickling_client_still_dropped,
        test_subprotocol_server_preference,
        test_subprotocol_never_answers_one_not_offered,
        test_require_subprotocol,
        test_request_smuggling_guards,
        test_server_keeps_serving_after_rejections,
    ])
