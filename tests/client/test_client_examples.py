"""The client examples of docs/client.md run against the real mbgw, and
libmbgw-client as installed: header, shared library, CMake package
(mbgw::client) and pkg-config file (mbgw-client), used by a program built
out of tree from the installed files only."""
import os
import shutil
import subprocess
import tempfile

from mbgw_harness import Server, run_tests

EXAMPLES = os.environ.get("MBGW_EXAMPLES_DIR", "build/examples")
BUILD_DIR = os.environ.get("MBGW_BUILD_DIR", "build")
SOURCE_DIR = os.environ["MBGW_SOURCE_DIR"]
# A sanitizer build installs an instrumented library: programs linking it
# need the same runtime.
SAN = ["-fsanitize=address,undefined"] if os.environ.get("MBGW_SANITIZE") in ("ON", "1", "TRUE") else []


def run(cmd, timeout=60, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    return p.returncode, p.stdout, p.stderr


def test_blocking_example():
    with Server() as s:
        rc, out, err = run([os.path.join(EXAMPLES, "client_blocking"), s.url()])
        assert rc == 0, (rc, out, err)
        assert out == "received text message: hello\nreply type ping, payload {\"n\":1}\n", out
        rc, out, err = run([os.path.join(EXAMPLES, "client_blocking"), s.url("/missing")])
        assert rc == 1 and "server answered 404" in err, (rc, out, err)


def test_embedded_example():
    with Server() as s:
        rc, out, err = run([os.path.join(EXAMPLES, "client_embedded"), s.url()])
        assert rc == 0, (rc, out, err)
        lines = out.splitlines()
        assert lines[0] == "open (connection 1)", out
        assert lines[1:6] == ["message %d: tick %d" % (i, i) for i in range(1, 6)], out
        assert lines[6] == "disconnected (1000 )", out


def sh(cmd, **kw):
    rc, out, err = run(cmd, timeout=300, **kw)
    assert rc == 0, "%s failed:\n%s\n%s" % (" ".join(cmd), out, err)
    return out


def test_installed_library():
    with tempfile.TemporaryDirectory(prefix="mbgw-client-sdk-") as tmp:
        prefix = os.path.join(tmp, "prefix")
        sh(["cmake", "--install", BUILD_DIR, "--prefix", prefix])
        assert os.path.exists(os.path.join(prefix, "include", "mbgw", "client.h"))
        libs = [os.path.join(r, f) for r, _, fs in os.walk(prefix) for f in fs if f.startswith("libmbgw-client.so")]
        assert libs, "libmbgw-client.so not installed"
        exported = sh(["nm", "-D", "--defined-only", [l for l in libs if not os.path.islink(l)][0]])
        syms = [l.split()[-1] for l in exported.splitlines() if " T " in l]
        assert syms and all(x.startswith("mbgw_client_") for x in syms), syms
        assert "buf_append" not in exported and "ws_deflate_init" not in exported
        assert os.path.exists(os.path.join(prefix, "bin", "mbgw-cat"))
        # 1. CMake: find_package(mbgw) and mbgw::client.
        src = os.path.join(tmp, "app")
        os.mkdir(src)
        shutil.copy(os.path.join(SOURCE_DIR, "sdk", "client", "examples", "client_blocking.c"), src)
        with open(os.path.join(src, "CMakeLists.txt"), "w") as f:
            f.write("cmake_minimum_required(VERSION 3.20)\nproject(app C)\n"
                    "find_package(mbgw 1.0 REQUIRED)\n"
                    "add_executable(app client_blocking.c)\n"
                    "target_link_libraries(app PRIVATE mbgw::client)\n")
        bld = os.path.join(tmp, "app-build")
        sh(["cmake", "-S", src, "-B", bld, "-DCMAKE_PREFIX_PATH=" + prefix, "-DCMAKE_C_FLAGS=" + " ".join(SAN)])
        sh(["cmake", "--build", bld])
        # 2. pkg-config and plain gcc.
        pc = [os.path.dirname(p) for p in (os.path.join(r, f) for r, _, fs in os.walk(prefix) for f in fs)
              if p.endswith("mbgw-client.pc")]
        assert pc, "mbgw-client.pc not installed"
        env = dict(os.environ, PKG_CONFIG_PATH=pc[0])
        flags = sh(["pkg-config", "--cflags", "--libs", "mbgw-client"], env=env).split()
        app2 = os.path.join(tmp, "app2")
        sh(["gcc", "-std=c17", "-Wall", "-Werror", "-o", app2,
            os.path.join(src, "client_blocking.c")] + flags + SAN)
        libdir = os.path.dirname([l for l in libs if not os.path.islink(l)][0])
        with Server() as s:
            for app, env in ((os.path.join(bld, "app"), None),  # CMake sets the RUNPATH
                             (app2, dict(os.environ, LD_LIBRARY_PATH=libdir))):
                rc, out, err = run([app, s.url()], env=env)
                assert rc == 0 and "received text message: hello" in out, (app, rc, out, err)


if __name__ == "__main__":
    run_tests([test_blocking_example, test_embedded_example, test_installed_library])
