"""The TLS protocol as the server speaks it (issue 4, TLS list): TLS 1.2
and 1.3 handshakes, min_version = 1.3, no TLS 1.0/1.1, only forward-secret
AEAD ciphers, the ciphers/ciphersuites settings, ALPN http/1.1, SNI
choosing the certificate per name (exact, wildcard, case-insensitive) and
the default otherwise, session resumption with tickets (and
session_tickets = no), renegotiation refused, TLS 1.3 key updates, and a
close_notify whenever the server ends a TLS connection."""
import signal
import ssl
import subprocess
import time

from mbgw_harness import OP_TEXT, OP_CLOSE, close_payload, frame, run_tests
from tls_certs import (Certs, TLSServer, TLSClient, tls_section, client_context, peer_cert,
                       cert_subject_cn, cert_sans, tls_connect, OPENSSL)

V12, V13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3


def echo_once(t, text="ping"):
    t.send_frame(OP_TEXT, text)
    assert t.recv_message() == (OP_TEXT, text.encode())


def s_client(port, args, stdin_script, timeout=15):
    """Runs openssl s_client against 127.0.0.1:port. stdin_script is a list
    of (delay_seconds, bytes) written in order; returns (rc, output)."""
    p = subprocess.Popen([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port] + args,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for delay, data in stdin_script:
            time.sleep(delay)
            try:
                p.stdin.write(data)
                p.stdin.flush()
            except BrokenPipeError:
                break
        try:
            p.stdin.close()
        except BrokenPipeError:
            pass
        p.wait(timeout=timeout)
        out = p.stdout.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, out.decode("utf-8", "replace")


# --- versions and ciphers ----------------------------------------------------

def test_tls12_and_tls13_handshakes():
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv"))) as s:
            for ver, name in ((V12, "TLSv1.2"), (V13, "TLSv1.3")):
                ctx = client_context(c.ca_cert, min_version=ver, max_version=ver)
                with TLSClient(s.tls_port, ctx) as t:
                    assert t.status == 101
                    assert t.sock.version() == name, t.sock.version()
                    cipher = t.sock.cipher()[0]
                    if ver == V12:
                        assert cipher.startswith("ECDHE-"), cipher
                    else:
                        assert cipher.startswith("TLS_"), cipher
                    echo_once(t)
            # A client that allows both gets TLS 1.3.
            with TLSClient(s.tls_port, client_context(c.ca_cert)) as t:
                assert t.sock.version() == "TLSv1.3"


def old_protocol_context(ver):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.minimum_version = ver
    ctx.maximum_version = ver
    return ctx


def expect_handshake_refused(port, ctx, reasons, server_hostname="localhost"):
    """The handshake must fail with an alert from the server whose reason
    is one of `reasons` (so the refusal is the server's, not the client's)."""
    try:
        s = tls_connect(port, ctx, server_hostname)
        s.close()
    except ssl.SSLError as e:
        assert e.reason in reasons, "handshake failed for another reason: %r (%s)" % (e.reason, e)
        return e
    raise AssertionError("the handshake succeeded (expected %s)" % (reasons,))


def test_no_tls10_or_tls11():
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv"))) as s:
            for ver in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
                expect_handshake_refused(s.tls_port, old_protocol_context(ver),
                                         ("TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL"))
            assert s.wait_log("unsupported protocol"), "no log line for the refused handshake"


def test_min_version_13_refuses_tls12_client():
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv"), min_version="1.3")) as s:
            expect_handshake_refused(s.tls_port, client_context(c.ca_cert, max_version=V12),
                                     ("TLSV1_ALERT_PROTOCOL_VERSION",))
            with TLSClient(s.tls_port, client_context(c.ca_cert, min_version=V13)) as t:
                assert t.sock.version() == "TLSv1.3"
                echo_once(t)


def tls12_cipher_names():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    return sorted({x["name"] for x in ctx.get_ciphers() if x["protocol"] != "TLSv1.3"})


def test_only_forward_secret_aead_ciphers():
    """Every TLS 1.2 cipher this OpenSSL knows is offered alone, against
    an ECDSA and an RSA certificate: what the server accepts is ECDHE or
    DHE (forward secrecy) with AES-GCM or ChaCha20-Poly1305 — no RC4, 3DES,
    CBC, NULL, anonymous or export suites."""
    with Certs() as c:
        conf = tls_section(*c.server("ecdsa")) + \
            "\n[tls rsa]\ncertificate = %s\nkey = %s\nserver_names = rsa.test\n" % c.server(
                "rsa", dns=("rsa.test",), key_kind="rsa")
        with TLSServer(conf, log_level="info") as s:
            names = tls12_cipher_names()
            assert len(names) > 30, names  # the probe really covers the field
            accepted = {}
            for host in ("localhost", "rsa.test"):
                for name in names:
                    ctx = old_protocol_context(V12)
                    try:
                        ctx.set_ciphers(name + ":@SECLEVEL=0")
                    except ssl.SSLError:
                        continue
                    try:
                        sock = tls_connect(s.tls_port, ctx, host)
                    except (ssl.SSLError, ConnectionError):
                        continue
                    accepted.setdefault(host, []).append(sock.cipher()[0])
                    sock.close()
            for host in ("localhost", "rsa.test"):
                got = accepted.get(host, [])
                assert got, "no TLS 1.2 cipher accepted for %s" % host
                for name in got:
                    assert name.startswith(("ECDHE-", "DHE-")), "%s: no forward secrecy: %s" % (host, name)
                    assert "GCM" in name or "CHACHA20" in name, "%s: not AEAD: %s" % (host, name)
            assert all("ECDSA" in n for n in accepted["localhost"]), accepted
            assert all("ECDSA" not in n for n in accepted["rsa.test"]), accepted
            assert s.alive()


def test_ciphers_and_ciphersuites_settings():
    with Certs() as c:
        conf = tls_section(*c.server("srv"), ciphers="ECDHE-ECDSA-AES256-GCM-SHA384",
                           ciphersuites="TLS_CHACHA20_POLY1305_SHA256")
        with TLSServer(conf) as s:
            with TLSClient(s.tls_port, client_context(c.ca_cert, max_version=V12)) as t:
                assert t.sock.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384", t.sock.cipher()
            with TLSClient(s.tls_port, client_context(c.ca_cert, min_version=V13)) as t:
                assert t.sock.cipher()[0] == "TLS_CHACHA20_POLY1305_SHA256", t.sock.cipher()
            ctx = client_context(c.ca_cert, max_version=V12)
            ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
            expect_handshake_refused(s.tls_port, ctx, ("SSLV3_ALERT_HANDSHAKE_FAILURE",))
            rc, out = s_client(s.tls_port, ["-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"],
                               [(0.3, b"")])
            assert rc != 0 and "handshake failure" in out, out


# --- ALPN and SNI ------------------------------------------------------------

def test_alpn_http11():
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv"))) as s:
            for offer, want in ((["http/1.1"], "http/1.1"), (["h2", "http/1.1"], "http/1.1"),
                                (["h2"], None), (None, None)):
                for ver in (V12, V13):
                    ctx = client_context(c.ca_cert, alpn=offer, min_version=ver, max_version=ver)
                    with TLSClient(s.tls_port, ctx) as t:
                        assert t.sock.selected_alpn_protocol() == want, (offer, ver, t.sock.selected_alpn_protocol())
                        echo_once(t)
            rc, out = s_client(s.tls_port, ["-alpn", "http/1.1", "-servername", "localhost"],
                               [(0.2, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"), (0.5, b"")])
            assert "ALPN protocol: http/1.1" in out, out
            assert "HTTP/1.1 200 OK" in out, out


def sni_server(c):
    d = c.server("default", dns=("localhost",))
    a = c.server("alpha", dns=("alpha.test",))
    w = c.server("wild", dns=("*.wild.test", "exact.test"))
    conf = tls_section(*d) + \
        "\n[tls alpha]\ncertificate = %s\nkey = %s\nserver_names = alpha.test\n" % a + \
        "\n[tls wild]\ncertificate = %s\nkey = %s\nserver_names = *.wild.test, Exact.Test\n" % w
    return TLSServer(conf)


def test_sni_chooses_certificate():
    with Certs() as c:
        with sni_server(c) as s:
            cases = [(None, "default"), ("localhost", "default"), ("alpha.test", "alpha"),
                     ("ALPHA.Test", "alpha"), ("x.wild.test", "wild"), ("exact.test", "wild"),
                     ("a.b.wild.test", "default"),  # a wildcard covers one label
                     ("wild.test", "default"), ("other.test", "default"), ("alpha.test.evil", "default")]
            for host, cn in cases:
                der = peer_cert(s.tls_port, host)
                assert cert_subject_cn(der) == cn, (host, cert_subject_cn(der))
            assert "DNS:alpha.test" in cert_sans(peer_cert(s.tls_port, "alpha.test"))
            assert "DNS:*.wild.test" in cert_sans(peer_cert(s.tls_port, "x.wild.test"))
            # Full verification (CA and host name) for each name, both versions.
            for host in ("localhost", "alpha.test", "x.wild.test", "exact.test"):
                for ver in (V12, V13):
                    ctx = client_context(c.ca_cert, min_version=ver, max_version=ver)
                    with TLSClient(s.tls_port, ctx, server_hostname=host) as t:
                        echo_once(t, host)


# --- resumption --------------------------------------------------------------

def first_session(port, ctx, host="localhost"):
    """A full handshake; the session after one echo (TLS 1.3 tickets
    arrive after the handshake)."""
    with TLSClient(port, ctx, server_hostname=host) as t:
        echo_once(t)
        assert not t.sock.session_reused
        return t.sock.session


def test_session_resumption_with_tickets():
    with Certs() as c:
        with sni_server(c) as s:
            for ver in (V12, V13):
                for host in ("localhost", "alpha.test"):
                    ctx = client_context(c.ca_cert, min_version=ver, max_version=ver)
                    sess = first_session(s.tls_port, ctx, host)
                    assert sess.has_ticket, (ver, host)
                    # Several times: connections land on different workers.
                    for i in range(4):
                        with TLSClient(s.tls_port, ctx, server_hostname=host, session=sess) as t:
                            assert t.sock.session_reused, (ver, host, i)
                            echo_once(t)


def test_session_tickets_off():
    """session_tickets = no: a TLS 1.2 client gets no ticket."""
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv"), session_tickets="no")) as s:
            ctx = client_context(c.ca_cert, max_version=V12)
            sess = first_session(s.tls_port, ctx)
            assert not sess.has_ticket
            with TLSClient(s.tls_port, ctx, session=sess) as t:
                echo_once(t)


# --- renegotiation and key update --------------------------------------------

def test_renegotiation_refused():
    """A TLS 1.2 client asking to renegotiate (s_client's R command) is
    refused with a no_renegotiation alert; the server carries on."""
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv"))) as s:
            rc, out = s_client(s.tls_port, ["-tls1_2", "-servername", "localhost"],
                               [(0.5, b"R\n"), (0.5, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
                                (0.5, b"")])
            assert "RENEGOTIATING" in out, out
            assert "no renegotiation" in out, out
            assert "HTTP/1.1 200" not in out, out
            with TLSClient(s.tls_port, client_context(c.ca_cert)) as t:
                echo_once(t)


def test_tls13_key_update():
    """TLS 1.3 key updates in both directions (s_client's k and K) in the
    middle of a connection: the request that follows is answered."""
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv"))) as s:
            rc, out = s_client(s.tls_port, ["-tls1_3", "-servername", "localhost"],
                               [(0.3, b"K\n"), (0.2, b"k\n"),
                                (0.2, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), (0.5, b"")])
            assert out.count("KEYUPDATE") == 2, out
            assert "HTTP/1.1 200 OK" in out, out


# --- close_notify ------------------------------------------------------------

def test_close_notify_after_close_handshake():
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv"))) as s:
            ctx = client_context(c.ca_cert)
            for ver in (V12, V13):
                ctx = client_context(c.ca_cert, min_version=ver, max_version=ver)
                with TLSClient(s.tls_port, ctx) as t:
                    echo_once(t)
                    t.send_frame(OP_CLOSE, close_payload(1000))
                    t.expect_close(1000)
                    t.expect_close_notify()


def test_close_notify_when_server_fails_connection():
    """A protocol error (an unmasked client frame): close 1002, then
    close_notify."""
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv"))) as s:
            with TLSClient(s.tls_port, client_context(c.ca_cert)) as t:
                t.send(frame(OP_TEXT, b"unmasked", mask=False))
                t.expect_close(1002)
                t.expect_close_notify()


def test_close_notify_on_http_timeout():
    """The TLS handshake done but no HTTP request: 408 after
    handshake_timeout, then close_notify."""
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv")), server_extra="handshake_timeout = 1s\n") as s:
            with TLSClient(s.tls_port, client_context(c.ca_cert), handshake=False, timeout=5) as t:
                assert t.read_response() == 408
                t.expect_close_notify()


def test_close_notify_on_server_shutdown():
    """SIGTERM with TLS clients connected: each gets close 1001; those that
    answer the close and those that do not (dropped at drain_timeout) all
    see close_notify before the stream ends."""
    with Certs() as c:
        s = TLSServer(tls_section(*c.server("srv")), server_extra="drain_timeout = 1s\n")
        with s:
            clients = [TLSClient(s.tls_port, client_context(c.ca_cert)) for _ in range(4)]
            try:
                for t in clients:
                    echo_once(t)
                s.proc.send_signal(signal.SIGTERM)
                for i, t in enumerate(clients):
                    t.expect_close(1001)
                    if i % 2 == 0:
                        t.send_frame(OP_CLOSE, close_payload(1001))
                for t in clients:
                    t.expect_close_notify(timeout=8)
            finally:
                for t in clients:
                    t.close()
            assert s.proc.wait(timeout=15) == 0


def test_client_close_notify_is_a_clean_end():
    """A client that ends TLS with close_notify (no WebSocket close) is
    seen as a closed peer, not a TLS error."""
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv"))) as s:
            t = TLSClient(s.tls_port, client_context(c.ca_cert))
            echo_once(t)
            raw = t.sock.unwrap()  # sends close_notify, waits for the server's
            raw.close()
            assert s.wait_log("connection dropped: peer closed the connection"), s.logtext()[-2000:]
            assert "TLS error from" not in s.logtext(), s.logtext()[-2000:]


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_") and callable(v)])
