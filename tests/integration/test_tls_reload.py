"""Certificates reloaded on SIGHUP (issue 4): open TLS connections keep
working, new handshakes present the new certificate; a bad certificate on
reload keeps the old one in force and logs the error as file:line; a
handshake that started before a reload finishes with the contexts it
started with (SNI included); SNI names and client_auth change with a
reload."""
import os
import shutil
import signal
import ssl
import time

from mbgw_harness import OP_TEXT, run_tests
from tls_certs import (Certs, TLSServer, TLSClient, tls_section, client_context, peer_cert,
                       cert_subject_cn, EXPIRED, BioHandshake)


def echo_once(t, text="ping"):
    t.send_frame(OP_TEXT, text)
    assert t.recv_message() == (OP_TEXT, text.encode())


def reload(s, outcome, timeout=10):
    """SIGHUP, then wait for one more log line `outcome` ("reload done" or
    "reload failed")."""
    before = s.count_log(outcome)
    s.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if s.count_log(outcome) > before:
            return
        if not s.alive():
            raise AssertionError("mbgw died on reload:\n" + s.logtext()[-3000:])
        time.sleep(0.05)
    raise AssertionError("no %r within %ss:\n%s" % (outcome, timeout, s.logtext()[-3000:]))


class Live:
    """Files at fixed paths that the [tls] section names; install() copies
    a certificate and key onto them, as a deploy would."""

    def __init__(self, c):
        self.cert = c.path("live.pem")
        self.key = c.path("live.key")

    def install(self, pair):
        # Write to a temporary name and rename: readers never see half a file.
        for src, dst in zip(pair, (self.cert, self.key)):
            shutil.copy(src, dst + ".tmp")
            os.replace(dst + ".tmp", dst)


def presented_cn(s, host="localhost"):
    return cert_subject_cn(peer_cert(s.tls_port, host))


def test_new_certificate_on_sighup():
    with Certs() as c:
        v1, v2 = c.server("v1"), c.server("v2")
        live = Live(c)
        live.install(v1)
        with TLSServer(tls_section(live.cert, live.key)) as s:
            ctx = client_context(c.ca_cert)
            ctx12 = client_context(c.ca_cert, max_version=ssl.TLSVersion.TLSv1_2)
            old = [TLSClient(s.tls_port, ctx), TLSClient(s.tls_port, ctx12)]
            try:
                for t in old:
                    echo_once(t, "before")
                    assert cert_subject_cn(t.sock.getpeercert(True)) == "v1"
                sess = old[0].sock.session
                live.install(v2)
                assert presented_cn(s) == "v1", "the certificate changed before the reload"
                reload(s, "reload done")
                assert s.wait_log("TLS certificates reloaded: new handshakes use them")
                # Open connections carry on, in both directions.
                for t in old:
                    echo_once(t, "after the reload")
                    t.send_frame(OP_TEXT, "x" * 100000)
                    assert t.recv_message() == (OP_TEXT, b"x" * 100000)
                # New handshakes see v2, with and without SNI, both versions.
                assert presented_cn(s) == "v2"
                assert presented_cn(s, None) == "v2"
                with TLSClient(s.tls_port, ctx12) as t:
                    assert cert_subject_cn(t.sock.getpeercert(True)) == "v2"
                    echo_once(t)
                # A session from before the reload still gets a working
                # connection with the new certificate (resumed or not).
                with TLSClient(s.tls_port, ctx, session=sess) as t:
                    echo_once(t)
                    if not t.sock.session_reused:
                        assert cert_subject_cn(t.sock.getpeercert(True)) == "v2"
            finally:
                for t in old:
                    t.close()


def test_bad_certificate_on_reload_keeps_old():
    """Each bad replacement (expired, key mismatch, not PEM, missing)
    fails the reload with file:line in the log; the old certificate stays
    for new handshakes and open connections are untouched. A good one
    afterwards is taken."""
    with Certs() as c:
        v1, v3 = c.server("v1"), c.server("v3")
        expired = c.server("expired", dates=EXPIRED)
        other_key = c.new_key("other")
        live = Live(c)
        live.install(v1)
        with TLSServer(tls_section(live.cert, live.key)) as s:
            tls_file = os.path.join(s.confdir, "20-tls.conf")
            ctx = client_context(c.ca_cert)
            t = TLSClient(s.tls_port, ctx)
            try:
                echo_once(t)
                bad = [
                    (expired, "%s:1: certificate %s has expired (valid from Jan  1 00:00:00 2020 GMT "
                              "until Jan  1 00:00:00 2021 GMT)" % (tls_file, live.cert)),
                    ((v3[0], other_key), "%s:1: key %s " % (tls_file, live.key)),
                    ((c.ca_key, v1[1]), "%s:1: certificate %s is not a PEM certificate chain" % (tls_file, live.cert)),
                ]
                for pair, msg in bad:
                    live.install(pair)
                    n = s.count_log(msg)
                    reload(s, "reload failed")
                    assert s.count_log(msg) == n + 1, "no log line %r:\n%s" % (msg, s.logtext()[-2000:])
                    assert presented_cn(s) == "v1", "a bad certificate replaced the good one"
                    with TLSClient(s.tls_port, ctx) as t2:
                        echo_once(t2)
                    echo_once(t, "still open")
                os.unlink(live.key)
                reload(s, "reload failed")
                assert s.wait_log("%s:1: key %s: No such file or directory" % (tls_file, live.key))
                assert presented_cn(s) == "v1"
                live.install(v3)
                reload(s, "reload done")
                assert presented_cn(s) == "v3"
                echo_once(t, "survived five reloads")
            finally:
                t.close()


def test_handshake_spanning_reload():
    """A handshake whose ClientHello is half sent when the certificates
    are reloaded completes with the contexts it started with: the old
    certificate, and the old SNI table (the SNI callback runs after the
    reload, on the context the connection was accepted with)."""
    with Certs() as c:
        d1, a1 = c.server("default-1"), c.server("alpha-1", dns=("alpha.test",))
        d2, a2 = c.server("default-2"), c.server("alpha-2", dns=("alpha.test",))

        def conf(d, a):
            return tls_section(*d) + "\n[tls alpha]\ncertificate = %s\nkey = %s\nserver_names = alpha.test\n" % a
        with TLSServer(conf(d1, a1)) as s:
            pending = []
            for host in ("alpha.test", "localhost"):
                h = BioHandshake(s.tls_port, host)
                hello = h.client_hello()
                h.sock.sendall(hello[:len(hello) // 2])
                pending.append((h, hello))
            time.sleep(0.2)
            s.write_tls_conf(conf(d2, a2))
            reload(s, "reload done")
            assert presented_cn(s, "alpha.test") == "alpha-2"
            assert presented_cn(s) == "default-2"
            for (h, hello), want in zip(pending, ("alpha-1", "default-1")):
                h.sock.sendall(hello[len(hello) // 2:])
                h.finish()
                assert cert_subject_cn(h.peer_cert()) == want
                resp = h.request(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert resp.startswith(b"HTTP/1.1 200 OK"), resp
                h.close()


def test_reload_changes_sni_and_client_auth():
    """A reload adds an SNI name and turns client_auth to required: new
    handshakes follow the new policy, an open connection made without a
    client certificate stays open."""
    with Certs() as c:
        d, b = c.server("default"), c.server("beta", dns=("beta.test",))
        alice = c.client("alice")
        with TLSServer(tls_section(*d)) as s:
            t = TLSClient(s.tls_port, client_context(c.ca_cert))
            try:
                echo_once(t)
                assert presented_cn(s, "beta.test") == "default"
                s.write_tls_conf(tls_section(*d, client_auth="required", client_ca=c.ca_cert) +
                                 "\n[tls beta]\ncertificate = %s\nkey = %s\nserver_names = beta.test\n" % b)
                reload(s, "reload done")
                with TLSClient(s.tls_port, client_context(c.ca_cert, cert=alice[0], key=alice[1]),
                               server_hostname="beta.test") as t2:
                    assert cert_subject_cn(t2.sock.getpeercert(True)) == "beta"
                    echo_once(t2)
                ctx = client_context(c.ca_cert, max_version=ssl.TLSVersion.TLSv1_2)
                try:
                    TLSClient(s.tls_port, ctx).close()
                    raise AssertionError("a client without a certificate was accepted after the reload")
                except ssl.SSLError as e:
                    assert e.reason == "SSLV3_ALERT_HANDSHAKE_FAILURE", e
                echo_once(t, "opened before the reload")
            finally:
                t.close()


def test_sessions_from_before_reload_cannot_skip_client_auth():
    """Sessions made while client_auth was off cannot be resumed to get
    around client_auth = required after a reload (TLS 1.2 and 1.3)."""
    with Certs() as c:
        d = c.server("default")
        with TLSServer(tls_section(*d)) as s:
            sessions = []
            for ver in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
                ctx = client_context(c.ca_cert, min_version=ver, max_version=ver)
                with TLSClient(s.tls_port, ctx) as t:
                    echo_once(t)
                    sessions.append((ctx, t.sock.session))
                with TLSClient(s.tls_port, ctx, session=sessions[-1][1]) as t:
                    assert t.sock.session_reused  # resumption works before the reload
            s.write_tls_conf(tls_section(*d, client_auth="required", client_ca=c.ca_cert))
            reload(s, "reload done")
            for ctx, sess in sessions:
                try:
                    t = TLSClient(s.tls_port, ctx, session=sess, handshake=False)
                except ssl.SSLError as e:
                    assert e.reason == "SSLV3_ALERT_HANDSHAKE_FAILURE", e
                    continue
                try:
                    # TLS 1.3: the refusal is the first thing to read.
                    data = t.sock.recv(1024)
                    raise AssertionError("resumed past client_auth = required (reused=%s, read %r)" % (
                        t.sock.session_reused, data))
                except ssl.SSLError as e:
                    assert e.reason == "TLSV13_ALERT_CERTIFICATE_REQUIRED", e
                finally:
                    t.close()


def test_many_reloads_under_traffic():
    """Twenty reloads while TLS clients keep echoing and new ones keep
    connecting: nothing is dropped, nothing leaks (ASan builds check)."""
    with Certs() as c:
        pairs = [c.server("gen%d" % i) for i in range(2)]
        live = Live(c)
        live.install(pairs[0])
        with TLSServer(tls_section(live.cert, live.key)) as s:
            ctx = client_context(c.ca_cert)
            clients = [TLSClient(s.tls_port, ctx) for _ in range(8)]
            try:
                for i in range(20):
                    live.install(pairs[(i + 1) % 2])
                    # Messages in flight while the reload happens.
                    for k, t in enumerate(clients):
                        t.send_frame(OP_TEXT, "r%d c%d" % (i, k))
                    reload(s, "reload done")
                    for k, t in enumerate(clients):
                        assert t.recv_message() == (OP_TEXT, ("r%d c%d" % (i, k)).encode())
                    with TLSClient(s.tls_port, ctx) as t2:
                        assert cert_subject_cn(t2.sock.getpeercert(True)) == "gen%d" % ((i + 1) % 2)
                        echo_once(t2)
                assert s.count_log("reload done") == 20, s.count_log("reload done")
            finally:
                for t in clients:
                    t.close()


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_") and callable(v)])
