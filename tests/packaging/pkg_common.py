"""Helpers shared by the packaging tests: run an INSTALLED mbgw (from a
staging prefix or an unpacked .deb) on a free loopback port, talk to it
with Debian's python3-websockets, and build the shipped plugin template
against an installed SDK.

Every server is stopped (SIGTERM, then SIGKILL after a bound) and every
client call has a timeout, so no test can hang.
"""
import asyncio
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback

import websockets  # Debian python3-websockets; a missing module fails the test

SKIP = 77  # CTest SKIP_RETURN_CODE


def sh(cmd, env=None, cwd=None, timeout=300, ok=True):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    if ok and r.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    return r


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def set_listen(conf_file, port):
    """Points every `listen =` line of an installed server configuration
    at 127.0.0.1:PORT (once): the shipped default listens on all
    addresses of port 8080, which a test must not take."""
    with open(conf_file) as f:
        lines = f.read().splitlines(True)
    out, done = [], False
    for line in lines:
        if re.match(r"\s*listen\s*=", line):
            if not done:
                out.append("listen = 127.0.0.1:%d\n" % port)
                done = True
            continue
        out.append(line)
    assert done, "no listen line in %s" % conf_file
    with open(conf_file, "w") as f:
        f.writelines(out)


class Installed:
    """An installed mbgw run as `argv` (no -c: the point is that it finds
    its own configuration and plugins). Context manager."""

    def __init__(self, argv, port, logpath, env=None, preexec=None):
        self.argv, self.port, self.logpath = argv, port, logpath
        self.env, self.preexec = env, preexec
        self.proc = None

    def __enter__(self):
        self.log = open(self.logpath, "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=self.env, preexec_fn=self.preexec)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("installed mbgw exited at start-up (%s):\n%s"
                                     % (self.proc.returncode, self.logtext()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("installed mbgw did not listen on %d:\n%s" % (self.port, self.logtext()))

    def logtext(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, needle, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.logtext():
                return True
            time.sleep(0.05)
        return False

    def reload(self, needle):
        """SIGHUP (what `systemctl reload mbgw` sends); waits for `needle`
        in the log."""
        before = self.logtext()
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if needle in self.logtext()[len(before):]:
                return
            time.sleep(0.05)
        raise AssertionError("no %r after SIGHUP:\n%s" % (needle, self.logtext()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("installed mbgw did not stop within 20 s")
        return self.proc.returncode

    def __exit__(self, exc_type, exc, tb):
        try:
            status = self.stop()
            if exc_type is None:
                assert status == 0, "installed mbgw exited with %s:\n%s" % (status, self.logtext())
                for m in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
                    assert m not in self.logtext(), "sanitizer report:\n" + self.logtext()
            else:
                sys.stderr.write("---- installed mbgw log ----\n%s\n----\n" % self.logtext()[-6000:])
        finally:
            self.log.close()


def talk(port, hello=False):
    """A real client against the shipped routes: echo on /ws (text and
    binary), chat on /chat (subprotocol mbgw.chat.v1); with hello=True also
    the template plugin on /hello."""

    async def run():
        base = "ws://127.0.0.1:%d" % port
        async with websockets.connect(base + "/ws", open_timeout=10, close_timeout=5) as ws:
            await ws.send("hello, installed mbgw")
            got = await asyncio.wait_for(ws.recv(), 10)
            assert got == "hello, installed mbgw", got
            await ws.send(b"\x00\x01\xfe\xff")
            got = await asyncio.wait_for(ws.recv(), 10)
            assert got == b"\x00\x01\xfe\xff", got
        async with websockets.connect(base + "/chat", subprotocols=["mbgw.chat.v1"],
                                      open_timeout=10, close_timeout=5) as ws:
            assert ws.subprotocol == "mbgw.chat.v1", ws.subprotocol
            await ws.send('chat.join id=1\n{"room":"lobby","nick":"ada"}')
            got = await asyncio.wait_for(ws.recv(), 10)
            assert got.startswith("chat.joined id=1\n") and '"ada"' in got, got
            await ws.send("chat.send id=2\n{")
            got = await asyncio.wait_for(ws.recv(), 10)
            assert got.startswith("error") and "invalid_json" in got, got
        if hello:
            async with websockets.connect(base + "/hello", open_timeout=10, close_timeout=5) as ws:
                await ws.send('hello id=7\n{"name":"Ada"}')
                got = await asyncio.wait_for(ws.recv(), 10)
                assert got.startswith("hello.reply id=7\n") and "Welcome, Ada!" in got, got

    asyncio.run(asyncio.wait_for(run(), 60))


def build_template(template_dir, workdir, prefix_path, pkg_config_dirs):
    """Builds the installed plugin template out of tree, against the
    installed SDK only: once with CMake (find_package(mbgw) from
    prefix_path), once with gcc and pkg-config. Returns the two .so paths."""
    src = os.path.join(workdir, "hello-src")
    shutil.copytree(template_dir, src)
    bld = os.path.join(workdir, "hello-build")
    # CMAKE_FIND_USE_... off: only the installed SDK may satisfy find_package.
    sh(["cmake", "-S", src, "-B", bld, "-DCMAKE_PREFIX_PATH=" + prefix_path,
        "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF", "-DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF"])
    sh(["cmake", "--build", bld])
    so1 = os.path.join(bld, "hello.so")
    assert os.path.exists(so1), "template build made no hello.so"
    exported = sh(["nm", "-D", "--defined-only", so1]).stdout
    assert "mbgw_plugin_v1" in exported, exported

    env = dict(os.environ, PKG_CONFIG_PATH=":".join(pkg_config_dirs), PKG_CONFIG_LIBDIR="")
    flags = sh(["pkg-config", "--cflags", "--libs", "mbgw"], env=env).stdout.split()
    so2 = os.path.join(workdir, "hello-pc.so")
    sh(["gcc", "-std=c17", "-O2", "-Wall", "-Werror", "-o", so2, os.path.join(src, "hello.c")] + flags)
    plugindir = sh(["pkg-config", "--variable=plugindir", "mbgw"], env=env).stdout.strip()
    return so1, so2, plugindir


HELLO_ROUTE = """# added by the packaging test
[route hello]
path = /hello
plugin = hello
settings = {"greeting": "Welcome"}
"""


def private_copy_dirs(tmpdir):
    return glob.glob(os.path.join(tmpdir, "mbgw-plugins.*"))


def run_tests(tests):
    """Runs each test; prints one line per test and a summary. A test that
    raises Skip is reported as skipped; exit 77 when every test skipped."""
    passed = failed = skipped = 0
    for t in tests:
        try:
            t()
            print("PASS %s" % t.__name__)
            passed += 1
        except Skip as e:
            print("SKIP %s: %s" % (t.__name__, e))
            skipped += 1
        except Exception:
            print("FAIL %s" % t.__name__)
            traceback.print_exc()
            failed += 1
        sys.stdout.flush()
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    if failed:
        sys.exit(1)
    if skipped and not passed:
        sys.exit(SKIP)


class Skip(Exception):
    pass
