"""Authentication at the upgrade (issue 5, "Who may connect"), end to end
through the real binary: route keys auth = basic / bearer / jwt, checked
in dispatch_upgrade by core/edge/edge_auth (docs/auth.md).

For every method: the right credentials get 101 and the identity reaches
the plugin (connection attributes identity / auth_method / auth_claims,
read by the probe test plugin) and the access log (identity="..."); the
wrong ones get 401 with WWW-Authenticate (400 for malformed credentials),
a generic body, the precise reason only in the log ("authentication
failed for ADDR on route NAME: REASON"), and are counted as
mbgw_handshakes_rejected_total{reason="auth"}.

  Basic   yescrypt and sha512crypt hashes (made here with Python's crypt
          module, or `openssl passwd -6`); unknown user, bad password.
  Bearer  tokens from a file (identity = subject), from the header, a
          percent-encoded query parameter and a cookie.
  JWT     HS256 (made here with hmac), RS256 and ES256 (keys and signatures
          by the openssl CLI, the ECDSA DER signature turned into JWS's raw
          r||s): exp / nbf with the leeway, on both sides of its edge; iss;
          aud; signatures; alg none; HS256 signed with the RSA public key's
          PEM (algorithm confusion); algorithms not configured.

Also: an unknown Basic user costs a hash like a known one, and the per-IP
handshake limit comes before any hashing (429); a route without auth
beside one with it; the plugin's verify callback is not reached by a
refused client; reload re-reads the files (a new token works, a removed
one is refused, open connections stay) and a broken file keeps the old
table, logged as file:line; the example configuration's JWT route
(docs/examples/internet/conf.d/30-members.conf) as docs/security.md
describes it.

Every refusal goes through Refusals.expect(), which checks the status, the
body, the challenge, the exact log line, and that nothing of the reason
reaches the client (MBGW_AUTH_SHOW=1 prints each reason as it is seen)."""
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import warnings

from mbgw_harness import (Server, Client, OP_TEXT, probe_attrs, probe_route, run_tests, wait_access,
                          wait_metric, Response, Skip)

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt as _crypt  # deprecated since 3.11, still shipped with Debian's 3.11
except ImportError:  # pragma: no cover - Python 3.13+
    _crypt = None


# --- credentials made here ----------------------------------------------------

def yescrypt(password):
    """A yescrypt ($y$, Debian's default) hash of password."""
    if _crypt is not None:
        salt = "$y$j9T$" + base64.b64encode(os.urandom(12), b"./").decode() + "$"
        h = _crypt.crypt(password, salt)
        if h and h.startswith("$y$"):
            return h
    if shutil.which("mkpasswd"):
        return subprocess.run(["mkpasswd", "-m", "yescrypt", "--stdin"], input=password.encode(),
                              capture_output=True, check=True).stdout.decode().strip()
    raise Skip("no way to make a yescrypt hash (python crypt module or mkpasswd)")


def sha512crypt(password):
    """A sha512crypt ($6$) hash of password."""
    if _crypt is not None:
        return _crypt.crypt(password, _crypt.mksalt(_crypt.METHOD_SHA512))
    return subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password.encode(),
                          capture_output=True, check=True).stdout.decode().strip()


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def jws_input(claims, alg, header=None):
    h = {"alg": alg, "typ": "JWT"} if header is None else header
    return b64url(json.dumps(h, separators=(",", ":"))) + "." + b64url(json.dumps(claims, separators=(",", ":")))


def jwt_hs(claims, secret, alg="HS256", header=None):
    """A JWT signed with HMAC (HS256/384/512 by alg's digits, or whatever
    `header` says while the MAC stays SHA-256 unless alg names another)."""
    digest = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}[alg[-3:]]
    if isinstance(secret, str):
        secret = secret.encode()
    si = jws_input(claims, alg, header)
    return si + "." + b64url(hmac.new(secret, si.encode(), digest).digest())


def openssl_sign(key_path, data):
    """`openssl dgst -sha256 -sign`: PKCS#1 v1.5 for an RSA key, a DER
    ECDSA-Sig-Value for an EC key."""
    return subprocess.run(["openssl", "dgst", "-sha256", "-sign", key_path], input=data,
                          capture_output=True, check=True).stdout


def der_ecdsa_to_raw(der, size=32):
    """ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } -> r || s, each
    left-padded to size bytes (RFC 7518 §3.4)."""
    assert der[0] == 0x30, der.hex()
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02, der.hex()
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\x00")
        assert len(v) <= size
        out += v.rjust(size, b"\x00")
        i += 2 + n
    return out


def jwt_rs256(claims, key_path, alg="RS256", header=None):
    si = jws_input(claims, alg, header)
    return si + "." + b64url(openssl_sign(key_path, si.encode()))


def jwt_es256(claims, key_path, alg="ES256", header=None, der=False):
    si = jws_input(claims, alg, header)
    sig = openssl_sign(key_path, si.encode())
    return si + "." + b64url(sig if der else der_ecdsa_to_raw(sig))


class Keys:
    """RSA-2048 and P-256 key pairs (and a second of each, to sign with the
    wrong key) made by the openssl CLI in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="mbgw-auth-keys-")
        for name, opts in (("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                           ("rsa2", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                           ("ec", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                           ("ec2", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])):
            key = self.path(name + ".key")
            subprocess.run(["openssl", "genpkey"] + opts + ["-out", key], check=True, capture_output=True)
            subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", self.path(name + ".pub")],
                           check=True, capture_output=True)

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.dir.cleanup()


# --- talking to the server ----------------------------------------------------

def upgrade_bytes(path, headers=()):
    """An upgrade request; headers is a list of (name, value) pairs, so that
    a header may be given twice."""
    lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)).decode(),
             "Sec-WebSocket-Version: 13"]
    lines += ["%s: %s" % kv for kv in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def exchange(port, data, timeout=5):
    """Sends data, reads the answer to EOF; returns (Response, our port)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        local = s.getsockname()[1]
        s.sendall(data)
        raw = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            raw += chunk
        return Response(raw), local
    finally:
        s.close()


GENERIC_BODY = {401: b"Authentication required\n", 400: b"Malformed credentials\n"}


class Refusals:
    """Checks refusals on one server and counts them, so that the
    reason="auth" counter can be compared with what the test did."""

    def __init__(self, server):
        self.s = server
        self.n = 0
        self.responses = []

    def expect(self, path, headers=(), status=401, route=None, reason=None, challenge=None):
        """One upgrade that must be refused with status. reason: the exact
        log reason (str) or a regex (re.Pattern) it must match in full.
        challenge: a regex WWW-Authenticate must match in full. Returns the
        Response (also kept in self.responses)."""
        seen = self.s.count_log("authentication failed for ")
        r, local = exchange(self.s.port, upgrade_bytes(path, headers))
        self.n += 1
        assert r.status == status, "%s %r: expected %d, got %r" % (path, headers, status, r)
        assert r.body == GENERIC_BODY[status], r.raw
        assert r.header("Sec-WebSocket-Accept") is None, r.raw
        www = r.header("WWW-Authenticate")
        assert www, "no WWW-Authenticate on %r" % r.raw
        if challenge is not None:
            assert re.fullmatch(challenge, www), (www, challenge)
        # the exact log line, with this connection's address
        route = route or path.split("?")[0].strip("/")
        prefix = "authentication failed for 127.0.0.1:%d on route %s: " % (local, route)
        deadline = time.monotonic() + 5
        line = None
        while line is None:
            # exactly one new refusal line, and it is this connection's
            lines = [l for l in self.s.logtext().splitlines() if "authentication failed for " in l][seen:]
            assert len(lines) <= 1, lines
            if lines:
                assert prefix in lines[0], (prefix, lines[0])
                line = lines[0].split(prefix, 1)[1]
            else:
                assert time.monotonic() < deadline, "no log line %r:\n%s" % (prefix, self.s.logtext()[-2500:])
                time.sleep(0.02)
        if os.environ.get("MBGW_AUTH_SHOW"):
            print("   %s %d %s" % (route, status, line))
        if isinstance(reason, str):
            assert line == reason, "log reason %r, expected %r" % (line, reason)
        elif reason is not None:
            assert reason.fullmatch(line), "log reason %r does not match %r" % (line, reason.pattern)
        # nothing of the reason reaches the client
        raw = r.raw.decode("latin-1")
        assert line not in raw, raw
        for word in ("unknown user", "bad password", "not in bearer file", "expired", "signature",
                     "issuer", "audience", "algorithm", "base64", "percent", "no credentials", "JWT"):
            assert word.lower() not in raw.lower(), (word, raw)
        self.responses.append(r)
        return r

    def check_metrics(self):
        """reason="auth" counts exactly the refusals, 400s included; nothing
        was charged to another reason."""
        m = wait_metric(self.s.port, "mbgw_handshakes_rejected_total", self.n, reason="auth")
        for other in ("bad_request", "origin", "plugin", "limit", "not_found"):
            assert m.get("mbgw_handshakes_rejected_total", reason=other) == 0, other
        return m


def comparable(r):
    """A response without the headers that legitimately vary (Date)."""
    return (r.status_line, sorted((k.lower(), v) for k, v in r.headers if k.lower() != "date"), r.body)


def accepted(s, path, headers=None):
    """A 101 connection (a Client) with these headers."""
    c = Client(s.port, path, headers=headers)
    if c.status != 101:
        body = c.buf
        c.close()
        raise AssertionError("%s %r: expected 101, got %s %r\n%s" % (path, headers, c.status, body,
                                                                    s.logtext()[-2000:]))
    return c


def identity_of(c):
    return probe_attrs(c, "identity", "auth_method", "auth_claims")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def auth_server(routes, files):
    """A Server with these routes and files written into its conf.d (the
    auth keys name them relative to it)."""
    s = Server(routes=routes, log_level="info")
    for name, text in files.items():
        write(os.path.join(s.confdir, name), text)
    return s


def reload(s, outcome, timeout=10):
    """SIGHUP, then wait for one more log line `outcome` ("reload done" or
    "reload failed")."""
    before = s.count_log(outcome)
    s.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if s.count_log(outcome) > before:
            return
        assert s.alive(), "mbgw died on reload:\n" + s.logtext()[-3000:]
        time.sleep(0.05)
    raise AssertionError("no %r within %ss:\n%s" % (outcome, timeout, s.logtext()[-3000:]))


# --- Basic ----------------------------------------------------------------------

def test_basic_htpasswd_yescrypt_and_sha512crypt():
    users = "# user:hash\nalice:%s\n\nbob:%s\n" % (yescrypt("correct horse"), sha512crypt("pa:ss w0rd"))
    routes = probe_route("basic", "/basic",
                         extra="auth = basic\nauth_realm = staff area\nauth_basic_file = users\n")
    s = auth_server(routes, {"users": users})
    with s:
        ch = r'Basic realm="staff area", charset="UTF-8"'
        c = accepted(s, "/basic", {"Authorization": basic("alice", "correct horse")})
        try:
            assert identity_of(c) == {"identity": "alice", "auth_method": "basic", "auth_claims": None}
        finally:
            c.close()
        wait_access(s, "open", route="basic", identity="alice")
        # sha512crypt; everything after the first ':' is the password
        c = accepted(s, "/basic", {"Authorization": basic("bob", "pa:ss w0rd")})
        try:
            assert identity_of(c)["identity"] == "bob"
        finally:
            c.close()
        wait_access(s, "open", route="basic", identity="bob")

        rf = Refusals(s)
        unknown = rf.expect("/basic", [("Authorization", basic("carol", "correct horse"))],
                            reason="unknown user 'carol'", challenge=ch)
        wrong = rf.expect("/basic", [("Authorization", basic("alice", "correct horsE"))],
                          reason="bad password for 'alice'", challenge=ch)
        rf.expect("/basic", [("Authorization", basic("bob", "pa"))], reason="bad password for 'bob'", challenge=ch)
        rf.expect("/basic", [("Authorization", basic("alice", "pa:ss w0rd"))],  # bob's password
                  reason="bad password for 'alice'", challenge=ch)
        none = rf.expect("/basic", reason="no credentials (looked in: Authorization header)", challenge=ch)
        # the client cannot tell an unknown user from a wrong password
        assert comparable(unknown) == comparable(wrong) == comparable(none), (unknown, wrong, none)
        # a Bearer token is no use on a Basic-only route
        rf.expect("/basic", [("Authorization", "Bearer 0123456789abcdef0123")], status=401,
                  reason="Bearer token, but neither bearer nor jwt is enabled", challenge=ch)
        # malformed: 400, still with the challenge
        rf.expect("/basic", [("Authorization", "Basic !!notbase64!!")], status=400,
                  reason="Basic credentials are not valid base64", challenge=ch)
        rf.expect("/basic", [("Authorization", "Basic " + base64.b64encode(b"alice").decode())], status=400,
                  reason="Basic credentials have no ':' between user and password", challenge=ch)
        # the successful handshakes went through; the refused ones did not open
        m = rf.check_metrics()
        assert m.get("mbgw_route_connections_total", route="basic") == 2
        assert len(re.findall(r"handshake rejected from 127\.0\.0\.1:\d+: 401 Authentication required "
                              r"\(GET /basic\)", s.logtext())) == 6, s.logtext()[-3000:]


def test_basic_costs_a_hash_and_the_handshake_limit_comes_first():
    """An unknown user costs a password hash like a known one (the time
    says nothing about which users exist), and the per-IP handshake limit
    is applied before any hashing: a client over it gets 429 and costs
    nothing (docs/security.md: Basic needs handshake_rate_per_ip)."""
    users = "alice:%s\n" % yescrypt("correct horse")
    routes = probe_route("basic", "/basic", extra="auth = basic\nauth_basic_file = users\n")
    s = auth_server(routes, {"users": users})
    with s:
        rf = Refusals(s)
        known, unknown = [], []
        for i in range(7):
            for user, times in (("alice", known), ("nobody%d" % i, unknown)):
                t0 = time.monotonic()
                rf.expect("/basic", [("Authorization", basic(user, "wrong"))])
                times.append(time.monotonic() - t0)
        known.sort()
        unknown.sort()
        if known[3] > 0.005:  # the hash is measurable here (yescrypt: ~15 ms)
            assert unknown[3] > 0.3 * known[3], ("unknown users answered faster", known, unknown)
        rf.check_metrics()
    s = auth_server(routes, {"users": users})
    with open(os.path.join(s.confdir, "00-server.conf"), "a") as f:
        f.write("handshake_rate_per_ip = 1\nhandshake_burst_per_ip = 3\n")
    with s:
        rf = Refusals(s)
        for _ in range(3):
            rf.expect("/basic", [("Authorization", basic("alice", "guess"))], reason="bad password for 'alice'")
        statuses = []
        for _ in range(3):
            r, _ = exchange(s.port, upgrade_bytes("/basic", [("Authorization", basic("alice", "guess"))]))
            statuses.append(r.status)
        assert 429 in statuses, statuses
        assert s.count_log("authentication failed for ") == rf.n + statuses.count(401), s.logtext()[-2000:]
        m = wait_metric(s.port, "mbgw_handshakes_rejected_total", statuses.count(429), reason="limit")
        assert m.get("mbgw_handshakes_rejected_total", reason="auth") == rf.n + statuses.count(401)


# --- Bearer ---------------------------------------------------------------------

TOK_SVC = "f1c9d0b2e7a24a51+b0a7/c3e8d6f4b2a9e0c1d3f5=="   # '+', '/', '=' need encoding in a URL
TOK_ANON = "3b8e0f6a9c2d4e7f1a5b8c0d2e4f6a8b"


def test_bearer_tokens_from_header_query_and_cookie():
    tokens = ("# token  subject\n%s   billing-service\n%s\n" % (TOK_SVC, TOK_ANON))
    routes = probe_route("bearer", "/bearer", extra=(
        "auth = bearer\nauth_bearer_file = tokens.txt\n"
        "auth_query_param = access_token\nauth_cookie = mbgw_token\n"))
    s = auth_server(routes, {"tokens.txt": tokens})
    with s:
        c = accepted(s, "/bearer", {"Authorization": "Bearer " + TOK_SVC})
        try:
            assert identity_of(c) == {"identity": "billing-service", "auth_method": "bearer", "auth_claims": None}
        finally:
            c.close()
        wait_access(s, "open", route="bearer", identity="billing-service")
        # a token without subject: authenticated, empty identity
        c = accepted(s, "/bearer", {"Authorization": "bearer " + TOK_ANON})  # scheme without case
        try:
            assert identity_of(c)["identity"] == "", identity_of(c)
            assert identity_of(c)["auth_method"] == "bearer"
        finally:
            c.close()
        # percent-encoded query parameter (encodeURIComponent), among others
        q = urllib.parse.quote(TOK_SVC, safe="")
        c = accepted(s, "/bearer?room=1&access_token=%s&x=y" % q)
        try:
            assert identity_of(c)["identity"] == "billing-service"
        finally:
            c.close()
        # cookie, among others
        c = accepted(s, "/bearer", {"Cookie": "theme=dark; mbgw_token=%s; lang=en" % TOK_SVC})
        try:
            assert identity_of(c)["identity"] == "billing-service"
        finally:
            c.close()

        rf = Refusals(s)
        inv = r'Bearer realm="mbgw", error="invalid_token"'
        unknown = "0123456789abcdef0123456789abcdef"
        rf.expect("/bearer", [("Authorization", "Bearer " + unknown)],
                  reason="token not in bearer file (from Authorization header)", challenge=inv)
        rf.expect("/bearer", [("Authorization", "Bearer " + TOK_SVC[:-3])],  # a prefix of a good one
                  reason="token not in bearer file (from Authorization header)", challenge=inv)
        rf.expect("/bearer?access_token=" + unknown,
                  reason="token not in bearer file (from query parameter 'access_token')", challenge=inv)
        rf.expect("/bearer", [("Cookie", "mbgw_token=" + unknown)],
                  reason="token not in bearer file (from cookie 'mbgw_token')", challenge=inv)
        rf.expect("/bearer", reason=("no credentials (looked in: Authorization header, query parameter "
                                     "'access_token', cookie 'mbgw_token')"),
                  challenge=r'Bearer realm="mbgw"')
        # names are exact: another parameter or cookie name is no credential
        rf.expect("/bearer?Access_Token=" + TOK_ANON, reason=re.compile(r"no credentials .*"))
        rf.expect("/bearer", [("Cookie", "MBGW_TOKEN=" + TOK_ANON)], reason=re.compile(r"no credentials .*"))
        # the Authorization header, when present, is the only source
        rf.expect("/bearer?access_token=" + TOK_ANON, [("Authorization", "Bearer " + unknown),
                                                       ("Cookie", "mbgw_token=" + TOK_ANON)],
                  reason="token not in bearer file (from Authorization header)")
        # malformed: 400 with error="invalid_request"
        bad = r'Bearer realm="mbgw", error="invalid_request"'
        # an unencoded '+' is a space (form rules): not a token any more
        rf.expect("/bearer?access_token=" + TOK_SVC.replace("/", "%2F").replace("=", "%3D"), status=400,
                  reason=re.compile(r"malformed token in query parameter 'access_token'.*"), challenge=bad)
        rf.expect("/bearer?access_token=%zz" + TOK_ANON, status=400,
                  reason="bad percent-encoding in query parameter 'access_token'", challenge=bad)
        rf.expect("/bearer?access_token=%s&access_token=%s" % (TOK_ANON, TOK_ANON), status=400,
                  reason="query parameter 'access_token' given more than once", challenge=bad)
        rf.expect("/bearer", [("Authorization", "Bearer")], status=400, challenge=bad,
                  reason="empty token in Authorization header")
        rf.expect("/bearer", [("Authorization", "Bearer abcdefgh ijklmnopqrst")], status=400, challenge=bad,
                  reason="malformed token in Authorization header: byte 9 (0x20) is not a token character")
        rf.expect("/bearer", [("Authorization", "Bearer " + TOK_ANON), ("Authorization", "Bearer " + TOK_ANON)],
                  status=400, challenge=r'Bearer realm="mbgw"(, error="invalid_request")?', reason="2 Authorization headers")
        rf.expect("/bearer", [("Cookie", "mbgw_token=")], status=400, challenge=bad,
                  reason="empty token in cookie 'mbgw_token'")
        rf.check_metrics()
        assert "Malformed credentials (GET /bearer" in s.logtext()


# --- JWT ------------------------------------------------------------------------

SECRET = "k7Q2mZ9vX4pL8sN1rT6yW3bE5hJ0cF2a-a-long-shared-secret"
ISS, AUD = "https://idp.example", "mbgw"
LEEWAY = 30


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def claims(**kw):
    now = int(time.time())
    c = {"sub": "user-42", "iss": ISS, "aud": AUD, "iat": now, "exp": now + 300}
    for k, v in kw.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def test_jwt_hs256_claims_and_times():
    routes = probe_route("hs", "/hs", extra=(
        "auth = jwt\njwt_algorithms = HS256\njwt_secret_file = hs.secret\n"
        "jwt_issuer = %s\njwt_audience = %s\njwt_leeway = %ds\nauth_cookie = mbgw_token\n" % (ISS, AUD, LEEWAY)))
    s = auth_server(routes, {"hs.secret": SECRET + "\n"})
    with s:
        def ok(tok, how="header"):
            h = {"Authorization": "Bearer " + tok} if how == "header" else {"Cookie": "mbgw_token=" + tok}
            c = accepted(s, "/hs", h)
            try:
                return identity_of(c)
            finally:
                c.close()

        mine = claims(role="admin", groups=["ops", "dev"], name="Zo\u00eb \"Q\"")
        got = ok(jwt_hs(mine, SECRET))
        assert got["identity"] == "user-42" and got["auth_method"] == "jwt", got
        assert json.loads(got["auth_claims"]) == mine, got["auth_claims"]
        wait_access(s, "open", route="hs", identity="user-42")
        assert ok(jwt_hs(claims(sub="cookie-user"), SECRET), how="cookie")["identity"] == "cookie-user"
        assert ok(jwt_hs(claims(aud=["other", AUD]), SECRET))["identity"] == "user-42"  # aud as an array
        # no sub: authenticated, empty identity
        assert ok(jwt_hs(claims(sub=None), SECRET))["identity"] == ""

        now = int(time.time())
        # leeway edges: now < exp + leeway, and now + leeway >= nbf
        assert ok(jwt_hs(claims(exp=now - LEEWAY + 4), SECRET))["identity"] == "user-42"
        assert ok(jwt_hs(claims(nbf=now + LEEWAY), SECRET))["identity"] == "user-42"   # exactly on the edge

        rf = Refusals(s)
        inv = r'Bearer realm="mbgw", error="invalid_token"'

        def no(tok, reason, **kw):
            return rf.expect("/hs", [("Authorization", "Bearer " + tok)], reason=reason, challenge=inv, **kw)

        def times(prefix, t):
            return re.compile(r"%s %s \(now \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, leeway %ds\)"
                              % (re.escape(prefix), re.escape(iso(t)), LEEWAY))

        now = int(time.time())
        exp = now - LEEWAY                      # exactly on the edge: refused
        r_edge = no(jwt_hs(claims(exp=exp), SECRET), times("JWT expired at", exp))
        exp = now - 3600
        no(jwt_hs(claims(exp=exp), SECRET), times("JWT expired at", exp))
        nbf = now + LEEWAY + 5
        r_nbf = no(jwt_hs(claims(nbf=nbf), SECRET), times("JWT not valid before", nbf))
        no(jwt_hs(claims(exp=None), SECRET), "JWT has no exp claim (required)")
        no(jwt_hs(claims(iss="https://evil.example"), SECRET),
           "JWT issuer 'https://evil.example' is not 'https://idp.example'")
        no(jwt_hs(claims(iss=None), SECRET), "JWT has no iss claim (expected 'https://idp.example')")
        no(jwt_hs(claims(aud="other"), SECRET), "JWT audience \"other\" does not include 'mbgw'")
        no(jwt_hs(claims(aud=["a", "b"]), SECRET), 'JWT audience ["a","b"] does not include \'mbgw\'')
        r_sig = no(jwt_hs(claims(), SECRET + "x"), "JWT signature does not verify (HS256)")
        # a valid token with its claims changed (sub) keeps the old signature: refused
        good = jwt_hs(claims(), SECRET).split(".")
        forged = ".".join([good[0], b64url(json.dumps(claims(sub="admin"), separators=(",", ":"))), good[2]])
        no(forged, "JWT signature does not verify (HS256)")
        # alg none, with and without a signature part
        si = jws_input(claims(), "none")
        no(si + ".", "JWT algorithm none not accepted (allowed: HS256)")
        no(si + "." + good[2], "JWT algorithm none not accepted (allowed: HS256)")
        # algorithms not in the list, even when correctly signed with the secret
        no(jwt_hs(claims(), SECRET, alg="HS384"), "JWT algorithm HS384 not accepted (allowed: HS256)")
        no(jwt_hs(claims(), SECRET, alg="HS512"), "JWT algorithm HS512 not accepted (allowed: HS256)")
        no(jwt_hs(claims(), SECRET, header={"alg": "hs256", "typ": "JWT"}),
           "JWT algorithm hs256 not accepted (allowed: HS256)")
        no("eyJhbGciOiJIUzI1NiJ9.e30", re.compile(r"malformed JWT: .*"))
        # from the cookie, refused the same way
        rf.expect("/hs", [("Cookie", "mbgw_token=" + jwt_hs(claims(), SECRET + "x"))], challenge=inv,
                  reason="JWT signature does not verify (HS256)")
        # the client cannot tell one reason from another
        assert comparable(r_edge) == comparable(r_nbf) == comparable(r_sig)
        rf.check_metrics()


def test_jwt_rs256_es256_and_key_confusion():
    with Keys() as k:
        pub_pem = k.read("rsa.pub")
        routes = (probe_route("rs", "/rs", extra="auth = jwt\njwt_algorithms = RS256\njwt_public_key = %s\n"
                              % k.path("rsa.pub")) +
                  probe_route("es", "/es", extra="auth = jwt\njwt_algorithms = ES256\njwt_public_key = %s\n"
                              "jwt_audience = %s\n" % (k.path("ec.pub"), AUD)) +
                  # HS256 allowed too, with a secret of its own: a token MACed with the
                  # public key's bytes still fails
                  probe_route("mixed", "/mixed", extra="auth = jwt\njwt_algorithms = RS256, HS256\n"
                              "jwt_public_key = %s\njwt_secret_file = hs.secret\n" % k.path("rsa.pub")))
        s = auth_server(routes, {"hs.secret": SECRET})
        with s:
            for path, tok in (("/rs", jwt_rs256(claims(sub="svc-rsa", scope="read"), k.path("rsa.key"))),
                              ("/es", jwt_es256(claims(sub="svc-ec", scope="read"), k.path("ec.key"))),
                              ("/mixed", jwt_rs256(claims(sub="svc-rsa"), k.path("rsa.key"))),
                              ("/mixed", jwt_hs(claims(sub="svc-hs"), SECRET))):
                c = accepted(s, path, {"Authorization": "Bearer " + tok})
                try:
                    got = identity_of(c)
                finally:
                    c.close()
                payload = json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=="))
                assert got["identity"] == payload["sub"] and got["auth_method"] == "jwt", (path, got)
                assert json.loads(got["auth_claims"]) == payload, (path, got)
                wait_access(s, "open", route=path[1:], identity=payload["sub"])

            rf = Refusals(s)

            def no(path, tok, reason):
                rf.expect(path, [("Authorization", "Bearer " + tok)], reason=reason,
                          challenge=r'Bearer realm="mbgw", error="invalid_token"')

            # algorithm confusion: HS256 signed with the RSA public key's PEM bytes
            confused = jwt_hs(claims(), pub_pem)
            no("/rs", confused, "JWT algorithm HS256 not accepted (allowed: RS256)")
            no("/mixed", confused, "JWT signature does not verify (HS256)")
            no("/mixed", jwt_hs(claims(), pub_pem.rstrip(b"\n")), "JWT signature does not verify (HS256)")
            # the wrong key
            no("/rs", jwt_rs256(claims(), k.path("rsa2.key")), "JWT signature does not verify (RS256)")
            no("/es", jwt_es256(claims(), k.path("ec2.key")), "JWT signature does not verify (ES256)")
            # a DER signature is not JWS's r||s
            no("/es", jwt_es256(claims(), k.path("ec.key"), der=True), "JWT signature does not verify (ES256)")
            # another family's algorithm, properly signed by its key
            no("/rs", jwt_es256(claims(), k.path("ec.key")), "JWT algorithm ES256 not accepted (allowed: RS256)")
            no("/es", jwt_rs256(claims(), k.path("rsa.key")), "JWT algorithm RS256 not accepted (allowed: ES256)")
            no("/rs", jwt_rs256(claims(), k.path("rsa.key"), header={"alg": "RS512", "typ": "JWT"}),
               "JWT algorithm RS512 not accepted (allowed: RS256)")
            # alg none, and none in a token whose signature part is a real RS256 one
            good = jwt_rs256(claims(), k.path("rsa.key")).split(".")
            no("/rs", jws_input(claims(), "none") + ".", "JWT algorithm none not accepted (allowed: RS256)")
            no("/rs", jws_input(claims(), "none") + "." + good[2], "JWT algorithm none not accepted (allowed: RS256)")
            # claims are checked after the signature with every algorithm
            exp = int(time.time()) - 3600
            no("/es", jwt_es256(claims(exp=exp), k.path("ec.key")),
               re.compile(r"JWT expired at %s \(now .*, leeway 60s\)" % re.escape(iso(exp))))
            no("/es", jwt_es256(claims(aud="other"), k.path("ec.key")), "JWT audience \"other\" does not include 'mbgw'")
            # one header, one meaning: a second "alg" (that libjwt and our parser might
            # each read differently) is refused, and so are critical extensions
            dup = (b64url('{"alg":"RS256","typ":"JWT","alg":"HS256"}') + "." +
                   b64url(json.dumps(claims(), separators=(",", ":"))))
            no("/mixed", dup + "." + b64url(hmac.new(pub_pem, dup.encode(), hashlib.sha256).digest()),
               "malformed JWT: header has a duplicate member")
            no("/mixed", dup + "." + b64url(hmac.new(SECRET.encode(), dup.encode(), hashlib.sha256).digest()),
               "malformed JWT: header has a duplicate member")
            no("/rs", jwt_rs256(claims(), k.path("rsa.key"), header={"alg": "RS256", "crit": ["exp"], "exp": 1}),
               'JWT header has "crit" extensions (unsupported)')
            rf.check_metrics()


def test_malformed_basic_and_duplicate_headers_on_a_multi_method_route():
    """A route accepting basic, bearer and jwt: the challenge names every
    scheme; malformed credentials of each kind are 400; a JWT-shaped bearer
    token is verified as a JWT, an opaque one looked up in the file."""
    users = "alice:%s\n" % sha512crypt("secret-pw")
    routes = probe_route("all", "/all", extra=(
        "auth = basic, bearer, jwt\nauth_basic_file = users\nauth_bearer_file = tokens\n"
        "jwt_algorithms = HS256\njwt_secret_file = hs.secret\n"))
    s = auth_server(routes, {"users": users, "tokens": TOK_ANON + " robot\n", "hs.secret": SECRET})
    with s:
        for h, who, method in (({"Authorization": basic("alice", "secret-pw")}, "alice", "basic"),
                               ({"Authorization": "Bearer " + TOK_ANON}, "robot", "bearer"),
                               ({"Authorization": "Bearer " + jwt_hs(claims(sub="jay"), SECRET)}, "jay", "jwt")):
            c = accepted(s, "/all", h)
            try:
                got = identity_of(c)
                assert (got["identity"], got["auth_method"]) == (who, method), got
            finally:
                c.close()
        rf = Refusals(s)
        every = r'Basic realm="mbgw", charset="UTF-8", Bearer realm="mbgw"'
        rf.expect("/all", reason=re.compile(r"no credentials .*"), challenge=every)
        rf.expect("/all", [("Authorization", "Digest username=\"alice\"")],
                  reason="unsupported authorization scheme 'Digest'", challenge=every + ".*")
        for bad, reason in (("Basic YWxpY2U6c2VjcmV0LXA", "Basic credentials are not valid base64"),  # no padding
                            ("Basic YWxpY2U6c2VjcmV0LXA==", "Basic credentials are not valid base64"),
                            ("Basic YWxpY2U6c2VjcmV0LXB=", "Basic credentials are not valid base64"),  # unused bits set
                            ("Basic ", "empty Basic credentials"),
                            ("Basic " + base64.b64encode(b"alice:se\0cret").decode(),
                             "Basic credentials contain a NUL byte")):
            rf.expect("/all", [("Authorization", bad)], status=400, reason=reason)
        rf.expect("/all", [("Authorization", basic("alice", "secret-pw")),
                           ("Authorization", basic("alice", "secret-pw"))], status=400,
                  reason="2 Authorization headers")
        rf.check_metrics()


# --- routes with and without auth, verify ordering ---------------------------

def test_route_without_auth_beside_one_with_auth():
    routes = (probe_route("open", "/open") +
              probe_route("locked", "/locked", extra="auth = bearer\nauth_bearer_file = tokens\n"))
    s = auth_server(routes, {"tokens": "%s locked-user\n" % TOK_SVC})
    with s:
        # no credentials needed, none seen; whatever Authorization says is not checked
        for h in (None, {"Authorization": "Bearer nonsense-not-a-token"}, {"Authorization": "Basic !!"}):
            c = accepted(s, "/open", h)
            try:
                assert identity_of(c) == {"identity": None, "auth_method": None, "auth_claims": None}
            finally:
                c.close()
        wait_access(s, "open", route="open", identity="-")
        # the same server refuses the other route without credentials
        rf = Refusals(s)
        rf.expect("/locked", reason=re.compile(r"no credentials .*"))
        # the plugin's verify callback only sees clients that authenticated
        c = accepted(s, "/locked?mark=first", {"Authorization": "Bearer " + TOK_SVC})
        try:
            rf.expect("/locked?mark=second", [("Authorization", "Bearer " + TOK_ANON)],
                      reason="token not in bearer file (from Authorization header)")
            c.send_frame(OP_TEXT, b"verify.last id=v\n{}")
            op, data = c.recv_message()
            head, _, body = data.decode().partition("\n")
            assert head.startswith("r cmd=verify.last"), data
            assert json.loads(body)["verify"]["query"] == "mark=first", body
            assert identity_of(c)["identity"] == "locked-user"
        finally:
            c.close()
        m = rf.check_metrics()
        assert m.get("mbgw_route_connections_total", route="open") == 3
        assert m.get("mbgw_route_connections_total", route="locked") == 1


# --- reload -------------------------------------------------------------------

TOK_NEW = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def test_reload_rereads_credential_files():
    routes = (probe_route("tok", "/tok", extra="auth = bearer\nauth_bearer_file = tokens\n") +
              probe_route("pw", "/pw", extra="auth = basic\nauth_basic_file = users\n"))
    s = auth_server(routes, {"tokens": "%s old-user\n%s kept-user\n" % (TOK_SVC, TOK_ANON),
                             "users": "alice:%s\n" % sha512crypt("pw-one")})
    tokens, users = os.path.join(s.confdir, "tokens"), os.path.join(s.confdir, "users")
    with s:
        old = accepted(s, "/tok", {"Authorization": "Bearer " + TOK_SVC})
        try:
            assert identity_of(old)["identity"] == "old-user"
            # TOK_SVC removed, TOK_NEW added, alice's password changed
            write(tokens, "%s kept-user\n%s new-user\n" % (TOK_ANON, TOK_NEW))
            write(users, "alice:%s\n" % sha512crypt("pw-two"))
            reload(s, "reload done")
            rf = Refusals(s)
            c = accepted(s, "/tok", {"Authorization": "Bearer " + TOK_NEW})
            assert identity_of(c)["identity"] == "new-user"
            c.close()
            rf.expect("/tok", [("Authorization", "Bearer " + TOK_SVC)],
                      reason="token not in bearer file (from Authorization header)")
            accepted(s, "/pw", {"Authorization": basic("alice", "pw-two")}).close()
            rf.expect("/pw", [("Authorization", basic("alice", "pw-one"))], reason="bad password for 'alice'")
            # the connection opened with the removed token stays (it was let in)
            assert identity_of(old)["identity"] == "old-user"

            # broken files: the reload fails with file:line, the old table stays
            for path, text, msg in (
                    (tokens, "%s kept-user\nshort\n" % TOK_NEW,
                     "%s:2: token of 5 characters (must be 16 to 8192)" % tokens),
                    (users, "# users\nalice:pw-three\n", "%s:2: " % users),
                    (tokens, "%s a\n%s b\n" % (TOK_NEW, TOK_NEW), "%s:2: duplicate token (first on line 1)" % tokens)):
                saved = {p: open(p).read() for p in (tokens, users)}
                write(path, text)
                n = s.count_log(msg)
                reload(s, "reload failed")
                assert s.count_log(msg) == n + 1, "no %r in the log:\n%s" % (msg, s.logtext()[-2000:])
                c = accepted(s, "/tok", {"Authorization": "Bearer " + TOK_NEW})
                assert identity_of(c)["identity"] == "new-user"
                c.close()
                accepted(s, "/pw", {"Authorization": basic("alice", "pw-two")}).close()
                rf.expect("/pw", [("Authorization", basic("alice", "pw-three"))], reason="bad password for 'alice'")
                rf.expect("/tok", [("Authorization", "Bearer " + TOK_SVC)],
                          reason="token not in bearer file (from Authorization header)")
                for p, t in saved.items():
                    write(p, t)
            assert "plain-text password for 'alice'" in s.logtext() or "for 'alice'" in s.logtext()
            # a missing file too
            os.unlink(tokens)
            reload(s, "reload failed")
            assert s.wait_log(tokens), s.logtext()[-2000:]
            accepted(s, "/tok", {"Authorization": "Bearer " + TOK_NEW}).close()
            assert identity_of(old)["identity"] == "old-user"
            rf.check_metrics()
        finally:
            old.close()


# --- the example configuration -------------------------------------------------

def test_example_members_route_wants_a_jwt():
    """docs/examples/internet/conf.d/30-members.conf as documented in
    docs/security.md: with the shipped placeholder key no token verifies
    (fails closed); with the IdP's key installed and a reload, a JWT in the
    Authorization header (services, no Origin) or in the cookie (browsers,
    with an allowed Origin) gets in; a cookie from another site's page is
    stopped by the Origin allow-list before authentication."""
    from tls_certs import Certs
    from test_edge_example import ExampleServer, chat_join
    with Certs() as certs, Keys() as k:
        cert, key = certs.server("chat", dns=("chat.example.com", "localhost"))
        s = ExampleServer(cert, key)
        keyfile = os.path.join(s.confdir, "idp-public.pem")
        assert os.path.isfile(keyfile), "the example's members route names idp-public.pem"
        with s:
            proto = {"Sec-WebSocket-Protocol": "mbgw.chat.v1"}
            good = dict(sub="member-7", iss="https://id.example.com", aud="wss://chat.example.com/members")
            tok = jwt_rs256(claims(**good), k.path("rsa.key"))
            rf = Refusals(s)
            rf.expect("/members", [("Authorization", "Bearer " + tok)] + list(proto.items()),
                      reason="JWT signature does not verify (RS256)")
            # the operator installs the identity provider's key and reloads
            shutil.copy(k.path("rsa.pub"), keyfile)
            reload(s, "reload done")
            c = accepted(s, "/members", dict(proto, Authorization="Bearer " + tok))
            try:
                assert chat_join(c, "seven")["members"] == ["seven"]
            finally:
                c.close()
            wait_access(s, "open", route="members", identity="member-7")
            c = accepted(s, "/members", dict(proto, Origin="https://chat.example.com", Cookie="mbgw_token=" + tok))
            c.close()
            rf.expect("/members", [("Origin", "https://chat.example.com")] + list(proto.items()),
                      reason=re.compile(r"no credentials .*cookie 'mbgw_token'\)"))
            rf.expect("/members", [("Authorization", "Bearer " + jwt_rs256(claims(**dict(good, aud="mbgw")),
                                                                           k.path("rsa.key")))] + list(proto.items()),
                      reason="JWT audience \"mbgw\" does not include 'wss://chat.example.com/members'")
            rf.expect("/members", [("Authorization", "Bearer " + jwt_hs(claims(**good), k.read("rsa.pub")))]
                      + list(proto.items()), reason="JWT algorithm HS256 not accepted (allowed: RS256)")
            r, _ = exchange(s.port, upgrade_bytes("/members", [("Origin", "https://evil.example.net"),
                                                                ("Cookie", "mbgw_token=" + tok)] + list(proto.items())))
            assert r.status == 403, r
            m = wait_metric(s.metrics_port, "mbgw_handshakes_rejected_total", rf.n, reason="auth")
            assert m.get("mbgw_handshakes_rejected_total", reason="origin") == 1
            # the chat route beside it still needs no credentials
            c = accepted(s, "/chat", dict(proto, Origin="https://chat.example.com"))
            c.close()


if __name__ == "__main__":
    run_tests([
        test_basic_htpasswd_yescrypt_and_sha512crypt,
        test_basic_costs_a_hash_and_the_handshake_limit_comes_first,
        test_bearer_tokens_from_header_query_and_cookie,
        test_jwt_hs256_claims_and_times,
        test_jwt_rs256_es256_and_key_confusion,
        test_malformed_basic_and_duplicate_headers_on_a_multi_method_route,
        test_route_without_auth_beside_one_with_auth,
        test_reload_rereads_credential_files,
        test_example_members_route_wants_a_jwt,
    ])
