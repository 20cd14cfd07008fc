"""The example configuration of docs/security.md
(docs/examples/internet/conf.d): it must pass `mbgw check` once its
certificate exists, and, started on loopback with test certificates and
free ports, do what the document says it does: wss with an allowed Origin
and the subprotocol is served; other origins, a missing Origin and a
missing subprotocol are refused; the loopback listener believes
X-Forwarded-For from the local proxy; /metrics is on the metrics listener
only.

As shipped, the only thing `mbgw check` may find wrong is the
certificate files, which do not exist on a test machine."""
import json
import os
import re
import socket

from mbgw_harness import (Server, Client, OP_TEXT, free_port, free_port6, http_get, run_tests, scrape_metrics,
                          wait_access)
from tls_certs import Certs, TLSClient, client_context, run_mbgw

SOURCE_DIR = os.environ.get("MBGW_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
EXAMPLE = os.path.join(SOURCE_DIR, "docs", "examples", "internet", "conf.d")


def test_example_is_checked_and_only_misses_its_certificate():
    assert os.path.isdir(EXAMPLE), EXAMPLE
    rc, out = run_mbgw(["check", EXAMPLE])
    assert rc != 0, out
    lines = [l for l in out.splitlines() if l.strip()]
    # every complaint is about the certificate files under /etc/mbgw/tls
    problems = [l for l in lines if "/etc/mbgw/tls/" not in l and "cannot set up TLS" not in l
                and not re.match(r"^mbgw: \d+ errors? in configuration", l)]
    assert not problems, out


class ExampleServer(Server):
    """mbgw running the example with its addresses, certificate and pid
    file moved into the test's reach: the loopback proxy listener is
    self.port, the TLS listener self.tls_port (and self.tls6_port when
    IPv6 loopback exists), the metrics listener self.metrics_port."""

    def __init__(self, cert, key):
        super().__init__()
        for name in os.listdir(self.confdir):
            os.unlink(os.path.join(self.confdir, name))
        self.tls_port, self.metrics_port = free_port(), free_port()
        self.tls6_port = free_port6()
        for name in sorted(os.listdir(EXAMPLE)):
            with open(os.path.join(EXAMPLE, name)) as f:
                text = f.read()
            text = text.replace("/etc/mbgw/tls/fullchain.pem", cert).replace("/etc/mbgw/tls/privkey.pem", key)
            text = text.replace("/run/mbgw/mbgw.pid", os.path.join(self.dir.name, "mbgw.pid"))
            text = text.replace("listen = 0.0.0.0:443 tls", "listen = 127.0.0.1:%d tls" % self.tls_port)
            if self.tls6_port:
                text = text.replace("listen = [::]:443 tls", "listen = [::1]:%d tls" % self.tls6_port)
            else:
                text = re.sub(r"(?m)^listen = \[::\]:443 tls.*$", "", text)
            text = text.replace("listen = 127.0.0.1:8080", "listen = 127.0.0.1:%d" % self.port)
            text = text.replace("listen = 127.0.0.1:9100 metrics", "listen = 127.0.0.1:%d metrics"
                                % self.metrics_port)
            with open(os.path.join(self.confdir, name), "w") as f:
                f.write(text)


def chat_join(c, nick):
    c.send_frame(OP_TEXT, ('chat.join id=1\n{"room": "lobby", "nick": "%s"}' % nick).encode())
    op, data = c.recv_message()
    head, _, body = data.decode().partition("\n")
    assert head.startswith("chat.joined"), data
    return json.loads(body)


def test_example_runs_as_documented():
    with Certs() as certs:
        cert, key = certs.server("chat", dns=("chat.example.com", "localhost"))
        s = ExampleServer(cert, key)
        rc, out = run_mbgw(["check", s.confdir])
        assert rc == 0, out
        with s:
            ctx = client_context(certs.ca_cert)
            ok = {"Origin": "https://chat.example.com", "Sec-WebSocket-Protocol": "mbgw.chat.v1"}

            def wss(headers, port=None):
                return TLSClient(port or s.tls_port, ctx, "/chat", headers=headers)

            c = wss(ok)
            try:
                assert c.status == 101, c.status
                assert c.response_headers["sec-websocket-protocol"] == "mbgw.chat.v1"
                assert chat_join(c, "ada")["members"] == ["ada"]
            finally:
                c.close()
            if s.tls6_port:
                raw = socket.create_connection(("::1", s.tls6_port), timeout=5)
                tsock = ctx.wrap_socket(raw, server_hostname="localhost")
                c = Client.__new__(Client)
                c.sock, c.timeout, c.buf, c.status, c.response_headers = tsock, 5, b"", None, {}
                try:
                    assert c.handshake("/chat", ok) == 101
                finally:
                    c.close()
            c = wss(dict(ok, Origin="https://www.example.com"))  # the wildcard
            assert c.status == 101
            c.close()
            for headers, status in ((dict(ok, Origin="https://evil.example.net"), 403),
                                    (dict(ok, Origin=None), 403),
                                    (dict(ok, **{"Sec-WebSocket-Protocol": None}), 400)):
                c = wss(headers)
                assert c.status == status, (headers, c.status)
                c.close()
            # the local reverse proxy's listener: X-Forwarded-For believed
            c = Client(s.port, "/chat", headers=dict(ok, **{"X-Forwarded-For": "198.51.100.23",
                                                           "X-Forwarded-Proto": "https"}))
            try:
                assert c.status == 101
                chat_join(c, "bob")
            finally:
                c.close()
            wait_access(s, "open", remote="198.51.100.23:0", path="/chat", route="chat",
                        subprotocol="mbgw.chat.v1", tls=0)
            # monitoring on loopback only
            m = scrape_metrics(s.metrics_port)
            assert m.get("mbgw_handshakes_rejected_total", reason="origin") == 2
            assert m.get("mbgw_tls_handshakes_total") >= 5
            assert http_get(s.port, "/metrics").status == 404
            assert http_get(s.metrics_port, "/readyz").status == 200


if __name__ == "__main__":
    run_tests([
        test_example_is_checked_and_only_misses_its_certificate,
        test_example_runs_as_documented,
    ])
