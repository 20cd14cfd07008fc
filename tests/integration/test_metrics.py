"""/metrics after a scripted workload (issue 5, "Metrics"), parsed by an
independent parser (Debian's python3-prometheus-client), with every count
checked exactly against what the workload did: connections by route (open
and total), messages and bytes in/out by route and frame type, fragmented
messages, the message size histogram, the (sampled) plugin callback
histogram, compression bytes, close codes, protocol errors by code,
handshake rejections by reason, accepted TCP connections. Further tests:
counters summed over several workers, heartbeat timeouts, TLS handshakes
and failures, reloads, plugin counters."""
import json
import os
import signal
import socket
import time
import zlib

from mbgw_harness import (Server, Client, OP_TEXT, OP_BINARY, OP_CONT, OP_CLOSE, close_payload, frame,
                          http_exchange, probe_route, run_tests, scrape_metrics, wait_access, wait_metric)
from tls_certs import Certs, TLSClient, TLSServer, client_context, tls_section

MAX_PAYLOAD = 65536
ROUTES = """
[route echo]
path = /ws
plugin = echo
format = raw

[route bin]
path = /bin
plugin = echo
format = raw

[route guarded]
path = /guarded
plugin = echo
format = raw
origins = https://ok.example
"""

# le bounds of mbgw_message_size_bytes: 16, 64, 256, ... 4 GiB, +Inf
SIZE_BOUNDS = [1 << (4 + 2 * i) for i in range(15)]


def raw_deflate(data, bits=15):
    """One permessage-deflate message body (RFC 7692 §7.2.1): a raw
    deflate stream flushed to a byte boundary, without its 00 00 ff ff."""
    co = zlib.compressobj(1, zlib.DEFLATED, -bits)
    out = co.compress(data) + co.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


class Tally:
    """What the workload did, per route."""

    def __init__(self):
        self.routes = {}
        self.order = []           # route of every message dispatched to a plugin, in order
        self.deflate = {"in_wire": 0, "in_raw": 0, "out_raw": 0, "out_wire": 0}
        self.closes = {}
        self.protocol_errors = {}
        self.rejections = {}
        self.accepted = 0          # TCP connections made to the server

    def r(self, route):
        return self.routes.setdefault(route, {
            "in": {"text": [0, 0], "binary": [0, 0]}, "out": {"text": [0, 0], "binary": [0, 0]},
            "fragmented": 0, "sizes": [], "total": 0})

    def message(self, route, kind, size, fragmented):
        r = self.r(route)
        r["in"][kind][0] += 1
        r["in"][kind][1] += size
        r["sizes"].append(size)
        r["fragmented"] += fragmented
        self.order.append(route)

    def echo(self, route, kind, size):
        r = self.r(route)
        r["out"][kind][0] += 1
        r["out"][kind][1] += size

    def close(self, code):
        self.closes[code] = self.closes.get(code, 0) + 1


class WS:
    """A raw client that records what it does in a Tally."""

    def __init__(self, s, tally, route, path, deflate=False):
        self.tally, self.route = tally, route
        headers = {"Sec-WebSocket-Extensions": "permessage-deflate"} if deflate else None
        tally.accepted += 1
        self.c = Client(s.port, path, headers=headers)
        assert self.c.status == 101
        self.deflate = deflate
        if deflate:
            assert self.c.response_headers.get("sec-websocket-extensions") == "permessage-deflate", \
                self.c.response_headers
            self.inflater = zlib.decompressobj(-15)
        tally.r(route)["total"] += 1

    def recv(self):
        """The next message, inflated if it came compressed (and the wire
        size of compressed ones recorded)."""
        fin, rsv, op, data = self.c.recv_frame()
        compressed = bool(rsv & 4)
        parts = [data]
        while not fin:
            fin, _, cop, more = self.c.recv_frame()
            assert cop == OP_CONT
            parts.append(more)
        data = b"".join(parts)
        if compressed:
            self.tally.deflate["out_wire"] += len(data)
            data = self.inflater.decompress(data + b"\x00\x00\xff\xff")
            self.tally.deflate["out_raw"] += len(data)
        return op, data, compressed

    def send(self, kind, payload, pieces=1, compress=False):
        """Sends one message (in `pieces` frames, compressed or not) and
        checks its echo."""
        op = OP_TEXT if kind == "text" else OP_BINARY
        wire = raw_deflate(payload) if compress else payload
        n = len(wire)
        cuts = [n * i // pieces for i in range(pieces + 1)]
        for i in range(pieces):
            self.c.send_frame(op if i == 0 else OP_CONT, wire[cuts[i]:cuts[i + 1]], fin=i == pieces - 1,
                              rsv=4 if compress and i == 0 else 0)
        if compress:
            self.tally.deflate["in_wire"] += n
            self.tally.deflate["in_raw"] += len(payload)
        self.tally.message(self.route, kind, len(payload), pieces > 1)
        got_op, got, compressed = self.recv()
        assert (got_op, got) == (op, payload), (kind, len(payload), got_op, len(got))
        # the echo is compressed exactly when it reaches the threshold (1 KiB)
        assert compressed == (self.deflate and len(payload) >= 1024), (len(payload), compressed)
        self.tally.echo(self.route, kind, len(payload))

    def close(self, code):
        self.c.send_frame(OP_CLOSE, close_payload(code, "bye"))
        got, _ = self.c.expect_close()
        assert got == code
        self.c.expect_eof()
        self.tally.close(code)

    def fail(self, data, code):
        """Sends data that breaks the protocol; the server must close
        with `code`."""
        self.c.send(data)
        got, _ = self.c.expect_close()
        assert got == code, (got, code)
        self.c.expect_eof()
        self.tally.close(code)
        self.tally.protocol_errors[code] = self.tally.protocol_errors.get(code, 0) + 1


def reject(s, tally, reason, data=None, status=None, path=None, headers=None):
    tally.accepted += 1
    if data is None:
        c = Client(s.port, path, headers=headers)
        got = c.status
        c.close()
    else:
        got = http_exchange(s.port, data).status
    assert got == status, (reason, got, status)
    tally.rejections[reason] = tally.rejections.get(reason, 0) + 1


def test_workload_counts_exactly():
    t = Tally()
    with Server(routes=ROUTES, workers=1, log_level="info",
                server_extra="max_payload = %d\nping_interval = 0" % MAX_PAYLOAD) as s:
        t.accepted += 1  # Server.start's probe connection
        texts = [b"", b"hello", b"x" * 16, b"y" * 17, json.dumps({"k": list(range(30))}).encode(),
                 ("\u00e9t\u00e9 " * 700).encode(), b"t" * MAX_PAYLOAD]
        binaries = [b"\x00", bytes(range(64)), bytes(range(65)), os.urandom(4096), b"\xff" * 20000]

        # plain connections on /ws: every text and binary message, some
        # fragmented (3 frames)
        ws = [WS(s, t, "echo", "/ws") for _ in range(5)]
        for i, c in enumerate(ws):
            for j, p in enumerate(texts):
                c.send("text", p, pieces=3 if (i + j) % 3 == 0 and p else 1)
            for j, p in enumerate(binaries[: 2 + i % 4]):
                c.send("binary", p, pieces=2 if j % 2 else 1)
        # /bin: binaries only
        bins = [WS(s, t, "bin", "/bin") for _ in range(3)]
        for i, c in enumerate(bins):
            for j, p in enumerate(binaries):
                c.send("binary", p, pieces=4 if j == i else 1)
        # compressed messages (one fragmented), echoed compressed from 1 KiB
        z = WS(s, t, "echo", "/ws", deflate=True)
        z.send("text", b"{}" * 1500, compress=True)
        z.send("text", b"small", compress=True)
        z.send("text", ("compressible " * 400).encode(), pieces=2, compress=True)
        z.send("binary", bytes(3000), compress=True)
        z.send("text", b"u" * 5000)  # uncompressed on a compressing connection
        z.send("binary", b"b" * 100)

        # protocol errors
        p = WS(s, t, "echo", "/ws")
        p.fail(frame(OP_TEXT, b"unmasked", mask=False), 1002)
        p = WS(s, t, "echo", "/ws")
        p.fail(frame(OP_TEXT, b"\xff\xfe"), 1007)
        p = WS(s, t, "bin", "/bin")
        p.fail(frame(OP_BINARY, b"", length=MAX_PAYLOAD + 1), 1009)
        p = WS(s, t, "echo", "/ws")
        p.send("text", b"fine first")
        p.fail(frame(3, b"reserved opcode"), 1002)

        # rejections
        upgrade = Client(s.port, handshake=False)
        req = upgrade.request_bytes("/ws")
        upgrade.close()
        t.accepted += 1
        reject(s, t, "not_found", path="/nope", status=404)
        reject(s, t, "not_found", path="/nope/either", status=404)
        reject(s, t, "not_found", data=b"GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n", status=404)
        reject(s, t, "upgrade_required", data=b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", status=426)
        reject(s, t, "bad_request", data=req.replace(b"Sec-WebSocket-Key", b"X-Key"), status=400)
        reject(s, t, "bad_request", data=b"NONSENSE\r\n\r\n", status=400)
        reject(s, t, "method_not_allowed", data=req.replace(b"GET ", b"POST ", 1), status=405)
        reject(s, t, "origin", path="/guarded", headers={"Origin": "https://evil.example"}, status=403)
        reject(s, t, "too_large", data=b"GET /ws HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n",
               status=431)

        # closes: codes chosen by the clients, an abrupt end, two left open
        for c, code in zip(ws, (1000, 1000, 1001, 4001)):
            c.close(code)
        ws[4].c.close()          # TCP closed without a close frame: 1006
        t.close(1006)
        bins[0].close(1000)
        bins[1].close(3000)
        z.close(1000)
        open_clients = {"echo": 0, "bin": 1}  # bins[2] stays; ws[4] was aborted

        # the counters of closed connections are updated when they are
        # reaped: wait for the last close, then scrape until the only
        # other connection open is the scrape itself
        total_closes = sum(t.closes.values())
        deadline = time.monotonic() + 5
        while True:
            t.accepted += 1
            m = scrape_metrics(s.port)
            closes = sum(m.series("mbgw_close_codes_total").values())
            if closes == total_closes and m.get("mbgw_connections_open") == 1 + sum(open_clients.values()):
                break
            assert time.monotonic() < deadline, (closes, total_closes, m.get("mbgw_connections_open"))
            time.sleep(0.05)

        assert m.get("mbgw_up") == 1
        assert m.get("mbgw_connections_accepted_total") == t.accepted, (m.get("mbgw_connections_accepted_total"),
                                                                        t.accepted)
        # rejections, by reason (every reason listed, the others zero)
        reasons = {dict(k)["reason"]: v for k, v in m.series("mbgw_handshakes_rejected_total").items()}
        assert set(reasons) == {"bad_request", "not_found", "method_not_allowed", "upgrade_required",
                                "too_large", "timeout", "tls", "origin", "auth", "limit", "plugin", "other"}
        for reason, v in reasons.items():
            assert v == t.rejections.get(reason, 0), (reason, v, t.rejections)
        # close codes and protocol errors
        closes = {dict(k)["code"]: v for k, v in m.series("mbgw_close_codes_total").items() if v}
        want = {}
        for code, n in t.closes.items():
            label = "4xxx" if 4000 <= code < 5000 else "3xxx" if 3000 <= code < 4000 else str(code)
            want[label] = want.get(label, 0) + n
        assert closes == want, (closes, want)
        errors = {dict(k)["code"]: v for k, v in m.series("mbgw_protocol_errors_total").items() if v}
        assert errors == {str(k): v for k, v in t.protocol_errors.items()}, (errors, t.protocol_errors)
        # per route
        for route, r in t.routes.items():
            assert m.get("mbgw_route_connections_total", route=route) == r["total"], route
            assert m.get("mbgw_route_connections_open", route=route) == open_clients[route], route
            for direction in ("in", "out"):
                for kind in ("text", "binary"):
                    n, b = r[direction][kind]
                    got = (m.get("mbgw_messages_total", route=route, direction=direction, type=kind),
                           m.get("mbgw_message_bytes_total", route=route, direction=direction, type=kind))
                    assert got == (n, b), (route, direction, kind, got, (n, b))
            assert m.get("mbgw_fragmented_messages_total", route=route) == r["fragmented"], route
            # size histogram: cumulative buckets, sum, count
            buckets = {dict(k)["le"]: v for k, v in m.series("mbgw_message_size_bytes_bucket").items()
                       if dict(k)["route"] == route}
            assert len(buckets) == len(SIZE_BOUNDS) + 1, buckets
            for le in SIZE_BOUNDS:
                want_n = sum(1 for x in r["sizes"] if x <= le)
                assert buckets[str(le)] == want_n, (route, le, buckets[str(le)], want_n)
            assert m.get("mbgw_message_size_bytes_bucket", route=route, le="+Inf") == len(r["sizes"])
            assert m.get("mbgw_message_size_bytes_count", route=route) == len(r["sizes"])
            assert m.get("mbgw_message_size_bytes_sum", route=route) == sum(r["sizes"])
            # the plugin callback is timed for 1 message in 16 of the
            # worker, counting from its first
            sampled = sum(1 for k, rt in enumerate(t.order) if rt == route and k % 16 == 0)
            assert m.get("mbgw_plugin_callback_seconds_count", route=route) == sampled, (route, sampled)
            assert m.get("mbgw_plugin_callback_seconds_bucket", route=route, le="+Inf") == sampled
            assert m.get("mbgw_plugin_callback_seconds_sum", route=route) > 0
        # the refused route opened nothing
        assert m.get("mbgw_route_connections_total", route="guarded") == 0
        if os.environ.get("MBGW_TEST_VERBOSE"):
            print(json.dumps({"tally": {k: v for k, v in t.routes.items()}, "closes": t.closes,
                              "deflate": t.deflate, "rejections": t.rejections, "accepted": t.accepted}))
        # compression
        for (direction, stage), key in ((("in", "wire"), "in_wire"), (("in", "raw"), "in_raw"),
                                        (("out", "raw"), "out_raw"), (("out", "wire"), "out_wire")):
            got = m.get("mbgw_compression_bytes_total", direction=direction, stage=stage)
            assert got == t.deflate[key], (direction, stage, got, t.deflate[key])
        # nothing of what was not done
        for name in ("mbgw_heartbeat_timeouts_total", "mbgw_send_queue_overflows_total",
                     "mbgw_tls_handshakes_total", "mbgw_tls_handshake_failures_total"):
            assert m.get(name) == 0, name
        assert m.get("mbgw_reloads_total", result="ok") == m.get("mbgw_reloads_total", result="failed") == 0
        bins[2].c.close()


def test_counters_are_summed_over_workers():
    with Server(workers=3, log_level="info") as s:
        clients = [Client(s.port) for _ in range(9)]
        try:
            for i, c in enumerate(clients):
                for k in range(4):
                    c.send_frame(OP_BINARY if k % 2 else OP_TEXT, b"m" * (i + 1))
                for k in range(4):
                    c.recv_message()
            m = scrape_metrics(s.port)
            assert m.get("mbgw_route_connections_open", route="echo") == 9
            assert m.get("mbgw_route_connections_total", route="echo") == 9
            for kind in ("text", "binary"):
                assert m.get("mbgw_messages_total", route="echo", direction="in", type=kind) == 18
                assert m.get("mbgw_messages_total", route="echo", direction="out", type=kind) == 18
                assert m.get("mbgw_message_bytes_total", route="echo", direction="in", type=kind) == 2 * 45
            assert m.get("mbgw_message_size_bytes_count", route="echo") == 36
        finally:
            for c in clients:
                c.close()
        wait_metric(s.port, "mbgw_close_codes_total", 9, code="1006")
        wait_metric(s.port, "mbgw_route_connections_open", 0, route="echo")


def test_heartbeat_timeout_is_counted():
    with Server(server_extra="ping_interval = 200ms\npong_timeout = 200ms", log_level="info") as s:
        c = Client(s.port)
        try:
            fin, rsv, op, data = c.recv_frame()
            assert op == 9, op  # the heartbeat ping, left unanswered
            c.expect_eof(timeout=5)
        finally:
            c.close()
        m = wait_metric(s.port, "mbgw_heartbeat_timeouts_total", 1)
        assert m.get("mbgw_close_codes_total", code="1006") == 1


def test_tls_handshakes_and_failures_are_counted():
    with Certs() as certs:
        cert, key = certs.server("mbgw")
        with TLSServer(tls_section(cert, key), log_level="info") as s:
            ctx = client_context(certs.ca_cert)
            for _ in range(2):
                c = TLSClient(s.tls_port, ctx)
                assert c.status == 101
                c.close()
            raw = socket.create_connection(("127.0.0.1", s.tls_port), timeout=5)
            raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP on the TLS port
            try:
                raw.recv(100)
            except OSError:
                pass
            raw.close()
            # two failures: this one, and TLSServer.start's probe, a TCP
            # connection closed without a ClientHello
            m = wait_metric(s.port, "mbgw_tls_handshake_failures_total", 2)
            assert m.get("mbgw_tls_handshakes_total") == 2
            wait_access(s, "open", tls=1)


def test_reloads_are_counted():
    with Server(log_level="info") as s:
        s.proc.send_signal(signal.SIGHUP)
        wait_metric(s.port, "mbgw_reloads_total", 1, result="ok")
        with open(os.path.join(s.confdir, "20-bad.conf"), "w") as f:
            f.write("[route broken]\npath = /b\n")  # no plugin
        s.proc.send_signal(signal.SIGHUP)
        m = wait_metric(s.port, "mbgw_reloads_total", 1, result="failed")
        assert m.get("mbgw_reloads_total", result="ok") == 1
        os.unlink(os.path.join(s.confdir, "20-bad.conf"))


def test_plugin_counters():
    with Server(routes=probe_route("p", "/p"), log_level="info") as s:
        c = Client(s.port, "/p")
        try:
            for i, delta in enumerate((5, 2)):
                c.send_frame(OP_TEXT, ('counter id=%d\n{"name": "jobs_done", "delta": %d}' % (i, delta)).encode())
                op, data = c.recv_message()
                assert json.loads(data.partition(b"\n")[2])["rc"] == 0, data
        finally:
            c.close()
        m = scrape_metrics(s.port)
        assert 'mbgw_plugin_counter_total{route="p",name="jobs_done"} 7\n' in m.text, m.text[-500:]
        # (a counter's samples are read as NAME_total by the parser)
        assert m.get("mbgw_plugin_counter_total", route="p", name="jobs_done") == 7


if __name__ == "__main__":
    run_tests([
        test_workload_counts_exactly,
        test_counters_are_summed_over_workers,
        test_heartbeat_timeout_is_counted,
        test_tls_handshakes_and_failures_are_counted,
        test_reloads_are_counted,
        test_plugin_counters,
    ])
