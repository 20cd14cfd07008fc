"""mbgw as `cmake --install` leaves it: install the build tree into a
DESTDIR staging root, check the GNUInstallDirs layout, then run the
INSTALLED mbgw without any flag (it must find its installed configuration
and plugins on its own), talk to it with python3-websockets, build the
installed plugin template out of tree against the installed SDK only, and
hot-load it into the installed server.

Environment (set by tests/packaging/CMakeLists.txt): MBGW_BUILD_DIR,
MBGW_SOURCE_DIR and the configured install directories MBGW_PREFIX,
MBGW_SBINDIR, MBGW_BINDIR, MBGW_CONFDIR, MBGW_PLUGINDIR, MBGW_INCLUDEDIR, MBGW_LIBDIR,
MBGW_DATADIR, MBGW_MANDIR, MBGW_DOCDIR, MBGW_UNITDIR (all absolute).
"""
import filecmp
import os
import re
import shutil
import tempfile

from pkg_common import (HELLO_ROUTE, Installed, build_template, free_port, private_copy_dirs,
                        run_tests, set_listen, sh, talk)

E = os.environ
BUILD_DIR = E["MBGW_BUILD_DIR"]
SOURCE_DIR = E["MBGW_SOURCE_DIR"]


def test_install_and_run():
    with tempfile.TemporaryDirectory(prefix="mbgw-install-") as tmp:
        stage = os.path.join(tmp, "stage")
        sh(["cmake", "--install", BUILD_DIR], env=dict(os.environ, DESTDIR=stage))

        def S(*parts):
            """A configured install path, inside the staging root."""
            return stage + os.path.join(*parts)

        # 1. Layout.
        mbgw = S(E["MBGW_SBINDIR"], "mbgw")
        expected = [
            mbgw,
            S(E["MBGW_PLUGINDIR"], "echo.so"), S(E["MBGW_PLUGINDIR"], "chat.so"),
            S(E["MBGW_INCLUDEDIR"], "mbgw", "plugin.h"),
            S(E["MBGW_LIBDIR"], "cmake", "mbgw", "mbgwConfig.cmake"),
            S(E["MBGW_LIBDIR"], "cmake", "mbgw", "mbgwConfigVersion.cmake"),
            S(E["MBGW_LIBDIR"], "pkgconfig", "mbgw.pc"),
            S(E["MBGW_DATADIR"], "mbgw", "plugin-template", "hello.c"),
            S(E["MBGW_DATADIR"], "mbgw", "plugin-template", "CMakeLists.txt"),
            S(E["MBGW_MANDIR"], "man8", "mbgw.8"),
            S(E["MBGW_MANDIR"], "man5", "mbgw.conf.5"),
            S(E["MBGW_MANDIR"], "man7", "mbgw-plugin.7"),
            S(E["MBGW_DOCDIR"], "configuration.md"),
            S(E["MBGW_DOCDIR"], "plugins.md"),
            S(E["MBGW_DOCDIR"], "operations.md"),
            S(E["MBGW_UNITDIR"], "mbgw.service"),
        ]
        conf_src = os.path.join(SOURCE_DIR, "conf.d")
        shipped = sorted(f for f in os.listdir(conf_src) if f.endswith(".conf"))
        assert shipped, "conf.d/ has no .conf file"
        expected += [S(E["MBGW_CONFDIR"], f) for f in shipped]
        missing = [p for p in expected if not os.path.exists(p)]
        assert not missing, "not installed:\n  " + "\n  ".join(missing)
        assert os.access(mbgw, os.X_OK)
        for f in shipped:
            assert filecmp.cmp(os.path.join(conf_src, f), S(E["MBGW_CONFDIR"], f), shallow=False), f

        # The unit names the real paths (never the staging root).
        with open(S(E["MBGW_UNITDIR"], "mbgw.service")) as f:
            unit = f.read()
        assert "ExecStart=%s run -c %s\n" % (os.path.join(E["MBGW_SBINDIR"], "mbgw"), E["MBGW_CONFDIR"]) in unit, unit
        assert stage not in unit

        # 2. The installed binary.
        out = sh([mbgw, "--version"]).stdout
        assert re.match(r"mbgw \d+\.\d+\.\d+ \(plugin ABI 1\.\d+; OpenSSL \S+, zlib \S+, cJSON \S+\)\n$", out), out
        out = sh([mbgw, "--help"]).stdout
        assert "(default DIR: %s)" % S(E["MBGW_CONFDIR"]) in out, out

        tmpdir = os.path.join(tmp, "tmp")
        os.mkdir(tmpdir)
        env = dict(os.environ, TMPDIR=tmpdir)
        # No flag: the installed configuration, with the installed plugins.
        out = sh([mbgw, "check"], env=env).stdout
        assert out.startswith(S(E["MBGW_CONFDIR"]) + ": configuration OK (") and \
            ("plugins from %s)" % S(E["MBGW_PLUGINDIR"])) in out, out

        # 3. Serve the installed default configuration, only moved to a free
        #    loopback port, and talk to it.
        port = free_port()
        set_listen(S(E["MBGW_CONFDIR"], "00-server.conf"), port)
        with Installed([mbgw], port, os.path.join(tmp, "mbgw.log"), env=env) as srv:
            talk(port)
            cat = S(E["MBGW_BINDIR"], "mbgw-cat")
            if os.path.exists(os.path.join(SOURCE_DIR, "sdk", "client", "CMakeLists.txt")):
                # The installed command-line client, on the installed library.
                r = sh([cat, "-q", "-x", "hello from mbgw-cat", "ws://127.0.0.1:%d/ws" % port], timeout=60)
                assert r.stdout == "hello from mbgw-cat\n", (r.stdout, r.stderr)

            # 4. The template, built out of tree against the installed SDK
            #    only, then installed as a plugin and hot-loaded (SIGHUP).
            so, so_pc, pc_plugindir = build_template(
                S(E["MBGW_DATADIR"], "mbgw", "plugin-template"), tmp, S(E["MBGW_PREFIX"]),
                [S(E["MBGW_LIBDIR"], "pkgconfig")])
            assert os.path.realpath(pc_plugindir) == os.path.realpath(S(E["MBGW_PLUGINDIR"])), pc_plugindir
            shutil.copy(so, S(E["MBGW_PLUGINDIR"], "hello.so"))
            with open(S(E["MBGW_CONFDIR"], "30-hello.conf"), "w") as f:
                f.write(HELLO_ROUTE)
            srv.reload("reload done: 3 routes")
            talk(port, hello=True)

            # The pkg-config build of the same plugin loads too.
            shutil.copy(so_pc, S(E["MBGW_PLUGINDIR"], "hello.so"))
            srv.reload("reload done: 3 routes")
            talk(port, hello=True)
        assert not private_copy_dirs(tmpdir), "plugin copies left behind: %s" % private_copy_dirs(tmpdir)


if __name__ == "__main__":
    run_tests([test_install_and_run])
