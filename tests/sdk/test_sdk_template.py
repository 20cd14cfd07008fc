"""The SDK as a plugin author gets it: install mbgw into a staging prefix,
build the shipped plugin template (sdk/template) out of tree against the
INSTALLED SDK only — once with CMake's find_package(mbgw), once with plain
gcc and pkg-config — and load both into the real server."""
import os
import shutil
import subprocess
import tempfile

from mbgw_harness import Server, Client, OP_TEXT, run_tests

BUILD_DIR = os.environ["MBGW_BUILD_DIR"]
SOURCE_DIR = os.environ["MBGW_SOURCE_DIR"]


def sh(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    assert r.returncode == 0, "%s failed:\n%s\n%s" % (" ".join(cmd), r.stdout, r.stderr)
    return r.stdout


def hello_route(plugin_path):
    return """
[route hello]
path = /hello
plugin = %s
settings = {"greeting": "Welcome"}
""" % plugin_path


def check_plugin(plugin_path):
    with Server(routes=hello_route(plugin_path)) as s:
        c = Client(s.port, path="/hello")
        assert c.status == 101, c.status
        c.send_frame(OP_TEXT, 'hello id=7\n{"name":"Ada"}')
        op, data = c.recv_message()
        assert op == OP_TEXT
        assert data == b'hello.reply id=7\n{"greeting":"Welcome, Ada!","seen":1}', data
        c.send_frame(OP_TEXT, 'bye id=8\n{}')
        op, data = c.recv_message()
        assert data.startswith(b"error id=8\n") and b"unknown_type" in data, data
        c.close()


def test_template_builds_against_installed_sdk():
    with tempfile.TemporaryDirectory(prefix="mbgw-sdk-") as tmp:
        prefix = os.path.join(tmp, "prefix")
        sh(["cmake", "--install", BUILD_DIR, "--prefix", prefix])
        inc = os.path.join(prefix, "include", "mbgw", "plugin.h")
        assert os.path.exists(inc), "SDK header not installed"
        template = os.path.join(prefix, "share", "mbgw", "plugin-template")
        assert os.path.exists(os.path.join(template, "hello.c")), "template not installed"

        # 1. CMake package, from a copy of the installed template (nothing
        #    from the source tree is on the include path).
        src = os.path.join(tmp, "hello-src")
        shutil.copytree(template, src)
        bld = os.path.join(tmp, "hello-build")
        sh(["cmake", "-S", src, "-B", bld, "-DCMAKE_PREFIX_PATH=" + prefix])
        sh(["cmake", "--build", bld])
        so = os.path.join(bld, "hello.so")
        assert os.path.exists(so)
        exported = sh(["nm", "-D", "--defined-only", so])
        assert "mbgw_plugin_v1" in exported
        assert "hello_message" not in exported, "plugin exports more than its entry symbol"
        check_plugin(so)

        # 2. pkg-config and plain gcc.
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig") + ":" +
                   os.path.join(prefix, "lib", "x86_64-linux-gnu", "pkgconfig"))
        flags = sh(["pkg-config", "--cflags", "--libs", "mbgw"], env=env).split()
        so2 = os.path.join(tmp, "hello2.so")
        sh(["gcc", "-std=c17", "-O2", "-Wall", "-Werror", "-o", so2, os.path.join(src, "hello.c")] + flags)
        check_plugin(so2)


if __name__ == "__main__":
    run_tests([test_template_builds_against_installed_sdk])
