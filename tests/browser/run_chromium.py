"""Headless Chromium against mbgw with permessage-deflate (issue 4,
"Tests": "headless Chromium (a page served on loopback sends and receives
compressed messages)").

Starts two mbgw servers on loopback (the default compression settings;
and no server context takeover with a 10-bit client window, which
Chromium's offer of client_max_window_bits lets the server ask for), each
behind a WireTap (tests/integration/mbgw_harness.py) that records the
upgrade heads and frame headers. A small threaded HTTP server on loopback
serves compression.html, which opens a WebSocket to each tap in turn,
sends text and binary messages below and above the 1 KiB threshold (up
to 1 MiB), checks every echo, and POSTs its findings to /result.

The test passes when the page saw every echo intact and a clean close,
the browser and the wire agree that permessage-deflate was negotiated
with the expected parameters, and the frames show compression in both
directions (the server's replies compressed exactly when 1 KiB or more).

Chromium runs headless as root (--no-sandbox) with a throw-away profile,
in its own process group, killed at the end; every wait is bounded (the
whole run takes a few seconds, 30 s at most for the page)."""
import ctypes
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from mbgw_harness import Server, WireTap, OP_CONT, run_tests  # noqa: E402

PMD = "permessage-deflate"
PAGE_TIMEOUT = 30

# Sizes (UTF-8 bytes for text) of the page's messages, in order; see plan()
# in compression.html.
SIZES = [19, 1023, 1024, 5000, 5000, 100, len(("héllo wörld ✓ 𝄞 " * 300).encode()), 1 << 20,
         200000, 14000, 14000, 0]


def chromium_binary():
    for cand in (os.environ.get("CHROMIUM"), shutil.which("chromium"),
                 shutil.which("chromium-browser")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


class PageServer:
    """Serves tests/browser/ on a free loopback port and takes the page's
    POST /result."""

    def __init__(self):
        self.result = None
        self.got = threading.Event()
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=HERE, **kw)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(min(n, 1 << 20))
                if self.path == "/result":
                    outer.result = json.loads(body)
                    outer.got.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def group_members(pgid):
    """Pids of the processes (zombies included) in process group pgid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            out.append(int(d))
    return out


class Browser:
    """Headless Chromium on one URL, in its own process group. We become a
    child subreaper first, so that Chromium's helper processes, orphaned
    when the browser exits, are reparented to us and reaped in stop()
    (instead of lingering as zombies under an init that does not reap)."""

    def __init__(self, url):
        PR_SET_CHILD_SUBREAPER = 36
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        except (OSError, AttributeError):
            pass
        self.profile = tempfile.TemporaryDirectory(prefix="mbgw-chromium-")
        self.logpath = os.path.join(self.profile.name, "chromium.log")
        self.log = open(self.logpath, "wb")
        args = [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                "--disable-dev-shm-usage", "--user-data-dir=" + os.path.join(self.profile.name, "p"),
                url]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def logtext(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        """SIGTERM to the whole process group, SIGKILL after 5 s."""
        try:
            pgid = os.getpgid(self.proc.pid)
        except ProcessLookupError:
            pgid = None
        if pgid is not None:
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if pgid is not None:
            try:
                os.killpg(pgid, signal.SIGKILL)  # helpers (renderer, zygote) too
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            raise AssertionError("chromium (pid %d) did not exit after SIGKILL" % self.proc.pid)
        # Reap the helpers (our children now, see __init__); bounded.
        deadline = time.monotonic() + 5
        left = group_members(pgid) if pgid is not None else []
        while left and time.monotonic() < deadline:
            for pid in left:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            time.sleep(0.05)
            left = group_members(pgid)
        self.log.close()
        assert not left, "chromium processes %r still there after SIGKILL" % left

    def cleanup(self):
        self.profile.cleanup()


def data_messages(frames):
    """[(opcode, rsv of the first frame, number of frames)] from frame
    headers, control frames skipped; RSV on continuations is an error."""
    msgs, cur = [], None
    for fin, rsv, op, n in frames:
        if op >= 8:
            continue
        if op == OP_CONT:
            assert cur is not None and rsv == 0, (cur, rsv)
            cur[2] += 1
        else:
            assert cur is None
            cur = [op, rsv, 1]
        if fin:
            msgs.append(tuple(cur))
            cur = None
    return msgs


def check_wire(conn, want_resp, name):
    offer = conn.request_header("Sec-WebSocket-Extensions") or ""
    assert PMD in offer, "%s: Chromium offered %r" % (name, offer)
    assert conn.status() == 101, conn.status()
    resp = conn.response_header("Sec-WebSocket-Extensions")
    assert resp == want_resp, "%s: server answered %r to %r" % (name, resp, offer)
    c2s = data_messages(conn.frames("c2s"))
    s2c = data_messages(conn.frames("s2c"))
    assert len(c2s) == len(s2c) == len(SIZES), (name, len(c2s), len(s2c))
    for k, ((op, rsv, nf), n) in enumerate(zip(s2c, SIZES)):
        assert (rsv == 4) == (n >= 1024), "%s: reply %d (%d bytes) rsv=%d" % (name, k, n, rsv)
    compressed_in = sum(1 for m in c2s if m[1] == 4)
    # Chromium compresses what it sends once the extension is agreed.
    assert compressed_in >= sum(1 for n in SIZES if n >= 1024), \
        "%s: Chromium sent only %d of %d messages compressed: %r" % (name, compressed_in, len(c2s), c2s)
    return offer, compressed_in


def test_chromium_compressed_echo():
    """Chromium negotiates permessage-deflate with mbgw (default settings,
    and server_no_context_takeover with client_max_window_bits=10), sends
    compressed messages that mbgw inflates, and inflates mbgw's compressed
    replies: every echo intact, both directions compressed on the wire."""
    if not chromium_binary():
        raise AssertionError("chromium is not installed (apt-get install chromium)")
    tuned = "compression_no_context_takeover = yes\ncompression_client_window_bits = 10\n"
    with Server(server_extra="max_payload = 4MiB\n") as s1, \
            Server(server_extra="max_payload = 4MiB\n" + tuned) as s2, \
            WireTap(s1.port) as t1, WireTap(s2.port) as t2:
        page = PageServer()
        browser = None
        try:
            url = "http://127.0.0.1:%d/compression.html?ws=%s&ws=%s" % (
                page.port, "ws://127.0.0.1:%d/ws" % t1.port, "ws://127.0.0.1:%d/ws" % t2.port)
            browser = Browser(url)
            if not page.got.wait(PAGE_TIMEOUT):
                raise AssertionError("no result from the page within %ds; chromium log:\n%s" % (
                    PAGE_TIMEOUT, browser.logtext()[-3000:]))
            res = page.result
            print("browser: %s" % res.get("userAgent"))
            runs = res["runs"]
            assert len(runs) == 2, runs
            for r in runs:
                bad = [c for c in r["checks"] if not c["ok"]]
                assert r["error"] is None and not bad and len(r["checks"]) == len(SIZES), \
                    "page run against %s: %s" % (r["url"], json.dumps(r)[:2000])
                assert r["close"] == {"code": 1000, "clean": True}, r["close"]
            assert res["ok"] is True
            assert runs[0]["extensions"] == PMD, runs[0]["extensions"]
            want2 = PMD + "; server_no_context_takeover; client_max_window_bits=10"
            assert runs[1]["extensions"] == want2, runs[1]["extensions"]
            assert len(t1.conns) == 1 and len(t2.conns) == 1, (len(t1.conns), len(t2.conns))
            offer, n1 = check_wire(t1.conns[0], PMD, "default")
            _, n2 = check_wire(t2.conns[0], want2, "tuned")
            print("offer %r; Chromium compressed %d and %d of %d messages" % (offer, n1, n2, len(SIZES)))
            for s in (s1, s2):
                assert s.wait_log("peer closed with 1000", 5), s.logtext()[-2000:]
        finally:
            if browser:
                browser.stop()
            page.close()
            if browser:
                browser.cleanup()


if __name__ == "__main__":
    run_tests([test_chromium_compressed_echo])
