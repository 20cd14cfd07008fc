"""Checks the Debian packages that packaging/build-deb.sh built:

  check_deb.py OUTDIR

1. File lists and control data: the server, plugins, configuration
   (conffiles), unit, man pages in `mbgw`; the SDK in `libmbgw-dev`; no
   file in both; a postinst that creates the mbgw user and enables the unit.
2. Both packages unpacked (dpkg-deb -x) into a throw-away root; from there,
   without any flag and, when run as root, as an unprivileged user (as
   mbgw.service runs it) with a private TMPDIR: `mbgw check`, then the
   server on a free loopback port, talked to with python3-websockets;
   the plugin template from libmbgw-dev built against the unpacked SDK only
   and hot-loaded with SIGHUP; when the tree has the client library, the
   packaged mbgw-cat and a client program built against the packaged
   libmbgw-client (pkg-config and CMake) talk to the server too.

Maintainer scripts are not run (that needs a whole Debian root); their
syntax is checked with `sh -n`.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pkg_common import (HELLO_ROUTE, Installed, build_template, free_port, private_copy_dirs,  # noqa: E402
                        run_tests, set_listen, sh, talk)

OUT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else None
SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOBODY = 65534


def deb(name):
    found = [p for p in glob.glob(os.path.join(OUT, "%s_*.deb" % name))]
    assert len(found) == 1, "expected one %s_*.deb in %s, found %s" % (name, OUT, found)
    return found[0]


def contents(path):
    """Paths (without the leading '.') of the files and links in a .deb."""
    out = sh(["dpkg-deb", "-c", path]).stdout
    files = set()
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0][0] in "-l":
            name = parts[5]
            files.add(name[1:] if name.startswith("./") else name)
    return files


def has_client():
    return os.path.exists(os.path.join(SOURCE_DIR, "sdk", "client", "CMakeLists.txt"))


def multiarch():
    return sh(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"]).stdout.strip()


def test_file_lists_and_control():
    ma = multiarch()
    server, dev = contents(deb("mbgw")), contents(deb("libmbgw-dev"))
    shipped = sorted(f for f in os.listdir(os.path.join(SOURCE_DIR, "conf.d")) if f.endswith(".conf"))
    want_server = {"/usr/sbin/mbgw", "/lib/systemd/system/mbgw.service",
                   "/usr/lib/%s/mbgw/plugins/echo.so" % ma, "/usr/lib/%s/mbgw/plugins/chat.so" % ma,
                   "/usr/share/man/man8/mbgw.8.gz", "/usr/share/man/man5/mbgw.conf.5.gz",
                   "/usr/share/doc/mbgw/copyright"} | {"/etc/mbgw/conf.d/" + f for f in shipped}
    want_dev = {"/usr/include/mbgw/plugin.h", "/usr/lib/%s/cmake/mbgw/mbgwConfig.cmake" % ma,
                "/usr/lib/%s/cmake/mbgw/mbgwConfigVersion.cmake" % ma,
                "/usr/lib/%s/cmake/mbgw/mbgwPlugin.cmake" % ma, "/usr/lib/%s/pkgconfig/mbgw.pc" % ma,
                "/usr/share/mbgw/plugin-template/hello.c", "/usr/share/mbgw/plugin-template/CMakeLists.txt",
                "/usr/share/man/man7/mbgw-plugin.7.gz"}
    # The client library and mbgw-cat, when the tree has them.
    client = has_client()
    if client:
        want_dev |= {"/usr/include/mbgw/client.h", "/usr/lib/%s/libmbgw-client.so" % ma,
                     "/usr/lib/%s/pkgconfig/mbgw-client.pc" % ma}
        lib, cat = contents(deb("libmbgw-client1")), contents(deb("mbgw-cat"))
        assert any(re.match(r"/usr/lib/%s/libmbgw-client\.so\.\d+$" % ma, p) for p in lib), lib
        assert {"/usr/bin/mbgw-cat", "/usr/share/man/man1/mbgw-cat.1.gz"} <= cat, cat
        assert not any(p.startswith("/usr/lib/%s/libmbgw-client" % ma) for p in server | cat)
        # No RUNPATH in packaged binaries (lintian's custom-library-search-path).
        with tempfile.TemporaryDirectory(prefix="mbgw-cat-") as tmp:
            sh(["dpkg-deb", "-x", deb("mbgw-cat"), tmp])
            dyn = sh(["readelf", "-d", os.path.join(tmp, "usr/bin/mbgw-cat")]).stdout
            assert "RUNPATH" not in dyn and "RPATH" not in dyn, dyn
    missing = sorted((want_server - server) | (want_dev - dev))
    assert not missing, "missing from the packages:\n  " + "\n  ".join(missing)
    assert not any(p.startswith(("/usr/include", "/usr/share/mbgw/plugin-template")) or p.endswith(".pc")
                   for p in server), "SDK files in the mbgw package"
    assert not any(p.startswith(("/usr/sbin", "/etc", "/lib/systemd")) for p in dev), "server files in libmbgw-dev"
    both = sorted((server & dev) - {p for p in server if p.startswith("/usr/share/lintian")})
    assert not both, "files in both packages: %s" % both

    with tempfile.TemporaryDirectory(prefix="mbgw-ctrl-") as tmp:
        sh(["dpkg-deb", "-e", deb("mbgw"), tmp])
        with open(os.path.join(tmp, "conffiles")) as f:
            conffiles = set(f.read().split())
        assert {"/etc/mbgw/conf.d/" + f for f in shipped} <= conffiles, conffiles
        with open(os.path.join(tmp, "postinst")) as f:
            postinst = f.read()
        assert "adduser --system --group" in postinst and " mbgw" in postinst, postinst
        assert "deb-systemd-helper" in postinst, "postinst does not enable the unit:\n" + postinst
        for script in ("preinst", "postinst", "prerm", "postrm"):
            p = os.path.join(tmp, script)
            if os.path.exists(p):
                sh(["sh", "-n", p])
        control = sh(["dpkg-deb", "-f", deb("mbgw"), "Depends"]).stdout
        assert "adduser" in control, control

    # The unit in the package is packaging/mbgw.service, unchanged.
    with tempfile.TemporaryDirectory(prefix="mbgw-unit-") as tmp:
        sh(["dpkg-deb", "-x", deb("mbgw"), tmp])
        with open(os.path.join(tmp, "lib/systemd/system/mbgw.service")) as a, \
                open(os.path.join(SOURCE_DIR, "packaging", "mbgw.service")) as b:
            assert a.read() == b.read(), "the packaged unit differs from packaging/mbgw.service"


CLIENT_CMAKE = """cmake_minimum_required(VERSION 3.20)
project(app C)
find_package(mbgw 1.0 REQUIRED)
add_executable(app client_blocking.c)
target_link_libraries(app PRIVATE mbgw::client)
"""


def check_client_sdk(root, ma, tmp, port):
    """A client program (sdk/client/examples/client_blocking.c) built
    against the packaged client library only, with pkg-config and with
    CMake (mbgw::client), then run against the packaged server."""
    example = os.path.join(SOURCE_DIR, "sdk", "client", "examples", "client_blocking.c")
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(root, "usr/lib", ma, "pkgconfig"), PKG_CONFIG_LIBDIR="")
    flags = sh(["pkg-config", "--cflags", "--libs", "mbgw-client"], env=env).stdout.split()
    app = os.path.join(tmp, "client-pc")
    sh(["gcc", "-std=c17", "-Wall", "-Werror", "-o", app, example] + flags)
    run_env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(root, "usr/lib", ma))
    sh([app, "ws://127.0.0.1:%d/ws" % port], env=run_env, timeout=60)

    src = os.path.join(tmp, "client-cmake")
    os.mkdir(src)
    shutil.copy(example, src)
    with open(os.path.join(src, "CMakeLists.txt"), "w") as f:
        f.write(CLIENT_CMAKE)
    bld = os.path.join(tmp, "client-cmake-build")
    sh(["cmake", "-S", src, "-B", bld, "-DCMAKE_PREFIX_PATH=" + os.path.join(root, "usr"),
        "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF"])
    sh(["cmake", "--build", bld])
    sh([os.path.join(bld, "app"), "ws://127.0.0.1:%d/ws" % port], env=run_env, timeout=60)


def unprivileged():
    """preexec_fn that drops to nobody, as User=mbgw would (root only)."""
    if os.geteuid() != 0:
        return None

    def drop():
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    return drop


def test_run_from_unpacked_root():
    ma = multiarch()
    with tempfile.TemporaryDirectory(prefix="mbgw-root-") as tmp:
        os.chmod(tmp, 0o755)
        root = os.path.join(tmp, "root")
        os.mkdir(root)
        os.chmod(root, 0o755)
        names = ["mbgw", "libmbgw-dev"] + (["libmbgw-client1", "mbgw-cat"] if has_client() else [])
        for name in names:
            sh(["dpkg-deb", "-x", deb(name), root])
        mbgw = os.path.join(root, "usr/sbin/mbgw")
        confdir = os.path.join(root, "etc/mbgw/conf.d")
        plugindir = os.path.join(root, "usr/lib/%s/mbgw/plugins" % ma)
        # A private, writable TMPDIR for the plugin copies (PrivateTmp).
        tmpdir = os.path.join(tmp, "private-tmp")
        os.mkdir(tmpdir)
        if os.geteuid() == 0:
            os.chown(tmpdir, NOBODY, NOBODY)
        env = dict(os.environ, TMPDIR=tmpdir)
        drop = unprivileged()

        out = sh([mbgw, "--version"]).stdout
        assert re.match(r"mbgw \S+ \(plugin ABI 1\.\d+; OpenSSL", out), out
        # ExecStartPre, without flags: the unpacked root's own files.
        r = subprocess.run([mbgw, "check"], capture_output=True, text=True, env=env, preexec_fn=drop,
                           timeout=60)
        assert r.returncode == 0 and r.stdout.startswith(confdir + ": configuration OK") and \
            ("plugins from %s)" % plugindir) in r.stdout, (r.stdout, r.stderr)

        port = free_port()
        set_listen(os.path.join(confdir, "00-server.conf"), port)
        log = os.path.join(tmp, "mbgw.log")
        with Installed([mbgw], port, log, env=env, preexec=drop) as srv:
            talk(port)
            if has_client():
                # The packaged command-line client, on the packaged library.
                cat_env = dict(env, LD_LIBRARY_PATH=os.path.join(root, "usr/lib", ma))
                r = sh([os.path.join(root, "usr/bin/mbgw-cat"), "-q", "-x", "hello from mbgw-cat",
                        "ws://127.0.0.1:%d/ws" % port], env=cat_env, timeout=60)
                assert r.stdout == "hello from mbgw-cat\n", (r.stdout, r.stderr)
                check_client_sdk(root, ma, tmp, port)
            so, so_pc, pc_plugindir = build_template(
                os.path.join(root, "usr/share/mbgw/plugin-template"), tmp, os.path.join(root, "usr"),
                [os.path.join(root, "usr/lib/%s/pkgconfig" % ma)])
            assert os.path.realpath(pc_plugindir) == os.path.realpath(plugindir), pc_plugindir
            shutil.copy(so, os.path.join(plugindir, "hello.so"))
            os.chmod(os.path.join(plugindir, "hello.so"), 0o644)
            with open(os.path.join(confdir, "30-hello.conf"), "w") as f:
                f.write(HELLO_ROUTE)
            os.chmod(os.path.join(confdir, "30-hello.conf"), 0o644)
            srv.reload("reload done: 3 routes")  # systemctl reload mbgw
            talk(port, hello=True)
        assert not private_copy_dirs(tmpdir), "plugin copies left behind"


if __name__ == "__main__":
    if not OUT:
        sys.exit("usage: check_deb.py OUTDIR")
    run_tests([test_file_lists_and_control, test_run_from_unpacked_root])
