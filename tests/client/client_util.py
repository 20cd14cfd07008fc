"""Helpers for the client tests (tests/client/test_client_*.py): running
mbgw-cat, driving client_probe (libmbgw-client line by line), and small
hostile servers (one that accepts TCP and never answers the upgrade, one
that stops answering pings). Loopback only; every wait is bounded; every
process and thread started here is stopped by its context manager."""
import base64
import hashlib
import os
import queue
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time

from mbgw_harness import free_port

CAT = os.environ.get("MBGW_CAT", "build/mbgw-cat")
PROBE = os.environ.get("MBGW_CLIENT_PROBE", "build/tests/client/client_probe")
SOURCE_DIR = os.environ.get("MBGW_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
NODE_MODULES = os.path.join(SOURCE_DIR, "tests", "interop", "node_modules")
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:")

# No proxy from the environment of whoever runs the tests.
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}


def check_sanitizer(text, what):
    for m in SANITIZER_MARKERS:
        assert m not in text, "%s printed a sanitizer report:\n%s" % (what, text)


class Result:
    def __init__(self, rc, out, err, elapsed):
        self.rc, self.out, self.err, self.elapsed = rc, out, err, elapsed

    def __repr__(self):
        return "<rc=%s out=%r err=%r %.2fs>" % (self.rc, self.out[:500], self.err[:800], self.elapsed)


def cat(args, input=None, timeout=30, env=None):
    """Runs mbgw-cat with args (stdin: input bytes or /dev/null). Returns
    a Result; stdout/stderr as text."""
    e = dict(CLEAN_ENV)
    if env:
        e.update(env)
    t0 = time.monotonic()
    p = subprocess.run([CAT] + list(args), input=input if input is not None else b"",
                       capture_output=True, timeout=timeout, env=e)
    r = Result(p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"),
               time.monotonic() - t0)
    check_sanitizer(r.err, "mbgw-cat")
    return r


class Probe:
    """client_probe running with args; its event lines are collected by a
    thread. Use as a context manager."""

    def __init__(self, args, env=None):
        e = dict(CLEAN_ENV)
        if env:
            e.update(env)
        self.proc = subprocess.Popen([PROBE] + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=e)
        self.lines = []
        self.cond = threading.Condition()
        self.err = b""
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()
        self.te = threading.Thread(target=self._read_err, daemon=True)
        self.te.start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            parts = line.split(" ", 1)
            try:
                ms = int(parts[0])
            except ValueError:
                ms = -1
            with self.cond:
                self.lines.append((ms, parts[1] if len(parts) > 1 else ""))
                self.cond.notify_all()

    def _read_err(self):
        self.err = self.proc.stderr.read()

    def cmd(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def events(self, prefix=""):
        with self.cond:
            return [(ms, l) for ms, l in self.lines if l.startswith(prefix)]

    def wait(self, prefix, timeout=10, count=1):
        """Waits until `count` events start with prefix; returns the
        count-th (ms, line)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [(ms, l) for ms, l in self.lines if l.startswith(prefix)]
                if len(got) >= count:
                    return got[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %d x %r within %ss; events:\n%s" % (
                        count, prefix, timeout, "\n".join("%6d %s" % e for e in self.lines)))
                self.cond.wait(left)

    def dump(self):
        with self.cond:
            return "\n".join("%6d %s" % e for e in self.lines)

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.cmd("quit")
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.t.join(5)
        self.te.join(5)
        check_sanitizer(self.err.decode("utf-8", "replace"), "client_probe")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class SilentServer:
    """Accepts TCP connections and never answers anything (a server that
    hangs before the WebSocket handshake)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.received = b""
        self.stopping = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        self.sock.settimeout(0.1)
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
                c.setblocking(False)
                self.conns.append(c)
            except socket.timeout:
                pass
            except OSError:
                break
            for c in list(self.conns):
                try:
                    d = c.recv(65536)
                    if d:
                        self.received += d
                except (BlockingIOError, OSError):
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.t.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


def _accept_key(key):
    return base64.b64encode(hashlib.sha1(key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()).decode()


class DeafServer:
    """Completes the WebSocket handshake, echoes text frames for
    `answer_for` seconds, then goes deaf: reads and drops everything, never
    answers a ping, never closes (a server that stopped answering)."""

    def __init__(self, answer_for=0.0):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.answer_for = answer_for
        self.pings = 0
        self.handshakes = 0
        self.stopping = False
        self.conns = []
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _serve(self, c):
        c.settimeout(0.2)
        buf = b""
        deadline = time.monotonic() + 30
        while b"\r\n\r\n" not in buf and time.monotonic() < deadline and not self.stopping:
            try:
                d = c.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if not d:
                return
            buf += d
        head, _, buf = buf.partition(b"\r\n\r\n")
        key = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", head).group(1).decode()
        c.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n\r\n" % _accept_key(key)).encode())
        self.handshakes += 1
        t_open = time.monotonic()
        while not self.stopping:
            try:
                d = c.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not d:
                return
            buf += d
            while len(buf) >= 2:
                n = buf[1] & 0x7F
                off = 2
                if n == 126:
                    if len(buf) < 4:
                        break
                    n = int.from_bytes(buf[2:4], "big")
                    off = 4
                elif n == 127:
                    if len(buf) < 10:
                        break
                    n = int.from_bytes(buf[2:10], "big")
                    off = 10
                masked = buf[1] & 0x80
                if len(buf) < off + (4 if masked else 0) + n:
                    break
                mask = buf[off:off + 4] if masked else b"\0\0\0\0"
                off += 4 if masked else 0
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(buf[off:off + n]))
                op = buf[0] & 0x0F
                buf = buf[off + n:]
                if op == 9:
                    self.pings += 1
                if time.monotonic() - t_open < self.answer_for:
                    if op == 1:
                        c.sendall(bytes([0x81, len(payload)]) + payload if len(payload) < 126 else b"")
                    elif op == 9:
                        c.sendall(bytes([0x8A, len(payload)]) + payload)

    def _run(self):
        self.sock.settimeout(0.1)
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.t.join(5)
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.sock.close()


# --- independent servers -------------------------------------------------

PY_SERVER = r"""
import asyncio, json, sys
import websockets
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

port = int(sys.argv[1]); mode = sys.argv[2]
protos = [p for p in sys.argv[3].split(",") if p]
ssl_ctx = None
if len(sys.argv) > 5:
    import ssl
    ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ssl_ctx.load_cert_chain(sys.argv[4], sys.argv[5])

async def handler(ws, path=None):
    async for msg in ws:
        if msg == "info?":
            await ws.send(json.dumps({
                "path": ws.path,
                "headers": {k.lower(): v for k, v in ws.request_headers.raw_items()},
                "subprotocol": ws.subprotocol,
                "extensions": [type(e).__name__ + ":" + repr(vars(e)) for e in ws.extensions],
            }))
        elif msg == "close4001?":
            await ws.close(4001, "asked to")
        else:
            await ws.send(msg)

async def main():
    ext = None
    if mode == "deflate":
        ext = [ServerPerMessageDeflateFactory()]
    elif mode == "deflate-nct":
        ext = [ServerPerMessageDeflateFactory(server_no_context_takeover=True,
               client_no_context_takeover=True, server_max_window_bits=10)]
    kw = dict(subprotocols=protos or None, max_size=2**24, ssl=ssl_ctx)
    if ext is not None:
        kw["extensions"] = ext
    else:
        kw["compression"] = None
    async with websockets.serve(handler, "127.0.0.1", port, **kw):
        print("READY", flush=True)
        await asyncio.Future()

asyncio.run(main())
"""

NODE_SERVER = r"""
const { WebSocketServer } = require('ws');
const port = parseInt(process.argv[1]), mode = process.argv[2];
const protos = (process.argv[3] || '').split(',').filter(Boolean);
let pmd = false;
if (mode === 'deflate') pmd = { threshold: 0 };
if (mode === 'deflate-nct') pmd = { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true,
                                    serverMaxWindowBits: 9, clientMaxWindowBits: 11 };
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: pmd, maxPayload: 1 << 24,
  handleProtocols: (offered) => { for (const p of protos) if (offered.has(p)) return p; return false; } });
wss.on('connection', (ws, req) => {
  ws.on('message', (data, isBinary) => {
    const s = isBinary ? null : data.toString();
    if (s === 'info?') {
      ws.send(JSON.stringify({ path: req.url, headers: req.headers, subprotocol: ws.protocol,
                               extensions: ws.extensions }));
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
});
wss.on('listening', () => console.log('READY'));
"""


class ExternalServer:
    """An independent WebSocket server (python websockets or npm ws) on a
    free loopback port, echoing messages; "info?" returns what it saw of
    the handshake as JSON."""

    def __init__(self, kind, mode="plain", protos=(), tls=None):
        self.port = free_port()
        self.kind = kind
        if kind == "python":
            cmd = ["/usr/bin/python3", "-c", PY_SERVER, str(self.port), mode, ",".join(protos)]
            if tls:
                cmd += list(tls)
            env = dict(CLEAN_ENV)
        else:
            node = shutil.which("node")
            if not node or not os.path.isdir(os.path.join(NODE_MODULES, "ws")):
                from mbgw_harness import Skip
                raise Skip("node or npm ws (tests/interop/node_modules) missing: run `make test-deps`")
            cmd = [node, "-e", NODE_SERVER, str(self.port), mode, ",".join(protos)]
            env = dict(CLEAN_ENV, NODE_PATH=NODE_MODULES)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        ready = select.select([self.proc.stdout], [], [], 15)[0]
        line = self.proc.stdout.readline() if ready else b""
        if b"READY" not in line:
            self.stop()
            raise RuntimeError("%s server did not start: %r %r" % (kind, line, self.proc.stderr.read()))

    def url(self, path="/echo"):
        return "ws://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def kill_server(s):
    """SIGKILLs a harness Server (no close frames: clients see 1006)."""
    import signal
    os.kill(s.pid(), signal.SIGKILL)
    s.proc.wait(timeout=10)
    s.log.close()


def wait_stderr(p, needle, timeout=10):
    """Reads p.stderr until needle appears (bounded); True if it did."""
    got = b""
    deadline = time.monotonic() + timeout
    fd = p.stderr.fileno()
    while needle not in got and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            got += chunk
    return needle in got


def server_frame(op, payload=b"", fin=True, rsv=0, mask=None):
    """A frame as a server would send it (unmasked unless mask given)."""
    import struct
    n = len(payload)
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    m = 0x80 if mask else 0
    if n < 126:
        h = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        h = struct.pack("!BBH", b0, m | 126, n)
    else:
        h = struct.pack("!BBQ", b0, m | 127, n)
    if mask:
        return h + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return h + payload


OK_101 = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Accept: {accept}\r\n{extra}\r\n")


class ScriptedServer:
    """Answers the upgrade with `response` (a format string: {accept} is
    the right Sec-WebSocket-Accept, {extra} extra header lines) followed by
    `after` bytes, optionally one byte at a time; then records the frames
    the client sends (unmasking them) until it closes or `linger` seconds
    pass; a close from the client is answered unless `after` already held
    the server's close (server_closes). One connection at a time, for as
    many as come."""

    def __init__(self, response=OK_101, extra="", after=b"", trickle=False, linger=3.0, server_closes=False):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.response, self.extra, self.after = response, extra, after
        self.trickle, self.linger = trickle, linger
        self.after_has_close = server_closes
        self.frames = []          # (opcode, payload, masked) from the client
        self.requests = []
        self.active = 0           # connections being served
        self.stopping = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def url(self, path="/"):
        return "ws://127.0.0.1:%d%s" % (self.port, path)

    def _serve(self, c):
        c.settimeout(0.2)
        buf = b""
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in buf and time.monotonic() < deadline and not self.stopping:
            try:
                d = c.recv(4096)
            except socket.timeout:
                continue
            if not d:
                return
            buf += d
        head, _, buf = buf.partition(b"\r\n\r\n")
        self.requests.append(head.decode("latin-1"))
        m = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", head)
        key = m.group(1).decode() if m else ""
        out = self.response.format(accept=_accept_key(key), extra=self.extra).encode("latin-1") + self.after
        if self.trickle:
            for i in range(len(out)):
                c.sendall(out[i:i + 1])
                time.sleep(0.002)
        else:
            c.sendall(out)
        end = time.monotonic() + self.linger
        while time.monotonic() < end and not self.stopping:
            try:
                d = c.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not d:
                return
            buf += d
            while len(buf) >= 2:
                n = buf[1] & 0x7F
                off = 2
                if n == 126:
                    if len(buf) < 4:
                        break
                    n = int.from_bytes(buf[2:4], "big")
                    off = 4
                elif n == 127:
                    if len(buf) < 10:
                        break
                    n = int.from_bytes(buf[2:10], "big")
                    off = 10
                masked = bool(buf[1] & 0x80)
                if len(buf) < off + (4 if masked else 0) + n:
                    break
                mk = buf[off:off + 4] if masked else b"\0\0\0\0"
                off += 4 if masked else 0
                payload = bytes(b ^ mk[i % 4] for i, b in enumerate(buf[off:off + n]))
                self.frames.append((buf[0] & 0x0F, payload, masked))
                buf = buf[off + n:]
                if self.frames[-1][0] == 8:
                    # The close handshake (RFC 6455 §5.5.1): answer a close
                    # we did not start, then the server closes TCP first.
                    if not self.after_has_close:
                        c.sendall(server_frame(8, payload[:2]))
                    return

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            self.active += 1
            try:
                self._serve(c)
            except OSError:
                pass
            finally:
                c.close()
                self.active -= 1

    def close_codes(self):
        return [int.from_bytes(p[:2], "big") for op, p, _ in self.frames if op == 8 and len(p) >= 2]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        # Let the connection in progress read what the client sent before
        # it went away (bounded by linger).
        deadline = time.monotonic() + self.linger + 1
        while self.active and time.monotonic() < deadline:
            time.sleep(0.01)
        self.stopping = True
        self.t.join(15)
        self.sock.close()
