"""mbgw behind a real nginx (Debian's package) as a WebSocket reverse
proxy on loopback (issue 5, "A test runs mbgw behind a real nginx").

nginx runs as a child process with its own prefix (-p), configuration
(-c), pid file and logs in a temporary directory, "daemon off", and is
stopped at the end of each test whatever happens. It proxies with the
usual WebSocket recipe (HTTP/1.1, Upgrade and Connection passed on) and
sets X-Forwarded-For ($proxy_add_x_forwarded_for) and X-Forwarded-Proto
($scheme). mbgw trusts 127.0.0.1, the address nginx connects from.

The client connects to nginx from 127.0.0.2, so the address mbgw must
report (to plugins and in its access log) differs from nginx's."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from mbgw_harness import (Server, BoundClient, Client, OP_BINARY, OP_CLOSE, OP_TEXT, close_payload, free_port,
                          probe_attrs, probe_route, run_tests, wait_access, Skip)
from tls_certs import Certs, TLSClient, client_context

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
{user}
events {{ worker_connections 256; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    upstream mbgw {{
        server 127.0.0.1:{upstream};
    }}
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};

        location / {{
            proxy_pass http://mbgw;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 60s;
        }}
        # the same, but nginx connects from 127.0.0.4, which mbgw does
        # not trust
        location /untrusted/ {{
            proxy_bind 127.0.0.4;
            proxy_pass http://mbgw/;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


class Nginx:
    """nginx in front of 127.0.0.1:upstream, plain on self.port and TLS on
    self.tls_port. A context manager: stopped (SIGTERM to the master, then
    SIGKILL to its process group) on exit."""

    def __init__(self, upstream, cert, key):
        if not NGINX:
            raise Skip("nginx is not installed (Debian package nginx; scripts/deps.sh test)")
        self.tmp = tempfile.TemporaryDirectory(prefix="mbgw-nginx-")
        d = self.tmp.name
        self.port, self.tls_port = free_port(), free_port()
        self.conf = os.path.join(d, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(NGINX_CONF.format(d=d, upstream=upstream, port=self.port, tls_port=self.tls_port,
                                      cert=cert, key=key,
                                      user="user root;" if os.geteuid() == 0 else ""))
        self.proc = None

    def errors(self):
        try:
            with open(os.path.join(self.tmp.name, "error.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def __enter__(self):
        d = self.tmp.name
        self.out = open(os.path.join(d, "stdout.log"), "wb")
        self.proc = subprocess.Popen([NGINX, "-p", d + "/", "-c", self.conf, "-e", os.path.join(d, "error.log")],
                                     stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        try:
            for port in (self.port, self.tls_port):
                while True:
                    if self.proc.poll() is not None:
                        raise RuntimeError("nginx exited at start-up (%s):\n%s" % (self.proc.returncode,
                                                                                   self.errors()))
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                        break
                    except OSError:
                        assert time.monotonic() < deadline, "nginx did not listen:\n" + self.errors()
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
            if self.proc:
                # workers left behind by a master that died
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        finally:
            self.out.close()
            self.tmp.cleanup()


class Stack:
    """Certificates, mbgw (probe plugin on /p, trusting 127.0.0.1) and
    nginx in front of it."""

    def __init__(self, server_extra=""):
        self.server_extra = server_extra

    def __enter__(self):
        self.certs = Certs()
        try:
            cert, key = self.certs.server("nginx", dns=("localhost",))
            self.mbgw = Server(routes=probe_route("p", "/p"), log_level="info",
                               server_extra="trusted_proxies = 127.0.0.1\n" + self.server_extra)
            self.mbgw.__enter__()
            try:
                self.nginx = Nginx(self.mbgw.port, cert, key).__enter__()
            except BaseException:
                self.mbgw.__exit__(None, None, None)
                raise
        except BaseException:
            self.certs.cleanup()
            raise
        return self

    def __exit__(self, *exc):
        try:
            self.nginx.__exit__()
        finally:
            try:
                self.mbgw.__exit__(*exc)
            finally:
                self.certs.cleanup()


def check_traffic(c):
    """Messages both ways through the proxy, a large one included."""
    c.send_frame(OP_TEXT, b'echo id=1\n{"n": 1}')
    op, data = c.recv_message()
    assert op == OP_TEXT and data.startswith(b"echo"), data
    big = os.urandom(200000)
    c.send_frame(OP_BINARY, b"echo\n" + big)
    op, data = c.recv_message()
    assert op == OP_BINARY and data == big, (op, len(data))


def test_client_address_and_scheme_through_nginx():
    with Stack() as st:
        s = st.mbgw
        c = BoundClient(st.nginx.port, "127.0.0.2", "/p", headers={"User-Agent": "via-nginx"})
        try:
            assert c.status == 101, c.status
            a = probe_attrs(c, "remote_addr", "scheme", "path")
            assert a == {"remote_addr": "127.0.0.2:0", "scheme": "ws", "path": "/p"}, a
            check_traffic(c)
            c.send_frame(OP_CLOSE, close_payload(1000, "through nginx"))
            assert c.expect_close(1000)[0] == 1000
        finally:
            c.close()
        wait_access(s, "open", remote="127.0.0.2:0", path="/p", route="p", subprotocol="-", tls=0, deflate=0,
                    status=101, user_agent="via-nginx")
        wait_access(s, "close", remote="127.0.0.2:0", route="p", code=1000, reason="through nginx")


def test_wss_at_nginx_is_wss_for_plugins():
    with Stack() as st:
        ctx = client_context(st.certs.ca_cert)
        raw = socket.create_connection(("127.0.0.1", st.nginx.tls_port), timeout=5,
                                       source_address=("127.0.0.2", 0))
        tsock = ctx.wrap_socket(raw, server_hostname="localhost")
        c = Client.__new__(TLSClient)
        c.sock, c.timeout, c.buf, c.status, c.response_headers = tsock, 5, b"", None, {}
        try:
            assert c.handshake("/p") == 101
            a = probe_attrs(c, "remote_addr", "scheme")
            assert a == {"remote_addr": "127.0.0.2:0", "scheme": "wss"}, a
            check_traffic(c)
        finally:
            c.close()
        # mbgw itself spoke plain HTTP with nginx
        wait_access(st.mbgw, "open", remote="127.0.0.2:0", path="/p", route="p", subprotocol="-", tls=0)


def test_spoofed_forwarded_for_through_nginx():
    """A client's own X-Forwarded-For is kept by nginx and its address
    appended: mbgw takes the hop nginx wrote, not the client's claim."""
    with Stack() as st:
        c = BoundClient(st.nginx.port, "127.0.0.2", "/p",
                        headers={"X-Forwarded-For": "6.6.6.6, 10.0.0.1", "X-Forwarded-Proto": "https",
                                 "Forwarded": "for=6.6.6.7;proto=https"})
        try:
            assert c.status == 101
            a = probe_attrs(c, "remote_addr", "scheme")
            # nginx overwrote X-Forwarded-Proto with its own $scheme
            assert a == {"remote_addr": "127.0.0.2:0", "scheme": "ws"}, a
        finally:
            c.close()


def test_untrusted_nginx_is_not_believed():
    with Stack() as st:
        c = BoundClient(st.nginx.port, "127.0.0.2", "/untrusted/p")
        try:
            assert c.status == 101, c.status
            a = probe_attrs(c, "remote_addr", "scheme")
            assert a["remote_addr"].startswith("127.0.0.4:") and a["scheme"] == "ws", a
        finally:
            c.close()
        wait_access(st.mbgw, "open", remote=a["remote_addr"])


def test_limits_see_the_client_behind_nginx():
    """handshake_rate_per_ip counts the client nginx names, not nginx:
    a second client behind the same nginx is not throttled."""
    with Stack(server_extra="handshake_rate_per_ip = 1\nhandshake_burst_per_ip = 2") as st:
        def status(source):
            c = BoundClient(st.nginx.port, source, "/p")
            c.close()
            return c.status
        assert [status("127.0.0.2") for _ in range(3)] == [101, 101, 429]
        assert [status("127.0.0.3") for _ in range(2)] == [101, 101]
        assert st.mbgw.wait_log("handshake rejected from 127.0.0.2:0: 429 ")


if __name__ == "__main__":
    run_tests([
        test_client_address_and_scheme_through_nginx,
        test_wss_at_nginx_is_wss_for_plugins,
        test_spoofed_forwarded_for_through_nginx,
        test_untrusted_nginx_is_not_believed,
        test_limits_see_the_client_behind_nginx,
    ])
