"""Integration-test harness: runs the real mbgw binary and speaks raw
WebSocket to it.

Every server listens on 127.0.0.1 on a free port, with a private conf.d
written into a temporary directory, and is stopped (SIGTERM, then SIGKILL
after a bound) when the test ends. Every socket read has a timeout, so no
test can hang.
"""
import base64
import os
import signal
import socket
import struct
import subprocess
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
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """mbgw running on a free loopback port. Use as a context manager."""

    def __init__(self, server_extra="", routes=DEFAULT_ROUTES, workers=2, log_level="debug"):
        self.port = free_port()
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
        self.log = open(self.logpath, "wb")
        self.proc = subprocess.Popen([MBGW_BIN, "-c", self.confdir],
                                     stdout=self.log, stderr=subprocess.STDOUT)
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

    def url(self, path="/ws"):
        return "ws://127.0.0.1:%d%s" % (self.port, path)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            self.stop()
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
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if len(payload) < 4096 \
        else _mask_fast(payload, key)
    return head + key + masked


def _mask_fast(payload, key):
    n = len(payload)
    k = int.from_bytes((key * ((n + 3) // 4))[:n], "big")
    return (int.from_bytes(payload, "big") ^ k).to_bytes(n, "big")


def close_payload(code, reason=b""):
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


class Client:
    """A raw WebSocket client over a blocking socket with timeouts."""

    def __init__(self, port, path="/ws", headers=None, timeout=5, host="127.0.0.1", handshake=True):
        self.sock = socket.create_connection((host, port), timeout=timeout)
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
        while b"\r\n\r\n" not in self.buf:
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

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(frame(opcode, payload, **kw))

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk

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
        msg_op = op
        while not fin:
            fin, rsv, op, more = self.recv_frame()
            if op >= 8:
                raise AssertionError("control frame inside fragmented message")
            data += more
        return msg_op, data

    def expect_close(self, code=None):
        """Reads until a close frame; returns its code (1005 if none) and
        checks the server then closes TCP."""
        while True:
            fin, rsv, op, payload = self.recv_frame()
            if op == OP_CLOSE:
                got = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                if code is not None:
                    assert got == code, "expected close %s, got %s (%r)" % (code, got, payload)
                return got, payload[2:]

    def expect_eof(self, timeout=5):
        """Asserts the server closes the TCP connection (after any close
        frames) within timeout."""
        self.sock.settimeout(timeout)
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                raise AssertionError("server reset the connection instead of closing it")
            if not chunk:
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
    line 'N passed, N failed'; exits non-zero on any failure."""
    import sys
    import traceback
    passed = failed = 0
    for t in tests:
        t0 = time.monotonic()
        try:
            t()
            passed += 1
            print("PASS %s (%.2fs)" % (t.__name__, time.monotonic() - t0), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s" % t.__name__, flush=True)
            traceback.print_exc()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed or not passed else 0)
