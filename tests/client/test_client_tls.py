"""mbgw-cat and libmbgw-client over TLS: validation on by default (CA
file, host name, SNI), clear errors for untrusted, expired and
wrong-name certificates, --insecure, mutual TLS with --cert/--key, and
compression over wss. Certificates are made at test time
(tests/integration/tls_certs.py)."""
import json
import os

from mbgw_harness import MBGW_BIN, run_tests
from tls_certs import Certs, TLSServer, tls_section, EXPIRED
from client_util import ExternalServer, Probe, cat, kill_server

PLUGIN_DIR = os.path.join(os.path.dirname(os.path.abspath(MBGW_BIN)), "test-plugins")
ROUTES = """
[route echo]
path = /ws
plugin = echo
format = raw

[route probe]
path = /probe
plugin = %s/probe.so
settings = {"name": "p"}
""" % PLUGIN_DIR


def test_wss_with_ca_file():
    with Certs() as c:
        cert, key = c.server("srv")
        with TLSServer(tls_section(cert, key), routes=ROUTES) as s:
            r = cat(["--ca", c.ca_cert, "-x", "over tls", s.wss_url()])
            assert r.rc == 0 and r.out == "over tls\n", r
            # An IP literal is checked against the IP SANs.
            r = cat(["--ca", c.ca_cert, "-x", "ip", s.wss_url(host="127.0.0.1")])
            assert r.rc == 0 and r.out == "ip\n", r
            # Compression over TLS.
            big = "tls and deflate " * 4000
            r = cat(["--ca", c.ca_cert, "--compress", "-x", big, s.wss_url()])
            assert r.rc == 0 and r.out == big + "\n" and "permessage-deflate" in r.err, r.err


def test_untrusted_certificate():
    with Certs() as c:
        cert, key = c.server("srv")
        with TLSServer(tls_section(cert, key), routes=ROUTES) as s:
            # Validation is on by default: the system store does not know our CA.
            r = cat(["-x", "x", s.wss_url()])
            assert r.rc == 3, r
            assert "certificate verify failed: unable to get local issuer certificate" in r.err, r
            # ... unless told otherwise.
            r = cat(["-k", "-x", "x", s.wss_url()])
            assert r.rc == 0 and r.out == "x\n", r
            r = cat(["--insecure", "-x", "y", s.wss_url(host="127.0.0.1")])
            assert r.rc == 0 and r.out == "y\n", r
            # A plain ws:// client on the TLS port fails cleanly, not with a hang.
            r = cat(["--connect-timeout", "3", "-x", "x", "ws://127.0.0.1:%d/ws" % s.tls_port])
            assert r.rc in (2, 4), r


def test_wrong_host_name():
    with Certs() as c:
        cert, key = c.server("other", dns=("other.example",), ips=())
        with TLSServer(tls_section(cert, key), routes=ROUTES) as s:
            r = cat(["--ca", c.ca_cert, "-x", "x", s.wss_url()])
            assert r.rc == 3 and "hostname mismatch" in r.err, r
            r = cat(["--ca", c.ca_cert, "-x", "x", s.wss_url(host="127.0.0.1")])
            assert r.rc == 3 and "IP address mismatch" in r.err, r


def test_sni_is_sent():
    """The default certificate names only default.example; the one served
    for SNI "localhost" names localhost. Validation of wss://localhost
    therefore passes only if the client sent SNI; an IP literal sends no
    SNI (RFC 6066) and gets the default certificate."""
    with Certs() as c:
        dflt = c.server("dflt", dns=("default.example",), ips=())
        loc = c.server("loc", dns=("localhost",), ips=())
        conf = tls_section(*dflt) + "\n[tls loc]\ncertificate = %s\nkey = %s\nserver_names = localhost\n" % loc
        with TLSServer(conf, routes=ROUTES) as s:
            r = cat(["--ca", c.ca_cert, "-x", "sni", s.wss_url()])
            assert r.rc == 0 and r.out == "sni\n", r
            r = cat(["--ca", c.ca_cert, "-x", "x", s.wss_url(host="127.0.0.1")])
            assert r.rc == 3 and "mismatch" in r.err, r


def test_expired_certificate():
    """mbgw refuses to serve an expired certificate, so a Python websockets
    server presents it."""
    with Certs() as c:
        cert, key = c.server("old", dates=EXPIRED)
        with ExternalServer("python", tls=(cert, key)) as srv:
            url = "wss://localhost:%d/" % srv.port
            r = cat(["--ca", c.ca_cert, "-x", "x", url])
            assert r.rc == 3, r
            assert "certificate verify failed: certificate has expired" in r.err, r
            r = cat(["-k", "-x", "still", url])
            assert r.rc == 0 and r.out == "still\n", r


def test_mutual_tls():
    with Certs() as c:
        cert, key = c.server("srv")
        ccert, ckey = c.client("alice", cn="alice")
        conf = tls_section(cert, key, client_auth="required", client_ca=c.ca_cert)
        with TLSServer(conf, routes=ROUTES) as s:
            r = cat(["--ca", c.ca_cert, "--cert", ccert, "--key", ckey,
                     "-x", 'attr id=1\n{"name":"tls_client_subject"}', s.wss_url("/probe")])
            assert r.rc == 0, r
            body = json.loads(r.out.split("\n", 1)[1])
            assert "CN=alice" in body["value"], body
            # Without a certificate the server refuses: a TLS failure.
            r = cat(["--ca", c.ca_cert, "-x", "x", s.wss_url("/probe")])
            assert r.rc == 3, r
            assert "TLS" in r.err and "certificate" in r.err, r
            # Files that cannot be used are reported before connecting.
            r = cat(["--ca", c.ca_cert, "--cert", ccert, "--key", key, s.wss_url()])
            assert r.rc == 1 and "mismatch" in r.err, r
            r = cat(["--ca", c.ca_cert, "--cert", "/nonexistent.pem", s.wss_url()])
            assert r.rc == 1 and "cannot load client certificate /nonexistent.pem" in r.err, r
            r = cat(["--ca", "/nonexistent-ca.pem", s.wss_url()])
            assert r.rc == 1 and "cannot load CA /nonexistent-ca.pem" in r.err, r


def test_wss_reconnects_after_a_crash():
    with Certs() as c:
        cert, key = c.server("srv")
        s = TLSServer(tls_section(cert, key), routes=ROUTES).start()
        try:
            with Probe(["--ca", c.ca_cert, "--reconnect", "--backoff-initial", "50", "--backoff-max", "200",
                        "--compress", s.wss_url()]) as p:
                p.wait("open n=1")
                kill_server(s)
                _, line = p.wait("disconnect")
                assert line.startswith("disconnect code=1006 reconnect=1"), line
                p.wait("reconnecting attempt=2", timeout=5)
                s.start()
                _, line = p.wait("open n=2", timeout=5)
                assert "ext=permessage-deflate" in line, line
                p.cmd("send after the crash")
                _, line = p.wait("message text after the crash")
        finally:
            s.__exit__(None, None, None)


if __name__ == "__main__":
    run_tests([test_wss_with_ca_file, test_untrusted_certificate, test_wrong_host_name, test_sni_is_sent,
               test_expired_certificate, test_mutual_tls, test_wss_reconnects_after_a_crash])
