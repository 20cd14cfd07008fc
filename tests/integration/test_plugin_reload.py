"""Hot reload of plugins (issue 3, "Hot-reload test").

A test plugin `versioned` (tests/plugins/versioned.c) answers every
message "x" with "v<N> x", N being the build's version. The route points
at a file next to the configuration that the test deploys like a real
deploy does (copy to a temporary name, then rename over the old file),
and reloads with SIGHUP or `mbgw reload`. Many clients send numbered
messages all the time; the test checks that no connection drops and no
reply is lost, duplicated or reordered, which build answers each message
(reload = keep: old connections stay on v1; reload = move with a
stateless build: they switch to v2 at their next message), and that the
private copy of v1 leaves /proc/<pid>/maps once its last connection has
gone. A broken configuration and a plugin whose init fails leave the
service as it was.
"""
import os
import shutil
import signal
import subprocess
import threading
import time

from mbgw_harness import MBGW_BIN, Server, Client, OP_TEXT, OP_CLOSE, close_payload, run_tests

PLUGIN_DIR = os.environ.get("MBGW_TEST_PLUGIN_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(MBGW_BIN)), "test-plugins")


def test_plugin(name):
    p = os.path.join(PLUGIN_DIR, name + ".so")
    assert os.path.isfile(p), "test plugin %s missing: build the tests/plugins targets" % p
    return p


# --- a server with a deployable plugin ------------------------------------------------

class ReloadServer(Server):
    """A Server whose route `v` serves ../deploy/versioned.so (relative to
    the configuration directory), with a pid file (for `mbgw reload`) and
    TMPDIR inside the test directory (so its private plugin copies can be
    found)."""

    def __init__(self, stateless=False, reload_policy="keep", extra_routes="", workers=2,
                 watch=False):
        self.stateless = stateless
        self.reload_policy = reload_policy
        self.extra_routes = extra_routes
        # watch = yes watches the plugin directory: the deploy directory is
        # then plugin_dir and the route names the plugin instead of a path.
        self.plugin_ref = "versioned" if watch else "../deploy/versioned.so"
        super().__init__(routes=self.routes_text(), workers=workers, log_level="info")
        self.env = {"TMPDIR": self.dir.name}
        self.pid_file = os.path.join(self.dir.name, "mbgw.pid")
        self.deploy_dir = os.path.join(self.dir.name, "deploy")
        with open(os.path.join(self.confdir, "00-server.conf"), "a") as f:
            f.write("pid_file = %s\n" % self.pid_file)
            if watch:
                f.write("watch = yes\nplugin_dir = %s\n" % self.deploy_dir)
        os.mkdir(self.deploy_dir)
        self.deploy(1)

    def routes_text(self, settings=None):
        text = "[route v]\npath = /v\nplugin = %s\nformat = raw\nreload = %s\n" % (
            self.plugin_ref, self.reload_policy)
        if settings:
            text += "settings = %s\n" % settings
        return text + self.extra_routes

    def write_routes(self, settings=None):
        with open(os.path.join(self.confdir, "10-routes.conf"), "w") as f:
            f.write(self.routes_text(settings))

    def deploy(self, version):
        """Installs build `version` as deploy/versioned.so: copy, then rename."""
        src = test_plugin("versioned_%sv%d" % ("sl_" if self.stateless else "", version))
        tmp = os.path.join(self.deploy_dir, ".versioned.so.tmp")
        shutil.copyfile(src, tmp)
        os.rename(tmp, os.path.join(self.deploy_dir, "versioned.so"))

    def reload(self, outcome="reload done", how="sighup", timeout=10):
        """Reloads and waits for the outcome's log line (a new one)."""
        before = self.count_log(outcome)
        if how == "sighup":
            self.proc.send_signal(signal.SIGHUP)
        else:
            p = subprocess.run([MBGW_BIN, "reload", "-c", self.confdir], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=10)
            out = p.stdout.decode()
            assert p.returncode == 0, out
            assert "asked process %d to reload" % self.pid() in out, out
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count_log(outcome) > before:
                return
            time.sleep(0.02)
        raise AssertionError("no new %r in the log:\n%s" % (outcome, self.logtext()[-3000:]))

    def mapped_copies(self):
        """Private plugin copies (our TMPDIR/mbgw-plugins.*/...) mapped into
        the server, as a set of paths."""
        out = set()
        with open("/proc/%d/maps" % self.pid()) as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) == 6:
                    path = parts[5].strip()
                    if path.startswith(self.dir.name + "/mbgw-plugins."):
                        out.add(path.replace(" (deleted)", ""))
        return out

    def wait_unmapped(self, path, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path not in self.mapped_copies():
                return True
            time.sleep(0.05)
        return False


def ask(port, text, path="/v"):
    """One new connection, one message: returns the reply text."""
    with Client(port, path) as c:
        assert c.status == 101, c.status
        c.send_frame(OP_TEXT, text)
        op, data = c.recv_message()
        assert op == OP_TEXT, (op, data)
        return data.decode()


# --- load: clients sending numbered messages all the time --------------------------------

class Pumper(threading.Thread):
    """One client: keeps `window` numbered messages in flight, checks every
    reply is the next number (nothing lost, duplicated or reordered) and
    records which version answered it and when the message was sent."""

    def __init__(self, port, index, stop, window=4, max_messages=50000):
        super().__init__(daemon=True)
        self.port = port
        self.index = index
        self.stop_event = stop
        self.window = window
        self.max_messages = max_messages
        self.replies = []      # (seq, version, send_time)
        self.error = None
        self.client = None

    def run(self):
        try:
            self.client = Client(self.port, "/v", timeout=15)
            assert self.client.status == 101, self.client.status
            sent_at = {}
            seq = 0
            expect = 0
            while True:
                while (not self.stop_event.is_set() and seq - expect < self.window
                       and seq < self.max_messages):
                    sent_at[seq] = time.monotonic()
                    self.client.send_frame(OP_TEXT, "c%d %d" % (self.index, seq))
                    seq += 1
                if expect == seq:
                    break
                op, data = self.client.recv_message()
                assert op == OP_TEXT, "client %d: opcode %d %r" % (self.index, op, data[:80])
                text = data.decode()
                tag, who, n = text.split(" ")
                assert who == "c%d" % self.index, text
                assert int(n) == expect, "client %d: expected reply %d, got %r" % (self.index, expect, text)
                assert tag in ("v1", "v2"), text
                self.replies.append((expect, int(tag[1:]), sent_at.pop(expect)))
                expect += 1
        except Exception as e:  # reported by the test
            self.error = "client %d: %r" % (self.index, e)

    def finish(self):
        """Closes with 1000 and checks the server answers in kind."""
        c = self.client
        c.send_frame(OP_CLOSE, close_payload(1000))
        code, _ = c.expect_close()
        assert code == 1000, code
        c.expect_eof()


class Load:
    def __init__(self, port, n):
        self.stop = threading.Event()
        self.pumps = [Pumper(port, i, self.stop) for i in range(n)]

    def start(self, min_replies=5, timeout=30):
        for p in self.pumps:
            p.start()
        self.wait_all(min_replies, timeout)
        return self

    def wait_all(self, min_replies, timeout=30):
        """Until every client has at least min_replies replies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            errs = [p.error for p in self.pumps if p.error]
            assert not errs, errs[:5]
            if all(len(p.replies) >= min_replies for p in self.pumps):
                return
            time.sleep(0.02)
        raise AssertionError("clients stalled: %r" % sorted(len(p.replies) for p in self.pumps)[:10])

    def replies_now(self):
        return [len(p.replies) for p in self.pumps]

    def wait_progress(self, extra, timeout=30):
        """Until every client has `extra` more replies than now."""
        base = self.replies_now()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            errs = [p.error for p in self.pumps if p.error]
            assert not errs, errs[:5]
            if all(len(p.replies) >= b + extra for p, b in zip(self.pumps, base)):
                return
            time.sleep(0.02)
        raise AssertionError("clients made no progress")

    def end(self, timeout=30):
        """Stops sending, collects outstanding replies, checks the books."""
        self.stop.set()
        for p in self.pumps:
            p.join(timeout)
            assert not p.is_alive(), "client %d hangs" % p.index
        errs = [p.error for p in self.pumps if p.error]
        assert not errs, "disconnects or bad replies: %r" % errs[:5]
        for p in self.pumps:
            assert [r[0] for r in p.replies] == list(range(len(p.replies))), p.index

    def close_all(self):
        for p in self.pumps:
            p.finish()


# --- tests --------------------------------------------------------------------------------

def test_reload_keep_100_clients():
    s = ReloadServer(stateless=False, reload_policy="keep")
    with s:
        load = Load(s.port, 100).start()
        copies = s.mapped_copies()
        assert len(copies) == 1, copies
        v1_copy = copies.pop()
        assert os.path.basename(v1_copy).startswith("versioned."), v1_copy

        # 1. A broken configuration: the reload fails, v1 keeps serving.
        broken = os.path.join(s.confdir, "20-broken.conf")
        with open(broken, "w") as f:
            f.write("# a section header without its closing bracket\n[route oops\npath = /oops\n")
        s.reload("reload failed")
        assert "%s:2: " % broken in s.logtext(), s.logtext()[-2000:]
        assert ask(s.port, "fresh") == "v1 fresh"
        os.unlink(broken)

        # 2. v2 deployed, but its init fails: the reload fails, v1 keeps
        #    serving, and the v2 copy that was loaded for it is gone again.
        s.deploy(2)
        s.write_routes(settings='{"fail": true}')
        s.reload("reload failed")
        log = s.logtext()
        routes = os.path.join(s.confdir, "10-routes.conf")
        assert ("%s:1: route 'v': plugin versioned 2 failed to initialise: "
                "versioned v2 refuses to start: settings ask it to fail" % routes) in log, log[-2000:]
        assert ask(s.port, "fresh") == "v1 fresh"
        assert s.mapped_copies() == {v1_copy}, s.mapped_copies()
        load.wait_progress(3)

        # 3. The good reload, with `mbgw reload` (pid file).
        s.write_routes()
        s.reload("reload done", how="command")
        t_reload = time.monotonic()
        for i in range(10):
            assert ask(s.port, "new%d" % i) == "v2 new%d" % i
        copies = s.mapped_copies()
        assert v1_copy in copies and len(copies) == 2, copies
        load.wait_progress(5)
        time.sleep(0.5)  # keep the load on for a while with both builds loaded
        load.end()

        # reload = keep: every reply on the old connections came from v1.
        total = 0
        for p in load.pumps:
            versions = {v for _, v, _ in p.replies}
            assert versions == {1}, (p.index, versions)
            assert any(t > t_reload for _, _, t in p.replies), p.index
            total += len(p.replies)
        assert total >= 100 * 10, total
        assert s.count_log("unloading plugin versioned 1") == 0
        assert v1_copy in s.mapped_copies()

        # v1 goes once its last connection has closed.
        load.close_all()
        assert s.wait_unmapped(v1_copy), ("v1 still mapped after its last connection closed",
                                          s.mapped_copies())
        assert s.wait_log("unloading plugin versioned 1 ")
        assert not os.path.exists(v1_copy), "private copy %s left on disk" % v1_copy
        assert len(s.mapped_copies()) == 1, s.mapped_copies()
        assert ask(s.port, "after") == "v2 after"


def test_reload_move_stateless():
    """reload = move with a stateless build, twice (v1 -> v2 -> v1 again):
    open connections follow each new build at their next message, and each
    replaced build is unloaded while the connections stay open."""
    import re
    s = ReloadServer(stateless=True, reload_policy="move")
    with s:
        load = Load(s.port, 50).start()
        copies = s.mapped_copies()
        assert len(copies) == 1, copies
        v1_copy = copies.pop()
        s.deploy(2)
        s.reload("reload done")
        t_reload = time.monotonic()
        assert ask(s.port, "new") == "v2 new"
        load.wait_progress(10)
        # Every connection has moved: v1 is unloaded although all of them
        # are still open.
        assert s.wait_unmapped(v1_copy), ("v1 still mapped after every connection moved",
                                          s.mapped_copies())
        assert s.wait_log("unloading plugin versioned-stateless 1 ")
        assert all(p.is_alive() for p in load.pumps)
        copies = s.mapped_copies()
        assert len(copies) == 1, copies
        v2_copy = copies.pop()
        # and back to a (new copy of) v1
        s.deploy(1)
        s.reload("reload done")
        t_reload2 = time.monotonic()
        assert ask(s.port, "again") == "v1 again"
        load.wait_progress(10)
        assert s.wait_unmapped(v2_copy), ("v2 still mapped after every connection moved",
                                          s.mapped_copies())
        load.end()
        for p in load.pumps:
            versions = "".join(str(v) for _, v, _ in p.replies)
            # v1 ... v1 v2 ... v2 v1 ... v1, and everything sent after a
            # reload was answered by the build it installed.
            assert re.fullmatch(r"1+2+1+", versions), (p.index, versions)
            late = {v for _, v, t in p.replies if t_reload < t < t_reload2}
            assert 2 in late, (p.index, late)
            assert {v for _, v, t in p.replies if t > t_reload2} == {1}, p.index
        load.close_all()
        assert len(s.mapped_copies()) == 1


def test_replaced_plugin_unloaded_while_other_routes_stay_open():
    """The old .so goes when ITS last connection has gone, even while
    connections of other routes that opened before the reload stay open."""
    other = ("\n[route p]\npath = /p\nplugin = %s\nsettings = {\"events\": false}\n"
             % test_plugin("probe"))
    s = ReloadServer(extra_routes=other)
    with s, Client(s.port, "/p") as bystander:
        assert bystander.status == 101
        with Client(s.port, "/v") as c:
            c.send_frame(OP_TEXT, "a")
            assert c.recv_message() == (OP_TEXT, b"v1 a")
            v1_copy = [p for p in s.mapped_copies() if "/versioned." in p]
            assert len(v1_copy) == 1, s.mapped_copies()
            v1_copy = v1_copy[0]
            s.deploy(2)
            s.reload("reload done")
            c.send_frame(OP_TEXT, "b")
            assert c.recv_message() == (OP_TEXT, b"v1 b")
            c.send_frame(OP_CLOSE, close_payload(1000))
            c.expect_close(1000)
            c.expect_eof()
        assert ask(s.port, "c") == "v2 c"
        assert s.wait_unmapped(v1_copy, timeout=3), (
            "CORE BUG: v1 stays mapped after its last connection closed, because a connection "
            "of another route (/p) still holds the old route table")
        bystander.send_frame(OP_CLOSE, close_payload(1000))
        bystander.expect_close(1000)


def test_reload_unchanged_plugin_keeps_instance():
    """A reload that changes nothing re-uses the instance (no init, no new
    copy); a changed setting makes a new instance."""
    s = ReloadServer()
    with s, Client(s.port, "/v") as c:
        c.send_frame(OP_TEXT, "a")
        assert c.recv_message() == (OP_TEXT, b"v1 a")
        copies = s.mapped_copies()
        s.reload("reload done")
        assert s.mapped_copies() == copies
        assert s.count_log("versioned v1 initialised") == 1
        s.write_routes(settings='{"x": 1}')
        s.reload("reload done")
        assert s.count_log("versioned v1 initialised") == 2
        assert len(s.mapped_copies()) == 2, s.mapped_copies()
        c.send_frame(OP_TEXT, "b")
        assert c.recv_message() == (OP_TEXT, b"v1 b")


def test_watch_reloads_once_per_deploy():
    """watch = yes: a deploy into the plugin directory (copy + rename) and
    an edit of conf.d each reload once; a broken edit keeps the service."""
    s = ReloadServer(watch=True)
    with s, Client(s.port, "/v") as old:
        old.send_frame(OP_TEXT, "a")
        assert old.recv_message() == (OP_TEXT, b"v1 a")
        assert s.wait_log("watching %s for changes" % s.deploy_dir)
        s.deploy(2)
        deadline = time.monotonic() + 5
        while s.count_log("reload done") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.count_log("reload done") == 1, s.logtext()[-2000:]
        assert ask(s.port, "b") == "v2 b"
        old.send_frame(OP_TEXT, "c")
        assert old.recv_message() == (OP_TEXT, b"v1 c")      # keep
        time.sleep(0.8)
        assert s.count_log("reload done") == 1, "one deploy, several reloads"
        assert s.count_log("(watch = yes)") == 1
        # a broken edit of conf.d: reload failed, v2 still serves
        with open(os.path.join(s.confdir, "20-broken.conf"), "w") as f:
            f.write("[route\n")
        deadline = time.monotonic() + 5
        while s.count_log("reload failed") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.count_log("reload failed") == 1, s.logtext()[-2000:]
        assert "20-broken.conf:1: " in s.logtext()
        assert ask(s.port, "d") == "v2 d"


def test_reload_command_errors():
    """`mbgw reload` without a pid_file, or with a stale one, says why and
    exits 1."""
    s = ReloadServer()
    try:
        rc_pid = subprocess.run([MBGW_BIN, "reload", "-c", s.confdir], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, timeout=10)
        out = rc_pid.stdout.decode()
        assert rc_pid.returncode == 1 and "cannot read a pid from %s" % s.pid_file in out, out
        with open(s.pid_file, "w") as f:
            f.write("999999999\n")
        p = subprocess.run([MBGW_BIN, "reload", "-c", s.confdir], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10)
        out = p.stdout.decode()
        assert p.returncode == 1 and "cannot signal process 999999999" in out, out
        with open(os.path.join(s.confdir, "00-server.conf")) as f:
            text = f.read()
        with open(os.path.join(s.confdir, "00-server.conf"), "w") as f:
            f.write(text.replace("pid_file = %s\n" % s.pid_file, ""))
        p = subprocess.run([MBGW_BIN, "reload", "-c", s.confdir], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10)
        out = p.stdout.decode()
        assert p.returncode == 1 and "sets no pid_file" in out, out
    finally:
        s.dir.cleanup()


if __name__ == "__main__":
    run_tests([
        test_reload_keep_100_clients,
        test_reload_move_stateless,
        test_replaced_plugin_unloaded_while_other_routes_stay_open,
        test_reload_unchanged_plugin_keeps_instance,
        test_watch_reloads_once_per_deploy,
        test_reload_command_errors,
    ])
