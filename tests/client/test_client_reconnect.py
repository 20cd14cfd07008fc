"""Automatic reconnection of libmbgw-client (driven by client_probe) and
mbgw-cat --reconnect: mbgw killed and restarted while clients are
connected, backoff bounds, re-subscription in on_open, the queue of
messages sent while disconnected, max attempts, a server that accepts TCP
but never answers the upgrade, a server that stops answering pings, and
which closes do and do not trigger a reconnection."""
import os
import re
import signal
import socket
import subprocess
import threading
import time

from mbgw_harness import MBGW_BIN, Server, run_tests
from client_util import CAT, CLEAN_ENV, DeafServer, Probe, SilentServer, kill_server, wait_stderr

PLUGIN_DIR = os.path.join(os.path.dirname(os.path.abspath(MBGW_BIN)), "test-plugins")
ROUTES = """
[route chat]
path = /chat
plugin = chat

[route probe]
path = /probe
plugin = %s/probe.so
settings = {"name": "p"}
""" % PLUGIN_DIR


def delays(p):
    """[(attempt, delay_ms)] from the probe's reconnecting events."""
    out = []
    for _, l in p.events("reconnecting"):
        m = re.match(r"reconnecting attempt=(\d+) delay=(\d+)", l)
        out.append((int(m.group(1)), int(m.group(2))))
    return out


def check_backoff(ds, initial, maximum):
    for attempt, d in ds:
        cap = min(maximum, initial * 2 ** (attempt - 1))
        assert cap // 2 <= d <= cap, "attempt %d: delay %d not in [%d, %d]" % (attempt, d, cap // 2, cap)


class CountingServer:
    """Accepts TCP connections and closes them at once; counts them."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.stopping = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
                self.count += 1
                c.close()
            except socket.timeout:
                pass
            except OSError:
                break

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.t.join(5)
        self.sock.close()


JOIN_A = 'chat.join\n{"room":"r","nick":"a"}'
JOIN_B = 'chat.join\n{"room":"r","nick":"b"}'


def test_kill_and_restart():
    """Clients of a killed mbgw reconnect once it is back, within the
    backoff bounds; on_open re-joins the room; a message sent while
    disconnected is delivered after the re-join."""
    initial, maximum = 200, 800
    opts = ["--reconnect", "--backoff-initial", str(initial), "--backoff-max", str(maximum)]
    s = Server(routes=ROUTES).start()
    try:
        with Probe(opts + ["--on-open", JOIN_A, s.url("/chat")]) as a, \
                Probe(opts + ["--on-open", JOIN_B, s.url("/chat")]) as b, \
                Probe(["--reconnect", "--backoff-initial", "20", "--backoff-max", "40", "--max-attempts", "2",
                       s.url("/chat")]) as c:
            a.wait("message text chat.joined")
            b.wait("message text chat.joined")
            c.wait("open n=1")
            kill_server(s)
            a.wait("disconnect code=1006 reconnect=1")
            b.wait("disconnect code=1006 reconnect=1")
            a.wait("reconnecting attempt=3", timeout=5)
            # c allows 2 attempts, which fail while the server is down.
            _, line = c.wait("closed", timeout=5)
            assert line.startswith("closed rc=-19 attempts=3") and "connection refused" in line, line
            assert len(c.events("reconnecting")) == 2, c.dump()
            # Sent while disconnected: queued.
            a.cmd('send chat.send\\n{"room":"r","text":"queued while down"}')
            a.wait("sent rc=0", count=2)
            restarted = time.monotonic()
            s.start()
            ms_open, _ = a.wait("open n=2", timeout=maximum / 1000 + 5)
            b.wait("open n=2", timeout=maximum / 1000 + 5)
            # Reconnected no later than one maximum delay after the restart.
            assert time.monotonic() - restarted < maximum / 1000 + 1.5, a.dump()
            # on_open re-joined (the server accepted "a" again), then the
            # queued message went out in that session.
            _, joined = a.wait("message text chat.joined", count=2)
            assert '"nick":"a"' in joined, joined
            _, msg = a.wait("message text chat.message", timeout=5)
            assert '"text":"queued while down"' in msg and '"from":"a"' in msg, msg
            lines = [l for _, l in a.events("message text chat.")]
            assert lines.index(joined) < lines.index(msg), a.dump()
            check_backoff(delays(a), initial, maximum)
            check_backoff(delays(b), initial, maximum)
            # Attempts are numbered from 1 after each loss, without gaps.
            assert [n for n, _ in delays(a)] == list(range(1, len(delays(a)) + 1)), a.dump()
            assert a.events("disconnect")[0][1].startswith("disconnect code=1006"), a.dump()
            # The one that gave up stays down although the server is back.
            assert not c.events("open n=2") and len(c.events("reconnecting")) == 2, c.dump()
    finally:
        s.__exit__(None, None, None)


def test_graceful_restart_1001():
    """SIGTERM: mbgw closes with 1001 (going away), which is a reason to
    reconnect; mbgw-cat --reconnect comes back and keeps working."""
    s = Server(routes=ROUTES).start()
    try:
        with Probe(["--reconnect", "--backoff-initial", "100", "--backoff-max", "200", s.url("/chat")]) as p:
            p.wait("open n=1")
            assert s.stop() == 0
            p.wait("disconnect code=1001 reconnect=1")
            s.start()
            p.wait("open n=2", timeout=5)
            p.cmd('request chat.who {"room":"x"}')
            _, line = p.wait("reply")
            assert line.startswith("reply rc=0 chat.members id=1"), line
    finally:
        s.__exit__(None, None, None)


def test_cat_reconnect():
    """mbgw-cat --reconnect: lines typed while the server is down are sent
    after it comes back."""
    s = Server(routes=ROUTES).start()
    p = None
    try:
        p = subprocess.Popen([CAT, "--reconnect", "--backoff-initial", "0.1", "--backoff-max", "0.3",
                              "-w", "3", "-n", "2", s.url("/chat")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=CLEAN_ENV)
        assert wait_stderr(p, b"connected"), "no connection"
        p.stdin.write(b'chat.join\n')  # a bad request: answered with an error
        p.stdin.flush()
        time.sleep(0.3)
        kill_server(s)
        assert wait_stderr(p, b"reconnecting in"), "no reconnection announced"
        p.stdin.write(b'chat.who\n')
        p.stdin.flush()
        s.start()
        out, err = p.communicate(timeout=15)
        assert p.returncode == 0, (p.returncode, out, err)
        assert out.count(b"error\n") == 2, out
    finally:
        if p and p.poll() is None:
            p.kill()
            p.wait()
        s.__exit__(None, None, None)


def test_max_attempts():
    """No more attempts than configured: 1 + max_attempts connections, then
    gave up (MBGW_C_E_GAVE_UP = -19); mbgw-cat exits 2."""
    with CountingServer() as srv:
        url = "ws://127.0.0.1:%d/" % srv.port
        with Probe(["--reconnect", "--backoff-initial", "20", "--backoff-max", "60", "--max-attempts", "3", url]) as p:
            _, line = p.wait("closed", timeout=10)
            assert line.startswith("closed rc=-19 attempts=4"), line
            assert "gave up after 3 reconnection attempts" in line, line
            assert "without answering the upgrade" in line or "connection reset" in line, line
            assert len(p.events("reconnecting")) == 3, p.dump()
            check_backoff(delays(p), 20, 60)
            # Each attempt waits its announced delay: the next failure is
            # reported no earlier than that.
            evs = p.events("reconnecting") + p.events("closed")
            for (t1, l1), (t2, _) in zip(evs, evs[1:]):
                d = int(re.search(r"delay=(\d+)", l1).group(1))
                assert t2 - t1 >= d - 2, "attempt after %d ms, announced %d ms:\n%s" % (t2 - t1, d, p.dump())
        time.sleep(0.3)
        assert srv.count == 4, srv.count
        t0 = time.monotonic()
        r = subprocess.run([CAT, "--reconnect", "--backoff-initial", "0.02", "--max-attempts", "2", "-x", "x", url],
                           capture_output=True, timeout=20, env=CLEAN_ENV)
        assert r.returncode == 2, r
        assert b"gave up after 2 reconnection attempts" in r.stderr, r.stderr
        time.sleep(0.3)
        assert srv.count == 4 + 3, srv.count
        assert time.monotonic() - t0 < 10


def test_silent_server_detected_and_retried():
    with SilentServer() as srv:
        url = "ws://127.0.0.1:%d/s" % srv.port
        with Probe(["--reconnect", "--connect-timeout", "300", "--backoff-initial", "20", "--backoff-max", "40",
                    "--max-attempts", "2", url]) as p:
            _, line = p.wait("closed", timeout=10)
            assert line.startswith("closed rc=-19 attempts=3"), line
            assert "handshake timeout" in line, line
            for _, l in p.events("reconnecting"):
                assert " err=-6 " in l and "handshake timeout" in l, l
        assert srv.received.count(b"GET /s HTTP/1.1") == 3, srv.received


def test_deaf_server_heartbeat():
    """A server that stops answering pings is dropped as 1006 "heartbeat
    timeout" and reconnected to."""
    with DeafServer(answer_for=0.5) as d:
        url = "ws://127.0.0.1:%d/" % d.port
        with Probe(["--reconnect", "--backoff-initial", "50", "--backoff-max", "100",
                    "--ping", "200", "--pong", "300", url]) as p:
            p.wait("open n=1")
            p.wait("pong", timeout=3)  # it answers at first
            _, line = p.wait("disconnect", timeout=5)
            assert line.startswith("disconnect code=1006 reconnect=1 reason=heartbeat timeout"), line
            p.wait("open n=2", timeout=5)
            deadline = time.monotonic() + 5  # the server counts after its write
            while d.handshakes < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert d.handshakes >= 2, d.handshakes


def test_which_closes_reconnect():
    """A normal close (1000) or an application code (4000-4999) from the
    server ends the session, and so does 1008 (policy); --reconnect-on-close
    reconnects anyway; 1011 and 1001 reconnect."""
    with Server(routes=ROUTES) as s:
        url = s.url("/probe")
        base = ["--reconnect", "--backoff-initial", "50", "--backoff-max", "100"]
        for code, again in ((1000, False), (4001, False), (1008, False), (1011, True), (1001, True)):
            with Probe(base + [url]) as p:
                p.wait("open n=1")
                p.cmd('send close\\n{"code":%d,"reason":"bye"}' % code)
                _, line = p.wait("disconnect")
                assert line.startswith("disconnect code=%d reconnect=%d reason=bye" % (code, int(again))), line
                if again:
                    p.wait("open n=2", timeout=5)
                else:
                    _, line = p.wait("closed")
                    assert line.startswith("closed rc=0"), line
                    time.sleep(0.3)
                    assert not p.events("reconnecting"), p.dump()
        with Probe(base + ["--reconnect-on-close", url]) as p:
            p.wait("open n=1")
            p.cmd('send close\\n{"code":1000}')
            p.wait("disconnect code=1000 reconnect=1")
            p.wait("open n=2", timeout=5)


def test_queue_bound_and_close_while_waiting():
    with CountingServer() as srv:
        url = "ws://127.0.0.1:%d/" % srv.port
        with Probe(["--reconnect", "--backoff-initial", "5000", "--backoff-max", "5000", "--queue-max", "2", url]) as p:
            p.wait("reconnecting attempt=1")
            for i in range(3):
                p.cmd("send m%d" % i)
            p.wait("sent", count=3)
            rcs = [l for _, l in p.events("sent")]
            assert rcs == ["sent rc=0", "sent rc=0", "sent rc=-14"], rcs
            # Closing while waiting ends the session at once: no more attempts.
            p.cmd("close")
            _, line = p.wait("closed")
            assert line.startswith("closed rc=0 attempts=1"), line
        assert srv.count == 1


def test_not_reconnected_without_option():
    with Server(routes=ROUTES) as s:
        with Probe([s.url("/probe")]) as p:
            p.wait("open n=1")
            p.cmd('send close\\n{"code":1011}')
            p.wait("disconnect code=1011 reconnect=0")
            p.wait("closed")


if __name__ == "__main__":
    run_tests([test_kill_and_restart, test_graceful_restart_1001, test_cat_reconnect, test_max_attempts,
               test_silent_server_detected_and_retried, test_deaf_server_heartbeat, test_which_closes_reconnect,
               test_queue_bound_and_close_while_waiting, test_not_reconnected_without_option])
