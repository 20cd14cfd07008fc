"""mbgw behind a real HAProxy (Debian's package) in TCP mode, sending the
PROXY protocol to a `proxy_protocol` listener (issue 5, "PROXY protocol
v1 and v2 ... for HAProxy / load balancers").

HAProxy runs as a child process in the foreground (-db) with its
configuration in a temporary directory, and is stopped at the end of each
test whatever happens. Frontends: send-proxy-v2, send-proxy (v1), and TLS
passthrough (the PROXY v2 header, then the client's own ClientHello) to a
`tls proxy_protocol` listener. The client connects from 127.0.0.2: mbgw
must report exactly that address and the client's own port."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from mbgw_harness import (Server, BoundClient, Client, OP_CLOSE, OP_TEXT, close_payload, connect_from, free_port,
                          probe_attrs, probe_route, run_tests, scrape_metrics, wait_access, Skip)
from tls_certs import Certs, client_context, tls_section

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)

HAPROXY_CONF = """
global
    maxconn 200

defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend v2
    bind 127.0.0.1:{v2}
    default_backend mbgw_v2
backend mbgw_v2
    server mbgw 127.0.0.1:{pp} send-proxy-v2 check inter 200ms check-send-proxy

frontend v1
    bind 127.0.0.1:{v1}
    default_backend mbgw_v1
backend mbgw_v1
    server mbgw 127.0.0.1:{pp} send-proxy

frontend tls
    bind 127.0.0.1:{tls}
    default_backend mbgw_tls
backend mbgw_tls
    server mbgw 127.0.0.1:{pptls} send-proxy-v2
"""


class HAProxy:
    def __init__(self, pp_port, pp_tls_port):
        if not HAPROXY:
            raise Skip("haproxy is not installed (Debian package haproxy; scripts/deps.sh test)")
        self.tmp = tempfile.TemporaryDirectory(prefix="mbgw-haproxy-")
        self.v2, self.v1, self.tls = free_port(), free_port(), free_port()
        self.conf = os.path.join(self.tmp.name, "haproxy.cfg")
        with open(self.conf, "w") as f:
            f.write(HAPROXY_CONF.format(v2=self.v2, v1=self.v1, tls=self.tls, pp=pp_port, pptls=pp_tls_port))
        self.logpath = os.path.join(self.tmp.name, "haproxy.log")
        self.proc = None

    def logtext(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def __enter__(self):
        self.log = open(self.logpath, "wb")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", self.conf], stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        try:
            for port in (self.v2, self.v1, self.tls):
                while True:
                    if self.proc.poll() is not None:
                        raise RuntimeError("haproxy exited at start-up (%s):\n%s" % (self.proc.returncode,
                                                                                     self.logtext()))
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                        break
                    except OSError:
                        assert time.monotonic() < deadline, "haproxy did not listen:\n" + self.logtext()
                        time.sleep(0.05)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        try:
            if self.proc and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=10)
        finally:
            self.log.close()
            self.tmp.cleanup()


class Stack:
    """Certificates, mbgw with a plain listener (self.mbgw.port: /metrics)
    and two PROXY listeners (plain and TLS), HAProxy in front."""

    def __init__(self, server_extra=""):
        self.server_extra = server_extra

    def __enter__(self):
        self.certs = Certs()
        try:
            cert, key = self.certs.server("mbgw", dns=("localhost",))
            self.pp, self.pptls = free_port(), free_port()
            extra = ("listen = 127.0.0.1:%d proxy_protocol\nlisten = 127.0.0.1:%d tls proxy_protocol\n%s"
                     % (self.pp, self.pptls, self.server_extra))
            self.mbgw = Server(routes=probe_route("p", "/p"), log_level="debug", server_extra=extra)
            with open(os.path.join(self.mbgw.confdir, "20-tls.conf"), "w") as f:
                f.write(tls_section(cert, key))
            self.mbgw.__enter__()
            try:
                self.haproxy = HAProxy(self.pp, self.pptls).__enter__()
            except BaseException:
                self.mbgw.__exit__(None, None, None)
                raise
        except BaseException:
            self.certs.cleanup()
            raise
        return self

    def __exit__(self, *exc):
        try:
            self.haproxy.__exit__()
        finally:
            try:
                self.mbgw.__exit__(*exc)
            finally:
                self.certs.cleanup()


def test_send_proxy_v2_and_v1():
    with Stack() as st:
        for port in (st.haproxy.v2, st.haproxy.v1):
            c = BoundClient(port, "127.0.0.2", "/p", headers={"User-Agent": "via-haproxy"})
            try:
                assert c.status == 101, c.status
                want = "127.0.0.2:%d" % c.local_port
                a = probe_attrs(c, "remote_addr", "scheme")
                assert a == {"remote_addr": want, "scheme": "ws"}, (a, want)
                c.send_frame(OP_TEXT, b'echo id=1\n{"through": "haproxy"}')
                op, data = c.recv_message()
                assert data.startswith(b"echo"), data
                c.send_frame(OP_CLOSE, close_payload(1000))
                assert c.expect_close(1000)[0] == 1000
            finally:
                c.close()
            wait_access(st.mbgw, "open", remote=want, path="/p", route="p", user_agent="via-haproxy")
            wait_access(st.mbgw, "close", remote=want, route="p", code=1000)
        assert st.mbgw.wait_log("PROXY v2: client 127.0.0.2:")
        assert st.mbgw.wait_log("PROXY v1: client 127.0.0.2:")


def test_health_checks_with_proxy_header_are_not_refusals():
    """HAProxy's health checks (check-send-proxy) open and close
    connections with a PROXY header: they are not bad headers."""
    with Stack() as st:
        time.sleep(1.0)  # a few checks at 200 ms
        log = st.mbgw.logtext()
        assert "bad PROXY protocol header" not in log, log[-2000:]
        m = scrape_metrics(st.mbgw.port)
        assert m.get("mbgw_handshakes_rejected_total", reason="bad_request") == 0
        assert m.get("mbgw_connections_accepted_total") >= 3  # the checks did connect


def test_tls_passthrough_with_proxy_v2():
    with Stack() as st:
        ctx = client_context(st.certs.ca_cert)
        raw = connect_from(st.haproxy.tls, "127.0.0.2")
        tsock = ctx.wrap_socket(raw, server_hostname="localhost")
        c = Client.__new__(Client)
        c.sock, c.timeout, c.buf, c.status, c.response_headers = tsock, 5, b"", None, {}
        try:
            assert c.handshake("/p") == 101
            want = "127.0.0.2:%d" % tsock.getsockname()[1]
            a = probe_attrs(c, "remote_addr", "scheme")
            assert a == {"remote_addr": want, "scheme": "wss"}, (a, want)
        finally:
            c.close()
        wait_access(st.mbgw, "open", remote=want, path="/p", route="p", subprotocol="-", tls=1)


def test_limits_apply_to_the_client_behind_haproxy():
    with Stack(server_extra="max_connections_per_ip = 1") as st:
        a = BoundClient(st.haproxy.v2, "127.0.0.2", "/p")
        try:
            assert a.status == 101
            # the same client again, through the same HAProxy: refused
            b = BoundClient(st.haproxy.v2, "127.0.0.2", "/p", handshake=False)
            b_port = b.local_port
            try:
                try:
                    st_b = b.handshake("/p")
                except (ConnectionError, OSError):
                    st_b = None
                assert st_b != 101, st_b
            finally:
                b.close()
            assert st.mbgw.wait_log("connection from 127.0.0.2:%d refused: max_connections_per_ip reached"
                                    % b_port), st.mbgw.logtext()[-1500:]
            # another client through the same HAProxy: let in
            c = BoundClient(st.haproxy.v2, "127.0.0.3", "/p")
            try:
                assert c.status == 101
            finally:
                c.close()
        finally:
            a.close()


if __name__ == "__main__":
    run_tests([
        test_send_proxy_v2_and_v1,
        test_health_checks_with_proxy_header_are_not_refusals,
        test_tls_passthrough_with_proxy_v2,
        test_limits_apply_to_the_client_behind_haproxy,
    ])
