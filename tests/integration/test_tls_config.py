"""TLS configuration errors at start-up (issue 4, "clear errors at
start-up"): each mistake is reported as "file:line: what is wrong" by
`mbgw check` (exit 1) and refuses `mbgw -c DIR` (exit 1, nothing listens):
missing certificate or key, a key that cannot be read, a key that does not
match its certificate, a wrong or missing passphrase, a certificate
expired or not yet valid (with the dates), an invalid or missing client_ca,
a tls listener without a [tls] section. And the good cases: a key with the
right passphrase (inline and from a file) is accepted.

All certificates are made at test time (tls_certs.py)."""
import os
import re
import shutil
import socket
import subprocess
import tempfile

from mbgw_harness import MBGW_BIN, free_port, run_tests, Skip
from tls_certs import Certs, EXPIRED, NOT_YET_VALID, tls_section, run_mbgw

ROUTES = "[route echo]\npath = /ws\nplugin = echo\nformat = raw\n"

CERTS = None


def certs():
    """One CA and set of files for the whole run (made once: they are
    read-only inputs to every case)."""
    global CERTS
    if CERTS is None:
        c = Certs()
        c.srv = c.server("srv")
        c.old = c.server("old", dates=EXPIRED)
        c.future = c.server("future", dates=NOT_YET_VALID)
        c.other_key = c.new_key("other")
        c.enc_key = c.encrypted_key(c.srv[1], "sekrit pass")
        c.garbage = c.path("garbage.pem")
        with open(c.garbage, "w") as f:
            f.write("this is not PEM\n")
        CERTS = c
    return CERTS


class Conf:
    """A configuration directory: 00-server.conf (a tls listener on a free
    port) and 20-tls.conf whose first line is the [tls] header."""

    def __init__(self, tls_conf, listen_tls=True):
        self.tmp = tempfile.TemporaryDirectory(prefix="mbgw-tlsconf-")
        self.dir = os.path.join(self.tmp.name, "conf.d")
        os.mkdir(self.dir)
        self.port = free_port()
        self.server_file = os.path.join(self.dir, "00-server.conf")
        self.tls_file = os.path.join(self.dir, "20-tls.conf")
        with open(self.server_file, "w") as f:
            f.write("[server]\nlisten = 127.0.0.1:%d%s\nlog_level = info\n\n%s" % (
                self.port, " tls" if listen_tls else "", ROUTES))
        if tls_conf is not None:
            with open(self.tls_file, "w") as f:
                f.write(tls_conf)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.tmp.cleanup()


def check(conf):
    return run_mbgw(["check", conf.dir])


def start(conf):
    """Starts the server; it must refuse to run. Returns (status, output)."""
    try:
        return run_mbgw(["-c", conf.dir], timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError("mbgw started (and kept running) with a bad TLS configuration")


def expect_refused(conf, line_re, verdict="mbgw: cannot set up TLS"):
    """Both `mbgw check` and `mbgw -c` exit 1 and print a line matching
    line_re (a full-line regular expression) and the verdict line."""
    for what, fn in (("check", check), ("start", start)):
        rc, out = fn(conf)
        assert rc == 1, "%s: expected exit 1, got %s:\n%s" % (what, rc, out)
        lines = out.splitlines()
        assert any(re.fullmatch(line_re, l) for l in lines), \
            "%s: no line matches %r in:\n%s" % (what, line_re, out)
        assert verdict in lines, "%s: no verdict line %r in:\n%s" % (what, verdict, out)
        assert "configuration OK" not in out, out
        # Nothing may be listening on the configured port.
        s = socket.socket()
        try:
            s.settimeout(0.5)
            assert s.connect_ex(("127.0.0.1", conf.port)) != 0, "%s: the port is listening" % what
        finally:
            s.close()
    return out


def expect_ok(conf):
    rc, out = check(conf)
    assert rc == 0, "check: expected exit 0, got %s:\n%s" % (rc, out)
    assert "configuration OK" in out, out


def where(conf, line=1):
    return re.escape("%s:%d" % (conf.tls_file, line))


# --- files -----------------------------------------------------------------

def test_missing_certificate():
    c = certs()
    missing = c.path("nope.pem")
    with Conf(tls_section(missing, c.srv[1])) as conf:
        expect_refused(conf, "%s: certificate %s: No such file or directory" % (where(conf), re.escape(missing)))


def test_missing_key():
    c = certs()
    missing = c.path("nope.key")
    with Conf(tls_section(c.srv[0], missing)) as conf:
        expect_refused(conf, "%s: key %s: No such file or directory" % (where(conf), re.escape(missing)))


def test_unreadable_key_permissions():
    """chmod 000 on the key. Root reads any file, so the check runs mbgw as
    the unprivileged user nobody (setpriv) over copies it may read."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0:
        runner = []
    elif setpriv:
        runner = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    else:
        raise Skip("running as root and setpriv is missing: permissions cannot deny root")
    c = certs()
    tmp = tempfile.mkdtemp(prefix="mbgw-tlsperm-")
    try:
        os.chmod(tmp, 0o755)
        cert = os.path.join(tmp, "srv.pem")
        key = os.path.join(tmp, "srv.key")
        shutil.copy(c.srv[0], cert)
        shutil.copy(c.srv[1], key)
        os.chmod(cert, 0o644)
        os.chmod(key, 0o000)
        confdir = os.path.join(tmp, "conf.d")
        os.mkdir(confdir)
        port = free_port()
        tls_file = os.path.join(confdir, "20-tls.conf")
        with open(os.path.join(confdir, "00-server.conf"), "w") as f:
            f.write("[server]\nlisten = 127.0.0.1:%d tls\n\n%s" % (port, ROUTES))
        with open(tls_file, "w") as f:
            f.write(tls_section(cert, key))
        for p in os.listdir(confdir):
            os.chmod(os.path.join(confdir, p), 0o644)
        want = "%s:1: key %s cannot be read: Permission denied" % (tls_file, key)
        for args in (["check", confdir], ["-c", confdir]):
            try:
                p = subprocess.run(runner + [MBGW_BIN] + args, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, timeout=20)
            except subprocess.TimeoutExpired:
                raise AssertionError("mbgw %s kept running with an unreadable key" % args[0])
            out = p.stdout.decode(errors="replace")
            assert p.returncode == 1, (args, p.returncode, out)
            assert want in out.splitlines(), "expected %r in:\n%s" % (want, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_key_is_a_directory():
    """A directory where the key should be cannot be loaded (a way to make
    a key unreadable that works as root). The exact wording is checked in
    the bug report; here: refused, naming the key and its section."""
    c = certs()
    with Conf(tls_section(c.srv[0], c.dir)) as conf:
        expect_refused(conf, "%s: key %s (cannot be loaded|cannot be read|is a directory).*" % (
            where(conf), re.escape(c.dir)))


def test_certificate_not_pem():
    c = certs()
    with Conf(tls_section(c.garbage, c.srv[1])) as conf:
        expect_refused(conf, "%s: certificate %s is not a PEM certificate chain: .+" % (
            where(conf), re.escape(c.garbage)))


def test_key_not_pem():
    c = certs()
    with Conf(tls_section(c.srv[0], c.garbage)) as conf:
        expect_refused(conf, "%s: key %s cannot be loaded: .+" % (where(conf), re.escape(c.garbage)))


def test_key_does_not_match_certificate():
    c = certs()
    with Conf(tls_section(c.srv[0], c.other_key)) as conf:
        k = re.escape(c.other_key)
        # Either the designed sentence or OpenSSL's "key values mismatch"
        # (see the bug report: the designed one is never reached).
        expect_refused(conf, "%s: key %s (does not match certificate %s|cannot be loaded: .*key values mismatch)" % (
            where(conf), k, re.escape(c.srv[0])))


# --- passphrases -------------------------------------------------------------

def test_encrypted_key_with_right_passphrase():
    c = certs()
    with Conf(tls_section(c.srv[0], c.enc_key, key_passphrase="sekrit pass")) as conf:
        expect_ok(conf)


def test_encrypted_key_with_passphrase_file():
    c = certs()
    pf = c.path("pass.txt")
    with open(pf, "w") as f:
        f.write("sekrit pass\n")  # the trailing newline is not part of it
    with Conf(tls_section(c.srv[0], c.enc_key, key_passphrase_file=pf)) as conf:
        expect_ok(conf)


def test_encrypted_key_wrong_passphrase():
    c = certs()
    with Conf(tls_section(c.srv[0], c.enc_key, key_passphrase="wrong")) as conf:
        expect_refused(conf, "%s: key %s cannot be loaded: .+" % (where(conf), re.escape(c.enc_key)))


def test_encrypted_key_without_passphrase():
    c = certs()
    with Conf(tls_section(c.srv[0], c.enc_key)) as conf:
        expect_refused(conf, "%s: key %s cannot be loaded: .+" % (where(conf), re.escape(c.enc_key)))


def test_missing_passphrase_file():
    c = certs()
    pf = c.path("no-such-pass.txt")
    with Conf(tls_section(c.srv[0], c.enc_key, key_passphrase_file=pf)) as conf:
        expect_refused(conf, "%s: key_passphrase_file %s: No such file or directory" % (where(conf), re.escape(pf)))


def test_passphrase_and_passphrase_file_together():
    c = certs()
    with Conf(tls_section(c.srv[0], c.enc_key, key_passphrase="a", key_passphrase_file=c.path("x"))) as conf:
        expect_refused(conf, "%s: set key_passphrase or key_passphrase_file, not both" % where(conf),
                       verdict="mbgw: 1 error in configuration %s" % conf.dir)


# --- validity dates ----------------------------------------------------------

def test_expired_certificate():
    c = certs()
    with Conf(tls_section(*c.old)) as conf:
        expect_refused(conf, re.escape(
            "%s:1: certificate %s has expired (valid from Jan  1 00:00:00 2020 GMT until "
            "Jan  1 00:00:00 2021 GMT)" % (conf.tls_file, c.old[0])))


def test_not_yet_valid_certificate():
    c = certs()
    with Conf(tls_section(*c.future)) as conf:
        expect_refused(conf, re.escape(
            "%s:1: certificate %s is not valid yet (valid from Jan  1 00:00:00 2090 GMT until "
            "Jan  1 00:00:00 2091 GMT)" % (conf.tls_file, c.future[0])))


def test_expired_sni_certificate():
    """The same check for a [tls NAME] certificate, reported at its own
    section's line."""
    c = certs()
    text = tls_section(*c.srv) + "\n[tls old]\ncertificate = %s\nkey = %s\nserver_names = old.test\n" % c.old
    with Conf(text) as conf:
        line = text.splitlines().index("[tls old]") + 1
        expect_refused(conf, re.escape("%s:%d: certificate %s has expired (valid from Jan  1 00:00:00 2020 GMT "
                                       "until Jan  1 00:00:00 2021 GMT)" % (conf.tls_file, line, c.old[0])))


# --- client_ca ---------------------------------------------------------------

def test_invalid_client_ca():
    c = certs()
    with Conf(tls_section(*c.srv, client_auth="required", client_ca=c.garbage)) as conf:
        expect_refused(conf, "%s: client_ca %s holds no usable CA certificate: .+" % (
            where(conf), re.escape(c.garbage)))


def test_missing_client_ca():
    c = certs()
    missing = c.path("no-ca.pem")
    with Conf(tls_section(*c.srv, client_auth="optional", client_ca=missing)) as conf:
        expect_refused(conf, "%s: client_ca %s: No such file or directory" % (where(conf), re.escape(missing)))


def test_client_auth_without_client_ca():
    c = certs()
    with Conf(tls_section(*c.srv, client_auth="required")) as conf:
        expect_refused(conf, "%s: client_auth = required needs client_ca \\(the CAs that sign client "
                             "certificates\\)" % where(conf),
                       verdict="mbgw: 1 error in configuration %s" % conf.dir)


def test_valid_client_ca_file_and_directory():
    c = certs()
    with Conf(tls_section(*c.srv, client_auth="required", client_ca=c.ca_cert)) as conf:
        expect_ok(conf)
    cadir = c.path("cadir")
    os.makedirs(cadir, exist_ok=True)
    shutil.copy(c.ca_cert, cadir)
    with Conf(tls_section(*c.srv, client_auth="optional", client_ca=cadir)) as conf:
        expect_ok(conf)


# --- sections ------------------------------------------------------------------

def test_tls_listener_without_tls_section():
    with Conf(None) as conf:
        expect_refused(conf, re.escape("%s:2: listen '127.0.0.1:%d tls' is tls but there is no [tls] section "
                                       "with certificate and key" % (conf.server_file, conf.port)),
                       verdict="mbgw: 1 error in configuration %s" % conf.dir)


def test_bad_tls_settings():
    c = certs()
    with Conf(tls_section(*c.srv, min_version="1.1")) as conf:
        expect_refused(conf, "%s: min_version must be 1.2 or 1.3 \\(found '1.1'\\)" % where(conf),
                       verdict="mbgw: 1 error in configuration %s" % conf.dir)
    with Conf(tls_section(*c.srv, client_auth="sometimes", client_ca=c.ca_cert)) as conf:
        expect_refused(conf, "%s: client_auth must be off, optional or required \\(found 'sometimes'\\)" % where(conf),
                       verdict="mbgw: 1 error in configuration %s" % conf.dir)
    text = tls_section(*c.srv) + "\n[tls www]\ncertificate = %s\nkey = %s\n" % c.srv
    with Conf(text) as conf:
        line = text.splitlines().index("[tls www]") + 1
        expect_refused(conf, re.escape("%s:%d: [tls www] needs server_names (the SNI names it serves)" % (
            conf.tls_file, line)), verdict="mbgw: 1 error in configuration %s" % conf.dir)


def test_tls_section_without_tls_listener_is_fine():
    """A [tls] section whose files are broken does not matter while no
    listener is tls (nothing loads it)."""
    c = certs()
    with Conf(tls_section(c.path("nope.pem"), c.path("nope.key")), listen_tls=False) as conf:
        expect_ok(conf)


if __name__ == "__main__":
    try:
        run_tests([v for k, v in list(globals().items()) if k.startswith("test_") and callable(v)])
    finally:
        if CERTS:
            CERTS.cleanup()
