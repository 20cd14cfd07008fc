"""The plugin API through a test plugin (issue 3, "integration tests for
every error reply"): header+json decoding and every error reply code, raw
routes, route precedence and subprotocol selection, the verify / open /
close callbacks, and every host function (conn_attr, udata, timers,
counters, sends to closed ids, sends from a plugin thread, groups and
broadcast across workers).

The probe plugin (tests/plugins/probe.c) answers each command with
"r cmd=<cmd>[ id=N]\\n{...}" carrying what it saw and the return codes of
the host functions it called."""
import json
import os
import socket
import struct
import threading
import time

from mbgw_harness import (client_sockets, QuietServer, MBGW_BIN, Server, Client, OP_TEXT, OP_BINARY, OP_CONT, OP_CLOSE,
                          close_payload, frame, http_exchange, run_tests)

PLUGIN_DIR = os.environ.get("MBGW_TEST_PLUGIN_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(MBGW_BIN)), "test-plugins")

E_INVAL, E_NOCONN, E_CLOSING, E_NOTFOUND, E_RANGE, E_THREAD = -1, -2, -3, -7, -8, -9


def test_plugin(name):
    p = os.path.join(PLUGIN_DIR, name + ".so")
    assert os.path.isfile(p), "test plugin %s missing: build the tests/plugins targets" % p
    return p


def route(name, path, plugin="probe", settings=None, extra=""):
    settings = settings if settings is not None else {"name": name, "events": False}
    return "[route %s]\npath = %s\nplugin = %s\nsettings = %s\n%s\n" % (
        name, path, test_plugin(plugin), json.dumps(settings), extra)


P_ROUTE = route("p", "/p")


class Msg:
    """A received message: opcode, header, type, attrs, body (parsed JSON
    for text, bytes for binary, None when empty)."""

    def __init__(self, op, data):
        self.op = op
        self.raw = data
        if op == OP_TEXT:
            head, sep, payload = data.decode().partition("\n")
            if not sep:  # not a header+json message (e.g. a plain send)
                self.header = self.type = self.body = None
                self.attrs = {}
                return
            self.header = head
            toks = head.split(" ")
            self.type = toks[0]
            self.attrs = dict(t.split("=", 1) for t in toks[1:])
            self.body = json.loads(payload) if payload.strip() else None
        else:
            self.header = self.type = None
            self.attrs = {}
            self.body = data

    def __repr__(self):
        return "<Msg %r %r>" % (self.header, self.body)


class MC:
    """A header+json client for the probe plugin."""

    def __init__(self, port, path="/p", headers=None, timeout=10):
        self.c = Client(port, path, headers=headers, timeout=timeout)
        self.status = self.c.status
        self.backlog = []
        self.seq = 0

    def send(self, header, body=None, op=OP_TEXT):
        if isinstance(body, (dict, list)) or body is None:
            payload = "" if body is None else json.dumps(body)
        else:
            payload = body
        data = header.encode() + b"\n" + (payload.encode() if isinstance(payload, str) else payload)
        self.c.send_frame(op, data)

    def recv(self, timeout=None):
        if self.backlog:
            return self.backlog.pop(0)
        if timeout is not None:
            f = self.c.try_recv_frame(timeout)
            if f is None:
                return None
            fin, rsv, op, data = f
            assert fin and op in (OP_TEXT, OP_BINARY), (op, data[:100])
            return Msg(op, data)
        op, data = self.c.recv_message()
        assert op in (OP_TEXT, OP_BINARY), "unexpected opcode %d %r" % (op, data[:100])
        return Msg(op, data)

    def wait(self, pred, timeout=5):
        """The first message (backlog first) for which pred is true; others
        are kept in the backlog."""
        for i, m in enumerate(self.backlog):
            if pred(m):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            f = self.c.try_recv_frame(max(0.01, deadline - time.monotonic()))
            if f is None:
                continue
            fin, rsv, op, data = f
            assert op in (OP_TEXT, OP_BINARY), "unexpected opcode %d %r" % (op, data[:100])
            m = Msg(op, data)
            if pred(m):
                return m
            self.backlog.append(m)
        raise AssertionError("no matching message within %ss; backlog %r" % (timeout, self.backlog[:5]))

    def call(self, cmd, body=None, timeout=5):
        """Sends a probe command with a fresh id and returns its reply body."""
        self.seq += 1
        mid = "q%d" % self.seq
        self.send("%s id=%s" % (cmd, mid), body if body is not None else {})
        m = self.wait(lambda m: m.type in ("r", "error") and m.attrs.get("id") == mid, timeout)
        assert m.type == "r", "error reply to %s: %r" % (cmd, m.body)
        assert m.attrs.get("cmd") == cmd, m.header
        return m.body

    def error_for(self, data, op=OP_TEXT):
        """Sends raw message bytes and returns the error reply."""
        self.c.send_frame(op, data)
        m = self.wait(lambda m: m.type in ("error", "r", "echo", "raw"))
        assert m.type == "error", "expected an error reply, got %r" % m
        return m

    def close(self, code=1000, reason=""):
        self.c.send_frame(OP_CLOSE, close_payload(code, reason))
        got, _ = self.c.expect_close()
        assert got == code, got
        self.c.expect_eof()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()

    def shutdown(self):
        """Best-effort close handshake (QuietServer then waits until the
        server has closed the connection and run its close callbacks)."""
        try:
            self.c.sock.settimeout(2)
            self.c.send_frame(OP_CLOSE, close_payload(1000))
            self.c.expect_close()
            self.c.expect_eof(timeout=2)
        except (OSError, AssertionError, ConnectionError):
            pass
        self.c.close()


def assert_alive(mc):
    assert "conn" in mc.call("whoami")


# --- header+json decoding ---------------------------------------------------------------

def test_decoding_header_attrs_and_json():
    with QuietServer(routes=P_ROUTE) as s, MC(s.port) as c:
        c.send('info id=7 a=1 b.c=x=y k-2=%7B', {"k": [1, 2, {"z": None}]})
        m = c.wait(lambda m: m.type == "r")
        assert m.header == "r cmd=info id=7", m.header
        b = m.body
        assert b["type"] == "info" and b["id"] == "7" and b["opcode"] == OP_TEXT, b
        assert b["header"] == "info id=7 a=1 b.c=x=y k-2=%7B", b
        assert b["attrs"] == [["id", "7"], ["a", "1"], ["b.c", "x=y"], ["k-2", "%7B"]], b["attrs"]
        assert b["json"] == {"k": [1, 2, {"z": None}]}, b
        # Empty and blank payloads are JSON null; trailing whitespace is fine.
        for payload in ("", "  \n\t", "null"):
            c.send("info id=e", payload)
            assert c.wait(lambda m: m.type == "r").body["json"] is None
        c.send("info", '  "s"  \r\n')
        b = c.wait(lambda m: m.type == "r").body
        assert b["json"] == "s" and b["id"] is None, b
        # Several spaces between tokens.
        c.send("info   id=9    x=1", "1")
        b = c.wait(lambda m: m.type == "r").body
        assert b["id"] == "9" and b["attrs"] == [["id", "9"], ["x", "1"]] and b["json"] == 1, b


def test_fragmented_message_is_decoded_whole():
    with QuietServer(routes=P_ROUTE) as s, MC(s.port) as c:
        c.c.send(frame(OP_TEXT, b"info id=f", fin=False) + frame(OP_CONT, b'rag\n{"a"', fin=False)
                 + frame(OP_CONT, b':[1,2]}'))
        b = c.wait(lambda m: m.type == "r").body
        assert b["id"] == "frag" and b["json"] == {"a": [1, 2]}, b


def check_error(m, code, mid=None, words=()):
    assert m.type == "error", m
    if mid is None:
        assert "id" not in m.attrs, m.header
    else:
        assert m.attrs.get("id") == mid, m.header
    assert m.header == ("error" if mid is None else "error id=%s" % mid), m.header
    assert set(m.body) == {"code", "message"}, m.body
    assert m.body["code"] == code, m.body
    assert isinstance(m.body["message"], str) and len(m.body["message"]) > 10, m.body
    for w in words:
        assert w in m.body["message"], (w, m.body)


def test_bad_header_replies():
    with QuietServer(routes=P_ROUTE, server_extra="max_message_header = 64\n") as s, MC(s.port) as c:
        check_error(c.error_for(b'info id=1 {"no":"newline"}'), "bad_header", None, ["no header line"])
        check_error(c.error_for("info id=2 caf\u00e9\n{}".encode()), "bad_header", None, ["non-ASCII"])
        check_error(c.error_for(b"info\tid=3\n{}"), "bad_header", None, ["offset 4"])
        check_error(c.error_for(b"\n{}"), "bad_header", None, ["no message type"])
        check_error(c.error_for(b"a=b id=4\n{}"), "bad_header")
        # An attribute that is not key=value: the id read before it is copied.
        check_error(c.error_for(b"info id=5 novalue\n{}"), "bad_header", "5", ["key=value"])
        check_error(c.error_for(b"info id=6 =x\n{}"), "bad_header", "6")
        check_error(c.error_for(b"info id=7 k!=v\n{}"), "bad_header", "7")
        # max_message_header = 64: 64 bytes pass, 65 do not (newline or not).
        h64 = b"info id=8 pad=" + b"x" * (64 - 14)
        assert len(h64) == 64
        c.c.send_frame(OP_TEXT, h64 + b"\n{}")
        assert c.wait(lambda m: m.type in ("r", "error")).type == "r"
        check_error(c.error_for(h64 + b"y\n{}"), "bad_header", None, ["longer than 64 bytes"])
        check_error(c.error_for(b"info " + b"z" * 100), "bad_header", None, ["longer than 64 bytes"])
        # Binary messages need a header too.
        check_error(c.error_for(b"\x00\x01\x02", OP_BINARY), "bad_header")
        # None of this closed the connection.
        assert_alive(c)


def test_invalid_json_replies():
    with QuietServer(routes=P_ROUTE) as s, MC(s.port) as c:
        check_error(c.error_for(b'info id=1\n{"a":'), "invalid_json", "1", ["not valid JSON"])
        check_error(c.error_for(b"info id=2\n{'a':1}"), "invalid_json", "2")
        check_error(c.error_for(b"info id=3\n{} x"), "invalid_json", "3", ["text after its JSON value"])
        check_error(c.error_for(b"info id=4\n1 2"), "invalid_json", "4")
        check_error(c.error_for(b'info id=5\n{"a":1}}'), "invalid_json", "5")
        check_error(c.error_for(b"info id=6\nNaN"), "invalid_json", "6")
        # The error message is valid JSON even for hostile ids.
        check_error(c.error_for(b'info id="\\\n{'), "invalid_json", '"\\')
        assert_alive(c)


def test_plugin_error_and_unsupported_payload():
    routes = P_ROUTE + route("n", "/n", plugin="probe_nomsg")
    with QuietServer(routes=routes) as s:
        with MC(s.port) as c:
            check_error(c.error_for(b"fail id=11\n{}"), "plugin_error", "11")
            check_error(c.error_for(b"fail\n{}"), "plugin_error", None)
            assert_alive(c)
        with MC(s.port, "/n") as c:
            check_error(c.error_for(b"info id=12\n{}"), "unsupported_payload", "12")
            check_error(c.error_for(b"info id=13\n\x00", OP_BINARY), "unsupported_payload", "13")
            c.close()


def test_binary_payload_is_opaque():
    with QuietServer(routes=P_ROUTE) as s, MC(s.port) as c:
        payload = bytes(range(256)) + b"\n{not json\xff"
        c.c.send_frame(OP_BINARY, b"info id=b1 k=v\n" + payload)
        b = c.wait(lambda m: m.type == "r").body
        assert b["opcode"] == OP_BINARY and b["id"] == "b1", b
        assert b["attrs"] == [["id", "b1"], ["k", "v"]], b
        assert bytes.fromhex(b["hex"]) == payload
        assert b["json"] is False, b
        # Empty binary payload.
        c.c.send_frame(OP_BINARY, b"info id=b2\n")
        b = c.wait(lambda m: m.type == "r").body
        assert b["hex"] == "" and b["json"] is False, b
        # The plugin sends binary back unchanged.
        c.c.send_frame(OP_BINARY, b"echo\n" + payload)
        m = c.wait(lambda m: m.op == OP_BINARY)
        assert m.body == payload


def test_raw_route_gets_bytes_as_is():
    routes = route("raw", "/raw", extra="format = raw") + \
        "[route echo]\npath = /echo\nplugin = echo\nformat = raw\n"
    with QuietServer(routes=routes) as s:
        with MC(s.port, "/raw") as c:
            for op, data in ((OP_TEXT, b'info id=1\n{"not":"decoded"'), (OP_TEXT, b""),
                             (OP_TEXT, "no header, \u00e9".encode()),
                             (OP_BINARY, bytes(range(256)))):
                c.c.send_frame(op, data)
                m = c.wait(lambda m: m.type == "raw")
                b = m.body
                assert b["raw"] is True and b["opcode"] == op, b
                assert bytes.fromhex(b["hex"]) == data, b
                assert b["type"] is None and b["id"] is None and b["nattrs"] == 0, b
                assert b["json"] is False, b
        with Client(s.port, "/echo") as e:
            for op, data in ((OP_TEXT, b"fail id=1\n{"), (OP_BINARY, b"\x00\xff" * 1000),
                             (OP_TEXT, b"")):
                e.send_frame(op, data)
                assert e.recv_message() == (op, data)


# --- routing ------------------------------------------------------------------------

def test_route_precedence_by_type():
    routes = (route("exact", "/t", extra="types = a.b") +
              route("prefix", "/t", extra="types = a.*") +
              route("longer", "/t", extra="types = a.b.*, x.y") +
              route("catchall", "/t") +
              route("typed_only", "/n", extra="types = x.*, exact.one"))
    with QuietServer(routes=routes) as s:
        with MC(s.port, "/t") as c:
            for t, inst in (("a.b", "exact"), ("a.c", "prefix"), ("a.b.c", "longer"),
                            ("a.b.c.d", "longer"), ("a.bc", "prefix"), ("x.y", "longer"),
                            ("a", "catchall"), ("b.a", "catchall"), ("info", "catchall"),
                            ("a.", "prefix")):
                c.send("%s id=%s" % (t, t), {})
                m = c.wait(lambda m: m.attrs.get("id") == t)
                assert m.type == "r" and m.body["inst"] == inst, (t, inst, m)
        with MC(s.port, "/n") as c:
            c.send("x.z id=1", {})
            assert c.wait(lambda m: m.attrs.get("id") == "1").body["inst"] == "typed_only"
            c.send("exact.one id=2", {})
            assert c.wait(lambda m: m.attrs.get("id") == "2").body["inst"] == "typed_only"
            check_error(c.error_for(b"exact.two id=3\n{}"), "no_route", "3", ["exact.two"])
            check_error(c.error_for(b"x id=4\n{}"), "no_route", "4")
            check_error(c.error_for(b"y.x\n{}"), "no_route", None)
            assert c.call("x.whoami")["inst"] == "typed_only"


def test_subprotocol_selection():
    routes = (route("one", "/sp", extra="subprotocols = one.v2, one.v1\nrequire_subprotocol = yes") +
              route("two", "/sp", extra="subprotocols = two.v1\nrequire_subprotocol = yes") +
              route("plain", "/sp") +
              route("strict", "/strict", extra="subprotocols = s.v1\nrequire_subprotocol = yes"))
    with QuietServer(routes=routes) as s:
        def connect(path, offer):
            h = {"Sec-WebSocket-Protocol": offer} if offer else None
            return MC(s.port, path, headers=h)
        for offer, selected, inst in (("two.v1", "two.v1", "two"),
                                      ("one.v1", "one.v1", "one"),
                                      ("two.v1, one.v1", "one.v1", "one"),   # server's order
                                      ("one.v1, one.v2", "one.v2", "one"),
                                      ("zzz", None, "plain"),
                                      (None, None, "plain")):
            with connect("/sp", offer) as c:
                assert c.status == 101, (offer, c.status)
                assert c.c.response_headers.get("sec-websocket-protocol") == selected, \
                    (offer, c.c.response_headers)
                assert c.call("whoami")["inst"] == inst, offer
                got = c.call("attr", {"name": "subprotocol"})
                assert got == ({"rc": len(selected), "value": selected} if selected
                               else {"rc": E_NOTFOUND, "value": None}), (offer, got)
        with connect("/strict", "s.v1") as c:
            assert c.status == 101
        for offer in (None, "other"):
            c = Client(s.port, "/strict", headers={"Sec-WebSocket-Protocol": offer} if offer else None)
            assert c.status == 400, (offer, c.status)
            c.close()
        c = Client(s.port, "/nowhere")
        assert c.status == 404, c.status
        c.close()


def test_no_subprotocol_client_is_not_routed_ambiguously():
    """A route listing subprotocols (not required) and a route listing none
    share a path. A client that offers no subprotocol must reach the route
    that lists none — or, if both routes would take it (docs/plugins.md),
    the configuration must be refused as ambiguous; never accepted with
    the message silently going to whichever route comes first."""
    routes = route("withproto", "/sp", extra="subprotocols = one.v1") + route("plain", "/sp")
    s = QuietServer(routes=routes)
    try:
        s.start()
    except RuntimeError as e:
        assert "both serve path /sp" in str(e), e
        s.log.close()
        s.dir.cleanup()
        return
    with s, MC(s.port, "/sp") as c:
        inst = c.call("whoami")["inst"]
        assert inst == "plain", (
            "CORE BUG: a client offering no subprotocol is routed to 'withproto' (the first "
            "route of the path) although 'plain' is the route without subprotocols, and "
            "`mbgw check` accepted the overlap")


# --- verify, open, close ----------------------------------------------------------------

def raw_upgrade(port, path, headers=None):
    c = Client(port, handshake=False)
    data = c.request_bytes(path, headers)
    c.close()
    return http_exchange(port, data)


def test_verify_rejects_and_accepts():
    with QuietServer(routes=route("p", "/p")) as s:
        for q, status in (("deny=403", 403), ("x=1&deny=401", 401), ("deny=503", 503),
                          ("deny=200", 403), ("deny=999", 403)):
            r = raw_upgrade(s.port, "/p?" + q)
            assert r.status == status, (q, r)
            assert b"denied by probe" in r.raw, r.raw
        r = raw_upgrade(s.port, "/p", {"X-Probe-Token": "wrong"})
        assert r.status == 401 and b"bad token" in r.raw, r
        assert s.wait_log("Refused by route p: bad token")
        with MC(s.port, "/p?a=1&b=%20", headers={"X-Probe-Token": "secret",
                                                  "User-Agent": "probe-test/1.0"}) as c:
            assert c.status == 101
            v = c.call("verify.last")["verify"]
            assert v["path"] == "/p" and v["query"] == "a=1&b=%20", v
            assert v["user_agent"] == "probe-test/1.0" and v["subprotocol"] is None, v
            assert v["remote_addr"] == "127.0.0.1:%d" % c.c.local_port, v


def events_observer(port, path="/p"):
    obs = MC(port, path)
    assert obs.call("join", {"group": "probe.events"})["rc"] == 0
    return obs


def ev(obs, kind, conn, timeout=5):
    return obs.wait(lambda m: m.type == kind and m.body["conn"] == conn, timeout).body


def test_open_close_callbacks_and_codes():
    routes = route("p", "/p", settings={"name": "p"}, extra="keep_headers = User-Agent")
    with QuietServer(routes=routes) as s, events_observer(s.port) as obs:
        # open: with the connection's attributes
        c = MC(s.port, "/p?x=1", headers={"User-Agent": "ua-open/2"})
        me = c.call("whoami")["conn"]
        o = ev(obs, "ev.open", me)
        assert o["path"] == "/p" and o["query"] == "x=1" and o["route"] == "p", o
        assert o["subprotocol"] == E_NOTFOUND and o["user_agent"] == "ua-open/2", o
        assert o["remote_addr"] == "127.0.0.1:%d" % c.c.local_port, o
        # close 1000 from the client, with its reason
        c.close(1000, "bye now")
        e = ev(obs, "ev.close", me)
        assert e["code"] == 1000 and e["reason"] == "bye now", e
        assert e["send_rc"] == E_NOCONN, e
        # a client's own code
        c = MC(s.port, "/p")
        me = c.call("whoami")["conn"]
        c.close(4321, "")
        e = ev(obs, "ev.close", me)
        assert e["code"] == 4321 and e["reason"] == "", e
        # TCP dropped without a close frame: 1006
        c = MC(s.port, "/p")
        me = c.call("whoami")["conn"]
        c.c.sock.close()
        e = ev(obs, "ev.close", me)
        assert e["code"] == 1006, e
        # TCP reset
        c = MC(s.port, "/p")
        me = c.call("whoami")["conn"]
        c.c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.c.sock.close()
        assert ev(obs, "ev.close", me)["code"] == 1006
        # the plugin closes: the client gets its code and reason, close sees it
        c = MC(s.port, "/p")
        me = c.call("whoami")["conn"]
        c.send("close", {"code": 4000, "reason": "plugin says bye"})
        code, reason = c.c.expect_close()
        assert code == 4000 and reason == b"plugin says bye", (code, reason)
        c.c.send_frame(OP_CLOSE, close_payload(4000))
        c.c.expect_eof()
        e = ev(obs, "ev.close", me)
        assert e["code"] == 4000 and e["reason"] == "plugin says bye", e
        # an upgrade refused by verify never opens
        obs.backlog = [m for m in obs.backlog if m.type != "ev.open"]
        assert obs.backlog == [], obs.backlog
        r = raw_upgrade(s.port, "/p?deny=403")
        assert r.status == 403
        assert obs.recv(timeout=0.3) is None


def test_open_callback_may_send_and_send_msg_without_json():
    routes = route("p", "/p", settings={"name": "p", "events": False, "greet": True})
    with QuietServer(routes=routes, workers=2) as s:
        for _ in range(4):
            with MC(s.port) as c:
                first = c.recv()   # before anything else
                assert first.type == "greet", first
                assert first.body == {"conn": c.call("whoami")["conn"]}, first.body
                c.send("nojson id=n1")
                m = c.wait(lambda m: m.attrs.get("id") == "n1")
                assert m.raw == b"r cmd=nojson id=n1\n" and m.body is None, m.raw


def test_every_route_of_a_connection_gets_open_and_close():
    routes = (route("a", "/m", settings={"name": "a"}, extra="types = whoami") +
              route("b", "/m", settings={"name": "b"}) +
              route("obs", "/obs", settings={"name": "obs", "events": False}))
    with QuietServer(routes=routes) as s, events_observer(s.port, "/obs") as obs:
        c = MC(s.port, "/m")
        who = c.call("whoami")
        assert who["inst"] == "a", who
        me = who["conn"]
        opened = {ev(obs, "ev.open", me)["inst"], ev(obs, "ev.open", me)["inst"]}
        assert opened == {"a", "b"}, opened
        assert c.call("info")["inst"] == "b"
        c.close(1001, "away")
        closed = {ev(obs, "ev.close", me)["inst"], ev(obs, "ev.close", me)["inst"]}
        assert closed == {"a", "b"}, closed


def test_conn_attr():
    routes = (route("p", "/p", extra="keep_headers = User-Agent, X-Custom, Host") +
              route("sp", "/sp", extra="subprotocols = x.v1"))
    with QuietServer(routes=routes) as s:
        with MC(s.port, "/p?k=v&e=%C3%A9", headers={"User-Agent": "attr-test/9",
                                                   "X-Custom": "a b  c"}) as c:
            def attr(name, **kw):
                return c.call("attr", dict(name=name, **kw))
            assert attr("path") == {"rc": 2, "value": "/p"}
            q = "k=v&e=%C3%A9"
            assert attr("query") == {"rc": len(q), "value": q}
            ra = "127.0.0.1:%d" % c.c.local_port
            assert attr("remote_addr") == {"rc": len(ra), "value": ra}
            assert attr("route") == {"rc": 1, "value": "p"}
            assert attr("subprotocol") == {"rc": E_NOTFOUND, "value": None}
            assert attr("header:User-Agent") == {"rc": 11, "value": "attr-test/9"}
            assert attr("header:user-agent")["value"] == "attr-test/9"
            assert attr("header:X-Custom")["value"] == "a b  c"
            assert attr("header:Host")["value"] == "127.0.0.1"
            assert attr("header:X-Missing") == {"rc": E_NOTFOUND, "value": None}
            assert attr("nonsense") == {"rc": E_NOTFOUND, "value": None}
            assert attr("scheme") == {"rc": 2, "value": "ws"}
            # out too small: E_RANGE; exactly enough (length + NUL): fine
            assert attr("path", cap=2) == {"rc": E_RANGE, "value": None}
            assert attr("path", cap=3) == {"rc": 2, "value": "/p"}
        with MC(s.port, "/sp", headers={"Sec-WebSocket-Protocol": "x.v1", "User-Agent": "u"}) as c:
            assert c.call("attr", {"name": "subprotocol"}) == {"rc": 4, "value": "x.v1"}
            # a route that keeps no headers has none
            assert c.call("attr", {"name": "header:User-Agent"}) == {"rc": E_NOTFOUND, "value": None}
            assert c.call("attr", {"name": "query"}) == {"rc": 0, "value": ""}


def test_udata_per_connection():
    with QuietServer(routes=P_ROUTE, workers=2) as s, MC(s.port) as a, MC(s.port) as b:
        assert a.call("udata.get") == {"v": None}
        assert a.call("udata.set", {"v": "alpha"}) == {"rc": 0}
        assert b.call("udata.set", {"v": "beta"}) == {"rc": 0}
        assert a.call("udata.get") == {"v": "alpha"}
        assert b.call("udata.get") == {"v": "beta"}
        assert a.call("udata.set", {"v": "alpha2"}) == {"rc": 0}
        assert a.call("udata.get") == {"v": "alpha2"}
        with MC(s.port) as c:
            assert c.call("udata.get") == {"v": None}


# --- timers, counters, bad calls ---------------------------------------------------------

def test_timers():
    with QuietServer(routes=P_ROUTE, workers=2) as s:
        clients = [MC(s.port) for _ in range(4)]   # on both workers
        try:
            for c in clients:
                t0 = time.monotonic()
                tid = c.call("timer", {"delay": 80, "count": 1})["timer"]
                assert tid > 0, tid
                f = c.wait(lambda m: m.type == "timer.fired", 3)
                assert time.monotonic() - t0 >= 0.07
                assert f.body == {"n": 1, "timer": tid}, f.body
                assert c.wait(lambda m: m.type == "timer.done").body == {"cancel_rc": None}
            # cancelled before it fires: never runs
            c = clients[0]
            tid = c.call("timer", {"delay": 300, "count": 1})["timer"]
            assert c.call("timer.cancel", {"timer": tid}) == {"rc": 0}
            assert c.call("timer.cancel", {"timer": tid}) == {"rc": E_NOTFOUND}
            assert c.recv(timeout=0.6) is None
        finally:
            for c in clients:
                c.c.close()


def test_repeating_timer_cancelled_from_its_callback():
    """A repeating timer that cancels itself from its own callback (on its
    3rd run) runs exactly 3 times."""
    with QuietServer(routes=P_ROUTE, workers=1) as s, MC(s.port) as c:
        tid = c.call("timer", {"delay": 20, "repeat": 30, "count": 3})["timer"]
        for n in (1, 2, 3):
            f = c.wait(lambda m: m.type == "timer.fired", 3)
            assert f.body == {"n": n, "timer": tid}, f.body
        done = c.wait(lambda m: m.type == "timer.done").body
        extra = c.recv(timeout=0.4)
        assert done == {"cancel_rc": 0} and extra is None, (
            "CORE BUG: timer_cancel from the timer's own callback returned %r and the timer "
            "ran again (%r)" % (done.get("cancel_rc"), extra))


def test_repeating_timer_cancelled_from_a_message():
    with QuietServer(routes=P_ROUTE, workers=2) as s, MC(s.port) as c:
        tid = c.call("timer", {"delay": 10, "repeat": 150, "count": 1000})["timer"]
        assert c.wait(lambda m: m.type == "timer.fired", 3).body["n"] == 1
        time.sleep(0.05)   # its callback has long returned
        assert c.call("timer.cancel", {"timer": tid}) == {"rc": 0}
        assert c.recv(timeout=0.5) is None
        assert c.call("timer.cancel", {"timer": tid}) == {"rc": E_NOTFOUND}


def test_repeating_timer_cancelled_while_its_callback_runs():
    """timer_cancel from a connection on worker 1 while the timer's
    (slow) callback runs on worker 0: the timer must not run again."""
    with QuietServer(routes=P_ROUTE, workers=2) as s:
        c = None
        for _ in range(40):
            c = MC(s.port)
            if int(c.call("whoami")["conn"]) >> 48 == 2:
                break
            c.c.close()
            c = None
        assert c is not None, "no connection landed on worker 1"
        with c:
            tid = c.call("timer", {"delay": 10, "repeat": 50, "count": 1000, "slow_ms": 400})["timer"]
            assert c.wait(lambda m: m.type == "timer.fired", 3).body["n"] == 1
            rc = c.call("timer.cancel", {"timer": tid})["rc"]   # the callback is still sleeping
            again = c.recv(timeout=1.0)
            assert rc == 0 and again is None, (
                "CORE BUG: timer_cancel while the timer's callback runs returned %d and the "
                "timer ran again (%r)" % (rc, again))


def test_counters():
    with QuietServer(routes=P_ROUTE) as s, MC(s.port) as c:
        assert c.call("counter", {"name": "hits", "delta": 5}) == {"rc": 0}
        assert c.call("counter", {"name": "hits", "delta": -2}) == {"rc": 0}
        assert c.call("counter", {"name": "other", "delta": 1}) == {"rc": 0}
        assert c.call("counter", {"name": "", "delta": 1}) == {"rc": E_INVAL}
        assert c.call("counter", {"name": "n" * 200, "delta": 1}) == {"rc": E_INVAL}


def test_invalid_host_calls_return_errors():
    with QuietServer(routes=P_ROUTE) as s, MC(s.port) as c:
        b = c.call("badcalls")
        expect = {
            "send_opcode": E_INVAL, "send_utf8": E_INVAL, "send_null": E_INVAL,
            "send_msg_newline": E_INVAL, "send_msg_empty": E_INVAL,
            "close_code": E_INVAL, "close_1005": E_INVAL, "close_long_reason": E_INVAL,
            "join_empty": E_INVAL, "leave_not_member": E_NOTFOUND,
            "attr_unknown": E_NOTFOUND, "attr_small": E_RANGE, "attr_noconn": E_NOCONN,
            "send_noconn": E_NOCONN, "counter_empty": E_INVAL, "timer_cancel_unknown": E_NOTFOUND,
            "strerror_noconn": "no such connection", "host_has_counter": True,
        }
        for k, v in expect.items():
            assert b[k] == v, (k, b[k], v)
        assert b["strerror_unknown"], b
        assert b["host_size"] >= 8 + 16 * 8, b
        # Still open, and nothing stray was sent.
        assert_alive(c)
        assert c.recv(timeout=0.2) is None


# --- sends to closed connections, sends from a thread --------------------------------------

def test_send_to_closed_connection_returns_noconn():
    with QuietServer(routes=route("p", "/p", settings={"name": "p"}), workers=1) as s, \
            MC(s.port) as b, events_observer(s.port) as obs:
        a = MC(s.port)
        aid = a.call("whoami")["conn"]
        # alive: delivered
        assert b.call("sendto", {"conn": aid, "text": "hi a"}) == {"rc": 0}
        assert a.wait(lambda m: m.raw == b"hi a").op == OP_TEXT
        a.close()
        ev(obs, "ev.close", aid)
        assert b.call("sendto", {"conn": aid}) == {"rc": E_NOCONN}
        assert b.call("closeconn", {"conn": aid, "code": 1000}) == {"rc": E_NOCONN}
        # ids are never reused: a new connection does not get a's id
        with MC(s.port) as a2:
            assert a2.call("whoami")["conn"] != aid
        assert b.call("sendto", {"conn": aid}) == {"rc": E_NOCONN}
        never = str(int(aid) + 1000000)
        assert b.call("sendto", {"conn": never}) == {"rc": E_NOCONN}
        assert b.call("sendto", {"conn": "0"}) == {"rc": E_NOCONN}
        assert b.call("sendto", {"conn": str(99 << 48 | 1)}) == {"rc": E_NOCONN}
        # closeconn of a live connection from another one
        c = MC(s.port)
        cid = c.call("whoami")["conn"]
        assert b.call("closeconn", {"conn": cid, "code": 4004, "reason": "by b"}) == {"rc": 0}
        code, reason = c.c.expect_close()
        assert (code, reason) == (4004, b"by b"), (code, reason)
        c.c.close()


def test_send_to_connection_on_another_worker():
    """From another worker a send is queued (MBGW_OK) and delivered."""
    with QuietServer(routes=P_ROUTE, workers=2) as s:
        # Connect until each worker has three of our connections.
        by_worker, extra = {1: [], 2: []}, []
        for _ in range(60):
            c = MC(s.port)
            w = int(c.call("whoami")["conn"]) >> 48
            (by_worker[w] if len(by_worker[w]) < 3 else extra).append(c)
            if all(len(v) == 3 for v in by_worker.values()):
                break
        for c in extra:
            c.c.close()
        conns = by_worker[1] + by_worker[2]
        try:
            assert len(conns) == 6, {k: len(v) for k, v in by_worker.items()}
            ids = [c.call("whoami")["conn"] for c in conns]
            for i, c in enumerate(conns):
                for k, target in enumerate(conns):
                    assert c.call("sendto", {"conn": ids[k], "text": "from %d" % i}) == {"rc": 0}
            for k, target in enumerate(conns):
                got = sorted(target.wait(lambda m: m.op == OP_TEXT and m.raw.startswith(b"from "))
                             .raw for _ in range(6))
                assert got == sorted(b"from %d" % i for i in range(6)), got
        finally:
            for c in conns:
                c.c.close()


def test_backpressure_send_returns_again_or_drops_client():
    """Sends to a client that does not read: over send_queue_limit,
    drop_message makes send return MBGW_E_AGAIN (the client stays, and gets
    what was queued); drop_client closes it with 1008 (MBGW_E_CLOSING)."""
    E_AGAIN = -4
    limit = 256 * 1024
    for policy in ("drop_message", "drop_client"):
        routes = route("p", "/p", extra="slow_consumer = %s" % policy)
        with QuietServer(routes=routes, workers=1,
                         server_extra="send_queue_limit = %d\n" % limit) as s:
            v = MC(s.port, timeout=20)
            vid = v.call("whoami")["conn"]
            with MC(s.port) as b:
                got = b.call("flood", {"conn": vid, "size": 64 * 1024, "max": 2000}, timeout=20)
                assert 0 < got["sent"] < 2000, got
                if policy == "drop_message":
                    assert got["rc"] == E_AGAIN, got
                    # still open: after reading what was queued, it works
                    for _ in range(got["sent"]):
                        m = v.wait(lambda m: m.op == OP_TEXT and m.raw[:1] == b"f", 20)
                        assert m.raw == b"f" * 65536
                    assert_alive(v)
                    assert b.call("sendto", {"conn": vid, "text": "after"}) == {"rc": 0}
                    assert v.wait(lambda m: m.raw == b"after").raw == b"after"
                    v.shutdown()
                else:
                    assert got["rc"] == E_CLOSING, got
                    n = 0
                    while True:
                        op, data = v.c.recv_message()
                        if op == OP_CLOSE:
                            break
                        n += 1
                    assert data[:2] == (1008).to_bytes(2, "big"), data
                    assert n <= got["sent"], (n, got)
                    v.c.send_frame(OP_CLOSE, close_payload(1008))
                    v.c.expect_eof()
                    assert s.wait_log("slow_consumer = drop_client")
                    assert b.call("sendto", {"conn": vid}) == {"rc": E_NOCONN}


def test_sends_from_a_plugin_thread():
    with QuietServer(routes=P_ROUTE, workers=2) as s:
        for _ in range(2):
            with MC(s.port) as c:
                assert c.call("thread", {"n": 300}) == {"started": True}
                for i in range(300):
                    m = c.wait(lambda m: m.type in ("thread.msg", "thread.done"))
                    assert m.type == "thread.msg" and m.body == {"i": i}, (i, m)
                done = c.wait(lambda m: m.type == "thread.done").body
                assert done == {"sends_ok": 300, "first_err": 0, "set_udata": E_THREAD,
                                "get_udata_null": True, "conn_attr": E_THREAD, "counter": 0}, done
                assert_alive(c)
        # A thread still sending while its connection goes away: no crash;
        # it reports to another connection when it is done.
        with MC(s.port) as r:
            rid = r.call("whoami")["conn"]
            for _ in range(3):
                c = MC(s.port)
                assert c.call("thread", {"n": 20000, "report_to": rid}) == {"started": True}
                c.c.sock.close()
            for _ in range(3):
                done = r.wait(lambda m: m.type == "thread.done", 20).body
                assert 0 <= done["sends_ok"] <= 20000, done
                assert done["first_err"] in (0, E_NOCONN, E_CLOSING), done
            assert_alive(r)


def test_plugin_thread_sending_during_shutdown():
    """A plugin thread keeps sending until the plugin's shutdown callback
    stops it, which runs after the workers are gone: the host functions
    it calls meanwhile must stay safe (under ASan: no use after free, no
    leak)."""
    s = Server(routes=P_ROUTE, workers=2, log_level="info")
    with s:
        with MC(s.port) as gone:
            for _ in range(3):   # these send to a connection that has closed
                assert gone.call("thread", {"n": -1, "pause_us": 20}) == {"started": True}
            gone.wait(lambda m: m.type == "thread.msg" and m.body["i"] >= 50, 5)
        with MC(s.port) as c:
            assert c.call("thread", {"n": -1, "pause_us": 20}) == {"started": True}
            c.wait(lambda m: m.type == "thread.msg" and m.body["i"] >= 50, 5)
            # stopped by the harness while both threads send


# --- groups and broadcast across workers ----------------------------------------------------

def test_groups_join_leave_except():
    with QuietServer(routes=P_ROUTE, workers=2) as s:
        a, b, c = MC(s.port), MC(s.port), MC(s.port)
        try:
            for m in (a, b):
                assert m.call("join", {"group": "g1"}) == {"rc": 0}
            assert a.call("join", {"group": "g1"}) == {"rc": 0}   # twice: still once
            assert c.call("publish", {"group": "g1", "text": "one"}) == {"rc": 0}
            for m in (a, b):
                assert m.wait(lambda x: x.op == OP_TEXT and x.raw == b"one").raw == b"one"
            assert a.recv(timeout=0.2) is None   # once, not twice
            assert c.recv(timeout=0.1) is None   # not a member
            # except: the publisher, a member, does not get its own message
            assert a.call("publish", {"group": "g1", "text": "two", "except_self": True}) == {"rc": 0}
            assert b.wait(lambda x: x.raw == b"two").raw == b"two"
            assert a.recv(timeout=0.2) is None
            # leave
            assert b.call("leave", {"group": "g1"}) == {"rc": 0}
            assert b.call("leave", {"group": "g1"}) == {"rc": E_NOTFOUND}
            assert c.call("publish", {"group": "g1", "text": "three"}) == {"rc": 0}
            assert a.wait(lambda x: x.raw == b"three").raw == b"three"
            assert b.recv(timeout=0.2) is None
            # a member that closed is simply gone
            a.close()
            assert c.call("publish", {"group": "g1", "text": "four"}) == {"rc": 0}
            assert c.call("publish", {"group": "nobody", "text": "x"}) == {"rc": 0}
            assert c.call("join", {"group": "x" * 256}) == {"rc": E_INVAL}
            assert c.call("join", {"group": "x" * 255}) == {"rc": 0}
        finally:
            for m in (a, b, c):
                m.c.close()


class Collector(threading.Thread):
    """Reads until it has `want` messages whose text starts with one of
    the prefixes (bounded by a deadline)."""

    def __init__(self, mc, want, prefix, timeout=30):
        super().__init__(daemon=True)
        self.mc, self.want, self.prefix, self.timeout = mc, want, prefix, timeout
        self.got = []
        self.error = None

    def run(self):
        deadline = time.monotonic() + self.timeout
        try:
            while len(self.got) < self.want and time.monotonic() < deadline:
                f = self.mc.c.try_recv_frame(max(0.01, deadline - time.monotonic()))
                if f is None:
                    continue
                fin, rsv, op, data = f
                assert op == OP_TEXT and fin, (op, data[:80])
                if data.startswith(self.prefix):
                    self.got.append(data.decode())
        except Exception as e:
            self.error = repr(e)


def check_streams(name, got, publishers, n):
    """Every message of every publisher exactly once, in order per publisher."""
    per = {p: [] for p in publishers}
    for text in got:
        tag, who, i = text.split(" ")
        per[who].append(int(i))
    for p in publishers:
        assert per[p] == list(range(n)), "%s: from %s got %d messages, first problems %r" % (
            name, p, len(per[p]), [x for k, x in enumerate(per[p]) if x != k][:5])


def test_cross_worker_group_and_broadcast():
    NSUB, NPUB, N = 40, 3, 200
    with QuietServer(routes=route("b", "/b"), workers=4, log_level="info") as s:
        subs = [MC(s.port, "/b", timeout=30) for _ in range(NSUB)]
        pubs = [MC(s.port, "/b", timeout=30) for _ in range(NPUB)]
        try:
            workers = {int(m.call("whoami")["conn"]) >> 48 for m in subs}
            assert len(workers) >= 3, "subscribers all on workers %r" % workers
            for m in subs:
                assert m.call("join", {"group": "room"}) == {"rc": 0}
            names = ["P%d" % k for k in range(NPUB)]

            def publish_all(kind, make):
                threads = []
                for k, p in enumerate(pubs):
                    def run(p=p, k=k):
                        for i in range(N):
                            p.send(kind, make(k, i))
                    threads.append(threading.Thread(target=run, daemon=True))
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(30)
                    assert not t.is_alive()

            # 1. group_publish from three publishers' messages
            cols = [Collector(m, NPUB * N, b"G ") for m in subs]
            for c in cols:
                c.start()
            publish_all("publish", lambda k, i: {"group": "room", "text": "G P%d %d" % (k, i),
                                                 "quiet": True})
            for c in cols:
                c.join(40)
            for k, c in enumerate(cols):
                assert c.error is None, c.error
                assert len(c.got) == NPUB * N, (k, len(c.got))
                check_streams("subscriber %d" % k, c.got, names, N)
            for m in subs + pubs:
                assert m.recv(timeout=0.05) is None   # nothing more (no duplicates)

            # 2. host->broadcast to the route: every connection, publishers too
            everyone = subs + pubs
            cols = [Collector(m, NPUB * N, b"B ") for m in everyone]
            for c in cols:
                c.start()
            publish_all("broadcast", lambda k, i: {"text": "B P%d %d" % (k, i), "quiet": True})
            for c in cols:
                c.join(40)
            for k, c in enumerate(cols):
                assert c.error is None, c.error
                assert len(c.got) == NPUB * N, (k, len(c.got))
                check_streams("connection %d" % k, c.got, names, N)
            for m in everyone:
                assert m.recv(timeout=0.05) is None
        finally:
            for m in subs + pubs:
                m.c.close()


if __name__ == "__main__":
    run_tests([
        test_decoding_header_attrs_and_json,
        test_fragmented_message_is_decoded_whole,
        test_bad_header_replies,
        test_invalid_json_replies,
        test_plugin_error_and_unsupported_payload,
        test_binary_payload_is_opaque,
        test_raw_route_gets_bytes_as_is,
        test_route_precedence_by_type,
        test_subprotocol_selection,
        test_no_subprotocol_client_is_not_routed_ambiguously,
        test_verify_rejects_and_accepts,
        test_open_close_callbacks_and_codes,
        test_open_callback_may_send_and_send_msg_without_json,
        test_every_route_of_a_connection_gets_open_and_close,
        test_conn_attr,
        test_udata_per_connection,
        test_timers,
        test_repeating_timer_cancelled_from_its_callback,
        test_repeating_timer_cancelled_from_a_message,
        test_repeating_timer_cancelled_while_its_callback_runs,
        test_counters,
        test_invalid_host_calls_return_errors,
        test_send_to_closed_connection_returns_noconn,
        test_send_to_connection_on_another_worker,
        test_backpressure_send_returns_again_or_drops_client,
        test_sends_from_a_plugin_thread,
        test_plugin_thread_sending_during_shutdown,
        test_groups_join_leave_except,
        test_cross_worker_group_and_broadcast,
    ])
