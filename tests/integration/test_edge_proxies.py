"""Proxies (issue 5, "Proxies"): who the client really is.

- trusted_proxies: X-Forwarded-For, X-Forwarded-Proto and Forwarded are
  believed only from the listed peers (core/edge/edge_forwarded.h gives the
  rules); from anyone else they are ignored. What is believed is what the
  access log (remote=), the plugins (conn_attr remote_addr / scheme) and
  the per-IP limits see.
- proxy_protocol listeners: a PROXY v1 or v2 header must come first
  (core/edge/edge_proxy.h); malformed headers are refused and logged; the
  header may be followed by a TLS ClientHello; the limits apply to the
  address in the header.

A client that must be untrusted connects from 127.0.0.2 (bound
explicitly); the trusted proxy is 127.0.0.1."""
import json
import socket
import ssl
import struct
import time

from mbgw_harness import (Server, Client, BoundClient, OP_CLOSE, OP_TEXT, close_payload, connect_from, free_port,
                          probe_route, probe_attrs, run_tests, scrape_metrics, http_get, Metrics, wait_access,
                          wait_metric, Skip)
from tls_certs import Certs, client_context, tls_section

ROUTES = probe_route("p", "/p")
TRUSTED = "trusted_proxies = 127.0.0.1, 10.0.0.0/8\n"


def seen(s, client):
    """(remote_addr, scheme) as the plugin sees them, and checks the
    access log's open line says the same remote."""
    a = probe_attrs(client, "remote_addr", "scheme")
    wait_access(s, "open", remote=a["remote_addr"], path="/p")  # the access log agrees
    return a["remote_addr"], a["scheme"]


def via(s, headers, source="127.0.0.1"):
    c = BoundClient(s.port, source, "/p", headers=headers)
    try:
        assert c.status == 101, c.status
        return seen(s, c) + (c.local_port,)
    finally:
        c.close()


# --- forwarding headers -------------------------------------------------------

def test_trusted_peer_x_forwarded_for_and_proto():
    with Server(server_extra=TRUSTED, routes=ROUTES) as s:
        addr, scheme, _ = via(s, {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"})
        assert addr == "203.0.113.7:0" and scheme == "wss", (addr, scheme)
        addr, scheme, _ = via(s, {"X-Forwarded-For": "203.0.113.8:5555", "X-Forwarded-Proto": "http"})
        assert addr == "203.0.113.8:5555" and scheme == "ws", (addr, scheme)
        addr, scheme, _ = via(s, {"X-Forwarded-For": "2001:db8::7"})
        assert addr == "[2001:db8::7]:0" and scheme == "ws", (addr, scheme)
        # no header from a trusted peer: the peer itself
        addr, scheme, port = via(s, {})
        assert addr == "127.0.0.1:%d" % port and scheme == "ws"
        assert "client 203.0.113.7:0 via trusted proxy 127.0.0.1:" in s.logtext()


def test_untrusted_peer_headers_are_ignored():
    hdrs = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
            "Forwarded": "for=198.51.100.1;proto=https"}
    # 127.0.0.2 is not in the list
    with Server(server_extra=TRUSTED, routes=ROUTES) as s:
        addr, scheme, port = via(s, hdrs, source="127.0.0.2")
        assert (addr, scheme) == ("127.0.0.2:%d" % port, "ws"), (addr, scheme)
        assert "203.0.113.7" not in s.logtext().split("forwarding headers")[0]
    # no trusted_proxies at all: nobody is believed, not even loopback
    with Server(routes=ROUTES) as s:
        addr, scheme, port = via(s, hdrs)
        assert (addr, scheme) == ("127.0.0.1:%d" % port, "ws"), (addr, scheme)
    # only X-Forwarded-Proto, from an untrusted peer: still plain ws
    with Server(server_extra=TRUSTED, routes=ROUTES) as s:
        addr, scheme, port = via(s, {"X-Forwarded-Proto": "https"}, source="127.0.0.2")
        assert scheme == "ws", scheme


def test_x_forwarded_for_chains():
    with Server(server_extra=TRUSTED, routes=ROUTES) as s:
        cases = [
            # the client wrote the left part itself: only the hop our
            # trusted proxy appended counts
            ("6.6.6.6, 203.0.113.7", "203.0.113.7:0"),
            ("6.6.6.6,203.0.113.7", "203.0.113.7:0"),
            # trusted hops (10/8) are skipped from the right
            ("6.6.6.6, 203.0.113.7, 10.1.2.3, 10.9.9.9", "203.0.113.7:0"),
            ("127.0.0.1, 203.0.113.9, 10.0.0.1", "203.0.113.9:0"),
            # every hop trusted: the leftmost
            ("10.0.0.5, 10.0.0.6", "10.0.0.5:0"),
        ]
        for xff, want in cases:
            addr, _, _ = via(s, {"X-Forwarded-For": xff})
            assert addr == want, (xff, addr, want)


def test_x_forwarded_for_several_lines_are_one_list():
    with Server(server_extra=TRUSTED, routes=ROUTES) as s:
        c = Client(s.port, handshake=False)
        try:
            req = c.request_bytes("/p").replace(
                b"\r\n\r\n", b"\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 203.0.113.50, 10.0.0.1\r\n\r\n")
            c.send(req)
            assert c.read_response() == 101
            addr, _ = seen(s, c)
            assert addr == "203.0.113.50:0", addr
        finally:
            c.close()


def test_malformed_or_hidden_forwarded_for_keeps_the_peer():
    with Server(server_extra=TRUSTED, routes=ROUTES) as s:
        for xff in ("not-an-address", "203.0.113.7, 300.1.1.1", "203.0.113.7 6.6.6.6", "unknown",
                    "_hidden", "203.0.113.7, unknown", "[2001:db8::1"):
            addr, scheme, port = via(s, {"X-Forwarded-For": xff, "X-Forwarded-Proto": "https"})
            assert addr == "127.0.0.1:%d" % port, (xff, addr)
        assert "forwarding headers from 127.0.0.1:" in s.logtext()


def test_forwarded_header():
    with Server(server_extra=TRUSTED, routes=ROUTES) as s:
        cases = [
            ("for=198.51.100.9;proto=https", "198.51.100.9:0", "wss"),
            ('for="[2001:db8::1]:4711";proto=http', "[2001:db8::1]:4711", "ws"),
            ("for=6.6.6.6, for=198.51.100.10", "198.51.100.10:0", "ws"),
            ("for=6.6.6.6;proto=http, for=198.51.100.11;proto=https, for=10.0.0.1",
             "198.51.100.11:0", "wss"),
            ("For=198.51.100.12;Proto=HTTPS", "198.51.100.12:0", "wss"),
        ]
        for fwd, want_addr, want_scheme in cases:
            addr, scheme, _ = via(s, {"Forwarded": fwd})
            assert (addr, scheme) == (want_addr, want_scheme), (fwd, addr, scheme)
        # malformed as a whole: ignored
        for fwd in ('for="198.51.100.9', "for=198.51.100.9;for=1.2.3.4", "for = 198.51.100.9",
                    "for=2001:db8::1"):
            addr, scheme, port = via(s, {"Forwarded": fwd})
            assert addr == "127.0.0.1:%d" % port, (fwd, addr)
        # both: X-Forwarded-For wins (proxies maintain it and pass a
        # client's own Forwarded through)
        addr, scheme, _ = via(s, {"Forwarded": "for=6.6.6.6;proto=https", "X-Forwarded-For": "203.0.113.60"})
        assert (addr, scheme) == ("203.0.113.60:0", "ws"), (addr, scheme)


def test_x_forwarded_proto_alone_and_aligned():
    with Server(server_extra=TRUSTED, routes=ROUTES) as s:
        # alone: its rightmost element
        _, scheme, _ = via(s, {"X-Forwarded-Proto": "https"})
        assert scheme == "wss"
        _, scheme, _ = via(s, {"X-Forwarded-Proto": "https, http"})
        assert scheme == "ws"
        # aligned with the chosen X-Forwarded-For hop, from the right
        addr, scheme, _ = via(s, {"X-Forwarded-For": "203.0.113.1, 10.0.0.1",
                                  "X-Forwarded-Proto": "https, http"})
        assert (addr, scheme) == ("203.0.113.1:0", "wss"), (addr, scheme)
        # wss is taken as is; a nonsense scheme changes nothing
        _, scheme, _ = via(s, {"X-Forwarded-Proto": "wss"})
        assert scheme == "wss"
        _, scheme, _ = via(s, {"X-Forwarded-Proto": "gopher"})
        assert scheme == "ws"


def test_verify_callback_sees_the_forwarded_client():
    with Server(server_extra=TRUSTED, routes=ROUTES) as s:
        c = Client(s.port, "/p", headers={"X-Forwarded-For": "203.0.113.77"})
        try:
            c.send_frame(OP_TEXT, b"verify.last id=v\n{}")
            op, data = c.recv_message()
            body = json.loads(data.decode().partition("\n")[2])
            assert body["verify"]["remote_addr"] == "203.0.113.77:0", body
        finally:
            c.close()


def test_handshake_rate_applies_to_the_forwarded_client():
    extra = TRUSTED + "handshake_rate_per_ip = 1\nhandshake_burst_per_ip = 2\n"
    with Server(server_extra=extra, routes=ROUTES) as s:
        def status(xff):
            c = Client(s.port, "/p", headers={"X-Forwarded-For": xff})
            c.close()
            return c.status
        assert [status("203.0.113.1") for _ in range(3)] == [101, 101, 429]
        # another client behind the same proxy has its own bucket
        assert [status("203.0.113.2") for _ in range(2)] == [101, 101]
        assert s.wait_log("handshake rejected from 203.0.113.1:0: 429 "), s.logtext()[-2000:]
        # spoofing the left part does not buy a new bucket
        assert status("9.9.9.9, 203.0.113.1") == 429


def test_connection_limits_released_behind_a_trusted_proxy():
    """Connections that came through a trusted proxy give their
    max_connections slot back when they close."""
    extra = TRUSTED + "max_connections = 3\n"
    with Server(server_extra=extra, routes=ROUTES) as s:
        time.sleep(0.3)  # the start-up probe connection is gone
        for i in range(6):
            deadline = time.monotonic() + 3
            while True:
                c = Client(s.port, "/p", headers={"X-Forwarded-For": "203.0.113.%d" % (i + 1)},
                           handshake=False)
                try:
                    st = c.handshake("/p", {"X-Forwarded-For": "203.0.113.%d" % (i + 1)})
                except (ConnectionError, OSError):
                    st = 503
                if st == 101:
                    c.send_frame(OP_CLOSE, close_payload(1000))
                    c.expect_close(1000)
                    c.expect_eof()
                    break
                c.close()
                if time.monotonic() > deadline:
                    if "refused: max_connections reached" in s.logtext():
                        raise AssertionError("regression: the max_connections slot of a connection whose "
                                   "address came from X-Forwarded-For is never given back "
                                   "(conn.c handle_http replaces peer_addr; conn_free releases the "
                                   "new address)")
                    raise AssertionError("connection %d refused: %s" % (i, st))
                time.sleep(0.05)


# --- PROXY protocol -----------------------------------------------------------

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def v1(src, dst="192.0.2.254", sport=56324, dport=443, fam="TCP4"):
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


def v2(src="192.0.2.1", dst="192.0.2.254", sport=56324, dport=443, cmd=0x21, fam=None, tlvs=b"",
       crc=False, length=None):
    """A PROXY v2 header. cmd 0x21 PROXY, 0x20 LOCAL; fam 0x11 TCP4 or 0x21
    TCP6 (from the address); crc=True appends a CRC32c TLV (crc="bad":
    a wrong one)."""
    if fam is None:
        fam = 0x21 if ":" in src else 0x11
    if fam == 0x11:
        addr = socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, dst)
        addr += struct.pack("!HH", sport, dport)
    elif fam == 0x21:
        addr = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
        addr += struct.pack("!HH", sport, dport)
    else:
        addr = b""
    body = addr + tlvs
    if crc:
        body += b"\x03\x00\x04" + b"\x00\x00\x00\x00"
    n = len(body) if length is None else length
    hdr = V2_SIG + bytes([cmd, fam]) + struct.pack("!H", n) + body
    if crc:
        value = crc32c(hdr)
        if crc == "bad":
            value ^= 1
        hdr = hdr[:-4] + struct.pack("!I", value)
    return hdr


class PPServer(Server):
    """mbgw with a proxy_protocol listener (self.pp_port) beside the plain
    one (self.port, which serves /metrics)."""

    def __init__(self, server_extra="", tls_conf=None, **kw):
        self.pp_port = free_port()
        flags = "tls proxy_protocol" if tls_conf else "proxy_protocol"
        super().__init__(server_extra="listen = 127.0.0.1:%d %s\n%s" % (self.pp_port, flags, server_extra),
                         routes=kw.pop("routes", ROUTES), **kw)
        if tls_conf:
            with open(self.confdir + "/20-tls.conf", "w") as f:
                f.write(tls_conf)


def pp_client(s, header, source="127.0.0.1", split=False):
    """A Client on the PROXY listener that first sends header (split:
    a byte at a time with pauses) and then upgrades on /p."""
    sock = connect_from(s.pp_port, source)
    if split:
        for i in range(len(header)):
            sock.sendall(header[i:i + 1])
            time.sleep(0.002)
    else:
        sock.sendall(header)
    c = Client.__new__(Client)
    c.sock, c.timeout, c.buf, c.status, c.response_headers = sock, 5, b"", None, {}
    c.handshake("/p")
    return c


def refused(s, data, why, source="127.0.0.1"):
    """data on the PROXY listener: the connection is closed with no answer
    at all, and the log says why."""
    sock = connect_from(s.pp_port, source)
    port = sock.getsockname()[1]
    got = b""
    try:
        try:
            sock.sendall(data)
        except OSError:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
        else:
            raise AssertionError("connection kept open after %r" % data[:60])
    finally:
        sock.close()
    assert got == b"", "an answer to a bad PROXY header: %r" % got[:100]
    line = "connection from %s:%d refused: bad PROXY protocol header: %s\n" % (source, port, why)
    assert s.wait_log(line), "no log line %r:\n%s" % (line, s.logtext()[-1500:])


def test_proxy_v1():
    with PPServer() as s:
        for header, want in ((v1("192.0.2.1"), "192.0.2.1:56324"),
                             (v1("2001:db8::5", "2001:db8::1", 40000, 443, "TCP6"), "[2001:db8::5]:40000")):
            c = pp_client(s, header)
            try:
                assert c.status == 101
                addr, scheme = seen(s, c)
                assert (addr, scheme) == (want, "ws"), (addr, scheme)
            finally:
                c.close()
        # split over many segments
        c = pp_client(s, v1("192.0.2.3", sport=1234), split=True)
        try:
            assert seen(s, c)[0] == "192.0.2.3:1234"
        finally:
            c.close()
        # UNKNOWN: the proxy's own address is kept
        c = pp_client(s, b"PROXY UNKNOWN\r\n")
        try:
            assert seen(s, c)[0] == "127.0.0.1:%d" % c.local_port
        finally:
            c.close()
        # the plain listener takes no PROXY header: it is just a bad request
        r = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        try:
            r.sendall(v1("192.0.2.1") + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert r.recv(100).startswith(b"HTTP/1.1 400 "), "plain listener accepted a PROXY line"
        finally:
            r.close()


def test_proxy_v2():
    with PPServer() as s:
        cases = [
            (v2("192.0.2.10", sport=1111), "192.0.2.10:1111"),
            (v2("2001:db8::10", "2001:db8::1", 2222), "[2001:db8::10]:2222"),
            # TLVs skipped or read; a correct CRC32c
            (v2("192.0.2.11", sport=3333, tlvs=b"\x02\x00\x0bexample.com" + b"\xe0\x00\x02ab", crc=True),
             "192.0.2.11:3333"),
        ]
        for header, want in cases:
            c = pp_client(s, header)
            try:
                assert c.status == 101
                assert seen(s, c) == (want, "ws")
            finally:
                c.close()
        # LOCAL (health checks of the proxy itself): the socket's address
        c = pp_client(s, v2(cmd=0x20, fam=0x00))
        try:
            assert seen(s, c)[0] == "127.0.0.1:%d" % c.local_port
        finally:
            c.close()
        c = pp_client(s, v2("192.0.2.12", sport=4444), split=True)
        try:
            assert seen(s, c)[0] == "192.0.2.12:4444"
        finally:
            c.close()
        assert s.wait_log("PROXY v2: client 192.0.2.10:1111 via 127.0.0.1:")


def test_malformed_proxy_headers_are_refused_and_logged():
    with PPServer() as s:
        before = scrape_metrics(s.port).get("mbgw_handshakes_rejected_total", reason="bad_request")
        bad = [
            # no header at all
            (b"GET /p HTTP/1.1\r\nHost: x\r\n\r\n", "expected a PROXY protocol header"),
            # a TLS ClientHello
            (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", "expected a PROXY protocol header"),
            # port 0
            (b"PROXY TCP4 192.0.2.1 192.0.2.2 0 443\r\n", "PROXY v1: port 0"),
            (b"PROXY TCP4 192.0.2.1 192.0.2.2 65536 443\r\n", "PROXY v1: port out of range"),
            # leading zero
            (b"PROXY TCP4 192.0.02.1 192.0.2.2 1 443\r\n", "PROXY v1: bad IPv4 address"),
            # family mismatch
            (b"PROXY TCP4 2001:db8::1 192.0.2.2 1 443\r\n", "PROXY v1: IPv6 address after TCP4"),
            # two spaces
            (b"PROXY TCP4  192.0.2.1 192.0.2.2 1 443\r\n", "PROXY v1: more than one space between fields"),
            # LF only
            (b"PROXY TCP4 192.0.2.1 192.0.2.2 1 443\n", "PROXY v1: LF without CR"),
            (b"PROXY TCP5 192.0.2.1 192.0.2.2 1 443\r\n", "PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN"),
            # too long
            (b"PROXY TCP4 192.0.2.1 192.0.2.2 1 " + b"4" * 100 + b"\r\n", "PROXY v1: line longer than 107 bytes"),
            # CRC32c mismatch
            (v2(crc="bad"), "PROXY v2: CRC32c mismatch"),
            # version 3
            (v2()[:12] + b"\x31" + v2()[13:], "PROXY v2: version is not 2"),
            # command 0xF
            (v2()[:12] + b"\x2f" + v2()[13:], "PROXY v2: command is neither LOCAL nor PROXY"),
            # too short for TCP4
            (v2(length=4), "PROXY v2: length too short for the address family"),
            # TLV runs past the end
            (v2(tlvs=b"\x02\x00\x10short"), "PROXY v2: TLV overruns the header"),
        ]
        for data, why in bad:
            refused(s, data, why)
        m = wait_metric(s.port, "mbgw_handshakes_rejected_total", before + len(bad), reason="bad_request")
        assert m.get("mbgw_route_connections_total", route="p") == 0
        assert s.count_log("refused: bad PROXY protocol header") == len(bad)
        # a client that sends nothing is dropped at the handshake timeout
        # (not tested here: that is test_handshake's slowloris case)


def test_proxy_header_then_tls():
    with Certs() as certs:
        cert, key = certs.server("mbgw", dns=("localhost",))
        tls = tls_section(cert, key)
        with PPServer(tls_conf=tls) as s:
            ctx = client_context(certs.ca_cert)
            for header, want in ((v1("192.0.2.20", sport=2020), "192.0.2.20:2020"),
                                 (v2("2001:db8::20", "2001:db8::1", 2021), "[2001:db8::20]:2021")):
                raw = connect_from(s.pp_port, "127.0.0.1")
                raw.sendall(header)
                tsock = ctx.wrap_socket(raw, server_hostname="localhost")
                c = Client.__new__(Client)
                c.sock, c.timeout, c.buf, c.status, c.response_headers = tsock, 5, b"", None, {}
                try:
                    assert c.handshake("/p") == 101
                    addr, scheme = seen(s, c)
                    assert (addr, scheme) == (want, "wss"), (addr, scheme)
                    wait_access(s, "open", remote=want, path="/p", route="p", subprotocol="-", tls=1)
                finally:
                    c.close()
            # a ClientHello without the header first is refused
            raw = connect_from(s.pp_port, "127.0.0.1")
            try:
                try:
                    ctx.wrap_socket(raw, server_hostname="localhost")
                    raise AssertionError("TLS handshake without a PROXY header succeeded")
                except (ssl.SSLError, OSError):
                    pass
            finally:
                raw.close()
            assert s.wait_log("refused: bad PROXY protocol header"), s.logtext()[-1500:]
            m = scrape_metrics(s.port)
            assert m.get("mbgw_tls_handshakes_total") == 2


def test_limits_apply_to_the_proxy_client_address():
    with PPServer(server_extra="max_connections_per_ip = 1") as s:
        a = pp_client(s, v1("192.0.2.30", sport=1))
        try:
            assert a.status == 101
            # same client behind the proxy: refused, though the TCP peer is
            # the same as for the next one
            sock = connect_from(s.pp_port, "127.0.0.1")
            sock.sendall(v1("192.0.2.30", sport=2) + a.request_bytes("/p"))
            got = b""
            try:
                while True:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    got += chunk
            except (ConnectionResetError, socket.timeout):
                pass
            sock.close()
            assert b" 101 " not in got, got
            assert s.wait_log("connection from 192.0.2.30:2 refused: max_connections_per_ip reached"), \
                s.logtext()[-1500:]
            # another client through the same proxy is let in
            b = pp_client(s, v1("192.0.2.31", sport=3))
            try:
                assert b.status == 101
            finally:
                b.close()
            # and the plain listener counts 127.0.0.1 on its own (retried:
            # the server's start-up probe may still hold 127.0.0.1's slot)
            deadline = time.monotonic() + 5
            while True:
                x = Client(s.port, handshake=False)
                try:
                    st = x.handshake("/p")
                except (ConnectionError, OSError):
                    st = None
                x.close()
                if st == 101:
                    break
                assert time.monotonic() < deadline, "plain listener refused 127.0.0.1"
                time.sleep(0.05)
        finally:
            a.close()
        # the slot comes back when the connection closes
        deadline = time.monotonic() + 5
        while True:
            try:
                c = pp_client(s, v1("192.0.2.30", sport=4))
                c.close()
                if c.status == 101:
                    break
            except (ConnectionError, OSError):
                pass
            assert time.monotonic() < deadline, "slot of 192.0.2.30 not given back"
            time.sleep(0.05)
        # /metrics is asked from 127.0.0.1 too: its slot comes back once
        # the server has seen the plain client's close, which may not have
        # happened yet (a refusal here is logged and counted like the rest).
        deadline = time.monotonic() + 5
        while True:
            r = http_get(s.port, "/metrics")
            if r.status == 200:
                break
            assert time.monotonic() < deadline, "slot of 127.0.0.1 not given back: %r" % r
            time.sleep(0.05)
        m = Metrics(r.body.decode("utf-8"))
        assert m.get("mbgw_handshakes_rejected_total", reason="limit") == \
            s.count_log("refused: max_connections_per_ip reached") >= 1


if __name__ == "__main__":
    run_tests([
        test_trusted_peer_x_forwarded_for_and_proto,
        test_untrusted_peer_headers_are_ignored,
        test_x_forwarded_for_chains,
        test_x_forwarded_for_several_lines_are_one_list,
        test_malformed_or_hidden_forwarded_for_keeps_the_peer,
        test_forwarded_header,
        test_x_forwarded_proto_alone_and_aligned,
        test_verify_callback_sees_the_forwarded_client,
        test_handshake_rate_applies_to_the_forwarded_client,
        test_connection_limits_released_behind_a_trusted_proxy,
        test_proxy_v1,
        test_proxy_v2,
        test_malformed_proxy_headers_are_refused_and_logged,
        test_proxy_header_then_tls,
        test_limits_apply_to_the_proxy_client_address,
    ])
