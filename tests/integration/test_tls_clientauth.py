"""Client certificates (mutual TLS, issue 4): client_auth = off |
optional | required with a CA file or directory. What a plugin sees is
checked through the probe test plugin's "attr" command: the connection
attribute tls_client_subject holds the verified subject (RFC 2253) and is
absent without a verified certificate."""
import json
import os
import ssl
import subprocess

from mbgw_harness import MBGW_BIN, OP_TEXT, run_tests
from tls_certs import (Certs, TLSServer, TLSClient, tls_section, client_context, node_client,
                       EXPIRED, OPENSSL, file_subject, cert_subject_cn)

V12, V13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3

PLUGIN_DIR = os.environ.get("MBGW_TEST_PLUGIN_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(MBGW_BIN)), "test-plugins")


def routes():
    probe = os.path.join(PLUGIN_DIR, "probe.so")
    assert os.path.isfile(probe), "test plugin %s missing: build the tests/plugins targets" % probe
    return """
[route echo]
path = /ws
plugin = echo
format = raw

[route probe]
path = /p
plugin = %s
settings = {"name": "p", "events": false}
""" % probe


class Env:
    """A CA with a client certificate for alice, another CA with one for
    mallory, an expired client certificate, and a server certificate."""

    def __init__(self):
        self.c = Certs()
        self.other = Certs(cn="another CA")
        self.srv = self.c.server("srv")
        self.alice = self.c.client("alice", org="Acme")
        self.old = self.c.client("old", dates=EXPIRED)
        self.mallory = self.other.client("mallory")
        # The certificate says O=Acme, then CN=alice; RFC 2253 text
        # starts from the last one.
        assert file_subject(self.alice[0]) == "CN=alice,O=Acme", file_subject(self.alice[0])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.c.cleanup()
        self.other.cleanup()

    def server(self, mode, ca=None):
        conf = tls_section(*self.srv, client_auth=mode, client_ca=ca or self.c.ca_cert)
        if mode == "off":
            conf = tls_section(*self.srv, client_auth="off")
        return TLSServer(conf, routes=routes())

    def ctx(self, who=None, ver=None):
        cert = {"alice": self.alice, "old": self.old, "mallory": self.mallory}.get(who)
        return client_context(self.c.ca_cert, cert=cert[0] if cert else None, key=cert[1] if cert else None,
                              min_version=ver, max_version=ver)


def subject(s, ctx):
    """Connects to /p and returns what the plugin reads as
    tls_client_subject (None when absent) after a working echo."""
    with TLSClient(s.tls_port, ctx, path="/p") as t:
        assert t.status == 101, t.status
        t.send_frame(OP_TEXT, 'attr\n{"name": "tls_client_subject"}')
        op, data = t.recv_message()
        head, _, body = data.decode().partition("\n")
        assert head == "r cmd=attr", data
        body = json.loads(body)
        if body["value"] is None:
            assert body["rc"] < 0, body
        else:
            assert body["rc"] == len(body["value"]), body
        return body["value"]


def expect_rejected(s, ctx, reasons):
    """The server refuses the client with one of these alerts: during the
    handshake (TLS 1.2), or right after it (TLS 1.3, where the client's
    handshake ends before the server has checked its certificate: the
    alert is the first thing the client reads). The client sends nothing
    after its handshake here: one that sends its request at once can lose
    the TLS 1.3 alert to a TCP reset (reported as a core bug)."""
    try:
        t = TLSClient(s.tls_port, ctx, handshake=False)
    except ssl.SSLError as e:
        assert e.reason in reasons, "refused for another reason: %r (%s)" % (e.reason, e)
        return
    try:
        data = t.sock.recv(1024)
    except ssl.SSLError as e:
        assert e.reason in reasons, "refused for another reason: %r (%s)" % (e.reason, e)
        return
    finally:
        t.close()
    raise AssertionError("the client was not refused (read %r)" % data)


def test_client_auth_off():
    """off: the server asks for no certificate; a client that has one
    connects and no subject is visible."""
    with Env() as e, e.server("off") as s:
        for ver in (V12, V13):
            assert subject(s, e.ctx("alice", ver)) is None
            assert subject(s, e.ctx(None, ver)) is None
            assert subject(s, e.ctx("mallory", ver)) is None
        out = subprocess.run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % s.tls_port, "-tls1_2"],
                             stdin=subprocess.DEVNULL, capture_output=True, timeout=15).stdout.decode()
        assert "No client certificate CA names sent" in out, out


def test_client_auth_optional():
    """optional: no certificate is fine (no subject); a certificate from
    the CA gives its subject to the plugin; one from another CA or an
    expired one is refused."""
    with Env() as e, e.server("optional") as s:
        for ver in (V12, V13):
            assert subject(s, e.ctx(None, ver)) is None
            assert subject(s, e.ctx("alice", ver)) == "CN=alice,O=Acme"
            expect_rejected(s, e.ctx("mallory", ver), ("TLSV1_ALERT_UNKNOWN_CA",))
            expect_rejected(s, e.ctx("old", ver), ("SSLV3_ALERT_CERTIFICATE_EXPIRED",))
        out = subprocess.run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % s.tls_port, "-tls1_2"],
                             stdin=subprocess.DEVNULL, capture_output=True, timeout=15).stdout.decode()
        assert "Acceptable client certificate CA names\nCN = mbgw test CA\n" in out, out
        assert s.wait_log("TLS handshake with 127.0.0.1:"), "refused handshakes are not logged"


def test_client_auth_required():
    """required: no certificate → the handshake fails (and is logged);
    a certificate from the CA works and gives its subject."""
    with Env() as e, e.server("required") as s:
        for ver in (V12, V13):
            expect_rejected(s, e.ctx(None, ver), ("SSLV3_ALERT_HANDSHAKE_FAILURE", "TLSV13_ALERT_CERTIFICATE_REQUIRED"))
            expect_rejected(s, e.ctx("mallory", ver), ("TLSV1_ALERT_UNKNOWN_CA",))
            assert subject(s, e.ctx("alice", ver)) == "CN=alice,O=Acme"
        assert s.wait_log("peer did not return a certificate"), s.logtext()[-3000:]
        # And with the npm ws client.
        res = node_client({"url": s.wss_url(), "ca": e.c.ca_cert, "cert": e.alice[0], "key": e.alice[1]})
        assert "error" not in res and res["results"] == ["ok"] * 4, res
        res = node_client({"url": s.wss_url(), "ca": e.c.ca_cert, "mode": "expect_error"})
        assert "error" in res and "opened" not in res, res


def test_client_auth_with_sni_and_resumption():
    """The policy holds for [tls NAME] certificates chosen by SNI too, and
    a resumed session keeps the verified subject."""
    with Env() as e:
        a = e.c.server("alpha", dns=("alpha.test",))
        conf = tls_section(*e.srv, client_auth="required", client_ca=e.c.ca_cert) + \
            "\n[tls alpha]\ncertificate = %s\nkey = %s\nserver_names = alpha.test\n" % a
        with TLSServer(conf, routes=routes()) as s:
            for ver in (V12, V13):
                ctx = e.ctx("alice", ver)
                with TLSClient(s.tls_port, ctx, path="/p", server_hostname="alpha.test") as t:
                    assert cert_subject_cn(t.sock.getpeercert(True)) == "alpha"
                # Without a certificate, refused under that name as well.
                try:
                    t = TLSClient(s.tls_port, e.ctx(None, ver), server_hostname="alpha.test", handshake=False)
                    try:
                        data = t.sock.recv(1024)
                        raise AssertionError("accepted without a certificate (read %r)" % data)
                    finally:
                        t.close()
                except ssl.SSLError as x:
                    assert x.reason in ("SSLV3_ALERT_HANDSHAKE_FAILURE", "TLSV13_ALERT_CERTIFICATE_REQUIRED"), x
                # Resumption: the subject is still the verified one.
                with TLSClient(s.tls_port, ctx, path="/p") as t:
                    t.send_frame(OP_TEXT, "echo\n{}")
                    t.recv_message()
                    sess = t.sock.session
                tr = TLSClient(s.tls_port, ctx, path="/p", session=sess)
                try:
                    assert tr.sock.session_reused, ver
                finally:
                    tr.close()
                assert subject(s, _SessionCtx(ctx, sess)) == "CN=alice,O=Acme"


class _SessionCtx:
    """A context stand-in for subject(): connects resuming `session`."""

    def __init__(self, ctx, session):
        self.ctx, self.session = ctx, session

    def wrap_socket(self, raw, server_hostname=None, session=None, suppress_ragged_eofs=True):
        s = self.ctx.wrap_socket(raw, server_hostname=server_hostname, session=self.session,
                                 suppress_ragged_eofs=suppress_ragged_eofs)
        assert s.session_reused, "the session was not resumed"
        return s


def test_client_ca_directory():
    """client_ca may be a directory of hashed CA certificates (openssl
    rehash)."""
    with Env() as e:
        cadir = e.c.path("cadir")
        os.mkdir(cadir)
        with open(os.path.join(cadir, "ca.pem"), "wb") as f:
            f.write(open(e.c.ca_cert, "rb").read())
        subprocess.run([OPENSSL, "rehash", cadir], check=True, capture_output=True, timeout=15)
        with e.server("required", ca=cadir) as s:
            assert subject(s, e.ctx("alice")) == "CN=alice,O=Acme"
            expect_rejected(s, e.ctx("mallory"), ("TLSV1_ALERT_UNKNOWN_CA",))


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_") and callable(v)])
