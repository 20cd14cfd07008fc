"""The blocking API of libmbgw-client and its error paths
(tests/client/client_api_check.c), against the real mbgw, a server that
never answers, a server that appears late, and a closed port."""
import os
import subprocess
import threading
import time

from mbgw_harness import Server, free_port, run_tests
from client_util import CLEAN_ENV, DeafServer, check_sanitizer

CHECK = os.environ.get("MBGW_CLIENT_API_CHECK", "build/tests/client/client_api_check")


def scenario(name, url, timeout=30):
    p = subprocess.run([CHECK, name, url], capture_output=True, text=True, timeout=timeout, env=CLEAN_ENV)
    check_sanitizer(p.stderr, "client_api_check")
    assert p.returncode == 0, "%s failed (%d):\n%s\n%s" % (name, p.returncode, p.stdout, p.stderr)
    assert "FAIL" not in p.stdout
    return p.stdout


def test_blocking_api_on_echo():
    with Server() as s:
        out = scenario("echo", s.url())
        assert out.count("ok ") >= 30, out


def test_timeouts_on_a_deaf_server():
    with DeafServer() as d:
        scenario("deaf", "ws://127.0.0.1:%d/" % d.port)


def test_open_waits_for_a_late_server():
    s = Server()
    t = threading.Timer(0.7, s.start)
    t.start()
    try:
        out = scenario("late", s.url())
        assert "opened after" in out, out
    finally:
        t.join()
        s.__exit__(None, None, None)


def test_resolve_by_name():
    with Server() as s:
        out = scenario("resolve", "ws://localhost:%d/ws" % s.port)
        assert "ok freed during lookups" in out, out


def test_recv_queue_backpressure():
    with Server() as s:
        out = scenario("flood", s.url(), timeout=60)
        assert "none lost" in out, out


def test_refused():
    scenario("refused", "ws://127.0.0.1:%d/" % free_port())


if __name__ == "__main__":
    run_tests([test_blocking_api_on_echo, test_timeouts_on_a_deaf_server, test_open_waits_for_a_late_server,
               test_resolve_by_name, test_recv_queue_backpressure, test_refused])
