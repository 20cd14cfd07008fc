"""Throw-away certificates and TLS client helpers for the TLS integration
tests (tests/integration/test_tls_*.py).

Everything is made at test time with the openssl command line (installed
by scripts/deps.sh) into a private temporary directory that is removed when
the test ends: a test CA, server certificates (valid, expired, not yet
valid, for SNI names), client certificates, encrypted keys. No private key
is ever committed.

Also here: a TLS server wrapper around the harness's Server (a plain and a
TLS listener side by side), a raw WebSocket client over TLS (the harness's
Client on an ssl socket), and small helpers to look at the certificate a
server presents.
"""
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

from mbgw_harness import Client, Server, free_port, DEFAULT_ROUTES

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

# Dates for certificates outside their validity period. openssl ca takes
# them as YYYYMMDDHHMMSSZ; OpenSSL prints them as "Jan  1 00:00:00 2020 GMT".
EXPIRED = ("20200101000000Z", "20210101000000Z")
NOT_YET_VALID = ("20900101000000Z", "20910101000000Z")


def run(*args, input=None):
    """Runs openssl with args; raises with its output on failure."""
    p = subprocess.run([OPENSSL] + list(args), input=input, capture_output=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed (%d): %s%s" % (" ".join(args), p.returncode,
                                                             p.stdout.decode(errors="replace"),
                                                             p.stderr.decode(errors="replace")))
    return p.stdout


class Certs:
    """A test CA in a temporary directory and certificates it signs.

    Use as a context manager (or call cleanup()). Paths returned are
    absolute and stay valid until cleanup."""

    def __init__(self, cn="mbgw test CA"):
        self._tmp = tempfile.TemporaryDirectory(prefix="mbgw-tls-")
        self.dir = self._tmp.name
        self.serial = 1
        os.mkdir(os.path.join(self.dir, "newcerts"))
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "serial"), "w") as f:
            f.write("1000\n")
        self.cnf = os.path.join(self.dir, "ca.cnf")
        with open(self.cnf, "w") as f:
            f.write("""[ca]
default_ca = test_ca
[test_ca]
dir = {d}
database = {d}/index.txt
new_certs_dir = {d}/newcerts
serial = {d}/serial
default_md = sha256
policy = any
unique_subject = no
email_in_dn = no
[any]
commonName = supplied
organizationName = optional
organizationalUnitName = optional
[req]
distinguished_name = dn
[dn]
""".format(d=self.dir))
        self.ca_key = self.new_key("ca")
        self.ca_cert = self.path("ca.pem")
        run("req", "-x509", "-new", "-key", self.ca_key, "-out", self.ca_cert, "-days", "3",
            "-subj", "/CN=%s" % cn, "-config", self.cnf,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()

    def cleanup(self):
        self._tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def new_key(self, name, kind="ec"):
        """A new unencrypted private key (EC P-256, or RSA 2048)."""
        out = self.path(name + ".key")
        if kind == "rsa":
            run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", out)
        else:
            run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", out)
        return out

    def encrypted_key(self, key, passphrase, name=None):
        """key encrypted with AES-256 under passphrase (PKCS#8 PEM)."""
        out = self.path((name or os.path.basename(key)[:-4] + ".enc") + ".key")
        run("pkey", "-in", key, "-aes256", "-passout", "pass:" + passphrase, "-out", out)
        return out

    def _sign(self, name, subject, ext, dates=None, key_kind="ec"):
        key = self.new_key(name, key_kind)
        csr = self.path(name + ".csr")
        cert = self.path(name + ".pem")
        extfile = self.path(name + ".ext")
        with open(extfile, "w") as f:
            f.write("[ext]\n" + ext)
        run("req", "-new", "-key", key, "-out", csr, "-subj", subject, "-config", self.cnf)
        if dates is None:
            now = time.gmtime(time.time() - 3600)
            later = time.gmtime(time.time() + 2 * 86400)
            dates = (time.strftime("%Y%m%d%H%M%SZ", now), time.strftime("%Y%m%d%H%M%SZ", later))
        run("ca", "-batch", "-config", self.cnf, "-cert", self.ca_cert, "-keyfile", self.ca_key,
            "-in", csr, "-out", cert, "-notext", "-preserveDN", "-startdate", dates[0], "-enddate", dates[1],
            "-extfile", extfile, "-extensions", "ext")
        return cert, key

    def server(self, name, cn=None, dns=("localhost",), ips=("127.0.0.1",), dates=None, key_kind="ec"):
        """A server certificate and its key: (cert, key). dates is
        (not_before, not_after) as YYYYMMDDHHMMSSZ, default valid now."""
        san = ",".join(["DNS:" + d for d in dns] + ["IP:" + i for i in ips])
        ext = ("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
               "extendedKeyUsage=serverAuth\n")
        if san:
            ext += "subjectAltName=%s\n" % san
        return self._sign(name, "/CN=%s" % (cn or name), ext, dates, key_kind)

    def client(self, name, cn=None, org=None, dates=None):
        """A client certificate (extendedKeyUsage clientAuth): (cert, key)."""
        subj = "/CN=%s" % (cn or name)
        if org:
            subj = "/O=%s" % org + subj
        ext = ("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
               "extendedKeyUsage=clientAuth\n")
        return self._sign(name, subj, ext, dates)


# --- looking at certificates ---------------------------------------------

def cert_subject_cn(der):
    """The subject CN of a DER certificate (via openssl x509)."""
    out = run("x509", "-inform", "DER", "-noout", "-subject", "-nameopt", "RFC2253", input=der).decode()
    # "subject=CN=name" or "subject=O=x,CN=name" (RFC 2253 lists CN first)
    for part in out.strip().split("=", 1)[1].split(","):
        k, _, v = part.partition("=")
        if k == "CN":
            return v
    return None


def cert_sans(der):
    out = run("x509", "-inform", "DER", "-noout", "-ext", "subjectAltName", input=der).decode()
    return [s.strip() for s in out.splitlines()[1:] for s in s.split(",") if s.strip()]


def file_subject(pem_path):
    """A PEM certificate's subject as RFC 2253 text (last RDN first)."""
    out = run("x509", "-in", pem_path, "-noout", "-subject", "-nameopt", "RFC2253").decode()
    return out.strip().split("=", 1)[1]


def file_cn(pem_path):
    out = run("x509", "-in", pem_path, "-noout", "-subject", "-nameopt", "RFC2253").decode()
    return out.strip().split("CN=", 1)[1].split(",")[0]


def client_context(ca=None, verify=True, min_version=None, max_version=None, cert=None, key=None,
                   alpn=None, tickets=True):
    """An ssl.SSLContext for a test client. verify=False accepts any
    certificate (and does not check the host name)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(ca)
        ctx.check_hostname = True
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    if cert:
        ctx.load_cert_chain(cert, key)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if not tickets:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


def tls_connect(port, ctx, server_hostname="localhost", timeout=5, session=None, strict_eof=True):
    """A TCP connection to 127.0.0.1:port with a completed TLS handshake.
    strict_eof: a TCP EOF without close_notify raises ssl.SSLEOFError
    instead of reading as b"" (so b"" means the server sent close_notify)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        s = ctx.wrap_socket(raw, server_hostname=server_hostname, session=session,
                            suppress_ragged_eofs=not strict_eof)
    except BaseException:
        raw.close()
        raise
    s.settimeout(timeout)
    return s


def peer_cert(port, server_hostname=None, timeout=5):
    """The DER certificate the server presents for server_hostname (None:
    no SNI), without verifying it."""
    ctx = client_context(verify=False)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s = ctx.wrap_socket(raw, server_hostname=server_hostname)
        try:
            return s.getpeercert(binary_form=True)
        finally:
            s.close()
    finally:
        raw.close()


class TLSClient(Client):
    """The harness's raw WebSocket client, over TLS."""

    def __init__(self, port, ctx, path="/ws", headers=None, timeout=5, server_hostname="localhost",
                 handshake=True, session=None, strict_eof=True):
        self.sock = tls_connect(port, ctx, server_hostname, timeout, session, strict_eof)
        self.timeout = timeout
        self.buf = b""
        self.status = None
        self.response_headers = {}
        if handshake:
            self.handshake(path, headers)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def expect_close_notify(self, timeout=5):
        """Reads to the end of the stream: the server must end it with a
        TLS close_notify (recv returns b"") and not a bare TCP FIN or reset.
        Data frames still in flight are kept in self.buf."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except ssl.SSLEOFError as e:
                raise AssertionError("the server closed TCP without a TLS close_notify (%s)" % e)
            except ConnectionResetError:
                raise AssertionError("the server reset the connection instead of close_notify")
            except socket.timeout:
                break
            if not chunk:
                return True
            self.buf += chunk
        raise AssertionError("the server did not end the TLS stream within %ss" % timeout)


class BioHandshake:
    """A TLS client driven by hand through memory BIOs, so a test controls
    which handshake bytes reach the server and when."""

    def __init__(self, port, server_hostname=None, ctx=None, timeout=5):
        self.ctx = ctx or client_context(verify=False)
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = self.ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout

    def client_hello(self):
        """The ClientHello bytes (not sent)."""
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.outgoing.read()

    def _pump(self):
        out = self.outgoing.read()
        if out:
            self.sock.sendall(out)
        data = self.sock.recv(65536)
        if not data:
            self.incoming.write_eof()
        else:
            self.incoming.write(data)

    def finish(self):
        """Completes the handshake (the ClientHello must have been sent)."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                self.obj.do_handshake()
                out = self.outgoing.read()
                if out:
                    self.sock.sendall(out)
                return
            except ssl.SSLWantReadError:
                self._pump()
        raise AssertionError("handshake did not finish within %ss" % self.timeout)

    def peer_cert(self):
        return self.obj.getpeercert(binary_form=True)

    def request(self, data, until=b"\r\n\r\n"):
        """Sends data, returns what comes back up to `until` (or EOF)."""
        self.obj.write(data)
        self.sock.sendall(self.outgoing.read())
        got = b""
        deadline = time.monotonic() + self.timeout
        while until not in got and time.monotonic() < deadline:
            try:
                got += self.obj.read(65536)
            except ssl.SSLWantReadError:
                self._pump()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
        return got

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# --- a server with a TLS listener ----------------------------------------

def tls_section(cert, key, **kw):
    """A [tls] section: certificate, key and any further keys given."""
    lines = ["[tls]", "certificate = %s" % cert, "key = %s" % key]
    lines += ["%s = %s" % (k, v) for k, v in kw.items()]
    return "\n".join(lines) + "\n"


class TLSServer(Server):
    """mbgw with the harness's plain listener (self.port) plus a TLS
    listener (self.tls_port) and a [tls] section (tls_conf)."""

    def __init__(self, tls_conf, server_extra="", routes=DEFAULT_ROUTES, workers=2, **kw):
        self.tls_port = free_port()
        extra = "listen = 127.0.0.1:%d tls\n%s" % (self.tls_port, server_extra)
        super().__init__(server_extra=extra, routes=routes, workers=workers, **kw)
        with open(os.path.join(self.confdir, "20-tls.conf"), "w") as f:
            f.write(tls_conf)

    def start(self):
        super().start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.tls_port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.proc.kill()
        self.proc.wait()
        raise RuntimeError("mbgw did not listen on the TLS port:\n" + self.logtext())

    def wss_url(self, path="/ws", host="localhost"):
        return "wss://%s:%d%s" % (host, self.tls_port, path)

    def write_tls_conf(self, text):
        with open(os.path.join(self.confdir, "20-tls.conf"), "w") as f:
            f.write(text)


def run_mbgw(args, timeout=20):
    """Runs the mbgw binary to completion: (exit status, stdout+stderr)."""
    from mbgw_harness import MBGW_BIN
    p = subprocess.run([MBGW_BIN] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


# --- the npm ws client ---------------------------------------------------------

SOURCE_DIR = os.environ.get("MBGW_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
NODE_MODULES = os.path.join(SOURCE_DIR, "tests", "interop", "node_modules")

NODE_SCRIPT = r"""
const fs = require('fs');
const WebSocket = require('ws');
const args = JSON.parse(process.env.TLS_ARGS);
const out = (o) => { process.stdout.write(JSON.stringify(o) + '\n'); };
const opts = { ca: fs.readFileSync(args.ca), perMessageDeflate: false, maxPayload: 4 << 20 };
if (args.cert) { opts.cert = fs.readFileSync(args.cert); opts.key = fs.readFileSync(args.key); }
const timer = setTimeout(() => { out({ error: 'timeout' }); process.exit(3); }, 20000);
const ws = new WebSocket(args.url, opts);
const done = (o) => { clearTimeout(timer); out(o); process.exit(0); };
ws.on('error', (e) => done({ error: e.message, error_code: e.code || null }));
if (args.mode === 'expect_error') {
  ws.on('open', () => done({ opened: true }));
} else {
  const big = Buffer.alloc(1 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
  const expect = [
    ['text', 'hello from ws'],
    ['binary', Buffer.from([0, 1, 2, 253, 254, 255])],
    ['text', 'frag-men-ted'],
    ['binary', big],
  ];
  const got = [];
  let protocolInfo = null;
  ws.on('open', () => {
    protocolInfo = { tls: ws._socket.getProtocol(), alpn: ws._socket.alpnProtocol || null,
                     authorized: ws._socket.authorized };
    ws.send('hello from ws');
    ws.send(Buffer.from([0, 1, 2, 253, 254, 255]));
    ws.send('frag-', { fin: false });
    ws.send('men-', { fin: false });
    ws.send('ted', { fin: true });
    ws.send(big);
  });
  ws.on('message', (data, isBinary) => {
    got.push([isBinary ? 'binary' : 'text', data]);
    if (got.length === expect.length) ws.close(1000, 'done');
  });
  ws.on('close', (code) => {
    const results = expect.map(([kind, v], i) => {
      if (!got[i]) return 'missing';
      if (got[i][0] !== kind) return 'kind ' + got[i][0];
      const a = Buffer.isBuffer(v) ? v : Buffer.from(v);
      return Buffer.compare(a, got[i][1]) === 0 ? 'ok' : 'differs (' + got[i][1].length + ' bytes)';
    });
    done({ close_code: code, results, info: protocolInfo });
  });
}
"""


def node_client(args, timeout=40):
    """Runs NODE_SCRIPT (npm ws over wss://) with args (url, ca, and
    optionally cert/key and mode "expect_error"); returns its JSON result.
    Raises Skip when node or the ws package is missing."""
    from mbgw_harness import Skip
    node = shutil.which("node")
    if not node or not os.path.isdir(os.path.join(NODE_MODULES, "ws")):
        raise Skip("node or the npm ws package (tests/interop/node_modules) is missing: run `make test-deps`")
    env = dict(os.environ, NODE_PATH=NODE_MODULES, TLS_ARGS=json.dumps(args))
    p = subprocess.run([node, "-e", NODE_SCRIPT], capture_output=True, env=env, timeout=timeout)
    out = p.stdout.decode(errors="replace").strip().splitlines()
    assert p.returncode == 0 and out, "node failed (%d): %s %s" % (p.returncode, out, p.stderr.decode(errors="replace"))
    return json.loads(out[-1])
