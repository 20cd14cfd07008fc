"""libmbgw-client through a real HTTP proxy (Debian's tinyproxy on the
loopback): CONNECT set explicitly or taken from http_proxy/https_proxy
with no_proxy honoured, Proxy-Authorization: Basic, and clear errors for
407 and for a proxy that refuses the tunnel or is not there."""
import os
import shutil
import subprocess
import tempfile
import time

from mbgw_harness import Server, Skip, free_port, run_tests
from tls_certs import Certs, TLSServer, tls_section
from client_util import cat

TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"


class TinyProxy:
    """tinyproxy in the foreground on a free loopback port; extra is added
    to its configuration (BasicAuth, ConnectPort ...)."""

    def __init__(self, extra=""):
        if not os.path.exists(TINYPROXY):
            raise Skip("tinyproxy is not installed (scripts/deps.sh test installs it)")
        self.port = free_port()
        self.dir = tempfile.TemporaryDirectory(prefix="mbgw-proxy-")
        self.log = os.path.join(self.dir.name, "tinyproxy.log")
        conf = os.path.join(self.dir.name, "tinyproxy.conf")
        with open(conf, "w") as f:
            f.write('Port %d\nListen 127.0.0.1\nTimeout 30\nMaxClients 50\nLogLevel Info\n'
                    'LogFile "%s"\nAllow 127.0.0.1\n%s\n' % (self.port, self.log, extra))
        self.proc = subprocess.Popen([TINYPROXY, "-d", "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        import socket
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("tinyproxy did not start")
                time.sleep(0.05)

    def url(self, cred=""):
        return "http://%s127.0.0.1:%d" % (cred + "@" if cred else "", self.port)

    def connects(self, target):
        """How many CONNECT requests for target the proxy logged."""
        try:
            with open(self.log) as f:
                return f.read().count("CONNECT %s HTTP/1.1" % target)
        except OSError:
            return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.dir.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def target(s):
    return "127.0.0.1:%d" % s.port


def test_explicit_proxy():
    with Server() as s, TinyProxy() as px:
        r = cat(["--proxy", px.url(), "-x", "via proxy", s.url()])
        assert r.rc == 0 and r.out == "via proxy\n", r
        assert px.connects(target(s)) == 1
        # Without the option nothing goes through the proxy.
        r = cat(["-x", "direct", s.url()])
        assert r.rc == 0 and px.connects(target(s)) == 1


def test_environment_and_no_proxy():
    with Server() as s, TinyProxy() as px:
        r = cat(["-x", "env", s.url()], env={"http_proxy": px.url()})
        assert r.rc == 0 and r.out == "env\n" and px.connects(target(s)) == 1, r
        r = cat(["-x", "env", s.url()], env={"HTTP_PROXY": px.url()})
        assert r.rc == 0 and px.connects(target(s)) == 2, r
        # https_proxy is for wss only.
        r = cat(["-x", "env", s.url()], env={"https_proxy": px.url()})
        assert r.rc == 0 and px.connects(target(s)) == 2, r
        for np in ("127.0.0.1", "localhost, 127.0.0.1", "*"):
            r = cat(["-x", "np", s.url()], env={"http_proxy": px.url(), "no_proxy": np})
            assert r.rc == 0 and px.connects(target(s)) == 2, (np, r)
        r = cat(["-x", "np", s.url()], env={"http_proxy": px.url(), "no_proxy": "example.com"})
        assert r.rc == 0 and px.connects(target(s)) == 3, r
        r = cat(["--no-proxy", "-x", "np", s.url()], env={"http_proxy": px.url()})
        assert r.rc == 0 and px.connects(target(s)) == 3, r
        r = cat(["-x", "x", s.url()], env={"http_proxy": "socks5://127.0.0.1:1"})
        assert r.rc == 1 and "http_proxy" in r.err and "only http://" in r.err, r


def test_wss_through_proxy():
    with Certs() as c:
        cert, key = c.server("srv")
        with TLSServer(tls_section(cert, key)) as s, TinyProxy() as px:
            r = cat(["--ca", c.ca_cert, "-x", "tls in tunnel", s.wss_url()], env={"https_proxy": px.url()})
            assert r.rc == 0 and r.out == "tls in tunnel\n", r
            assert px.connects("localhost:%d" % s.tls_port) == 1
            # Certificates are still verified end to end through the tunnel.
            r = cat(["-x", "x", s.wss_url()], env={"https_proxy": px.url()})
            assert r.rc == 3 and "certificate verify failed" in r.err, r
            assert px.connects("localhost:%d" % s.tls_port) == 2


def test_proxy_authentication():
    with Server() as s, TinyProxy("BasicAuth ada s3cret-1") as px:
        r = cat(["--proxy", px.url(), "-x", "x", s.url()])
        assert r.rc == 2, r
        assert "requires authentication: 407" in r.err and "give user:pass@" in r.err, r
        r = cat(["--proxy", px.url("ada:wrong"), "-x", "x", s.url()])
        assert r.rc == 2 and "the credentials given were refused" in r.err, r
        r = cat(["--proxy", px.url("ada:s3cret%2D1"), "-x", "authenticated", s.url()])
        assert r.rc == 0 and r.out == "authenticated\n", r
        r = cat(["-x", "env auth", s.url()], env={"http_proxy": px.url("ada:s3cret%2D1")})
        assert r.rc == 0 and r.out == "env auth\n", r


def test_proxy_refuses_tunnel():
    with Server() as s, TinyProxy("ConnectPort 443") as px:
        r = cat(["--proxy", px.url(), "-x", "x", s.url()])
        assert r.rc == 2, r
        assert "refused the tunnel to %s: 403" % target(s) in r.err, r


def test_proxy_not_there():
    with Server() as s:
        port = free_port()
        r = cat(["--proxy", "http://127.0.0.1:%d" % port, "-x", "x", s.url()])
        assert r.rc == 2, r
        assert "connection refused (the proxy)" in r.err, r


class FakeProxy:
    """Reads one CONNECT and answers `answer` (bytes), then stalls."""

    def __init__(self, answer):
        import socket
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        self.stopping = False
        self.conns = []
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        import socket
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            self.conns.append(c)
            c.settimeout(5)
            try:
                got = b""
                while b"\r\n\r\n" not in got:
                    d = c.recv(4096)
                    if not d:
                        break
                    got += d
                c.sendall(self.answer)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.t.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


def test_hostile_proxies():
    """Half an answer and silence: a timeout, without spinning; data after
    the answer: refused."""
    import resource
    with FakeProxy(b"HTTP/1.1 200 Connection estab") as fp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = cat(["--proxy", "http://127.0.0.1:%d" % fp.port, "--connect-timeout", "1", "-x", "x",
                 "ws://127.0.0.1:9/ws"])
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert r.rc == 2 and "did not answer CONNECT within 1000 ms" in r.err, r
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        assert cpu < 0.5, "mbgw-cat used %.2f s of CPU waiting 1 s for the proxy (busy loop?)" % cpu
    with FakeProxy(b"HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 101 too early\r\n\r\n") as fp:
        r = cat(["--proxy", "http://127.0.0.1:%d" % fp.port, "-x", "x", "ws://127.0.0.1:9/ws"])
        assert r.rc == 2 and "sent data after its answer to CONNECT" in r.err, r
    with FakeProxy(b"SSH-2.0-OpenSSH_9.2\r\n") as fp:
        r = cat(["--proxy", "http://127.0.0.1:%d" % fp.port, "-x", "x", "ws://127.0.0.1:9/ws"])
        assert r.rc == 2 and "not an HTTP response" in r.err, r


if __name__ == "__main__":
    run_tests([test_explicit_proxy, test_environment_and_no_proxy, test_wss_through_proxy,
               test_proxy_authentication, test_proxy_refuses_tunnel, test_proxy_not_there, test_hostile_proxies])
