"""An independent scanner against the TLS listener (issue 4: "a scripted
check with Debian's testssl.sh ... shows no SSLv3/TLS 1.0/1.1, no weak
ciphers, and forward secrecy; keep it runnable by one command").

    MBGW_BIN=build/mbgw python3 tests/integration/test_tls_scan.py

runs the fast subset (protocols, cipher categories, forward secrecy,
renegotiation, compression: about 20 s). MBGW_TESTSSL_FULL=1 adds
testssl's full default run (about 75 s, so not in the default suite),
asserting no HIGH or CRITICAL finding apart from those a throw-away test
CA always draws (chain of trust, short validity, no revocation info).

testssl.sh is optional: scripts/deps.sh does not install it. Without it
the testssl tests report NOT RUN (never PASS), and test_policy_scan — the
same categories probed with Python's ssl module and no optional
dependency — still runs. Everything stays on loopback; testssl makes no
DNS lookups (--nodns none)."""
import json
import os
import shutil
import ssl
import subprocess
import tempfile

from mbgw_harness import run_tests, Skip
from tls_certs import Certs, TLSServer, tls_section, tls_connect, client_context

BAD = ("LOW", "MEDIUM", "HIGH", "CRITICAL", "WARN", "FATAL")
# What a throw-away test CA always draws in a full scan.
TEST_CA_FINDINGS = ("cert_chain_of_trust", "cert_expirationStatus", "cert_notAfter", "cert_revocation",
                    "cert_validityPeriod", "cert_trust", "OCSP_stapling", "DNS_CAArecord", "cert_ocspURL",
                    "cert_crlDistributionPoints")


def testssl():
    exe = shutil.which("testssl") or shutil.which("testssl.sh")
    if not exe:
        raise Skip("testssl.sh is not installed (apt-get install testssl.sh); "
                   "test_policy_scan and test_tls_protocol.py check the same policy without it")
    return exe


def scan(port, args, timeout):
    exe = testssl()
    with tempfile.TemporaryDirectory(prefix="mbgw-testssl-") as d:
        out = os.path.join(d, "scan.json")
        try:
            p = subprocess.run([exe, "--quiet", "--warnings", "off", "--color", "0", "--nodns", "none",
                                "--ip", "127.0.0.1", "--jsonfile", out] + args + ["127.0.0.1:%d" % port],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=timeout, cwd=d)
        except subprocess.TimeoutExpired:
            raise AssertionError("testssl did not finish within %ss" % timeout)
        text = p.stdout.decode(errors="replace")
        assert os.path.exists(out), "testssl wrote no results (exit %d):\n%s" % (p.returncode, text[-3000:])
        with open(out) as f:
            findings = json.load(f)
    return {x["id"]: x for x in findings}, text


UNOFFERABLE = "unofferable"


def handshake(port, version, ciphers=None, host="localhost"):
    """The negotiated (version, cipher), None if the server refused, or
    UNOFFERABLE when our side cannot send such a ClientHello (e.g. PSK
    suites without a PSK)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    ctx.set_ciphers((ciphers or "ALL") + ":@SECLEVEL=0")
    try:
        s = tls_connect(port, ctx, host)
    except ssl.SSLError as e:
        if e.reason == "NO_CIPHERS_AVAILABLE":
            return UNOFFERABLE
        # The refusal must come from the server (an alert), not from our
        # own side having nothing to offer.
        assert "ALERT" in (e.reason or "") or e.reason in ("UNSUPPORTED_PROTOCOL",), e
        return None
    try:
        return s.version(), s.cipher()[0]
    finally:
        s.close()


def test_policy_scan():
    """testssl's fast categories without testssl: TLS 1.0 and 1.1 refused;
    NULL, anonymous, export, LOW (DES, RC2, RC4), 3DES/IDEA, CBC and
    static-RSA-key-exchange ciphers refused under TLS 1.2, for an ECDSA
    and an RSA certificate; forward-secret AEAD offered; TLS 1.3 offered."""
    with Certs() as c:
        conf = tls_section(*c.server("ecdsa")) + \
            "\n[tls rsa]\ncertificate = %s\nkey = %s\nserver_names = rsa.test\n" % c.server(
                "rsa", dns=("rsa.test",), key_kind="rsa")
        with TLSServer(conf, log_level="info") as s:
            v10, v11 = ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1
            v12, v13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3
            refused = ["NULL", "aNULL", "EXPORT", "LOW", "RC4", "DES", "3DES", "IDEA", "SEED", "CAMELLIA",
                       "ARIA", "AES128-SHA", "AES256-SHA", "SHA1", "SHA256:SHA384:!AESGCM:!CHACHA20", "kRSA",
                       "PSK", "SRP", "MD5"]
            tried = 0
            for host in ("localhost", "rsa.test"):
                for v in (v10, v11):
                    assert handshake(s.tls_port, v, host=host) is None, "%s offered (%s)" % (v, host)
                for cat in refused:
                    try:
                        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).set_ciphers(cat + ":@SECLEVEL=0")
                    except ssl.SSLError:
                        continue  # not in this OpenSSL at all
                    got = handshake(s.tls_port, v12, cat, host)
                    if got == UNOFFERABLE:
                        continue
                    tried += 1
                    assert got is None, "%s: category %s accepted: %s" % (host, cat, got)
                got = handshake(s.tls_port, v12, "ECDHE+AESGCM:ECDHE+CHACHA20", host)
                assert got and got[1].startswith("ECDHE-"), (host, got)
                got = handshake(s.tls_port, v13, None, host)
                assert got and got[0] == "TLSv1.3", (host, got)
            assert tried >= 20, "only %d categories could be offered" % tried
            assert s.alive()
            # A normal verified client is still fine afterwards.
            tls_connect(s.tls_port, client_context(c.ca_cert)).close()


def test_testssl_fast_subset():
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv")), log_level="info") as s:
            f, text = scan(s.tls_port, ["-p", "-s", "-f", "-R", "-C"], timeout=180)
            want = {
                "SSLv2": "not offered", "SSLv3": "not offered", "TLS1": "not offered", "TLS1_1": "not offered",
                "TLS1_2": "offered", "TLS1_3": "offered with final", "ALPN": "http/1.1",
                "cipherlist_NULL": "not offered", "cipherlist_aNULL": "not offered",
                "cipherlist_EXPORT": "not offered", "cipherlist_LOW": "not offered",
                "cipherlist_3DES_IDEA": "not offered", "cipherlist_AVERAGE": "not offered",
                "cipherlist_STRONG": "offered", "PFS": "offered",
                "secure_client_renego": "not vulnerable", "CRIME_TLS": "not vulnerable",
            }
            for k, v in want.items():
                assert k in f, "testssl reported no %s:\n%s" % (k, text[-3000:])
                assert f[k]["finding"] == v, "%s: %r, expected %r" % (k, f[k]["finding"], v)
            bad = ["%s %s: %s" % (k, x["severity"], x["finding"]) for k, x in f.items() if x["severity"] in BAD]
            assert not bad, "testssl findings:\n" + "\n".join(bad)
            assert s.alive()


def test_testssl_full():
    if os.environ.get("MBGW_TESTSSL_FULL") != "1":
        raise Skip("the full testssl run takes about 75 s: set MBGW_TESTSSL_FULL=1")
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv")), log_level="info") as s:
            f, text = scan(s.tls_port, [], timeout=400)
            bad = ["%s %s: %s" % (k, x["severity"], x["finding"]) for k, x in f.items()
                   if x["severity"] in ("HIGH", "CRITICAL", "FATAL") and k not in TEST_CA_FINDINGS]
            assert not bad, "testssl findings:\n" + "\n".join(bad)
            assert len(f) > 20, "testssl reported almost nothing:\n%s" % text[-3000:]
            assert s.alive()


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_") and callable(v)])
