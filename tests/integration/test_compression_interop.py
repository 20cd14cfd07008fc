"""permessage-deflate with independent clients (issue 4, "Tests": interop
with python websockets and npm ws).

Each plain-ws test runs the client through a WireTap (mbgw_harness), a
loopback relay that records the upgrade heads and every frame header, so
the test sees on the wire that the client offered the extension, what the
server answered, and that messages really travelled compressed (RSV1 on
the first frame) in both directions, not just that the echoes matched.
Over wss:// (certificates made at test time, tls_certs.py) the same
clients verify the server and report the negotiated extension
themselves."""
import asyncio
import json
import os
import random
import shutil
import subprocess

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from mbgw_harness import Server, WireTap, OP_CONT, Skip, run_tests
from tls_certs import Certs, TLSServer, tls_section, client_context, NODE_MODULES

PMD = "permessage-deflate"


def run_async(coro, timeout=40):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


def letters(n, seed):
    table = bytes(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"[i % 64]
                  for i in range(256))
    return random.Random(seed).randbytes(n).translate(table)


def data_messages(frames):
    """Groups frame headers into messages: [(opcode, rsv of first frame,
    number of frames)], skipping control frames; asserts RSV1 appears on
    first frames only."""
    msgs = []
    cur = None
    for fin, rsv, op, n in frames:
        if op >= 8:
            continue
        if op == OP_CONT:
            assert cur is not None, "continuation without a message"
            assert rsv == 0, "RSV %d on a continuation frame" % rsv
            cur[2] += 1
        else:
            assert cur is None, "new message inside a fragmented one"
            cur = [op, rsv, 1]
        if fin:
            msgs.append(tuple(cur))
            cur = None
    return msgs


# --- python websockets -------------------------------------------------------------

def python_messages():
    """(kind, payload, send as fragments?) for the websockets tests."""
    big = letters(1 << 20, "py-big")
    return [
        ("hello", False),
        (b"\x00\x01\x02", False),
        ("", False),
        ("a" * 1023, False),
        ("b" * 1024, False),
        (letters(5000, 1).decode(), False),
        (big.decode(), False),
        (big[::-1], False),
        (["frag-", "men-", "ted " * 400], True),
        ([letters(70000, 2), letters(70000, 3)], True),
    ]


async def py_conversation(url, extensions=None, compression="deflate", ssl=None, count=50):
    kw = {"max_size": 8 << 20, "ssl": ssl}
    if extensions is not None:
        kw["extensions"] = extensions
        kw["compression"] = None
    else:
        kw["compression"] = compression
    async with websockets.connect(url, **kw) as ws:
        msgs = python_messages()
        for payload, fragmented in msgs:
            await ws.send(payload)
            got = await ws.recv()
            want = ("".join(payload) if isinstance(payload[0], str) else b"".join(payload)) \
                if fragmented else payload
            assert got == want, "echo of %d differs (%d back)" % (len(want), len(got))
        for i in range(count):
            await ws.send("msg %d " % i * (i * 10))
        for i in range(count):
            assert await ws.recv() == "msg %d " % i * (i * 10)
        ext = ws.response_headers.get("Sec-WebSocket-Extensions")
        params = None
        if ws.extensions:
            e = ws.extensions[0]
            params = {"remote_nct": e.remote_no_context_takeover, "local_nct": e.local_no_context_takeover,
                      "remote_bits": e.remote_max_window_bits, "local_bits": e.local_max_window_bits}
        await ws.close()
        assert ws.close_code == 1000, ws.close_code
        return ext, params, len(msgs) + count


def test_python_websockets_default_deflate():
    """websockets' default offer ("permessage-deflate;
    client_max_window_bits"): agreed as plain permessage-deflate; every
    message the client sends is compressed, every reply of 1 KiB and more
    comes back compressed, smaller ones plain; all echoes exact."""
    with Server() as s, WireTap(s.port) as tap:
        ext, params, n = run_async(py_conversation("ws://127.0.0.1:%d/ws" % tap.port))
        assert ext == PMD, ext
        assert params == {"remote_nct": False, "local_nct": False, "remote_bits": 15,
                          "local_bits": 15}, params
        conn = tap.conns[0]
        assert conn.request_header("Sec-WebSocket-Extensions") == PMD + "; client_max_window_bits"
        assert conn.response_header("Sec-WebSocket-Extensions") == PMD
        c2s = data_messages(conn.frames("c2s"))
        s2c = data_messages(conn.frames("s2c"))
        assert len(c2s) == len(s2c) == n, (len(c2s), len(s2c), n)
        assert all(m[1] == 4 for m in c2s), "client sent uncompressed messages: %r" % c2s[:5]
        sizes = [len(p) if not f else sum(len(x) for x in p) for p, f in python_messages()]
        sizes += [len("msg %d " % i * (i * 10)) for i in range(n - len(sizes))]
        for (op, rsv, nf), size in zip(s2c, sizes):
            assert (rsv == 4) == (size >= 1024), "reply of %d bytes: rsv %d" % (size, rsv)
        assert any(m[2] > 1 for m in c2s), "no fragmented message was sent"


def test_python_websockets_parameters():
    """websockets with explicit parameters, against default and tuned
    servers: window bits both ways (8 included for the server), no context
    takeover both ways, the server's client window limit; the parameters
    each side ends up with are the agreed ones and every echo is exact."""
    cases = [
        ("", dict(client_max_window_bits=9, server_max_window_bits=10),
         PMD + "; server_max_window_bits=10; client_max_window_bits=9",
         {"remote_nct": False, "local_nct": False, "remote_bits": 10, "local_bits": 9}),
        ("", dict(server_no_context_takeover=True, client_no_context_takeover=True),
         PMD + "; server_no_context_takeover; client_no_context_takeover",
         {"remote_nct": True, "local_nct": True, "remote_bits": 15, "local_bits": 15}),
        ("", dict(server_max_window_bits=8, client_max_window_bits=None),
         PMD + "; server_max_window_bits=8",
         {"remote_nct": False, "local_nct": False, "remote_bits": 8, "local_bits": 15}),
        ("compression_client_window_bits = 10\ncompression_window_bits = 11\n"
         "compression_no_context_takeover = yes\n",
         dict(client_max_window_bits=True),
         PMD + "; server_no_context_takeover; server_max_window_bits=11; client_max_window_bits=10",
         {"remote_nct": True, "local_nct": False, "remote_bits": 11, "local_bits": 10}),
        ("compression_client_no_context_takeover = yes\ncompression_threshold = 0\n",
         dict(client_max_window_bits=12),
         PMD + "; client_no_context_takeover; client_max_window_bits=12",
         {"remote_nct": False, "local_nct": True, "remote_bits": 15, "local_bits": 12}),
    ]
    for extra, kw, want_ext, want_params in cases:
        with Server(server_extra=extra) as s, WireTap(s.port) as tap:
            ext, params, n = run_async(py_conversation(
                "ws://127.0.0.1:%d/ws" % tap.port,
                extensions=[ClientPerMessageDeflateFactory(compress_settings={"memLevel": 5}, **kw)],
                count=20))
            assert ext == want_ext, (kw, ext)
            assert params == want_params, (kw, params)
            s2c = data_messages(tap.conns[0].frames("s2c"))
            assert len(s2c) == n and sum(1 for m in s2c if m[1] == 4) >= 5, s2c


# --- npm ws --------------------------------------------------------------------------

NODE_SCRIPT = r"""
const fs = require('fs');
const WebSocket = require('ws');
const args = JSON.parse(process.env.PMD_ARGS);
const out = (o) => { process.stdout.write(JSON.stringify(o) + '\n'); };
const opts = { perMessageDeflate: args.pmd, maxPayload: 8 << 20 };
if (args.ca) opts.ca = fs.readFileSync(args.ca);
function pattern(n, seed) {
  const b = Buffer.alloc(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; b[i] = 97 + ((x >>> 16) % 26); }
  return b;
}
// [kind, size, seed, fragments]
const plan = [
  ['text', 5, 1, 1], ['binary', 3, 2, 1], ['text', 0, 3, 1], ['text', 1023, 4, 1],
  ['binary', 1024, 5, 1], ['text', 1 << 20, 6, 1], ['binary', 1 << 20, 7, 1],
  ['text', 3000, 8, 3], ['binary', 200000, 9, 4], ['text', 2, 10, 2],
];
for (let i = 0; i < 40; i++) plan.push([i % 2 ? 'binary' : 'text', 50 * i, 100 + i, 1]);
const expect = plan.map(([kind, n, seed]) => [kind, pattern(n, seed)]);
const got = [];
let timer = setTimeout(() => { out({ error: 'timeout', got: got.length, want: plan.length }); process.exit(3); }, 30000);
const ws = new WebSocket(args.url, opts);
const done = (o) => { clearTimeout(timer); out(o); process.exit(0); };
let extHeader = null;
ws.on('upgrade', (res) => { extHeader = res.headers['sec-websocket-extensions'] || null; });
ws.on('error', (e) => done({ error: e.message }));
ws.on('open', () => {
  for (const [kind, n, seed, frags] of plan) {
    const data = pattern(n, seed);
    const binary = kind === 'binary';
    if (frags === 1) { ws.send(binary ? data : data.toString(), { binary }); continue; }
    const step = Math.ceil(n / frags);
    for (let k = 0; k < frags; k++) {
      const part = data.subarray(k * step, Math.min(n, (k + 1) * step));
      ws.send(binary ? part : part.toString(), { binary, fin: k === frags - 1 });
    }
  }
});
ws.on('message', (data, isBinary) => {
  got.push([isBinary ? 'binary' : 'text', data]);
  if (got.length === expect.length) ws.close(1000, 'done');
});
ws.on('close', (code) => {
  const bad = [];
  expect.forEach(([kind, v], i) => {
    if (!got[i]) bad.push([i, 'missing']);
    else if (got[i][0] !== kind) bad.push([i, 'kind ' + got[i][0]]);
    else if (Buffer.compare(v, got[i][1]) !== 0) bad.push([i, 'differs (' + got[i][1].length + ' bytes)']);
  });
  done({ close_code: code, bad, n: expect.length, extensions: extHeader, names: ws.extensions });
});
"""


def node_pmd(args, timeout=45):
    node = shutil.which("node")
    if not node or not os.path.isdir(os.path.join(NODE_MODULES, "ws")):
        raise Skip("node or the npm ws package (tests/interop/node_modules) is missing: run `make test-deps`")
    env = dict(os.environ, NODE_PATH=NODE_MODULES, PMD_ARGS=json.dumps(args))
    p = subprocess.run([node, "-e", NODE_SCRIPT], capture_output=True, env=env, timeout=timeout)
    out = p.stdout.decode(errors="replace").strip().splitlines()
    assert p.returncode == 0 and out, "node failed (%d): %s %s" % (p.returncode, out, p.stderr.decode(errors="replace"))
    return json.loads(out[-1])


def test_npm_ws_deflate():
    """npm ws with perMessageDeflate (threshold 0) in several parameter
    sets: text and binary, empty, 1 MiB, fragmented; every message
    compressed on the wire in both directions (server threshold 0), RSV1
    on first frames only, echoes exact."""
    cases = [
        ({"threshold": 0}, PMD + "; client_max_window_bits", PMD),
        ({"threshold": 0, "serverNoContextTakeover": True, "clientNoContextTakeover": True},
         PMD + "; server_no_context_takeover; client_no_context_takeover; client_max_window_bits",
         PMD + "; server_no_context_takeover; client_no_context_takeover"),
        ({"threshold": 0, "serverMaxWindowBits": 10, "clientMaxWindowBits": 9},
         PMD + "; server_max_window_bits=10; client_max_window_bits=9",
         PMD + "; server_max_window_bits=10; client_max_window_bits=9"),
        ({"threshold": 0, "serverMaxWindowBits": 8, "clientMaxWindowBits": 15},
         PMD + "; server_max_window_bits=8; client_max_window_bits=15",
         PMD + "; server_max_window_bits=8; client_max_window_bits=15"),
    ]
    with Server(server_extra="compression_threshold = 0\nmax_payload = 4MiB\n") as s:
        for pmd, want_offer, want_resp in cases:
            with WireTap(s.port) as tap:
                res = node_pmd({"url": "ws://127.0.0.1:%d/ws" % tap.port, "pmd": pmd})
                assert "error" not in res, (pmd, res)
                assert res["close_code"] == 1000 and res["bad"] == [], (pmd, res)
                assert res["extensions"] == want_resp, (pmd, res["extensions"])
                assert res["names"] == PMD, res["names"]  # what ws itself accepted
                conn = tap.conns[0]
                assert conn.request_header("Sec-WebSocket-Extensions") == want_offer, \
                    conn.request_header("Sec-WebSocket-Extensions")
                assert conn.response_header("Sec-WebSocket-Extensions") == want_resp
                c2s = data_messages(conn.frames("c2s"))
                s2c = data_messages(conn.frames("s2c"))
                assert len(c2s) == len(s2c) == res["n"], (len(c2s), len(s2c), res["n"])
                assert all(m[1] == 4 for m in c2s), "ws sent uncompressed: %r" % c2s[:12]
                assert all(m[1] == 4 for m in s2c), "server replied uncompressed: %r" % s2c[:12]
                assert sum(1 for m in c2s if m[2] > 1) >= 3, c2s[:12]  # the fragmented ones


def test_npm_ws_default_threshold():
    """npm ws with its default perMessageDeflate (threshold 1 KiB) against
    the default server: small messages travel plain both ways, 1 KiB and
    more compressed both ways."""
    with Server() as s, WireTap(s.port) as tap:
        res = node_pmd({"url": "ws://127.0.0.1:%d/ws" % tap.port, "pmd": True})
        assert res.get("close_code") == 1000 and res["bad"] == [], res
        assert res["extensions"] == PMD, res["extensions"]
        sizes = [5, 3, 0, 1023, 1024, 1 << 20, 1 << 20, 3000, 200000, 2] + [50 * i for i in range(40)]
        conn = tap.conns[0]
        c2s = data_messages(conn.frames("c2s"))
        s2c = data_messages(conn.frames("s2c"))
        assert len(s2c) == len(sizes), len(s2c)
        for (op, rsv, nf), n in zip(s2c, sizes):
            assert (rsv == 4) == (n >= 1024), "reply of %d bytes: rsv %d" % (n, rsv)
        big_c2s = [m for m, n in zip(c2s, sizes) if n >= 1024 and m[2] == 1]
        assert big_c2s and all(m[1] == 4 for m in big_c2s), c2s


# --- over TLS --------------------------------------------------------------------------

def test_deflate_over_wss():
    """Both clients over wss:// with CA and host name verification and
    permessage-deflate: the extension is agreed inside TLS and every echo,
    1 MiB and fragmented ones included, is exact."""
    with Certs() as c:
        cert, key = c.server("srv")
        with TLSServer(tls_section(cert, key), server_extra="max_payload = 4MiB\n") as s:
            ext, params, n = run_async(py_conversation(s.wss_url(), ssl=client_context(c.ca_cert),
                                                       count=20))
            assert ext == PMD, ext
            ext, params, n = run_async(py_conversation(
                s.wss_url(), ssl=client_context(c.ca_cert), count=10,
                extensions=[ClientPerMessageDeflateFactory(server_no_context_takeover=True,
                                                           client_max_window_bits=10)]))
            assert ext == PMD + "; server_no_context_takeover; client_max_window_bits=10", ext
            res = node_pmd({"url": s.wss_url(), "ca": c.ca_cert,
                            "pmd": {"threshold": 0, "serverMaxWindowBits": 9}})
            assert res.get("close_code") == 1000 and res["bad"] == [], res
            assert res["extensions"] == PMD + "; server_max_window_bits=9", res["extensions"]


if __name__ == "__main__":
    run_tests([
        test_python_websockets_default_deflate,
        test_python_websockets_parameters,
        test_npm_ws_deflate,
        test_npm_ws_default_threshold,
        test_deflate_over_wss,
    ])
