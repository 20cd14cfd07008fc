"""WebSocket over TLS (wss://) with independent clients (issue 4, "Tests"):
Python websockets and the npm `ws` client, both verifying the server
against a test CA made at test time; text, binary, 1 MiB and fragmented
messages; a plain and a TLS listener side by side in one server; the
"scheme" attribute a plugin sees; clients that must refuse the server
(unknown CA, wrong host name, a certificate that has expired while the
server runs)."""
import asyncio
import json
import os
import ssl
import time

import websockets

from mbgw_harness import MBGW_BIN, Client, OP_TEXT, OP_BINARY, OP_CONT, OP_CLOSE, close_payload, \
    run_tests
from tls_certs import Certs, TLSServer, TLSClient, tls_section, client_context, node_client

PLUGIN_DIR = os.environ.get("MBGW_TEST_PLUGIN_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(MBGW_BIN)), "test-plugins")

ROUTES_WITH_PROBE = """
[route echo]
path = /ws
plugin = echo
format = raw

[route probe]
path = /p
plugin = {probe}
settings = {{"name": "p", "events": false}}
"""


def run_async(coro, timeout=30):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


def test_python_websockets_wss_echo():
    """websockets over wss:// with CA and host name verification: text,
    binary, empty, fragmented and 1 MiB messages come back unchanged."""
    with Certs() as c:
        cert, key = c.server("srv")
        with TLSServer(tls_section(cert, key)) as s:
            ctx = client_context(c.ca_cert)

            async def main():
                async with websockets.connect(s.wss_url(), ssl=ctx, max_size=4 << 20,
                                              compression=None) as ws:
                    assert ws.transport.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
                    await ws.send("héllo wss")
                    assert await ws.recv() == "héllo wss"
                    await ws.send(bytes(range(256)))
                    assert await ws.recv() == bytes(range(256))
                    await ws.send("")
                    assert await ws.recv() == ""
                    # Fragmented: websockets sends an iterable as fragments.
                    await ws.send(["frag-", "men-", "ted"])
                    assert await ws.recv() == "frag-men-ted"
                    await ws.send([b"\x00" * 70000, b"\x01" * 70000])
                    got = await ws.recv()
                    assert got == b"\x00" * 70000 + b"\x01" * 70000, len(got)
                    big = os.urandom(1 << 20)
                    await ws.send(big)
                    got = await ws.recv()
                    assert got == big, "1 MiB echo differs (%d bytes back)" % len(got)
                    # Many small messages in a row, in order.
                    for i in range(200):
                        await ws.send("m%d" % i)
                    for i in range(200):
                        assert await ws.recv() == "m%d" % i
                    await ws.close()
                    assert ws.close_code == 1000, ws.close_code
            run_async(main())


def test_raw_frames_over_tls():
    """Our own frames over an ssl socket: masked text/binary, a fragmented
    message with a ping between the fragments, close handshake."""
    with Certs() as c:
        cert, key = c.server("srv")
        with TLSServer(tls_section(cert, key)) as s:
            t = TLSClient(s.tls_port, client_context(c.ca_cert))
            try:
                assert t.status == 101, t.status
                t.send_frame(OP_TEXT, "one")
                assert t.recv_message() == (OP_TEXT, b"one")
                t.send_frame(OP_BINARY, b"\xff\x00two")
                assert t.recv_message() == (OP_BINARY, b"\xff\x00two")
                t.send_frame(OP_TEXT, "a", fin=False)
                t.send_frame(9, b"ping!")
                assert t.recv_message() == (10, b"ping!")
                t.send_frame(OP_CONT, "b", fin=False)
                t.send_frame(OP_CONT, "c")
                assert t.recv_message() == (OP_TEXT, b"abc")
                t.send_frame(OP_CLOSE, close_payload(1000, "bye"))
                assert t.expect_close(1000)[0] == 1000
                t.expect_close_notify()
            finally:
                t.close()


def test_plain_and_tls_listeners_side_by_side():
    """One server, two listeners: plain and TLS clients at the same time,
    each answered on its own listener; the TLS port does not speak plain
    HTTP and the plain port does not speak TLS."""
    with Certs() as c:
        cert, key = c.server("srv")
        with TLSServer(tls_section(cert, key)) as s:
            ctx = client_context(c.ca_cert)
            plains = [Client(s.port) for _ in range(5)]
            tlss = [TLSClient(s.tls_port, ctx) for _ in range(5)]
            try:
                for round in range(3):
                    for i, (p, t) in enumerate(zip(plains, tlss)):
                        p.send_frame(OP_TEXT, "plain %d %d" % (round, i))
                        t.send_frame(OP_TEXT, "tls %d %d" % (round, i))
                    for i, (p, t) in enumerate(zip(plains, tlss)):
                        assert p.recv_message() == (OP_TEXT, b"plain %d %d" % (round, i))
                        assert t.recv_message() == (OP_TEXT, b"tls %d %d" % (round, i))
            finally:
                for x in plains + tlss:
                    x.close()

            async def both():
                # Uncompressed: compression over TLS is tested on its own.
                async with websockets.connect(s.url(), compression=None) as a, \
                        websockets.connect(s.wss_url(), ssl=ctx, compression=None) as b:
                    await a.send("via ws")
                    await b.send("via wss")
                    assert await a.recv() == "via ws"
                    assert await b.recv() == "via wss"
            run_async(both())

            # A TLS client on the plain port fails its handshake (the server
            # answers plain HTTP); a plain request on the TLS port gets no
            # HTTP answer.
            try:
                TLSClient(s.port, ctx).close()
                raise AssertionError("a TLS handshake succeeded on the plain listener")
            except (ssl.SSLError, ConnectionError, OSError):
                pass
            import socket
            raw = socket.create_connection(("127.0.0.1", s.tls_port), timeout=5)
            try:
                raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                data = b""
                while True:
                    try:
                        chunk = raw.recv(4096)
                    except ConnectionResetError:
                        break
                    if not chunk:
                        break
                    data += chunk
                assert b"HTTP/1.1 200" not in data, data
            finally:
                raw.close()
            assert s.wait_log("TLS handshake with 127.0.0.1:"), "no log line for the failed handshake"
            # Still serving both.
            with Client(s.port) as p, TLSClient(s.tls_port, ctx) as t:
                p.send_frame(OP_TEXT, "p")
                t.send_frame(OP_TEXT, "t")
                assert p.recv_message() == (OP_TEXT, b"p")
                assert t.recv_message() == (OP_TEXT, b"t")


def test_http_over_tls():
    """Plain HTTP answers over TLS: /healthz and a 404."""
    with Certs() as c:
        cert, key = c.server("srv")
        with TLSServer(tls_section(cert, key)) as s:
            ctx = client_context(c.ca_cert)
            for path, status in (("/healthz", 200), ("/no-such-page", 404)):
                t = TLSClient(s.tls_port, ctx, handshake=False)
                try:
                    t.send(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path).encode())
                    assert t.read_response() == status, (path, t.status)
                    t.expect_close_notify()
                finally:
                    t.close()


def test_scheme_attribute():
    """A plugin sees scheme=wss on the TLS listener and ws on the plain
    one; tls_client_subject is absent without a client certificate."""
    probe = os.path.join(PLUGIN_DIR, "probe.so")
    assert os.path.isfile(probe), "test plugin %s missing: build the tests/plugins targets" % probe
    with Certs() as c:
        cert, key = c.server("srv")
        with TLSServer(tls_section(cert, key), routes=ROUTES_WITH_PROBE.format(probe=probe)) as s:
            ctx = client_context(c.ca_cert)
            for cl, want in ((TLSClient(s.tls_port, ctx, path="/p"), "wss"), (Client(s.port, path="/p"), "ws")):
                try:
                    assert cl.status == 101, cl.status
                    cl.send_frame(OP_TEXT, 'attr\n{"name": "scheme"}')
                    op, data = cl.recv_message()
                    head, _, body = data.decode().partition("\n")
                    assert head == "r cmd=attr", data
                    assert json.loads(body) == {"rc": 3 if want == "wss" else 2, "value": want}, body
                    cl.send_frame(OP_TEXT, 'attr\n{"name": "tls_client_subject"}')
                    op, data = cl.recv_message()
                    assert json.loads(data.decode().partition("\n")[2])["value"] is None, data
                finally:
                    cl.close()


# --- clients that must refuse the server -----------------------------------

def test_client_rejects_unknown_ca_and_wrong_name():
    with Certs() as c, Certs(cn="another CA") as other:
        cert, key = c.server("srv", dns=("localhost",))
        with TLSServer(tls_section(cert, key)) as s:
            try:
                TLSClient(s.tls_port, client_context(other.ca_cert)).close()
                raise AssertionError("a client trusting another CA accepted the server")
            except ssl.SSLCertVerificationError as e:
                assert e.verify_message == "unable to get local issuer certificate", e.verify_message
            try:
                TLSClient(s.tls_port, client_context(c.ca_cert), server_hostname="elsewhere.test").close()
                raise AssertionError("a client accepted a certificate for another host name")
            except ssl.SSLCertVerificationError as e:
                assert "Hostname mismatch" in e.verify_message, e.verify_message
            # The server is unharmed.
            with TLSClient(s.tls_port, client_context(c.ca_cert)) as t:
                t.send_frame(OP_TEXT, "ok")
                assert t.recv_message() == (OP_TEXT, b"ok")


def short_lived(c, seconds):
    """A server certificate valid from an hour ago until `seconds` from
    now; returns (cert, key, not_after as a Unix time)."""
    end = time.time() + seconds
    dates = (time.strftime("%Y%m%d%H%M%SZ", time.gmtime(time.time() - 3600)),
             time.strftime("%Y%m%d%H%M%SZ", time.gmtime(end)))
    cert, key = c.server("brief", dates=dates)
    return cert, key, int(end)


def test_client_rejects_certificate_that_expired():
    """The server starts with a certificate that is still valid and keeps
    running when it expires; Python's ssl and npm ws then refuse the
    server with their 'certificate has expired' errors."""
    with Certs() as c:
        cert, key, end = short_lived(c, 3)
        with TLSServer(tls_section(cert, key)) as s:
            with TLSClient(s.tls_port, client_context(c.ca_cert)) as t:
                t.send_frame(OP_TEXT, "still valid")
                assert t.recv_message() == (OP_TEXT, b"still valid")
            while time.time() < end + 1.5:
                time.sleep(0.2)
            try:
                TLSClient(s.tls_port, client_context(c.ca_cert)).close()
                raise AssertionError("the client accepted an expired certificate")
            except ssl.SSLCertVerificationError as e:
                assert e.verify_message == "certificate has expired", e.verify_message

            async def ws_client():
                async with websockets.connect(s.wss_url(), ssl=client_context(c.ca_cert)):
                    pass
            try:
                run_async(ws_client())
                raise AssertionError("websockets accepted an expired certificate")
            except ssl.SSLCertVerificationError as e:
                assert e.verify_message == "certificate has expired", e.verify_message
            res = node_client({"url": s.wss_url(), "ca": c.ca_cert, "mode": "expect_error"})
            assert res.get("error_code") == "CERT_HAS_EXPIRED", res


# --- npm ws ------------------------------------------------------------------

def test_npm_ws_wss_echo():
    """npm ws over wss:// with the test CA: text, binary, fragmented and
    1 MiB messages, close 1000; the server is verified (authorized); a
    client trusting another CA refuses it."""
    with Certs() as c:
        cert, key = c.server("srv")
        with TLSServer(tls_section(cert, key)) as s:
            res = node_client({"url": s.wss_url(), "ca": c.ca_cert})
            assert "error" not in res, res
            assert res["results"] == ["ok"] * 4, res
            assert res["close_code"] == 1000, res
            assert res["info"]["authorized"] is True, res
            assert res["info"]["tls"] in ("TLSv1.2", "TLSv1.3"), res
            # Untrusted: a client with another CA refuses.
            with Certs(cn="another CA") as other:
                res = node_client({"url": s.wss_url(), "ca": other.ca_cert, "mode": "expect_error"})
                assert res.get("error_code") == "UNABLE_TO_VERIFY_LEAF_SIGNATURE", res


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_") and callable(v)])
