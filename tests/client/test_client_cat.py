"""mbgw-cat against the real mbgw (echo, chat and the probe plugin): every
option that does not need TLS, a proxy or another server, and every exit
code. The library underneath is libmbgw-client."""
import json
import os
import pty
import select
import signal
import subprocess
import time

from mbgw_harness import MBGW_BIN, Server, run_tests, free_port6, Skip
from client_util import CAT, CLEAN_ENV, DeafServer, SilentServer, Probe, cat, kill_server, wait_stderr

PLUGIN_DIR = os.path.join(os.path.dirname(os.path.abspath(MBGW_BIN)), "test-plugins")

ROUTES = """
[route echo]
path = /ws
plugin = echo
format = raw

[route chat]
path = /chat
plugin = chat

[route sp]
path = /sp
plugin = echo
format = raw
subprotocols = chat.v2, chat.v1
require_subprotocol = yes

[route probe]
path = /probe
plugin = %s/probe.so
keep_headers = Authorization, X-Trace
settings = {"name": "p"}
""" % PLUGIN_DIR


def server(**kw):
    return Server(routes=ROUTES, **kw)


def test_echo_piped_lines():
    with server() as s:
        r = cat([s.url(), "-n", "2"], input="hello\nw\u00f6rld\n".encode())
        assert r.rc == 0, r
        assert r.out == "hello\nw\u00f6rld\n", r
        assert "connected to %s" % s.url() in r.err, r
        assert "\n< " not in r.out and "> " not in r.err, "no prompts when piped: %r" % r


def test_last_line_without_newline_and_wait():
    with server() as s:
        # No --count: keeps receiving for --wait after the input ends.
        r = cat([s.url(), "-w", "0.3"], input=b"one\ntwo")
        assert r.rc == 0 and r.out == "one\ntwo\n", r


def test_execute_leaves_after_replies():
    with server() as s:
        r = cat(["-x", "a", "-x", "b c", s.url()])
        assert r.rc == 0 and r.out == "a\nb c\n", r
        # Default --wait with -x is 5 s; it left once both replies came.
        assert r.elapsed < 4.5, r


def test_execute_missing_replies_exit_7():
    with server() as s:
        r = cat(["-x", "a", "-n", "2", "-w", "0.5", s.url()])
        assert r.rc == 7, r
        assert r.out == "a\n", r
        assert "1 of 2 expected messages" in r.err, r


def test_quiet():
    with server() as s:
        r = cat(["-q", "-x", "x", s.url()])
        assert r.rc == 0 and r.out == "x\n" and r.err == "", r


def test_binary_hex_and_base64():
    with server() as s:
        r = cat(["--binary", "-x", "AB\u00ff", s.url()])
        assert r.rc == 0 and r.out == "4142c3bf\n", r
        r = cat(["--binary", "--base64", "-x", "AB", s.url()])
        assert r.rc == 0 and r.out == "QUI=\n", r
        r = cat(["--binary", "--base64", "--hex", "-x", "A", s.url()])
        assert r.out == "41\n", r
        # Piped binary lines.
        r = cat(["-b", "-n", "1", s.url()], input=b"\x00\x01\n")
        assert r.rc == 0 and r.out == "0001\n", r


def test_json_pretty_print_chat():
    with server() as s:
        r = cat(["--json", "-x", 'chat.join id=1\n{"room":"lobby","nick":"ada"}', s.url("/chat")])
        assert r.rc == 0, r
        lines = r.out.split("\n")
        assert lines[0] == "chat.joined id=1", r
        body = json.loads("\n".join(lines[1:]))
        assert body == {"room": "lobby", "nick": "ada", "members": ["ada"]}, body
        assert len(lines) > 4, "not pretty-printed: %r" % r.out
        # Plain JSON too; non-JSON as is.
        r = cat(["--json", "-x", '{"a":[1,2]}', "-x", "not json", s.url()])
        assert json.loads(r.out.split("}\n")[0] + "}") == {"a": [1, 2]}, r
        assert r.out.endswith("not json\n"), r


def test_chat_two_clients_request_and_broadcast():
    """The library's request helper (id correlation) and a broadcast seen
    by another client."""
    with server() as s:
        with Probe(["--on-open", 'chat.join\n{"room":"r","nick":"bob"}', s.url("/chat")]) as bob:
            bob.wait("message text chat.joined")
            with Probe([s.url("/chat")]) as ada:
                ada.wait("open")
                ada.cmd('request chat.join {"room":"r","nick":"ada"}')
                _, line = ada.wait("reply")
                assert line.startswith("reply rc=0 chat.joined id=1\\n"), line
                assert '"members":["bob","ada"]' in line or '"members":["ada","bob"]' in line, line
                # chat.message goes to every member without the id: a plain send.
                ada.cmd('send chat.send\\n{"room":"r","text":"hi bob"}')
                _, line = bob.wait("message text chat.message")
                assert '"text":"hi bob"' in line and '"from":"ada"' in line, line
                # The reply to a bad request carries the id too (an error).
                ada.cmd('request chat.send {"room":"nope","text":"x"}')
                _, line = ada.wait("reply", count=2)
                assert line.startswith("reply rc=0 error id=2\\n") and "not_member" in line, line
                # The presence message for bob is not a reply: it went to on_message.
                assert not [l for _, l in ada.events("message") if "id=" in l], ada.dump()


def test_request_timeout():
    with DeafServer() as d:
        with Probe(["--request-timeout", "300", "ws://127.0.0.1:%d/" % d.port]) as p:
            p.wait("open")
            t0 = time.monotonic()
            p.cmd('request x.y {}')
            _, line = p.wait("reply", timeout=5)
            assert line == "reply rc=-6 ", line
            assert time.monotonic() - t0 >= 0.25


def test_header_option_reaches_the_plugin():
    with server() as s:
        r = cat(["-H", "Authorization: Bearer t0k3n", "-H", "X-Trace:  abc ",
                 "-x", 'attr id=1\n{"name":"header:Authorization"}',
                 "-x", 'attr id=2\n{"name":"header:X-Trace"}', s.url("/probe")])
        assert r.rc == 0, r
        replies = [l for l in r.out.split("\n") if l.startswith("{")]
        assert json.loads(replies[0])["value"] == "Bearer t0k3n", r
        assert json.loads(replies[1])["value"] == "abc", r
        # Headers the library writes itself are refused up front.
        r = cat(["-H", "Sec-WebSocket-Key: x", s.url()])
        assert r.rc == 1 and "set by the library" in r.err, r
        r = cat(["-H", "no colon", s.url()])
        assert r.rc == 1 and "Name: value" in r.err, r


def test_subprotocol():
    with server() as s:
        r = cat(["-s", "chat.v1", "-x", "x", s.url("/sp")])
        assert r.rc == 0 and "(subprotocol: chat.v1)" in r.err, r
        # Offered in preference order; the server picks by its own order.
        r = cat(["-s", "chat.v1", "-s", "chat.v2", "-x", "x", s.url("/sp")])
        assert "(subprotocol: chat.v2)" in r.err, r
        r = cat(["-s", "other", "-x", "x", s.url("/sp")])
        assert r.rc == 4, r
        assert "handshake rejected: HTTP 400" in r.err, r
        r = cat(["-x", "x", s.url("/ws")])
        assert "subprotocol" not in r.err, r


def test_compress_roundtrip():
    big = ("the quick brown fox " * 5000).encode()
    with server() as s:
        r = cat(["--compress", "-n", "2", s.url()], input=big + b"\nsmall\n")
        assert r.rc == 0, r.err
        assert "(extensions: permessage-deflate" in r.err, r.err
        assert r.out == big.decode() + "\nsmall\n"
        r = cat(["-x", "x", s.url()])
        assert "extensions" not in r.err, r


def test_max_size():
    with server() as s:
        r = cat(["--max-size", "1k", "-x", "y" * 1025, s.url()])
        assert r.rc == 5, r
        assert "1009" in r.err and "exceeds the maximum of 1024" in r.err, r
        assert r.out == "", r
        r = cat(["--max-size", "1k", "-x", "y" * 1024, s.url()])
        assert r.rc == 0 and r.out == "y" * 1024 + "\n", r
        r = cat(["--max-size", "lots", s.url()])
        assert r.rc == 1 and "--max-size" in r.err, r


def test_exit_connect_refused():
    port = free_port_closed()
    r = cat(["-x", "x", "ws://127.0.0.1:%d/ws" % port])
    assert r.rc == 2, r
    assert "connection refused" in r.err, r
    r = cat(["-x", "x", "ws://no-such-host.invalid/ws"])
    assert r.rc == 2 and "cannot resolve no-such-host.invalid" in r.err, r


def free_port_closed():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_exit_handshake_rejected():
    with server() as s:
        r = cat(["-x", "x", s.url("/nowhere")])
        assert r.rc == 4, r
        assert "handshake rejected: HTTP 404" in r.err, r


def test_exit_closed_with_error_code():
    with Server(routes=ROUTES, server_extra="max_payload = 1KiB") as s:
        r = cat(["-x", "z" * 2000, s.url()])
        assert r.rc == 6, r
        assert "closed by the server: 1009" in r.err, r


def test_exit_abnormal_when_server_dies():
    with server() as s:
        p = subprocess.Popen([CAT, s.url()], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=CLEAN_ENV)
        try:
            assert wait_stderr(p, b"connected"), "mbgw-cat did not connect"
            kill_server(s)
            out, err = p.communicate(timeout=10)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            s.start()  # so that the harness sees a server to stop cleanly
        assert p.returncode == 5, (p.returncode, err)
        assert b"connection lost" in err, err


def test_sigterm_closes_cleanly():
    with server() as s:
        p = subprocess.Popen([CAT, s.url()], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=CLEAN_ENV)
        try:
            assert wait_stderr(p, b"connected"), "mbgw-cat did not connect"
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=10)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 0, (p.returncode, err)
        assert s.wait_log("peer closed with 1000"), s.logtext()[-2000:]


def test_stops_when_output_closes():
    """mbgw-cat URL | head -1 must not keep running after head has gone."""
    with server() as s:
        lines = b"".join(b"line %d\n" % i for i in range(5000))
        t0 = time.monotonic()
        p = subprocess.run("'%s' -q -w 20 '%s' | head -1" % (CAT, s.url()), shell=True, input=lines,
                           capture_output=True, timeout=30, env=CLEAN_ENV)
        assert p.stdout == b"line 0\n", p
        assert time.monotonic() - t0 < 15, "mbgw-cat kept running after its reader went away"


def test_handshake_timeout():
    with SilentServer() as srv:
        r = cat(["--connect-timeout", "0.5", "-x", "x", "ws://127.0.0.1:%d/ws" % srv.port])
        assert r.rc == 2, r
        assert "handshake timeout" in r.err, r
        assert r.elapsed < 5, r
        assert b"GET /ws HTTP/1.1" in srv.received


def test_heartbeat_detects_deaf_server():
    with DeafServer() as d:
        r = cat(["--ping-interval", "0.3", "--pong-timeout", "0.4", "-n", "0", "-w", "30",
                 "ws://127.0.0.1:%d/" % d.port], timeout=20)
        assert r.rc == 5, r
        assert "heartbeat timeout" in r.err, r
        assert d.pings == 1, d.pings
        assert r.elapsed < 10, r


def test_heartbeat_keeps_a_live_connection():
    with server() as s:
        with Probe(["--ping", "150", "--pong", "1000", s.url()]) as p:
            p.wait("open")
            p.wait("pong", count=4, timeout=10)
            assert not p.events("disconnect"), p.dump()
        r = cat(["--ping-interval", "0.1", "-x", "x", "-n", "0", "-w", "1", s.url()])
        assert r.rc == 0 and r.out == "x\n", r


def test_fragmented_and_large_messages_with_ping():
    """The library fragments what it sends (fragment_size), mbgw
    reassembles and echoes it (fragmented again by its own fragment_size),
    and the library reassembles that; with and without compression. An
    explicit ping gets its pong."""
    n = 300000
    want = "".join(chr(ord("a") + i % 26) for i in range(n))
    with Server(routes=ROUTES, server_extra="fragment_size = 16KiB") as s:
        for extra in ([], ["--compress"]):
            with Probe(["--fragment", "1000"] + extra + [s.url()]) as p:
                p.wait("open")
                p.cmd("sendbig %d" % n)
                _, line = p.wait("message text", timeout=10)
                assert line == "message text " + want, (extra, len(line))
                p.cmd("ping")
                p.wait("pong")
                p.cmd("pending")
                _, line = p.wait("pending")
                assert line == "pending 0", line
        # A limit below the echo's size fails the connection with 1009.
        with Probe(["--max-size", "100000", s.url()]) as p:
            p.wait("open")
            p.cmd("sendbig %d" % n)
            _, line = p.wait("disconnect")
            assert line.startswith("disconnect code=1006 reconnect=0"), line
            _, line = p.wait("closed")
            assert "exceeds the maximum of 100000" in line and "closing with 1009" in line, line


def test_usage_and_help():
    r = cat(["--help"])
    assert r.rc == 0 and "Usage: mbgw-cat" in r.out and "Exit status" in r.out, r
    for opt in ("--header", "--subprotocol", "--proxy", "--ca", "--cert", "--key", "--insecure",
                "--compress", "--reconnect", "--ping-interval", "--execute", "--wait", "--binary",
                "--json", "--quiet", "--max-size"):
        assert opt in r.out, opt
    r = cat([])
    assert r.rc == 1 and "no URL" in r.err, r
    r = cat(["--bogus", "ws://x/"])
    assert r.rc == 1, r
    r = cat(["http://127.0.0.1/"])
    assert r.rc == 1 and "ws:// or wss://" in r.err, r
    r = cat(["-w", "-1", "ws://x/"])
    assert r.rc == 1, r
    r = cat(["--version"])
    assert r.rc == 0 and "libmbgw-client 1.0" in r.out, r


def test_ipv6_and_dns():
    port6 = free_port6()
    if port6 is None:
        raise Skip("no IPv6 loopback")
    with Server(routes=ROUTES, server_extra="listen = [::1]:%d" % port6) as s:
        r = cat(["-x", "six", "ws://[::1]:%d/ws" % port6])
        assert r.rc == 0 and r.out == "six\n", r
        r = cat(["-x", "name", "ws://localhost:%d/ws" % s.port])
        assert r.rc == 0 and r.out == "name\n", r


def test_interactive_terminal():
    """With a terminal: status lines, '> ' prompt, '< ' before messages,
    Ctrl-D closes cleanly."""
    with server() as s:
        master, slave = pty.openpty()
        p = subprocess.Popen([CAT, s.url()], stdin=slave, stdout=slave, stderr=slave, env=CLEAN_ENV,
                             close_fds=True)
        os.close(slave)
        got = b""

        def read_until(needle, timeout=5):
            nonlocal got
            deadline = time.monotonic() + timeout
            while needle not in got and time.monotonic() < deadline:
                if select.select([master], [], [], 0.1)[0]:
                    try:
                        got += os.read(master, 4096)
                    except OSError:
                        break
            return needle in got
        try:
            assert read_until(b"Ctrl-D quits"), got
            assert read_until(b"> "), got
            os.write(master, b"over tty\n")
            assert read_until(b"< over tty"), got
            os.write(master, b"\x04")
            p.wait(timeout=5)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            os.close(master)
        assert p.returncode == 0, (p.returncode, got)


if __name__ == "__main__":
    run_tests([test_echo_piped_lines, test_last_line_without_newline_and_wait,
               test_execute_leaves_after_replies, test_execute_missing_replies_exit_7, test_quiet,
               test_binary_hex_and_base64, test_json_pretty_print_chat,
               test_chat_two_clients_request_and_broadcast, test_request_timeout,
               test_header_option_reaches_the_plugin, test_subprotocol, test_compress_roundtrip,
               test_max_size, test_exit_connect_refused, test_exit_handshake_rejected,
               test_exit_closed_with_error_code, test_exit_abnormal_when_server_dies, test_sigterm_closes_cleanly,
               test_stops_when_output_closes,
               test_handshake_timeout, test_heartbeat_detects_deaf_server,
               test_heartbeat_keeps_a_live_connection, test_fragmented_and_large_messages_with_ping,
               test_usage_and_help, test_ipv6_and_dns,
               test_interactive_terminal])
