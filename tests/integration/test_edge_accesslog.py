"""Access log lines (issue 5, "Logs"): one line when a connection opens
(remote, path, route, subprotocol, tls, deflate, status, handshake
duration, user agent) and one when it closes (code, reason, bytes each
way, duration), both logfmt-style; refusals are logged with their
reason; access_log = no turns the access lines off (and nothing else).

The byte counts are checked exactly against what the client sent and
received on the socket."""
import socket
import struct
import time

from mbgw_harness import (Server, Client, OP_TEXT, OP_CLOSE, access_lines, close_payload, frame, http_get,
                          run_tests, Skip)

ROUTES = """
[route chat]
path = /chat
plugin = echo
format = raw
subprotocols = chat.v2, chat.v1

[route echo]
path = /ws
plugin = echo
format = raw
"""

def wait_lines(s, kind, n, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        lines = access_lines(s, kind)
        if len(lines) >= n:
            return lines
        assert time.monotonic() < deadline, "%d %s lines, expected %d:\n%s" % (
            len(lines), kind, n, s.logtext()[-2000:])
        time.sleep(0.05)


def exchange(port, path, headers, frames):
    """A whole connection on a raw socket: the upgrade request, `frames`,
    everything read to EOF. Returns (number of bytes sent, the bytes
    received, the local port)."""
    c = Client(port, handshake=False)
    req = c.request_bytes(path, headers)
    c.close()
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        data = req + b"".join(frames)
        sock.sendall(data)
        got = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        return len(data), got, sock.getsockname()[1]
    finally:
        sock.close()


def test_open_and_close_lines():
    with Server(routes=ROUTES, log_level="info") as s:
        ua = "edge-test/1.0 (X11; like Gecko)"
        sent, got, port = exchange(s.port, "/chat", {
            "Sec-WebSocket-Protocol": "chat.v1, chat.v2",
            "Sec-WebSocket-Extensions": "permessage-deflate",
            "User-Agent": ua,
        }, [frame(OP_TEXT, b"hello"), frame(OP_CLOSE, close_payload(1000, "done here"))])
        assert got.startswith(b"HTTP/1.1 101 "), got[:100]
        opened = wait_lines(s, "open", 1)[0]
        closed = wait_lines(s, "close", 1)[0]
        assert opened["_level"] == "info"
        assert opened["remote"] == "127.0.0.1:%d" % port
        assert opened["path"] == "/chat"
        assert opened["route"] == "chat"
        assert opened["subprotocol"] == "chat.v2"
        assert opened["tls"] == "0" and opened["deflate"] == "1"
        assert opened["status"] == "101"
        assert int(opened["duration_ms"]) >= 0
        assert opened["user_agent"] == ua
        assert closed["_conn"] == opened["_conn"]
        assert closed["remote"] == opened["remote"] and closed["route"] == "chat"
        assert closed["code"] == "1000" and closed["reason"] == "done here", closed
        # every byte each way, the HTTP head included
        assert int(closed["bytes_in"]) == sent, (closed["bytes_in"], sent)
        assert int(closed["bytes_out"]) == len(got), (closed["bytes_out"], len(got))
        assert int(closed["duration_ms"]) >= 0

        # no subprotocol, no user agent, an abnormal end; and a longer life
        c = Client(s.port, "/ws")
        time.sleep(0.3)
        c.close()
        o = wait_lines(s, "open", 2)[1]
        assert o["subprotocol"] == "-" and o["user_agent"] == "" and o["deflate"] == "0", o
        cl = wait_lines(s, "close", 2)[1]
        assert cl["code"] == "1006" and cl["reason"] == "", cl
        assert int(cl["duration_ms"]) >= 250, cl

        # a close the server starts (protocol error) names its own code
        c = Client(s.port, "/ws")
        c.send(frame(OP_TEXT, b"\xc3\x28"))
        assert c.expect_close(1007)[0] == 1007
        c.close()
        cl = wait_lines(s, "close", 3)[2]
        assert cl["code"] == "1007" and cl["reason"] == "Invalid UTF-8 in text message", cl


def test_rejections_are_logged_with_reason_and_request():
    with Server(routes=ROUTES, log_level="info") as s:
        c = Client(s.port, "/nowhere?x=1")
        assert c.status == 404
        port = c.local_port
        c.close()
        assert http_get(s.port, "/chat").status == 426
        assert s.wait_log("handshake rejected from 127.0.0.1:%d: 404 No WebSocket route at this path "
                          "(GET /nowhere?...)" % port), s.logtext()[-1500:]
        assert s.wait_log(": 426 This path serves WebSocket only: send an Upgrade request (GET /chat)")
        # no access line for a refused upgrade
        assert not access_lines(s, "open")


def test_access_log_off():
    with Server(routes=ROUTES, log_level="info", server_extra="access_log = no") as s:
        c = Client(s.port, "/ws", headers={"User-Agent": "quiet"})
        c.send_frame(OP_TEXT, b"x")
        assert c.recv_message() == (OP_TEXT, b"x")
        c.send_frame(OP_CLOSE, close_payload(1000))
        c.expect_close(1000)
        c.expect_eof()
        assert http_get(s.port, "/nowhere").status == 404
        assert s.wait_log("handshake rejected from 127.0.0.1:")  # refusals are still logged
        time.sleep(0.2)
        log = s.logtext()
        assert " open remote=" not in log and " close remote=" not in log, log[-1500:]


def test_client_text_cannot_forge_log_lines_or_fields():
    """What a client chooses (its user agent, its close reason) is logged
    inside quotes: a quote must not end the field and a newline must not
    start a new line."""
    with Server(routes=ROUTES, log_level="info") as s:
        ua = 'ua" route=forged x="'
        c = Client(s.port, "/ws", headers={"User-Agent": ua})
        reason = 'bye"\n2030-01-01T00:00:00.000Z info  [c9.9] open remote=6.6.6.6:1 path=/admin'
        c.send_frame(OP_CLOSE, struct.pack("!H", 1000) + reason.encode())
        c.expect_close(1000)
        c.expect_eof()
        wait_lines(s, "close", 1)
        problems = []
        try:
            o = access_lines(s, "open")[0]
            if o.get("user_agent") != ua or o.get("route") != "echo":
                problems.append("user agent %r logged as %r" % (ua, {k: o.get(k) for k in ("user_agent", "route")}))
        except AssertionError as e:
            problems.append("open line is not logfmt: %s" % e)
        if "6.6.6.6" in "\n".join(l for l in s.logtext().splitlines() if " close remote=" not in l):
            problems.append("a close reason with a newline forged a log line")
        if problems:
            raise AssertionError("regression: client text is logged unescaped: " + "; ".join(problems))


if __name__ == "__main__":
    run_tests([
        test_open_and_close_lines,
        test_rejections_are_logged_with_reason_and_request,
        test_access_log_off,
        test_client_text_cannot_forge_log_lines_or_fields,
    ])
