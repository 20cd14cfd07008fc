"""mbgw-cat (libmbgw-client) against independent servers, to prove it is
not only compatible with mbgw: Python websockets (Debian) and the npm ws
package, both echoing, both telling what they saw of the handshake
("info?"). Subprotocol selection, request headers, large and binary
messages, and permessage-deflate negotiation with and without context
takeover and with reduced windows."""
import json
import os
import random
import shutil

from mbgw_harness import Skip, run_tests
from client_util import NODE_MODULES, ExternalServer, cat

NODE_OK = bool(shutil.which("node")) and os.path.isdir(os.path.join(NODE_MODULES, "ws"))
# Without node the npm ws half is reported as not run (test_npm_ws_available),
# the Python half still runs.
KINDS = ("python", "node") if NODE_OK else ("python",)


def test_npm_ws_available():
    if not NODE_OK:
        raise Skip("node or npm ws (tests/interop/node_modules) missing: run `make test-deps`")


def info(srv, args=()):
    r = cat(list(args) + ["-x", "info?", srv.url("/echo?x=1")])
    assert r.rc == 0, r
    return json.loads(r.out), r


def test_echo_text_binary_large():
    for kind in KINDS:
        with ExternalServer(kind) as srv:
            r = cat(["-x", "h\u00e9llo", srv.url()])
            assert r.rc == 0 and r.out == "h\u00e9llo\n", (kind, r)
            r = cat(["-b", "-x", "bin", srv.url()])
            assert r.rc == 0 and r.out == "62696e\n", (kind, r)
            big = "".join(random.choice("abcdefgh") for _ in range(1 << 20))
            r = cat(["-n", "1", srv.url()], input=big.encode() + b"\n", timeout=60)
            assert r.rc == 0 and r.out == big + "\n", (kind, r.err)


def test_request_headers_and_path():
    for kind in KINDS:
        with ExternalServer(kind) as srv:
            got, _ = info(srv, ["-H", "Authorization: Bearer abc", "-H", "X-Extra: 1"])
            h = got["headers"]
            assert h["authorization"] == "Bearer abc", (kind, h)
            assert h["x-extra"] == "1", (kind, h)
            assert h["user-agent"] == "libmbgw-client/1.0", (kind, h)
            assert h["host"] == "127.0.0.1:%d" % srv.port, (kind, h)
            assert h["sec-websocket-version"] == "13", (kind, h)
            assert got["path"] == "/echo?x=1", (kind, got)
            # Our own User-Agent replaces the default.
            got, _ = info(srv, ["-H", "User-Agent: mine/2"])
            assert got["headers"]["user-agent"] == "mine/2", (kind, got)


def test_subprotocol_negotiation():
    for kind in KINDS:
        with ExternalServer(kind, protos=("b.v1", "a.v1")) as srv:
            got, r = info(srv, ["-s", "a.v1"])
            assert got["subprotocol"] == "a.v1" and "(subprotocol: a.v1)" in r.err, (kind, got, r)
            got, r = info(srv, ["-s", "x.v9", "-s", "b.v1"])
            assert got["subprotocol"] == "b.v1" and "(subprotocol: b.v1)" in r.err, (kind, got, r)
            # Nothing in common: these servers go on without a subprotocol.
            got, r = info(srv, ["-s", "zzz"])
            assert not got["subprotocol"] and "subprotocol" not in r.err, (kind, got, r)


def test_compression_negotiated():
    lines = [("%d " % i) + "compressible text, " * (200 + 50 * i) for i in range(5)]
    data = ("\n".join(lines) + "\n").encode()
    for kind in KINDS:
        with ExternalServer(kind, mode="deflate") as srv:
            got, r = info(srv, ["--compress"])
            assert "(extensions: permessage-deflate" in r.err, (kind, r)
            assert got["extensions"], (kind, got)
            r = cat(["--compress", "-n", str(len(lines)), srv.url()], input=data)
            assert r.rc == 0 and r.out == data.decode(), (kind, r.err)
            # Not offered: not used.
            got, r = info(srv)
            assert not got["extensions"] and "extensions" not in r.err, (kind, got, r)


def test_compression_parameters():
    """No context takeover both ways and reduced windows: the client must
    inflate with the server's window and compress within the window the
    server allowed it (node asks client_max_window_bits=11)."""
    lines = [("%d " % i) + "".join(random.choice(["alpha ", "beta ", "gamma ", "delta "]) for _ in range(3000))
             for i in range(4)]
    data = ("\n".join(lines) + "\n").encode()
    want = {"python": ("server_no_context_takeover", "client_no_context_takeover", "server_max_window_bits=10"),
            "node": ("server_no_context_takeover", "client_no_context_takeover", "server_max_window_bits=9",
                     "client_max_window_bits=11")}
    for kind in KINDS:
        with ExternalServer(kind, mode="deflate-nct") as srv:
            r = cat(["--compress", "-n", str(len(lines)), srv.url()], input=data)
            assert r.rc == 0 and r.out == data.decode(), (kind, r.err)
            for param in want[kind]:
                assert param in r.err, (kind, param, r.err)


def test_server_close_code():
    with ExternalServer("python") as srv:
        r = cat(["-x", "close4001?", srv.url()])
        assert r.rc == 6 and "closed by the server: 4001 asked to" in r.err, r


if __name__ == "__main__":
    run_tests([test_npm_ws_available, test_echo_text_binary_large, test_request_headers_and_path, test_subprotocol_negotiation,
               test_compression_negotiated, test_compression_parameters, test_server_close_code])
