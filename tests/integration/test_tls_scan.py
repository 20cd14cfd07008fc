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
these tests report NOT RUN (never PASS); the same protocol and cipher
policy is checked without it by test_tls_protocol.py. The scan stays on
loopback and makes no DNS lookups (--nodns none)."""
import json
import os
import shutil
import subprocess
import tempfile

from mbgw_harness import run_tests, Skip
from tls_certs import Certs, TLSServer, tls_section

BAD = ("LOW", "MEDIUM", "HIGH", "CRITICAL", "WARN", "FATAL")
# What a throw-away test CA always draws in a full scan.
TEST_CA_FINDINGS = ("cert_chain_of_trust", "cert_expirationStatus", "cert_notAfter", "cert_revocation",
                    "cert_validityPeriod", "cert_trust", "OCSP_stapling", "DNS_CAArecord", "cert_ocspURL",
                    "cert_crlDistributionPoints")


def testssl():
    exe = shutil.which("testssl") or shutil.which("testssl.sh")
    if not exe:
        raise Skip("testssl.sh is not installed (apt-get install testssl.sh); "
                   "test_tls_protocol.py checks the same policy without it")
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
