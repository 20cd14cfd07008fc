"""The plugin loader's errors (issue 3): a missing file, a file that is not
a shared object, a shared object without the entry symbol, an ABI
mismatch (a v2 entry symbol; a v1 symbol describing ABI 2) and an init
failure each give a clear message with the route's file:line; `mbgw
check` exits 1 with it and the server refuses to start with it; a reload
that meets it keeps the running table. And a route removed by a reload
closes its connections with 1001 after its `drain` time.

The test plugins come from tests/plugins (built into test-plugins/ next
to the mbgw binary)."""
import os
import shutil
import signal
import subprocess
import tempfile
import time

from mbgw_harness import (MBGW_BIN, Server, Client, OP_TEXT, OP_CLOSE, close_payload,
                          free_port, run_tests)

PLUGIN_DIR = os.environ.get("MBGW_TEST_PLUGIN_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(MBGW_BIN)), "test-plugins")


def test_plugin(name):
    """Absolute path of a test plugin built from tests/plugins."""
    p = os.path.join(PLUGIN_DIR, name + ".so")
    assert os.path.isfile(p), "test plugin %s missing: build the tests/plugins targets" % p
    return p


def route_conf(plugin, name="bad", path="/bad", extra=""):
    return "[route %s]\npath = %s\nplugin = %s\n%s" % (name, path, plugin, extra)


class ConfDir:
    """A throw-away configuration directory for `mbgw check` and start-up."""

    def __init__(self, routes):
        self.tmp = tempfile.TemporaryDirectory(prefix="mbgw-loader-")
        self.dir = os.path.join(self.tmp.name, "conf.d")
        os.mkdir(self.dir)
        with open(os.path.join(self.dir, "00-server.conf"), "w") as f:
            f.write("[server]\nlisten = 127.0.0.1:%d\nworkers = 1\n" % free_port())
        self.routes_file = os.path.join(self.dir, "10-routes.conf")
        with open(self.routes_file, "w") as f:
            f.write(routes)

    def path(self, name):
        return os.path.join(self.dir, name)

    def run(self, *args, timeout=20):
        env = dict(os.environ, TMPDIR=self.tmp.name)
        p = subprocess.run([MBGW_BIN] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=env)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    def private_copies_left(self):
        """Private plugin copies (mbgw-plugins.*/) left in our TMPDIR."""
        left = []
        for d in os.listdir(self.tmp.name):
            if d.startswith("mbgw-plugins."):
                left += os.listdir(os.path.join(self.tmp.name, d))
                left.append(d)
        return left

    def close(self):
        self.tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def expect_refused(routes, needles, prepare=None):
    """`mbgw check` exits 1 and `mbgw run` refuses to start, both printing
    every needle and the route's file:line."""
    with ConfDir(routes) as cd:
        if prepare:
            prepare(cd)
        where = "%s:1:" % cd.routes_file
        rc, out, err = cd.run("check", "-c", cd.dir)
        assert rc == 1, "check exited %s\nstdout: %s\nstderr: %s" % (rc, out, err)
        for n in [where] + needles:
            assert n in err, "check: %r not in stderr:\n%s" % (n, err)
        assert "configuration OK" not in out, out
        rc, out, err = cd.run("-c", cd.dir)
        assert rc == 1, "server exited %s\nstdout: %s\nstderr: %s" % (rc, out, err)
        text = out + err
        for n in [where] + needles:
            assert n in text, "run: %r not in output:\n%s" % (n, text)
        assert "mbgw: cannot load the routes of %s" % cd.dir in text, text
        assert "started" not in text, text
        # A refused plugin leaves no private copy behind.
        assert cd.private_copies_left() == [], cd.private_copies_left()
        return text


def test_missing_file_absolute():
    missing = "/nonexistent-dir-mbgw/nothing.so"
    expect_refused(route_conf(missing),
                   ["route 'bad': plugin file %s: No such file or directory" % missing])


def test_missing_file_by_name_in_plugin_dir():
    with ConfDir(route_conf("no_such_plugin")) as cd:
        with open(cd.path("00-server.conf"), "a") as f:
            f.write("plugin_dir = %s\n" % cd.tmp.name)
        needle = "%s:1: route 'bad': plugin file %s/no_such_plugin.so: No such file or directory" % (
            cd.routes_file, cd.tmp.name)
        rc, out, err = cd.run("check", "-c", cd.dir)
        assert rc == 1 and needle in err, (rc, err)
        rc, out, err = cd.run("-c", cd.dir)
        assert rc == 1 and needle in err, (rc, err)


def test_missing_file_relative_to_conf_dir():
    with ConfDir(route_conf("./missing.so")) as cd:
        rc, out, err = cd.run("check", "-c", cd.dir)
        assert rc == 1
        assert "plugin file %s/./missing.so: No such file or directory" % cd.dir in err, err


def test_not_a_shared_object():
    def prepare(cd):
        with open(cd.path("x.so"), "w") as f:
            f.write("this is a text file, not a plugin\n")
    text = expect_refused(route_conf("./x.so"), ["x.so is not a shared object"], prepare)
    assert "no ELF header" in text, text


def test_truncated_shared_object():
    """An ELF header with nothing behind it: dlopen's own reason is shown."""
    def prepare(cd):
        with open(test_plugin("probe"), "rb") as f:
            head = f.read(200)
        with open(cd.path("trunc.so"), "wb") as f:
            f.write(head)
    expect_refused(route_conf("./trunc.so"), ["trunc.so cannot be loaded: "], prepare)


def test_directory_is_not_a_plugin():
    def prepare(cd):
        os.mkdir(cd.path("dir.so"))
    expect_refused(route_conf("./dir.so"), ["dir.so is not a regular file"], prepare)


def test_no_entry_symbol():
    p = test_plugin("bad_noentry")
    expect_refused(route_conf(p), ["plugin file %s does not export mbgw_plugin_v1: not an mbgw plugin" % p])


def test_abi_v2_entry_symbol():
    p = test_plugin("bad_abi_v2")
    expect_refused(route_conf(p), ["plugin file %s was built for ABI 2 (exports mbgw_plugin_v2); "
                                   "this host speaks ABI 1" % p])


def test_abi_major_2_behind_v1_symbol():
    p = test_plugin("bad_abi_major2")
    text = expect_refused(route_conf(p), ["plugin file %s: unsupported plugin ABI 2.0" % p,
                                          "this host speaks ABI 1.1"])
    # Its init traps: reaching it would have killed the process.
    assert "core dumped" not in text


def test_init_failure_shows_the_plugins_message():
    p = test_plugin("versioned_v1")
    expect_refused(route_conf(p, extra='format = raw\nsettings = {"fail": true}\n'),
                   ["route 'bad': plugin versioned 1 failed to initialise: "
                    "versioned v1 refuses to start: settings ask it to fail"])


def test_init_failure_multi_line_settings():
    """settings spanning lines: the error still names the section's line."""
    p = test_plugin("probe")
    expect_refused(route_conf(p, extra='settings = {\n  "name": "x",\n  "fail": true\n}\n'),
                   ["plugin probe 1.0 failed to initialise: probe: told to fail by its settings"])


def test_move_needs_a_stateless_plugin():
    p = test_plugin("versioned_v1")
    expect_refused(route_conf(p, extra="format = raw\nreload = move\n"),
                   ["reload = move needs a stateless plugin", "MBGW_PLUGIN_STATELESS"])


def test_every_error_is_reported_not_just_the_first():
    routes = (route_conf("/nonexistent-mbgw/a.so", "one", "/one") + "\n" +
              route_conf(test_plugin("bad_noentry"), "two", "/two"))
    with ConfDir(routes) as cd:
        rc, out, err = cd.run("check", "-c", cd.dir)
        assert rc == 1
        assert "route 'one'" in err and "route 'two'" in err, err
        assert "%s:1:" % cd.routes_file in err and "%s:5:" % cd.routes_file in err, err


def test_good_config_checks_ok_and_leaves_no_copies():
    routes = route_conf(test_plugin("probe"), "p", "/p") + "\n" + \
        route_conf(test_plugin("versioned_sl_v1"), "v", "/v", "format = raw\nreload = move\n")
    with ConfDir(routes) as cd:
        rc, out, err = cd.run("check", "-c", cd.dir)
        assert rc == 0, (rc, out, err)
        assert "configuration OK (2 routes" in out, out
        assert cd.private_copies_left() == [], cd.private_copies_left()


def test_plugin_name_with_so_suffix_is_a_path_in_conf_dir():
    """`plugin = versioned.so` names a file next to the configuration (the
    issue's own example of a relative plugin path)."""
    def setup(cd):
        shutil.copy(test_plugin("versioned_v1"), cd.path("versioned.so"))
    with ConfDir(route_conf("versioned.so", extra="format = raw\n")) as cd:
        setup(cd)
        rc, out, err = cd.run("check", "-c", cd.dir)
        assert rc == 0, ("CORE BUG: plugin = versioned.so (a file in the conf dir) is taken for a "
                         "plugin name:\n%s%s" % (out, err))


# --- the same errors at reload: the running table stays -------------------------

def probe_routes(extra_routes=""):
    return route_conf(test_plugin("probe"), "keep", "/keep", 'settings = {"events": false}\n') + \
        "\n" + extra_routes


def ask(c, text):
    c.send_frame(OP_TEXT, text)
    op, data = c.recv_message()
    assert op == OP_TEXT, op
    return data.decode()


def test_reload_with_each_loader_error_keeps_serving():
    s = Server(routes=probe_routes(), workers=1)
    with open(os.path.join(s.confdir, "notelf.so"), "w") as f:
        f.write("text\n")
    bad = [
        ("/nonexistent-mbgw/gone.so", "No such file or directory"),
        ("./notelf.so", "is not a shared object"),
        (test_plugin("bad_noentry"), "does not export mbgw_plugin_v1"),
        (test_plugin("bad_abi_v2"), "was built for ABI 2"),
        (test_plugin("bad_abi_major2"), "unsupported plugin ABI 2.0"),
        (test_plugin("probe") + '\nsettings = {"fail": true}', "probe: told to fail by its settings"),
    ]
    with s, Client(s.port, "/keep") as old:
        assert ask(old, "whoami\n").startswith("r cmd=whoami")
        routes = os.path.join(s.confdir, "10-routes.conf")
        for i, (plugin, needle) in enumerate(bad):
            with open(routes, "w") as f:
                f.write(probe_routes(route_conf(plugin, "new", "/new")))
            failed_before = s.count_log("reload failed")
            s.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 5
            while s.count_log("reload failed") == failed_before and time.monotonic() < deadline:
                time.sleep(0.05)
            assert s.count_log("reload failed") == failed_before + 1, (plugin, s.logtext()[-2000:])
            log = s.logtext()
            text = probe_routes(route_conf(plugin, "new", "/new"))
            line = text.splitlines().index("[route new]") + 1
            assert "%s:%d: route 'new': " % (routes, line) in log, (plugin, line, log[-2000:])
            assert needle in log, (needle, log[-2000:])
            # Service unchanged: the open connection and new ones work,
            # the route that failed does not exist.
            assert ask(old, "whoami id=%d\n" % i).startswith("r cmd=whoami id=%d" % i)
            with Client(s.port, "/keep") as c:
                assert c.status == 101
                assert ask(c, "whoami\n").startswith("r cmd=whoami")
            with Client(s.port, "/new") as c:
                assert c.status == 404, c.status
        assert s.count_log("reload done") == 0


# --- drain: a removed route closes its connections with 1001 -----------------------

def wait_close(c, within):
    """Waits up to `within` seconds for a close frame; returns (code, reason,
    seconds) or None."""
    t0 = time.monotonic()
    deadline = t0 + within
    while time.monotonic() < deadline:
        f = c.try_recv_frame(max(0.01, deadline - time.monotonic()))
        if f is None:
            continue
        fin, rsv, op, payload = f
        if op == OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            return code, payload[2:], time.monotonic() - t0
    return None


def test_removed_route_closes_with_1001_after_drain():
    gone = route_conf(test_plugin("probe"), "gone", "/gone", 'drain = 1500ms\nsettings = {"events": false}\n')
    s = Server(routes=probe_routes(gone), workers=2)
    with s, Client(s.port, "/gone") as g1, Client(s.port, "/gone") as g2, \
            Client(s.port, "/keep") as k:
        assert g1.status == g2.status == k.status == 101
        assert ask(g1, "whoami\n").startswith("r cmd=whoami")
        with open(os.path.join(s.confdir, "10-routes.conf"), "w") as f:
            f.write(probe_routes())
        s.proc.send_signal(signal.SIGHUP)
        assert s.wait_log("reload done"), s.logtext()[-2000:]
        assert s.wait_log("route gone removed: its connections close with 1001 in 1500 ms")
        t_reload = time.monotonic()
        # At once: the path is gone for new clients.
        with Client(s.port, "/gone") as c:
            assert c.status == 404, c.status
        # During the drain time the old connections still work.
        assert ask(g2, "whoami id=1\n").startswith("r cmd=whoami id=1")
        res = wait_close(g1, 1.0 - (time.monotonic() - t_reload))
        assert res is None, "closed before the drain time: %r" % (res,)
        res = wait_close(g1, 2.5)
        assert res is not None, "no close within drain + 1.5 s"
        code, reason, _ = res
        elapsed = time.monotonic() - t_reload
        assert code == 1001, (code, reason)
        assert b"Route removed" in reason, reason
        assert 1.2 <= elapsed <= 3.5, elapsed
        g1.send_frame(OP_CLOSE, close_payload(1001))
        g1.expect_eof()
        res = wait_close(g2, 1.0)
        assert res and res[0] == 1001, res
        g2.send_frame(OP_CLOSE, close_payload(1001))
        g2.expect_eof()
        # The route that stayed is untouched.
        assert ask(k, "whoami id=2\n").startswith("r cmd=whoami id=2")
        k.send_frame(OP_CLOSE, close_payload(1000))
        k.expect_close(1000)
        k.expect_eof()
        # With every connection of the old table gone, the removed route's
        # instance is shut down.
        assert s.wait_log("route gone: plugin instance probe 1.0 retired"), s.logtext()[-2000:]


def test_removed_route_drains_connections_of_older_tables():
    """A connection that opened two reloads ago (its route was replaced by a
    new instance in between, reload = keep) is closed too when the route
    is finally removed."""
    def gone(name):
        return route_conf(test_plugin("probe"), "gone", "/gone",
                          'drain = 300ms\nsettings = {"events": false, "name": "%s"}\n' % name)
    s = Server(routes=probe_routes(gone("first")), workers=1)
    routes = os.path.join(s.confdir, "10-routes.conf")
    with s, Client(s.port, "/gone") as old:
        assert '"inst":"first"' in ask(old, "whoami\n")
        with open(routes, "w") as f:
            f.write(probe_routes(gone("second")))   # new settings: a new instance
        s.proc.send_signal(signal.SIGHUP)
        assert s.wait_log("reload done")
        assert '"inst":"first"' in ask(old, "whoami\n")   # keep
        with open(routes, "w") as f:
            f.write(probe_routes())
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while s.count_log("reload done") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.count_log("reload done") == 2
        res = wait_close(old, 3.0)
        assert res is not None, ("CORE BUG: a connection of route 'gone' from an older table was not closed "
                                 "after the route was removed (drain 300 ms, waited 3 s)")
        assert res[0] == 1001, res


if __name__ == "__main__":
    run_tests([
        test_missing_file_absolute,
        test_missing_file_by_name_in_plugin_dir,
        test_missing_file_relative_to_conf_dir,
        test_not_a_shared_object,
        test_truncated_shared_object,
        test_directory_is_not_a_plugin,
        test_no_entry_symbol,
        test_abi_v2_entry_symbol,
        test_abi_major_2_behind_v1_symbol,
        test_init_failure_shows_the_plugins_message,
        test_init_failure_multi_line_settings,
        test_move_needs_a_stateless_plugin,
        test_every_error_is_reported_not_just_the_first,
        test_good_config_checks_ok_and_leaves_no_copies,
        test_plugin_name_with_so_suffix_is_a_path_in_conf_dir,
        test_reload_with_each_loader_error_keeps_serving,
        test_removed_route_closes_with_1001_after_drain,
        test_removed_route_drains_connections_of_older_tables,
    ])
