"""The benchmark matrix behind bench/run (run it through bench/run, which
installs what is missing first).

For every row of the matrix and every server (mbgw and its peers), a fresh
server is started pinned to CPU 0, mbgw-bench runs pinned to CPU 1 with
--server-pid so it reads the server's CPU and RSS from /proc, and the
server is stopped again. Each cell is the median of its runs. Rows that
mbgw cannot serve yet are probed (mbgw check on the configuration the row
needs, then a one-connection try) and skipped with the reason printed.
"""
import argparse
import asyncio
import datetime
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # bench/
ROOT = os.path.dirname(HERE)
BUILD_MBGW = os.path.join(ROOT, "build-bench-mbgw")
BUILD_BENCH = os.path.join(ROOT, "build-bench")
GEN = os.path.join(BUILD_BENCH, "mbgw-bench")
SERVER_CPU, GEN_CPU = "0", "1"

SERVERS = ["mbgw", "lws", "ws", "py"]
SERVER_TITLES = {
    "mbgw": "mbgw",
    "lws": "libwebsockets",
    "ws": "ws (Node)",
    "py": "websockets (Python)",
}

# ---------------------------------------------------------------------------
# What mbgw needs for the rows that are pending. When the issue named lands,
# the probe passes and the row runs; if the configuration syntax chosen there
# differs from these guesses, adjust them here (one place).
MBGW_TLS_SERVER_KEYS = "listen = 127.0.0.1:{port} tls\n[tls]\ncertificate = {cert}\nkey = {key}\n"
MBGW_HJ_ROUTE = "[route hj]\npath = /hj\nplugin = echo\nformat = header+json\n"
MBGW_CHAT_ROUTE = "[route chat]\npath = /chat\nplugin = chat\n"
CHAT_JOIN = 'chat.join\\n{"room":"bench","nick":"n{I}"}'
CHAT_PUBLISH = 'chat.send\\n{"room":"bench","text":"{T} {PAD}"}'
PENDING = {
    "tls": "issue #4 (wss: TLS listeners)",
    "deflate": "issue #4 (permessage-deflate)",
    "hj": "issue #3 (plugin routes with header+JSON decoding)",
    "chat": "issue #3 (the chat/pub-sub plugin and broadcast)",
}
# ---------------------------------------------------------------------------


class Figure:
    def __init__(self, label, key, better, fmt):
        self.label, self.key, self.better, self.fmt = label, key, better, fmt


def f_rate(v):
    return f"{v:,.0f}"


def f_us(v):
    return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"


def f_bytes(v):
    return f"{v:,.0f}"


MSGS = Figure("msgs/s ↑", "rate", "up", f_rate)
P50 = Figure("p50 µs ↓", "p50_us", "down", f_us)
HS = Figure("handshakes/s ↑", "rate", "up", f_rate)
HS_CPU = Figure("handshakes per server CPU-s ↑", "hs_per_cpu", "up", f_rate)
RSS = Figure("server RSS B/conn ↓", "rss_per_conn_b", "down", f_bytes)
DELIV = Figure("deliveries/s ↑", "rate", "up", f_rate)
DELIV_P99 = Figure("delivery p99 µs ↓", "p99_us", "down", f_us)
LOST = Figure("lost % ↓", "lost_pct", "down", lambda v: f"{v:.3f}")


class Row:
    def __init__(self, key, title, mode, args, figures, needs=None, tls=False, peers=("lws", "ws", "py"),
                 path="/ws", mbgw_path=None, peer_path=None, hold=False):
        self.key, self.title, self.mode, self.args = key, title, mode, args
        self.figures, self.needs, self.tls, self.peers = figures, needs, tls, peers
        self.mbgw_path = mbgw_path or path
        self.peer_path = peer_path or path
        self.hold = hold  # idle rows: --seconds is how long connections are held


ROWS = [
    Row("echo-32-if1", "echo 100 conns × 32 B text, in-flight 1", "echo", ["-c", "100", "-s", "32", "-i", "1"], [MSGS]),
    Row("echo-32-if16", "echo 100 × 32 B text, in-flight 16", "echo", ["-c", "100", "-s", "32", "-i", "16"], [MSGS]),
    Row("echo-16k-if4", "echo 100 × 16 KiB binary, in-flight 4", "echo",
        ["-c", "100", "-s", "16384", "-i", "4", "--binary"], [MSGS]),
    Row("latency", "latency 1 conn × 32 B, in-flight 1", "latency", ["-s", "32"], [P50]),
    Row("handshake", "handshakes, 50 concurrent loops", "handshake", ["--loops", "50"], [HS, HS_CPU]),
    Row("idle-10k", "idle 10,000 conns", "idle", ["-c", "10000"], [RSS], hold=True),
    Row("idle-19k", "idle 19,000 conns", "idle", ["-c", "19000"], [RSS], hold=True),
    Row("broadcast-10k", "broadcast 1 publisher → 10,000 subscribers, 20 msgs/s", "broadcast",
        ["--subscribers", "10000", "--publishers", "1", "--rate", "20", "-s", "64"], [DELIV, DELIV_P99, LOST],
        needs="chat", peers=("ws",), mbgw_path="/chat", peer_path="/broadcast"),
    Row("tls-echo-32-if1", "wss echo 100 × 32 B, in-flight 1", "echo", ["-c", "100", "-s", "32", "-i", "1"], [MSGS],
        needs="tls", tls=True),
    Row("tls-handshake", "wss handshakes, 50 loops (full TLS handshakes)", "handshake", ["--loops", "50"],
        [HS, HS_CPU], needs="tls", tls=True),
    Row("deflate-echo-4k-if4", "echo with permessage-deflate, 100 × 4 KiB text, in-flight 4", "echo",
        ["-c", "100", "-s", "4096", "-i", "4", "--deflate"], [MSGS], needs="deflate"),
    Row("hj-echo-32-if1", "header+JSON route echo 100 × 32 B, in-flight 1 (peers: raw echo)", "echo",
        ["-c", "100", "-s", "32", "-i", "1", "--format", "hj"], [MSGS], needs="hj", mbgw_path="/hj"),
]

# ---------------------------------------------------------------------------
# processes

children = []


def stop(proc, grace=3.0):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc in children:
        children.remove(proc)


def stop_all(*_):
    for p in list(children):
        stop(p, 1.0)
    if _:
        sys.exit(130)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def tail(path, n=8):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


class Env:
    """Paths, certificates and logs of this invocation."""

    def __init__(self):
        self.work = os.path.join(BUILD_BENCH, "work")
        self.logs = os.path.join(self.work, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.cert = os.path.join(self.work, "cert.pem")
        self.key = os.path.join(self.work, "key.pem")
        self.n = 0

    def certs(self):
        if not os.path.exists(self.cert):
            run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", self.key, "-out", self.cert, "-days", "30", "-subj", "/CN=localhost"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def mbgw_conf(self, port, extra_server="", extra_routes=""):
        d = tempfile.mkdtemp(prefix="mbgw-conf-", dir=self.work)
        with open(os.path.join(d, "10-server.conf"), "w") as f:
            f.write(f"[server]\nlisten = 127.0.0.1:{port}\nworkers = 1\nlog_level = warn\n{extra_server}")
        with open(os.path.join(d, "20-routes.conf"), "w") as f:
            f.write(f"[route echo]\npath = /ws\nplugin = echo\nformat = raw\n{extra_routes}")
        return d


def server_cmd(env, server, row, port):
    """Command line of SERVER for ROW on PORT, the URL mbgw-bench uses, and
    mbgw's configuration directory (None for peers)."""
    tls = row.tls if row else False
    deflate = bool(row and row.needs == "deflate")
    scheme = "wss" if tls else "ws"
    if server == "mbgw":
        extra_server = MBGW_TLS_SERVER_KEYS.format(port=port, cert=env.cert, key=env.key) if tls else ""
        extra_routes = ""
        if row and row.needs == "hj":
            extra_routes = MBGW_HJ_ROUTE
        if row and row.needs == "chat":
            extra_routes = MBGW_CHAT_ROUTE
        # With TLS the plain listener moves to another port and the TLS one takes PORT.
        conf = env.mbgw_conf(free_port() if tls else port, extra_server, extra_routes)
        mbgw_bin = os.path.join(BUILD_MBGW, "mbgw")
        cmd = [mbgw_bin, "-c", conf]
        path = row.mbgw_path if row else "/ws"
    else:
        extra = []
        if tls:
            extra += ["--tls", env.cert, env.key]
        if deflate:
            extra += ["--deflate"]
        if server == "lws":
            cmd = [os.path.join(BUILD_BENCH, "lws-echo"), str(port)] + extra
        elif server == "ws":
            cmd = ["node", os.path.join(HERE, "peers", "ws-echo.mjs"), str(port)] + extra
        else:
            cmd = ["/usr/bin/python3", os.path.join(HERE, "peers", "py-echo.py"), str(port)] + extra
        path = row.peer_path if row else "/ws"
        conf = None
    return ["taskset", "-c", SERVER_CPU] + cmd, f"{scheme}://127.0.0.1:{port}{path}", conf


def start_server(env, server, row, tag):
    port = free_port()
    cmd, url, _ = server_cmd(env, server, row, port)
    log = os.path.join(env.logs, f"{tag}-{server}.log")
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)
    children.append(proc)
    if not wait_port(port, proc):
        stop(proc)
        raise RuntimeError(f"{server} did not start listening: {tail(log).strip()}")
    time.sleep(0.2)  # let a runtime finish starting (Node, Python) before it is measured
    return proc, url, log


def gen_args(row, url, pid, label, seconds, warmup):
    args = [row.mode, "--url", url, "--label", label, "--server-pid", str(pid), "-d", str(seconds)] + row.args
    if not row.hold:
        args += ["-w", str(warmup)]
    if row.mode == "broadcast" and label == "mbgw":
        args += ["--join", CHAT_JOIN, "--pub-template", CHAT_PUBLISH]
    if row.needs == "hj" and label == "mbgw":
        args += ["--verify", "body"]  # mbgw's echo plugin on a header+JSON route answers with the body
    return args


def run_gen(args, timeout):
    cmd = ["taskset", "-c", GEN_CPU, GEN] + args
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or "") + (e.stderr or "") + "\n(generator timed out)"
    res = None
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            res = dict(kv.split("=", 1) for kv in line.split()[1:])
    return res, p.stdout + p.stderr


def gen_timeout(row, seconds, warmup):
    return 90 + seconds + warmup + {"idle": 60, "broadcast": 300}.get(row.mode, 0)


# ---------------------------------------------------------------------------
# probes for pending rows

def hj_decodes(url):
    """True when the route answers invalid JSON with an error message, i.e.
    it really decodes header+JSON instead of echoing bytes."""
    import websockets  # Debian's python3-websockets

    async def go():
        async with websockets.connect(url, compression=None, open_timeout=3) as ws:
            await ws.send("echo id=1\n{not json")
            reply = await asyncio.wait_for(ws.recv(), 3)
            return isinstance(reply, str) and reply.startswith("error")

    try:
        return asyncio.run(go())
    except Exception:
        return False


def probe_mbgw(env, row):
    """None when mbgw can serve ROW, else the reason it cannot."""
    need = row.needs
    if need == "tls":
        env.certs()
    port = free_port()
    cmd, url, conf = server_cmd(env, "mbgw", row, port)
    chk = subprocess.run([os.path.join(BUILD_MBGW, "mbgw"), "check", conf], capture_output=True, text=True)
    if chk.returncode != 0:
        msg = (chk.stderr or chk.stdout).strip().splitlines()
        return "mbgw check refuses the configuration it needs: " + (msg[0] if msg else f"exit {chk.returncode}")
    try:
        proc, url, log = start_server(env, "mbgw", row, f"probe-{row.key}")
    except RuntimeError as e:
        return str(e)
    try:
        if need == "hj" and not hj_decodes(url):
            return "mbgw accepts the route but does not answer invalid JSON with an error: no header+JSON decoding yet"
        probe = gen_args(row, url, proc.pid, "mbgw", 0.3, 0)
        # one connection (or two subscribers) is enough to know it works
        if row.mode == "broadcast":
            probe += ["--subscribers", "2", "--rate", "20", "--seconds", "1"]
        elif row.mode in ("echo", "idle"):
            probe += ["-c", "1"]
        elif row.mode == "handshake":
            probe += ["--loops", "1"]
        res, out = run_gen(probe, 60)
        if not res or int(res["errors"]) or float(res["units"]) <= 0:
            errs = [l for l in out.splitlines() if l.startswith("mbgw-bench:")]
            return "a one-connection try failed: " + (errs[0][12:] if errs else "no messages came back")
        return None
    finally:
        stop(proc)


# ---------------------------------------------------------------------------
# the matrix

def derive(res):
    r = {k: float(v) for k, v in res.items() if re.fullmatch(r"-?[0-9.]+", v)}
    r["errors"] = int(res["errors"])
    cpu = r.get("srv_cpu_s", -1)
    r["hs_per_cpu"] = r["units"] / cpu if cpu and cpu > 0 else float("nan")
    exp = r.get("expected", 0)
    r["lost_pct"] = 100.0 * max(exp - r["units"], 0) / exp if exp > 0 else float("nan")
    return r


def measure(env, rows, servers, runs, seconds, warmup, hold, run_pending):
    results = {}  # (row, server) -> list of dicts
    notes = {}  # (row, server) -> list of str
    skipped = []  # (row, reason)
    runnable = []
    for row in rows:
        if row.tls:
            env.certs()
        cells = [s for s in servers if s == "mbgw" or s in row.peers]
        if row.needs and "mbgw" in cells:
            reason = probe_mbgw(env, row)
            if reason:
                msg = f"pending {PENDING[row.needs]}: {reason}"
                print(f"skip  {row.key}: {msg}", flush=True)
                if not run_pending:
                    skipped.append((row, msg))
                    continue
                cells.remove("mbgw")
                skipped.append((row, msg + " (peers measured with --run-pending)"))
        runnable.append((row, cells))
    for i in range(runs):
        for row, cells in runnable:
            for server in cells:
                tag = f"{row.key}-run{i + 1}"
                secs = hold if row.hold else seconds
                print(f"run   {tag} {SERVER_TITLES[server]:<20} ", end="", flush=True)
                try:
                    proc, url, log = start_server(env, server, row, tag)
                except RuntimeError as e:
                    print(f"did not start: {e}")
                    notes.setdefault((row.key, server), []).append(f"did not start: {e}")
                    continue
                try:
                    res, out = run_gen(gen_args(row, url, proc.pid, server, secs, warmup),
                                       gen_timeout(row, secs, warmup))
                    alive = proc.poll() is None
                finally:
                    stop(proc)
                with open(os.path.join(env.logs, f"{tag}-{server}.gen.log"), "w") as f:
                    f.write(out)
                if not alive:
                    print(f"server died (exit {proc.returncode}); log: {tail(log, 3).strip()}")
                    notes.setdefault((row.key, server), []).append(
                        f"server exited with {proc.returncode} during the run: {tail(log, 3).strip()}")
                if not res:
                    print("no result: " + out.strip().splitlines()[-1] if out.strip() else "no result")
                    notes.setdefault((row.key, server), []).append("no result from the generator")
                    continue
                r = derive(res)
                r["raw"] = " ".join(f"{k}={v}" for k, v in res.items())
                results.setdefault((row.key, server), []).append(r)
                errs = [l[12:] for l in out.splitlines() if l.startswith("mbgw-bench:")]
                if r["errors"]:
                    notes.setdefault((row.key, server), []).append(
                        f"{r['errors']} errors" + (f", first: {errs[0]}" if errs else ""))
                fig = row.figures[0]
                print(f"{fig.label.split(' ')[0]} {fig.fmt(r[fig.key]) if fig.key in r else '?'}"
                      f"  srv {r['srv_cpu_pct']:.0f}% gen {r['gen_cpu_pct']:.0f}%"
                      + (f"  errors {r['errors']}" if r["errors"] else ""), flush=True)
    return runnable, results, notes, skipped


def med(vals):
    vals = [v for v in vals if v == v and v >= 0]  # drop NaN and "not measured" (-1)
    return statistics.median(vals) if vals else None


def ratio(fig, mine, theirs):
    if mine is None or theirs is None or mine <= 0 or theirs <= 0:
        return "–"
    x = mine / theirs if fig.better == "up" else theirs / mine
    return f"{x:.2f}×"


def render(runnable, results, notes, skipped, servers, meta):
    peers = [s for s in servers if s != "mbgw"]
    out = []
    w = out.append
    w(f"# mbgw benchmark — {meta['when']}{' (quick)' if meta['quick'] else ''}\n")
    for line in meta["lines"]:
        w(line)
    w("")
    w("## Summary: medians, and how many times better mbgw is\n")
    w("Each × column is *how many times better mbgw is* than that peer: "
      "mbgw ÷ peer for ↑ figures, peer ÷ mbgw for ↓ figures, so above 1.00× mbgw leads.\n")
    head = "| row | figure | " + " | ".join(SERVER_TITLES[s] for s in servers)
    if "mbgw" in servers:
        head += " | " + " | ".join(f"× {SERVER_TITLES[p]}" for p in peers)
    w(head + " |")
    w("|" + "---|" * (2 + len(servers) + (len(peers) if "mbgw" in servers else 0)))
    for row, cells in runnable:
        for fig in row.figures:
            vals = {}
            line = f"| {row.title} | {fig.label} |"
            for s in servers:
                v = med([r.get(fig.key, float("nan")) for r in results.get((row.key, s), [])])
                vals[s] = v
                flag = " ⚠" if any(r["errors"] for r in results.get((row.key, s), [])) or notes.get(
                    (row.key, s)) else ""
                if s not in cells:
                    line += " pending |" if s == "mbgw" else " n/a |"
                else:
                    line += f" {fig.fmt(v) if v is not None else '–'}{flag} |"
            if "mbgw" in servers:
                for p in peers:
                    line += f" {ratio(fig, vals.get('mbgw'), vals.get(p)) if p in cells else '–'} |"
            w(line)
    w("")
    w("## Detail: latency, CPU split and server CPU per million\n")
    w("Server CPU-s/M is server CPU-seconds per million messages (per million handshakes in handshake rows, "
      "per million deliveries in broadcast rows): the fair figure when the generator saturates its core. "
      "CPU % is of one core over the measured window (server on CPU 0, generator on CPU 1).\n")
    w("| row | server | p50 µs | p99 µs | p99.9 µs | server CPU-s/M | generator CPU-s/M | server CPU % | "
      "generator CPU % | errors | runs |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for row, cells in runnable:
        for s in cells:
            rs = results.get((row.key, s), [])
            if not rs:
                w(f"| {row.title} | {SERVER_TITLES[s]} | – | – | – | – | – | – | – | no result | 0 |")
                continue

            def m(k, fmt):
                v = med([r.get(k, float("nan")) for r in rs])
                return fmt(v) if v is not None else "–"

            def f2(v):
                return f"{v:.2f}"

            def f0(v):
                return f"{v:.0f}"

            lat = row.mode != "idle"
            w(f"| {row.title} | {SERVER_TITLES[s]} | {m('p50_us', f_us) if lat else '–'} | "
              f"{m('p99_us', f_us) if lat else '–'} | {m('p999_us', f_us) if lat else '–'} | "
              f"{m('srv_cpu_s_per_M', f2) if lat else '–'} | {m('gen_cpu_s_per_M', f2) if lat else '–'} | "
              f"{m('srv_cpu_pct', f0)} | {m('gen_cpu_pct', f0)} | {sum(r['errors'] for r in rs)} | {len(rs)} |")
    if skipped:
        w("\n## Rows not measured for mbgw\n")
        for row, why in skipped:
            w(f"- **{row.title}** — {why}")
    flagged = [(k, v) for k, v in notes.items() if v]
    if flagged:
        w("\n## Problems seen (⚠ in the summary)\n")
        for (rk, s), msgs in flagged:
            for msg in dict.fromkeys(msgs):
                w(f"- {rk} / {SERVER_TITLES[s]}: {msg}")
    w("\n<details><summary>Raw RESULT lines</summary>\n\n```")
    for row, cells in runnable:
        for s in cells:
            for r in results.get((row.key, s), []):
                w(r["raw"])
    w("```\n</details>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------
# set-up and description of the machine

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:
        return ""


def build():
    print("build mbgw (Release) and mbgw-bench", flush=True)
    run(["cmake", "-S", ROOT, "-B", BUILD_MBGW, "-DCMAKE_BUILD_TYPE=Release", "-DMBGW_TESTS=OFF"],
        stdout=subprocess.DEVNULL)
    run(["cmake", "--build", BUILD_MBGW, "-j2"], stdout=subprocess.DEVNULL)  # mbgw and its plugins
    run(["cmake", "-S", HERE, "-B", BUILD_BENCH, "-DCMAKE_BUILD_TYPE=Release"], stdout=subprocess.DEVNULL)
    run(["cmake", "--build", BUILD_BENCH, "-j2"], stdout=subprocess.DEVNULL)


def describe(args, started_load):
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    mem = sh("awk '/MemTotal/ {printf \"%.0f GiB\", $2/1048576}' /proc/meminfo")
    commit = sh(f"git -C {ROOT} rev-parse --short HEAD")
    dirty = " with uncommitted changes" if sh(f"git -C {ROOT} status --porcelain -- core sdk plugins CMakeLists.txt") else ""
    node_mod = os.path.join(HERE, "peers", "node_modules")

    def npm_ver(pkg):
        try:
            with open(os.path.join(node_mod, pkg, "package.json")) as f:
                return json.load(f)["version"]
        except OSError:
            return "?"

    load_end = sh("cut -d' ' -f1-3 /proc/loadavg")
    pyws = sh("dpkg-query -W -f='${Version}' python3-websockets")
    lines = [
        f"- Machine: {cpu}, {os.cpu_count()} CPUs, {mem}; Linux {os.uname().release}; "
        f"Debian {sh('cat /etc/debian_version')}.",
        f"- Pinning: server on CPU {SERVER_CPU}, mbgw-bench on CPU {GEN_CPU} (taskset); "
        f"load average at start {started_load}, at end {load_end}.",
        f"- mbgw {commit}{dirty}, Release (-O2), 1 worker, log_level warn.",
        f"- Peers: libwebsockets {sh('pkg-config --modversion libwebsockets')} (Debian, default poll loop), "
        f"ws {npm_ver('ws')} + bufferutil {npm_ver('bufferutil')} on Node {sh('node --version')}, "
        f"websockets {pyws} (Debian) on "
        f"{sh('/usr/bin/python3 --version')}.",
        f"- {args.runs} run(s) per cell, median shown; {args.seconds:g} s measured after {args.warmup:g} s warm-up; "
        f"idle rows hold {args.hold:g} s.",
        f"- Command: `{shlex.join(['bench/run'] + sys.argv[1:])}`",
    ]
    if args.note:
        lines.append(f"- **Note:** {args.note}")
    return lines


def main():
    ap = argparse.ArgumentParser(prog="bench/run", description="Run mbgw's benchmark matrix against its peers.")
    ap.add_argument("--quick", action="store_true", help="one short run of each cell (under 5 minutes)")
    ap.add_argument("--runs", type=int, help="runs per cell (default 3, quick 1)")
    ap.add_argument("--seconds", type=float, help="measured seconds per run (default 10, quick 2)")
    ap.add_argument("--warmup", type=float, help="warm-up seconds (default 2, quick 0.5)")
    ap.add_argument("--hold", type=float, help="seconds idle connections are held (default 5, quick 1)")
    ap.add_argument("--rows", help="comma-separated row keys (default: all): " + ", ".join(r.key for r in ROWS))
    ap.add_argument("--servers", default=",".join(SERVERS), help="comma-separated, from " + ", ".join(SERVERS))
    ap.add_argument("--run-pending", action="store_true", help="measure the peers even on rows mbgw cannot serve yet")
    ap.add_argument("--note", help="a line added to the results file (e.g. what else ran on the machine)")
    ap.add_argument("--out", help="results file (default bench/results/<date>.md)")
    ap.add_argument("--no-build", action="store_true", help="use the existing builds")
    args = ap.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    args.seconds = args.seconds or (2 if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 2)
    args.hold = args.hold or (1 if args.quick else 5)
    servers = [s for s in args.servers.split(",") if s]
    bad = [s for s in servers if s not in SERVERS]
    rows = ROWS
    if args.rows:
        keys = args.rows.split(",")
        bad += [k for k in keys if k not in {r.key for r in ROWS}]
        rows = [r for r in ROWS if r.key in keys]
    if bad:
        ap.error("unknown: " + ", ".join(bad))

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    started_load = sh("cut -d' ' -f1-3 /proc/loadavg")
    when = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    if not args.no_build:
        build()
    env = Env()
    try:
        runnable, results, notes, skipped = measure(env, rows, servers, args.runs, args.seconds, args.warmup,
                                                    args.hold, args.run_pending)
    finally:
        stop_all()
        for d in os.listdir(env.work):
            if d.startswith("mbgw-conf-"):
                shutil.rmtree(os.path.join(env.work, d), ignore_errors=True)
    meta = {"when": when.strftime("%Y-%m-%d %H:%M UTC"), "quick": args.quick,
            "lines": describe(args, started_load)}
    text = render(runnable, results, notes, skipped, servers, meta)
    print()
    print(text)
    out = args.out or os.path.join(HERE, "results", when.strftime("%Y-%m-%d") + ".md")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    print(f"written to {os.path.relpath(out, ROOT)} in {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
