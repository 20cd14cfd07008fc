"""Regression tests for TLS bugs found by the TLS suite: passphrase and
key-mismatch messages, directories given as files, relative paths taken
from the configuration directory, the TLS 1.3 client-certificate refusal
reaching the client as an alert, and no leak of the inflate buffers."""
import asyncio
import os
import re
import ssl
import tempfile

import websockets

from mbgw_harness import run_tests
from tls_certs import Certs, TLSServer, tls_section, client_context, run_mbgw

ROUTES = "[route echo]\npath = /ws\nplugin = echo\nformat = raw\n"


def conf_dir(tmp, tls_conf):
    d = os.path.join(tmp, "conf.d")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "00-server.conf"), "w") as f:
        f.write("[server]\nlisten = 127.0.0.1:1 tls\n\n" + ROUTES)
    with open(os.path.join(d, "20-tls.conf"), "w") as f:
        f.write(tls_conf)
    return d


def check_line(tls_conf, cwd=None):
    with tempfile.TemporaryDirectory() as tmp:
        d = conf_dir(tmp, tls_conf)
        rc, out = run_mbgw(["check", d]) if cwd is None else _check_in(d, cwd)
        return rc, out, os.path.join(d, "20-tls.conf")


def _check_in(d, cwd):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return run_mbgw(["check", d])
    finally:
        os.chdir(old)


def test_wrong_passphrase_is_named():
    """core/tls/tls.c, load_ctx: the wrong-passphrase branch is never
    taken. ERR_peek_last_error() is the SSL-level wrapper
    "SSL routines::PEM lib" (ERR_R_PEM_LIB); the cause, PROV_R_BAD_DECRYPT
    (lib ERR_LIB_PROV, reason 100) sits earlier in the queue. Actual:
    "key K cannot be loaded: error:0A080009:SSL routines::PEM lib"."""
    with Certs() as c:
        cert, key = c.server("srv")
        enc = c.encrypted_key(key, "right")
        rc, out, f = check_line(tls_section(cert, enc, key_passphrase="wrong"))
        assert rc == 1
        want = "%s:1: key %s cannot be loaded: wrong passphrase" % (f, enc)
        assert want in out.splitlines(), "expected %r, got:\n%s" % (want, out)


def test_encrypted_key_without_passphrase_is_named():
    """Same cause as above. Actual: "... cannot be loaded: error:0A080009:
    SSL routines::PEM lib"."""
    with Certs() as c:
        cert, key = c.server("srv")
        enc = c.encrypted_key(key, "right")
        rc, out, f = check_line(tls_section(cert, enc))
        assert rc == 1
        want = ("%s:1: key %s cannot be loaded: the key is encrypted: set key_passphrase or "
                "key_passphrase_file" % (f, enc))
        assert want in out.splitlines(), "expected %r, got:\n%s" % (want, out)


def test_key_mismatch_sentence():
    """core/tls/tls.c, load_ctx: SSL_CTX_use_PrivateKey_file already
    compares the key with the certificate loaded before it and fails with
    X509_R_KEY_VALUES_MISMATCH, so the SSL_CTX_check_private_key branch
    ("does not match certificate") is dead. Actual: "key K cannot be
    loaded: error:05800074:x509 certificate routines::key values mismatch"."""
    with Certs() as c:
        cert, key = c.server("srv")
        other = c.new_key("other")
        rc, out, f = check_line(tls_section(cert, other))
        assert rc == 1
        want = "%s:1: key %s does not match certificate %s" % (f, other, cert)
        assert want in out.splitlines(), "expected %r, got:\n%s" % (want, out)


def test_directory_instead_of_key_file():
    """core/tls/tls.c, readable_file: fopen(dir, "r") succeeds on Linux,
    so a directory passes as readable and OpenSSL's "PEM lib" is all the
    operator sees. Actual: "key D cannot be loaded: error:0A080009:SSL
    routines::PEM lib" (and "certificate D is not a PEM certificate chain:
    ... PEM lib" for the certificate)."""
    with Certs() as c:
        cert, key = c.server("srv")
        rc, out, f = check_line(tls_section(cert, c.dir))
        assert rc == 1
        assert re.search(r"^%s:1: key %s .*(Is a directory|is a directory|not a regular file)" % (
            re.escape(f), re.escape(c.dir)), out, re.M), out


def test_relative_tls_paths_follow_the_configuration_directory():
    """core/tls/tls.c (load_ctx, readable_file) and core/conf/conf.c:
    certificate, key, client_ca and key_passphrase_file are opened
    relative to the working directory, while plugin paths are relative to
    the configuration directory (docs/configuration.md). A conf.d that
    `mbgw check` accepts from inside it fails as a service (cwd /).
    Actual from cwd /: "certificate srv.pem: No such file or directory"."""
    with Certs() as c:
        cert, key = c.server("srv")
        with tempfile.TemporaryDirectory() as tmp:
            d = conf_dir(tmp, "[tls]\ncertificate = srv.pem\nkey = srv.key\n")
            with open(os.path.join(d, "srv.pem"), "wb") as f:
                f.write(open(cert, "rb").read())
            with open(os.path.join(d, "srv.key"), "wb") as f:
                f.write(open(key, "rb").read())
            rc_in, out_in = _check_in(d, d)
            rc_root, out_root = _check_in(d, "/")
            assert rc_in == 0, out_in
            assert rc_root == 0, "same configuration, other working directory:\n" + out_root


def test_tls13_client_certificate_refusal_reaches_the_client():
    """core/server/conn.c, tls_step -> conn_terminate (and
    core/server/transport.c): after a failed handshake the socket is
    closed at once while the client's last handshake records
    (CertificateVerify/Finished) are still unread, so the kernel answers
    with a TCP reset. Under TLS 1.3 the client's handshake is already
    complete and it sends its HTTP request at once: that write (or the
    read after it) fails with ECONNRESET and the client never reads the
    certificate_required / unknown_ca alert. Expected: a lingering close
    (alert flushed, shutdown(SHUT_WR), input drained for a bounded time),
    as CONN_LINGER/CONN_DRAIN already do for HTTP errors. Actual (Python
    websockets): InvalidMessage('did not receive a valid HTTP response')
    <- ConnectionResetError in most runs."""
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv"), client_auth="required", client_ca=c.ca_cert)) as s:
            ctx = client_context(c.ca_cert, min_version=ssl.TLSVersion.TLSv1_3)

            async def attempt():
                try:
                    async with websockets.connect(s.wss_url(), ssl=ctx, open_timeout=10):
                        return "opened"
                except Exception as e:
                    x = e
                    while x is not None:
                        if isinstance(x, ssl.SSLError) and x.reason == "TLSV13_ALERT_CERTIFICATE_REQUIRED":
                            return "alert"
                        x = x.__cause__ or x.__context__
                    return "%s: %s <- %r" % (type(e).__name__, e, e.__cause__ or e.__context__)
            results = [asyncio.run(attempt()) for _ in range(5)]
            assert results == ["alert"] * 5, results


def test_compressed_messages_over_wss_leak_nothing():
    """core/server/server.h struct worker zin/zout (used by
    core/server/conn.c on_message and the send path) are never freed when
    a worker exits: under ASan/LeakSanitizer, one compressed message makes
    the server exit with a leak report (ws_deflate.c out_grow <- rx_run <-
    ws_deflate_inflate <- conn.c on_message). Not TLS-specific (ws:// the
    same); passes in a build without sanitizers."""
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv"))) as s:
            async def main():
                async with websockets.connect(s.wss_url(), ssl=client_context(c.ca_cert)) as ws:
                    assert ws.extensions and ws.extensions[0].name == "permessage-deflate", ws.extensions
                    for n in (10, 5000, 80000):  # up to 960 KB (max_payload is 1 MiB)
                        msg = "compress me " * n
                        await ws.send(msg)
                        assert await ws.recv() == msg
            asyncio.run(main())


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_") and callable(v)])
