"""The shipped chat plugin (plugins/chat/chat.c): join, send, leave, who,
presence events, nick and room validation, nick_taken, not_member,
too_many_rooms and too_long (from settings), messages across workers, and
the leave presence a closing connection causes."""
import json
import os
import signal
import subprocess
import tempfile
import threading
import time

from mbgw_harness import (client_sockets, QuietServer, MBGW_BIN, Server, Client, OP_TEXT, OP_BINARY, OP_CLOSE, close_payload,
                          free_port, run_tests)


def chat_routes(settings=None):
    s = settings if settings is not None else {"max_rooms_per_connection": 3, "max_nick": 12,
                                                "max_text": 100}
    return ("[route chat]\npath = /chat\nplugin = chat\nsubprotocols = mbgw.chat.v1\n"
            "settings = %s\n" % json.dumps(s, indent=2))


class Chatter:
    """A chat client: sends "type id=N\\n{json}" and sorts what comes back."""

    def __init__(self, port, subprotocol="mbgw.chat.v1", timeout=10):
        h = {"Sec-WebSocket-Protocol": subprotocol} if subprotocol else None
        self.c = Client(port, "/chat", headers=h, timeout=timeout)
        assert self.c.status == 101, self.c.status
        self.backlog = []
        self.n = 0
        self.members = {}   # room -> nicks listed when we joined

    def send(self, type_, body, mid=None):
        head = type_ if mid is None else "%s id=%s" % (type_, mid)
        payload = body if isinstance(body, str) else json.dumps(body)
        self.c.send_frame(OP_TEXT, head + "\n" + payload)

    def _read(self, timeout):
        f = self.c.try_recv_frame(timeout)
        if f is None:
            return None
        fin, rsv, op, data = f
        assert fin and op == OP_TEXT, (op, data[:100])
        head, _, payload = data.decode().partition("\n")
        toks = head.split(" ")
        return (toks[0], dict(t.split("=", 1) for t in toks[1:]), json.loads(payload))

    def wait(self, pred, timeout=5):
        for i, m in enumerate(self.backlog):
            if pred(m):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self._read(max(0.01, deadline - time.monotonic()))
            if m is None:
                continue
            if pred(m):
                return m
            self.backlog.append(m)
        raise AssertionError("no matching message in %ss; backlog: %r" % (timeout, self.backlog[:6]))

    def request(self, type_, body):
        """Sends with a fresh id; returns (type, body) of the answer to it."""
        self.n += 1
        mid = str(self.n)
        self.send(type_, body, mid)
        t, attrs, b = self.wait(lambda m: m[1].get("id") == mid)
        return t, b

    def expect_error(self, type_, body, code):
        t, b = self.request(type_, body)
        assert t == "error", (t, b)
        assert b["code"] == code and b["message"], (code, b)
        return b

    def join(self, room, nick):
        t, b = self.request("chat.join", {"room": room, "nick": nick})
        assert t == "chat.joined", (t, b)
        assert b["room"] == room and b["nick"] == nick and nick in b["members"], b
        self.members[room] = set(b["members"])
        return b

    def stale(self, m):
        """A join presence of someone who was already listed when we
        joined: the presence was published before our join but crossed
        workers after it (the chat plugin does not order the two)."""
        return (m[0] == "chat.presence" and m[2].get("event") == "join"
                and m[2].get("nick") in self.members.get(m[2].get("room"), ()))

    def event(self, type_, **fields):
        return self.wait(lambda m: m[0] == type_ and all(m[2].get(k) == v for k, v in fields.items()))[2]

    def quiet(self, timeout=0.2):
        """Nothing more arrives (and nothing is left unread), stale join
        presences aside."""
        self.backlog = [m for m in self.backlog if not self.stale(m)]
        assert not self.backlog, self.backlog
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self._read(max(0.01, deadline - time.monotonic()))
            assert m is None or self.stale(m), m

    def close(self):
        self.c.send_frame(OP_CLOSE, close_payload(1000))
        self.c.expect_close(1000)
        self.c.expect_eof()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()

    def shutdown(self):
        """Best-effort close handshake (QuietServer then waits until the
        server has closed the connection and run its close callback)."""
        try:
            self.c.sock.settimeout(2)
            self.c.send_frame(OP_CLOSE, close_payload(1000))
            self.c.expect_close()
            self.c.expect_eof(timeout=2)
        except (OSError, AssertionError, ConnectionError):
            pass
        self.c.close()


def test_join_send_who_leave_and_presence():
    with QuietServer(routes=chat_routes()) as s, Chatter(s.port) as a, Chatter(s.port) as b:
        assert a.c.response_headers.get("sec-websocket-protocol") == "mbgw.chat.v1"
        ja = a.join("lobby", "ada")
        assert ja["members"] == ["ada"], ja
        jb = b.join("lobby", "bob")
        assert sorted(jb["members"]) == ["ada", "bob"], jb
        assert a.event("chat.presence", room="lobby", nick="bob") == \
            {"room": "lobby", "nick": "bob", "event": "join"}
        # send: every member gets it, the sender too
        a.send("chat.send", {"room": "lobby", "text": "hi \"bob\" \u00e9\u4e2d \\ /"})
        want = {"room": "lobby", "from": "ada", "text": "hi \"bob\" \u00e9\u4e2d \\ /"}
        assert a.event("chat.message") == want
        assert b.event("chat.message") == want
        # who, with the id copied
        t, w = b.request("chat.who", {"room": "lobby"})
        assert t == "chat.members" and w["room"] == "lobby", (t, w)
        assert sorted(w["members"]) == ["ada", "bob"], w
        t, w = b.request("chat.who", {"room": "empty"})
        assert (t, w) == ("chat.members", {"room": "empty", "members": []}), (t, w)
        # leave: answered, the others told, no more messages for the leaver
        t, l = b.request("chat.leave", {"room": "lobby"})
        assert (t, l) == ("chat.left", {"room": "lobby"}), (t, l)
        assert a.event("chat.presence", nick="bob") == {"room": "lobby", "nick": "bob", "event": "leave"}
        a.send("chat.send", {"room": "lobby", "text": "gone?"})
        assert a.event("chat.message")["text"] == "gone?"
        b.quiet()
        t, w = a.request("chat.who", {"room": "lobby"})
        assert w["members"] == ["ada"], w
        a.quiet()


def test_presence_not_sent_to_self_and_rooms_are_separate():
    with QuietServer(routes=chat_routes()) as s, Chatter(s.port) as a, Chatter(s.port) as b, \
            Chatter(s.port) as c:
        a.join("r1", "ada")
        b.join("r2", "bob")
        c.join("r1", "cy")
        c.join("r2", "cy")
        assert a.event("chat.presence", nick="cy")["room"] == "r1"
        assert b.event("chat.presence", nick="cy")["room"] == "r2"
        a.quiet()
        b.quiet()
        c.quiet()
        b.send("chat.send", {"room": "r2", "text": "only r2"})
        assert b.event("chat.message")["text"] == "only r2"
        assert c.event("chat.message") == {"room": "r2", "from": "bob", "text": "only r2"}
        a.quiet()


def test_nick_validation_and_nick_taken():
    with QuietServer(routes=chat_routes()) as s, Chatter(s.port) as a, Chatter(s.port) as b:
        for nick in ("", "a b", "x" * 13, "caf\u00e9", "a/b", "<script>"):
            e = b.expect_error("chat.join", {"room": "lobby", "nick": nick}, "bad_nick")
            assert "1-12" in e["message"], e
        b.expect_error("chat.join", {"room": "lobby"}, "bad_nick")
        b.expect_error("chat.join", {"room": "lobby", "nick": 7}, "bad_nick")
        b.join("lobby", "x" * 12)
        b.join("other", "Ok_nick-1.2")
        a.join("lobby", "ada")
        with Chatter(s.port) as c:
            c.expect_error("chat.join", {"room": "lobby", "nick": "ada"}, "nick_taken")
            c.join("elsewhere", "ada")         # nicks are per room
            c.join("lobby", "ADA")              # and case-sensitive
        b.expect_error("chat.join", {"room": "lobby", "nick": "again"}, "bad_request")


def test_room_and_request_validation():
    with QuietServer(routes=chat_routes()) as s, Chatter(s.port) as a:
        for room in ("", "a room", "r" * 65, "caf\u00e9", None, 5):
            body = {"nick": "ada"} if room is None else {"room": room, "nick": "ada"}
            a.expect_error("chat.join", body, "bad_room")
        a.join("r" * 64, "ada")
        for payload in ("[]", '"text"', "null", ""):
            a.send("chat.join", payload, "p")
            t, attrs, b = a.wait(lambda m: m[1].get("id") == "p")
            assert t == "error" and b["code"] == "bad_request", (payload, t, b)
        a.c.send_frame(OP_BINARY, b'chat.join id=bin\n{"room":"x","nick":"y"}')
        t, attrs, b = a.wait(lambda m: m[1].get("id") == "bin")
        assert t == "error" and b["code"] == "bad_request", b
        a.expect_error("chat.dance", {"room": "lobby"}, "bad_request")
        # errors from the host's decoder, with the id
        a.c.send_frame(OP_TEXT, b"chat.join id=bad\n{nope")
        t, attrs, b = a.wait(lambda m: m[1].get("id") == "bad")
        assert t == "error" and b["code"] == "invalid_json", b
        a.c.send_frame(OP_TEXT, b"chat.join id=h x\n{}")
        t, attrs, b = a.wait(lambda m: m[1].get("id") == "h")
        assert t == "error" and b["code"] == "bad_header", b


def test_not_member_too_long_and_text_type():
    with QuietServer(routes=chat_routes()) as s, Chatter(s.port) as a:
        a.expect_error("chat.send", {"room": "lobby", "text": "hi"}, "not_member")
        a.expect_error("chat.leave", {"room": "lobby"}, "not_member")
        a.join("lobby", "ada")
        a.expect_error("chat.send", {"room": "lobby", "text": 5}, "bad_request")
        a.expect_error("chat.send", {"room": "lobby"}, "bad_request")
        a.expect_error("chat.send", {"room": "lobby", "text": "x" * 101}, "too_long")
        a.send("chat.send", {"room": "lobby", "text": "x" * 100})
        assert a.event("chat.message")["text"] == "x" * 100
        a.expect_error("chat.send", {"room": "other", "text": "hi"}, "not_member")
        t, l = a.request("chat.leave", {"room": "lobby"})
        assert t == "chat.left"
        a.expect_error("chat.leave", {"room": "lobby"}, "not_member")
        a.expect_error("chat.send", {"room": "lobby", "text": "hi"}, "not_member")


def test_too_many_rooms():
    with QuietServer(routes=chat_routes()) as s, Chatter(s.port) as a:
        for r in ("r1", "r2", "r3"):
            a.join(r, "ada")
        a.expect_error("chat.join", {"room": "r4", "nick": "ada"}, "too_many_rooms")
        t, _ = a.request("chat.leave", {"room": "r2"})
        assert t == "chat.left"
        a.join("r4", "ada")
        a.expect_error("chat.join", {"room": "r5", "nick": "ada"}, "too_many_rooms")
        # the limit is per connection
        with Chatter(s.port) as b:
            b.join("r5", "bob")


def test_closing_a_connection_emits_leave_presence():
    with QuietServer(routes=chat_routes()) as s, Chatter(s.port) as a:
        a.join("r1", "ada")
        a.join("r2", "ada")
        b = Chatter(s.port)
        b.join("r1", "bob")
        b.join("r2", "bob")
        assert a.event("chat.presence", room="r1", nick="bob")["event"] == "join"
        assert a.event("chat.presence", room="r2", nick="bob")["event"] == "join"
        b.close()   # a clean close ...
        got = {a.event("chat.presence", nick="bob", event="leave")["room"] for _ in range(2)}
        assert got == {"r1", "r2"}, got
        t, w = a.request("chat.who", {"room": "r1"})
        assert w["members"] == ["ada"], w
        c = Chatter(s.port)
        c.join("r1", "bob")   # the nick is free again
        a.event("chat.presence", nick="bob", event="join")
        c.c.sock.close()      # ... and a dropped TCP connection
        assert a.event("chat.presence", nick="bob", event="leave") == \
            {"room": "r1", "nick": "bob", "event": "leave"}
        a.quiet()
        # messages still flow to the remaining member
        a.send("chat.send", {"room": "r1", "text": "alone"})
        assert a.event("chat.message")["text"] == "alone"


def test_messages_across_workers():
    N, PER = 8, 20
    with QuietServer(routes=chat_routes(), workers=2) as s:
        people = [Chatter(s.port, timeout=20) for _ in range(N)]
        try:
            for i, p in enumerate(people):
                p.join("big", "n%d" % i)
            log = s.logtext()
            assert "[c1." in log and "[c2." in log, "all clients on one worker"
            # every member hears everyone else join (a joins before b ->
            # a gets b's presence)
            for i, p in enumerate(people):
                for k in range(i + 1, N):
                    p.event("chat.presence", nick="n%d" % k, event="join")
            senders = []
            for i, p in enumerate(people):
                def run(p=p, i=i):
                    for k in range(PER):
                        p.send("chat.send", {"room": "big", "text": "%d:%d" % (i, k)})
                senders.append(threading.Thread(target=run, daemon=True))
            results = [None] * N

            def collect(idx):
                got = []
                try:
                    while len(got) < N * PER:
                        got.append(people[idx].event("chat.message", room="big"))
                except AssertionError as e:
                    got.append(repr(e))
                results[idx] = got
            readers = [threading.Thread(target=collect, args=(i,), daemon=True) for i in range(N)]
            for t in readers + senders:
                t.start()
            for t in senders + readers:
                t.join(30)
                assert not t.is_alive()
            for idx, got in enumerate(results):
                assert len(got) == N * PER, (idx, len(got), got[-1:])
                per = {}
                for m in got:
                    i, k = m["text"].split(":")
                    assert m["from"] == "n%s" % i, m
                    per.setdefault(int(i), []).append(int(k))
                for i in range(N):
                    assert per.get(i) == list(range(PER)), (idx, i, per.get(i))
            for p in people:
                p.quiet(0.1)
        finally:
            for p in people:
                p.shutdown()


def test_shutdown_with_members_connected():
    """SIGTERM while members of a room are connected on both workers: each
    gets 1001, and the server exits cleanly (status 0; under ASan without
    a leak report, although the close callbacks publish leave presences
    to workers that may already have stopped)."""
    s = Server(routes=chat_routes(), workers=2)
    with s:
        people = [Chatter(s.port) for _ in range(8)]
        for i, p in enumerate(people):
            p.join("room", "n%d" % i)
        log = s.logtext()
        assert "[c1." in log and "[c2." in log, "all clients on one worker"
        s.proc.send_signal(signal.SIGTERM)
        for p in people:
            code, _ = p.c.expect_close()
            assert code == 1001, code
            p.c.send_frame(OP_CLOSE, close_payload(1001))
            p.c.expect_eof()
        status = s.proc.wait(timeout=10)
        assert status == 0, (
            "server exit status %s (CORE BUG if the log shows a LeakSanitizer report from "
            "fan_out: close callbacks publish to workers that have already stopped):\n%s"
            % (status, s.logtext()[-3000:]))
    # Server.__exit__ checks the log for sanitizer reports too.


def test_no_subprotocol_is_accepted_too():
    with QuietServer(routes=chat_routes()) as s, Chatter(s.port, subprotocol=None) as a:
        assert "sec-websocket-protocol" not in a.c.response_headers
        a.join("lobby", "ada")


def run_check(routes):
    with tempfile.TemporaryDirectory(prefix="mbgw-chat-") as d:
        conf = os.path.join(d, "conf.d")
        os.mkdir(conf)
        with open(os.path.join(conf, "00.conf"), "w") as f:
            f.write("[server]\nlisten = 127.0.0.1:%d\n" % free_port())
        with open(os.path.join(conf, "10.conf"), "w") as f:
            f.write(routes)
        p = subprocess.run([MBGW_BIN, "check", "-c", conf], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20, env=dict(os.environ, TMPDIR=d))
        return p.returncode, p.stdout.decode() + p.stderr.decode()


def test_settings_are_validated():
    for settings, needle in (({"max_nick": 0}, "settings.max_nick must be a number from 1 to 64"),
                             ({"max_rooms_per_connection": 65},
                              "settings.max_rooms_per_connection must be a number from 1 to 64"),
                             ({"max_text": "big"}, "settings.max_text must be a number"),
                             ({"max_nik": 5}, "unknown setting 'max_nik'")):
        rc, out = run_check(chat_routes(settings))
        assert rc == 1, (settings, out)
        assert "plugin chat 1.0.0 failed to initialise: " + needle in out, (settings, out)
    rc, out = run_check(chat_routes({}))
    assert rc == 0, out


def test_shipped_conf_d_checks_ok():
    src = os.environ.get("MBGW_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
    conf = os.path.join(src, "conf.d")
    with tempfile.TemporaryDirectory(prefix="mbgw-chat-") as d:
        p = subprocess.run([MBGW_BIN, "check", "-c", conf], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=20, env=dict(os.environ, TMPDIR=d))
    out = p.stdout.decode()
    assert p.returncode == 0 and "configuration OK" in out, out


if __name__ == "__main__":
    run_tests([
        test_join_send_who_leave_and_presence,
        test_presence_not_sent_to_self_and_rooms_are_separate,
        test_nick_validation_and_nick_taken,
        test_room_and_request_validation,
        test_not_member_too_long_and_text_type,
        test_too_many_rooms,
        test_closing_a_connection_emits_leave_presence,
        test_messages_across_workers,
        test_shutdown_with_members_connected,
        test_no_subprotocol_is_accepted_too,
        test_settings_are_validated,
        test_shipped_conf_d_checks_ok,
    ])
