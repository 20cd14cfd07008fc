"""Integration-test harness: runs the real mbgw binary and speaks raw
WebSocket to it.

Every server listens on 127.0.0.1 on a free port, with a private conf.d
written into a temporary directory, and is stopped (SIGTERM, then SIGKILL
after a bound) when the test ends. Every socket read has a timeout, so no
test can hang.
"""
import base64
import hashlib
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

MBGW_BIN = os.environ.get("MBGW_BIN", "build/mbgw")

DEFAULT_SERVER = """
[server]
listen = 127.0.0.1:{port}
workers = {workers}
log_level = {log_level}
{extra}
"""

DEFAULT_ROUTES = """
[route echo]
path = /ws
plugin = echo
format = raw
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_port6():
    """A free port on [::1], or None when IPv6 loopback cannot be bound."""
    try:
        s = socket.socket(socket.AF_INET6)
    except OSError:
        return None
    try:
        s.bind(("::1", 0))
        return s.getsockname()[1]
    except OSError:
        return None
    finally:
        s.close()


# Lines a sanitizer build prints when it finds a bug. A server log that
# contains one fails the test that produced it (see Server.__exit__).
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                     "ThreadSanitizer", "runtime error:")


class Skip(Exception):
    """Raised by a test that cannot run here; run_tests reports it as not
    run (never as passed)."""


class Server:
    """mbgw running on a free loopback port. Use as a context manager.

    On exit the server is stopped with SIGTERM and the test fails if the
    server had died during the test, did not exit with status 0, or logged
    a sanitizer report."""

    def __init__(self, server_extra="", routes=DEFAULT_ROUTES, workers=2, log_level="debug",
                 env=None):
        self.port = free_port()
        self.env = env
        self.dir = tempfile.TemporaryDirectory(prefix="mbgw-test-")
        self.confdir = os.path.join(self.dir.name, "conf.d")
        os.mkdir(self.confdir)
        with open(os.path.join(self.confdir, "00-server.conf"), "w") as f:
            f.write(DEFAULT_SERVER.format(port=self.port, workers=workers,
                                          log_level=log_level, extra=server_extra))
        with open(os.path.join(self.confdir, "10-routes.conf"), "w") as f:
            f.write(routes)
        self.logpath = os.path.join(self.dir.name, "mbgw.log")
        self.proc = None

    def start(self):
        # A second process would also listen (SO_REUSEPORT) and, no longer
        # referenced, outlive the test.
        assert not self.alive(), "this server is already running (pid %d)" % self.proc.pid
        self.log = open(self.logpath, "wb")
        env = None
        if self.env:
            env = dict(os.environ)
            env.update(self.env)
        self.proc = subprocess.Popen([MBGW_BIN, "-c", self.confdir],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mbgw exited at start-up:\n" + self.logtext())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mbgw did not start listening:\n" + self.logtext())

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Stops the server; returns its exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("mbgw did not stop within %ss" % timeout)

    def logtext(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, needle, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.logtext():
                return True
            time.sleep(0.05)
        return False

    def count_log(self, needle):
        return self.logtext().count(needle)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pid(self):
        return self.proc.pid

    def rss_kib(self):
        """The server's resident set size in KiB (Linux /proc)."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS for pid %d" % self.proc.pid)

    def sanitized(self):
        """True when the binary runs with AddressSanitizer (its RSS is then
        dominated by shadow memory and quarantine)."""
        try:
            with open("/proc/%d/maps" % self.proc.pid) as f:
                maps = f.read()
        except OSError:
            return False
        return "libasan" in maps

    def problems(self, status):
        """Why this server run is unacceptable, or []: a crash, a non-zero
        exit status, or a sanitizer report in the log."""
        out = []
        log = self.logtext()
        for m in SANITIZER_MARKERS:
            if m in log:
                out.append("server log contains a sanitizer report (%r)" % m)
                break
        if status is not None and status != 0:
            out.append("server exited with status %s" % status)
        return out

    def url(self, path="/ws"):
        return "ws://127.0.0.1:%d%s" % (self.port, path)

    def __enter__(self):
        # A test may start() the server itself first (to look at a
        # start-up failure) and then use it in a with block.
        return self if self.alive() else self.start()

    def __exit__(self, exc_type, exc, tb):
        status = None
        try:
            # A crash during the test shows as a signal status here.
            status = self.stop()
            problems = self.problems(status)
            if problems or exc_type is not None:
                tail = "\n".join(self.logtext().splitlines()[-60:])
                sys.stderr.write("---- server log (last 60 lines) ----\n%s\n----\n" % tail)
            if problems and exc_type is None:
                raise AssertionError("; ".join(problems))
        finally:
            self.log.close()
            self.dir.cleanup()


OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=None, length=None):
    """Encodes one client frame. `length` overrides the encoded length."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    m = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    return head + key + _mask_fast(payload, key)


def _mask_fast(payload, key):
    n = len(payload)
    if n == 0:
        return b""
    k = int.from_bytes((key * ((n + 3) // 4))[:n], "big")
    return (int.from_bytes(payload, "big") ^ k).to_bytes(n, "big")


def close_payload(code, reason=b""):
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


def accept_key(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    guid = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    return base64.b64encode(hashlib.sha1(key.encode() + guid).digest()).decode()


class Response:
    """A plain HTTP answer read to EOF by http_exchange."""

    def __init__(self, raw):
        self.raw = raw
        head, sep, self.body = raw.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError("no complete HTTP response head: %r" % raw[:300])
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        parts = lines[0].split(" ", 2)
        self.version = parts[0]
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else ""
        self.headers = []
        for line in lines[1:]:
            k, v = line.split(":", 1)
            self.headers.append((k.strip(), v.strip()))

    def header(self, name):
        """The value of the only header called name (None if absent)."""
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(vals) <= 1, "header %s repeated: %r" % (name, vals)
        return vals[0] if vals else None

    def __repr__(self):
        return "<Response %s %r>" % (self.status, self.raw[:200])


def http_exchange(port, data, timeout=5, host="127.0.0.1", half_close=False):
    """Sends raw request bytes and reads the answer until the server closes
    the connection. Returns a Response. half_close shuts down our writing
    side after sending (the request is then known to be complete)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading it all
        raw = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            raw += chunk
        return Response(raw)
    finally:
        s.close()


def http_get(port, path, headers=None, method="GET", version="HTTP/1.1", timeout=5):
    """A plain request with Host (unless headers maps it to None)."""
    h = {"Host": "127.0.0.1"}
    h.update(headers or {})
    lines = ["%s %s %s" % (method, path, version)]
    lines += ["%s: %s" % (k, v) for k, v in h.items() if v is not None]
    return http_exchange(port, ("\r\n".join(lines) + "\r\n\r\n").encode(), timeout=timeout)


class Client:
    """A raw WebSocket client over a blocking socket with timeouts."""

    def __init__(self, port, path="/ws", headers=None, timeout=5, host="127.0.0.1", handshake=True):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        # Each send leaves at once, so pieces written one by one reach the
        # server as separate segments (as far as TCP allows).
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.sock.settimeout(timeout)
        self.buf = b""
        self.status = None
        self.response_headers = {}
        if handshake:
            self.handshake(path, headers)

    def request_bytes(self, path="/ws", headers=None):
        key = base64.b64encode(os.urandom(16)).decode()
        self.key = key
        h = {
            "Host": "127.0.0.1",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
        }
        if headers:
            for k, v in headers.items():
                if v is None:
                    h.pop(k, None)
                else:
                    h[k] = v
        lines = ["GET %s HTTP/1.1" % path] + ["%s: %s" % kv for kv in h.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def handshake(self, path="/ws", headers=None, extra=b""):
        self.sock.sendall(self.request_bytes(path, headers) + extra)
        return self.read_response()

    def read_response(self):
        deadline = time.monotonic() + self.timeout
        while b"\r\n\r\n" not in self.buf:
            if time.monotonic() > deadline:
                raise AssertionError("no complete response head within %ss" % self.timeout)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before response: %r" % self.buf)
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        self.response_headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            self.response_headers[k.strip().lower()] = v.strip()
        return self.status

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def local_port(self):
        return self.sock.getsockname()[1]

    def settimeout(self, t):
        self.timeout = t
        self.sock.settimeout(t)

    def send(self, data):
        self.sock.sendall(data)

    def send_chunks(self, data, size, pause=0.0):
        """Sends data in pieces of `size` bytes (TCP_NODELAY, so each piece
        leaves as its own segment), optionally pausing between them."""
        for i in range(0, len(data), size):
            self.sock.sendall(data[i:i + size])
            if pause:
                time.sleep(pause)

    def try_recv_frame(self, timeout):
        """Like recv_frame, but returns None if no complete frame arrives
        within timeout (bytes already received are kept)."""
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            return self.recv_frame()
        except socket.timeout:
            return None
        finally:
            self.sock.settimeout(old)

    def expect_close_now(self, code, timeout=None):
        """The very next frame must be a close with this code (and a valid
        UTF-8 reason). Returns the reason."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            fin, rsv, op, payload = self.recv_frame()
        except socket.timeout:
            raise AssertionError("no close frame within %ss" % self.sock.gettimeout())
        finally:
            self.sock.settimeout(self.timeout)
        assert op == OP_CLOSE, "expected a close frame, got opcode %d %r" % (op, payload[:60])
        assert fin and rsv == 0, (fin, rsv)
        assert len(payload) >= 2, "close frame without a code: %r" % payload
        got = struct.unpack("!H", payload[:2])[0]
        assert got == code, "expected close %s, got %s (%r)" % (code, got, payload)
        reason = payload[2:]
        reason.decode("utf-8")  # raises if the server sent invalid UTF-8
        return reason

    def fail_expected(self, code, timeout=None):
        """The next frame is a close with `code`, then the server closes
        the TCP connection (without a reset)."""
        reason = self.expect_close_now(code, timeout)
        self.expect_eof()
        return reason

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(frame(opcode, payload, **kw))

    def _need(self, n):
        if len(self.buf) >= n:
            return
        # Collect pieces and join once: large frames stay linear in cost.
        parts, have = [self.buf], len(self.buf)
        try:
            while have < n:
                chunk = self.sock.recv(max(65536, min(n - have, 1 << 20)))
                if not chunk:
                    raise ConnectionError("connection closed")
                parts.append(chunk)
                have += len(chunk)
        finally:
            self.buf = b"".join(parts)

    def recv_frame(self):
        """Returns (fin, rsv, opcode, payload). Raises on EOF/timeout."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert not (b1 & 0x80), "server frames must not be masked"
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        self._need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload

    def recv_message(self):
        """Returns (opcode, payload) of the next data message, skipping
        nothing: a control frame is returned as is."""
        fin, rsv, op, data = self.recv_frame()
        if op >= 8:
            return op, data
        assert op != OP_CONT, "message starts with a continuation frame"
        msg_op, parts = op, [data]
        while not fin:
            fin, rsv, op, more = self.recv_frame()
            if op >= 8:
                raise AssertionError("control frame inside fragmented message")
            assert op == OP_CONT, "opcode %d inside a fragmented message" % op
            parts.append(more)
        return msg_op, b"".join(parts)

    def expect_close(self, code=None):
        """Reads until a close frame; returns its code (1005 if none) and
        checks the server then closes TCP."""
        deadline = time.monotonic() + max(self.timeout, 5)
        while True:
            if time.monotonic() > deadline:
                raise AssertionError("no close frame within %ss" % max(self.timeout, 5))
            fin, rsv, op, payload = self.recv_frame()
            if op == OP_CLOSE:
                got = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                if code is not None:
                    assert got == code, "expected close %s, got %s (%r)" % (code, got, payload)
                return got, payload[2:]

    def expect_eof(self, timeout=5, keep_open=False):
        """Asserts the server closes the TCP connection (after any close
        frames) within timeout. Our socket is closed then, unless
        keep_open (to see what the server does with a peer that stays)."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise AssertionError("server kept sending; no EOF within %ss" % timeout)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                raise AssertionError("server reset the connection instead of closing it")
            except socket.timeout:
                raise AssertionError("server did not close the connection within %ss" % timeout)
            if not chunk:
                if not keep_open:
                    self.close()
                return True
            self.buf += chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def run_tests(tests):
    """Runs test functions, prints one line each and a closing summary
    line 'N passed, N failed' (plus ', N not run' when a test raised
    Skip); exits non-zero on any failure. Arguments on the command line
    select the tests whose names contain one of them."""
    import traceback
    wanted = sys.argv[1:]
    if wanted:
        tests = [t for t in tests if any(w in t.__name__ for w in wanted)]
    passed = failed = notrun = 0
    for t in tests:
        t0 = time.monotonic()
        try:
            t()
            passed += 1
            print("PASS %s (%.2fs)" % (t.__name__, time.monotonic() - t0), flush=True)
        except Skip as e:
            notrun += 1
            print("NOT RUN %s: %s" % (t.__name__, e), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s (%.2fs)" % (t.__name__, time.monotonic() - t0), flush=True)
            traceback.print_exc()
            sys.stdout.flush()
    summary = "%d passed, %d failed" % (passed, failed)
    if notrun:
        summary += ", %d not run" % notrun
    print(summary)
    sys.exit(1 if failed or not passed else 0)


class WireTap:
    """A loopback TCP relay that records what passes through it, to see on
    the wire what an independent client (a browser, a library) and the
    server said: the HTTP heads and the header of every WebSocket frame.

        with WireTap(server.port) as tap:
            connect the client to tap.port ...
            conn = tap.conns[0]
            conn.request_header("Sec-WebSocket-Extensions")
            conn.frames("c2s")  # [(fin, rsv, opcode, payload_len), ...]

    Each accepted connection gets two relay threads; every socket has a
    timeout and stop() closes everything, so no thread outlives the test
    (daemon threads, joined with a bound)."""

    class Conn:
        def __init__(self):
            self.data = {"c2s": [], "s2c": []}
            self.lock = __import__("threading").Lock()

        def raw(self, direction):
            with self.lock:
                return b"".join(self.data[direction])

        def _head(self, direction):
            raw = self.raw(direction)
            head, sep, _ = raw.partition(b"\r\n\r\n")
            return head.decode("latin-1") if sep else None

        def _header(self, direction, name):
            head = self._head(direction)
            if head is None:
                return None
            vals = []
            for line in head.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == name.lower():
                    vals.append(v.strip())
            return ", ".join(vals) if vals else None

        def request_header(self, name):
            return self._header("c2s", name)

        def response_header(self, name):
            return self._header("s2c", name)

        def status(self):
            head = self._head("s2c")
            return int(head.split(" ")[1]) if head else None

        def frames(self, direction):
            """(fin, rsv, opcode, payload length) of every complete frame
            after the HTTP head, in order."""
            raw = self.raw(direction)
            _, sep, rest = raw.partition(b"\r\n\r\n")
            out = []
            off = 0
            while sep and off + 2 <= len(rest):
                b0, b1 = rest[off], rest[off + 1]
                n = b1 & 0x7F
                hl = 2
                if n == 126:
                    if off + 4 > len(rest):
                        break
                    n = struct.unpack("!H", rest[off + 2:off + 4])[0]
                    hl = 4
                elif n == 127:
                    if off + 10 > len(rest):
                        break
                    n = struct.unpack("!Q", rest[off + 2:off + 10])[0]
                    hl = 10
                if b1 & 0x80:
                    hl += 4
                if off + hl + n > len(rest):
                    break
                out.append((bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, n))
                off += hl + n
            return out

    def __init__(self, upstream_port, host="127.0.0.1"):
        import threading
        self.upstream = (host, upstream_port)
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.socks = []
        self.threads = []
        self.stopping = False
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept(self):
        import threading
        while not self.stopping:
            try:
                a, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                b = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                a.close()
                continue
            for s in (a, b):
                s.settimeout(10)  # bounds a send to a peer that stopped reading
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = WireTap.Conn()
            self.conns.append(c)
            self.socks += [a, b]
            for src, dst, d in ((a, b, "c2s"), (b, a, "s2c")):
                t = threading.Thread(target=self._pump, args=(c, src, dst, d), daemon=True)
                t.start()
                self.threads.append(t)

    def _pump(self, c, src, dst, direction):
        import select
        while not self.stopping:
            try:
                if not select.select([src], [], [], 0.2)[0]:
                    continue
                chunk = src.recv(1 << 16)
            except (OSError, ValueError):
                break
            if not chunk:
                break
            with c.lock:
                c.data[direction].append(chunk)
            try:
                dst.sendall(chunk)
            except OSError:
                break
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(2)
        for s in self.socks + [self.lsock]:
            try:
                s.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# --- the edge: client addresses, metrics (issue 5) ---------------------------

def connect_from(port, source, host="127.0.0.1", timeout=5):
    """A TCP connection to host:port from the local address `source`.
    Every 127.x.y.z address is on the loopback interface, so binding to
    127.0.0.2 makes a second client address without any set-up."""
    s = socket.create_connection((host, port), timeout=timeout, source_address=(source, 0))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class BoundClient(Client):
    """The raw WebSocket Client, connecting from the local address
    `source` (e.g. "127.0.0.2")."""

    def __init__(self, port, source, path="/ws", headers=None, timeout=5, host="127.0.0.1",
                 handshake=True):
        self.sock = connect_from(port, source, host, timeout)
        self.timeout = timeout
        self.buf = b""
        self.status = None
        self.response_headers = {}
        if handshake:
            self.handshake(path, headers)


class Metrics:
    """A /metrics scrape parsed by an independent parser (Debian's
    python3-prometheus-client text parser, which raises on anything that
    is not valid exposition text)."""

    def __init__(self, text):
        from prometheus_client.parser import text_string_to_metric_families
        self.text = text
        self.families = {}
        self.samples = {}
        for fam in text_string_to_metric_families(text):
            self.families[fam.name] = fam
            for s in fam.samples:
                key = (s.name, frozenset(s.labels.items()))
                assert key not in self.samples, "sample %s%r repeated" % (s.name, s.labels)
                self.samples[key] = s.value
        # Names declared by "# TYPE" (a labelled family may have no
        # series yet, e.g. per-route counters before the first connection).
        self.names = {k[0] for k in self.samples}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                base = line.split()[2]
                self.names |= {base, base + "_total", base + "_bucket", base + "_sum", base + "_count"}

    def get(self, metric, **labels):
        """The value of the sample `metric` with exactly these labels; 0 when
        the metric exists but this label set is absent (mbgw omits some
        zero series). A name that never appears is an error (a typo in a
        test must not read as 0)."""
        if metric not in self.names:
            raise KeyError("no metric %s in the scrape" % metric)
        return self.samples.get((metric, frozenset(labels.items())), 0)

    def series(self, metric):
        """{frozenset(labels): value} of every sample called metric."""
        return {k[1]: v for k, v in self.samples.items() if k[0] == metric}


def scrape_metrics(port, path="/metrics", host="127.0.0.1"):
    """GET /metrics, checked to be 200 with the exposition content type,
    and parsed (Metrics)."""
    r = http_get(port, path)
    assert r.status == 200, r
    ctype = r.header("Content-Type") or ""
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    return Metrics(r.body.decode("utf-8"))


def wait_metric(port, metric, want, timeout=5, **labels):
    """Scrapes until metric{labels} == want (counters of closed
    connections are updated when the worker has reaped them). Returns the
    last scrape; fails with the value seen when the bound passes."""
    deadline = time.monotonic() + timeout
    while True:
        m = scrape_metrics(port)
        got = m.get(metric, **labels)
        if got == want:
            return m
        if time.monotonic() > deadline:
            raise AssertionError("%s%r is %r, expected %r" % (metric, labels, got, want))
        time.sleep(0.05)


# The probe test plugin (tests/plugins/probe.c) tells what the core shows a
# plugin: "attr id=N\n{"name": ...}" is answered "r cmd=attr id=N\n{"rc", "value"}".
TEST_PLUGIN_DIR = os.environ.get("MBGW_TEST_PLUGIN_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(MBGW_BIN)), "test-plugins")


def probe_route(name="p", path="/p", extra="", **settings):
    """A [route] section serving the probe plugin at path; settings are
    added to the plugin's (e.g. greet=True: each connection is first sent
    "greet {"conn": "<its id>"}")."""
    import json
    so = os.path.join(TEST_PLUGIN_DIR, "probe.so")
    assert os.path.isfile(so), "test plugin %s missing: build the tests/plugins targets" % so
    settings = dict({"name": name, "events": False}, **settings)
    return "[route %s]\npath = %s\nplugin = %s\nsettings = %s\n%s\n" % (
        name, path, so, json.dumps(settings), extra)


def probe_attrs(client, *names):
    """{name: value or None} of connection attributes (remote_addr,
    scheme, ...) as the probe plugin reads them over an open Client."""
    import json
    out = {}
    for i, name in enumerate(names):
        mid = "a%d" % i
        client.send_frame(OP_TEXT, ("attr id=%s\n" % mid).encode() + json.dumps({"name": name}).encode())
        deadline = time.monotonic() + client.timeout
        while True:
            assert time.monotonic() < deadline, "no reply to attr %s" % name
            op, data = client.recv_message()
            head, _, body = data.decode().partition("\n")
            if op == OP_TEXT and "id=%s" % mid in head.split(" "):
                assert head.startswith("r cmd=attr"), data
                out[name] = json.loads(body)["value"]
                break
    return out


# Access log lines ("[cW.N] open k=v ..." / "[cW.N] close k=v ..."), read
# field by field so that a field added later does not break a test.
def logfmt(text):
    """{key: value} of a logfmt text; values may be "quoted" with \\" and
    \\\\ escapes. Raises AssertionError on anything else (a repeated key
    included)."""
    import re
    out = {}
    i = 0
    key_re = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)=")
    while i < len(text):
        m = key_re.match(text, i)
        if not m:
            if not text[i:].strip():
                break
            raise AssertionError("not logfmt at %r" % text[i:])
        key = m.group(1)
        i = m.end()
        if i < len(text) and text[i] == '"':
            i += 1
            val = ""
            while True:
                if i >= len(text):
                    raise AssertionError("unterminated quoted value in %r" % text)
                ch = text[i]
                if ch == "\\" and i + 1 < len(text):
                    val += text[i + 1]
                    i += 2
                    continue
                i += 1
                if ch == '"':
                    break
                val += ch
        else:
            j = i
            while j < len(text) and text[j] != " ":
                j += 1
            val = text[i:j]
            i = j
        if key in out:
            raise AssertionError("field %s twice in %r" % (key, text))
        out[key] = val
    return out


def access_lines(server, kind):
    """The parsed access lines of kind "open" or "close" in server's log,
    in order, each with "_level" and "_conn" ("cW.N") added."""
    import re
    line_re = re.compile(r"^\S+ (\w+)\s+\[c(\d+)\.(\d+)\] (open|close) (.*)$")
    out = []
    for line in server.logtext().splitlines():
        m = line_re.match(line)
        if m and m.group(4) == kind:
            fields = logfmt(m.group(5))
            fields["_level"] = m.group(1)
            fields["_conn"] = "c%s.%s" % (m.group(2), m.group(3))
            out.append(fields)
    return out


def wait_access(server, kind, timeout=5, **want):
    """The first access line of kind whose fields include want (values
    compared as strings), waiting for it up to timeout."""
    want = {k: str(v) for k, v in want.items()}
    deadline = time.monotonic() + timeout
    while True:
        for fields in access_lines(server, kind):
            if all(fields.get(k) == v for k, v in want.items()):
                return fields
        if time.monotonic() > deadline:
            raise AssertionError("no %s line with %r in the log:\n%s" % (
                kind, want, "\n".join(server.logtext().splitlines()[-30:])))
        time.sleep(0.05)


# Shared by the plugin API and chat suites.
def client_sockets(pid):
    """Number of the server's TCP sockets that are not listeners."""
    inodes = set()
    fddir = "/proc/%d/fd" % pid
    for fd in os.listdir(fddir):
        try:
            link = os.readlink(os.path.join(fddir, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[9] in inodes and parts[3] != "0A":
                n += 1
    return n


class QuietServer(Server):
    """A Server that, before it is stopped, waits (at most 5 s) until it has
    closed every client connection, so the close callbacks of connections
    the test closed have run. Only test_shutdown_* tests stop a server
    with clients still connected."""

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None and self.alive():
            deadline = time.monotonic() + 5
            while client_sockets(self.pid()) and time.monotonic() < deadline:
                time.sleep(0.02)
        return super().__exit__(exc_type, exc, tb)
