"""The closing handshake (RFC 6455 §5.5.1, §7; the behaviours of Autobahn
case 7): close payloads and codes, data after a close, the server closing
TCP first without a reset, and the close timeout when a peer stays
silent."""
import signal
import socket
import struct
import time

from mbgw_harness import (Server, Client, OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING,
                          close_payload, frame, run_tests)

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
               3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


def test_close_without_payload():
    """Autobahn 7.3.1: answered with an empty close (or 1000)."""
    with Server() as s, Client(s.port) as c:
        c.send_frame(OP_CLOSE)
        fin, rsv, op, payload = c.recv_frame()
        assert op == OP_CLOSE and payload in (b"", close_payload(1000)), (op, payload)
        c.expect_eof()


def test_close_1000_with_reason():
    """Autobahn 7.3.3-7.3.5, with the longest allowed reason (123 bytes)."""
    with Server() as s:
        for reason in (b"", b"Hello World!", "Ünïcödé reason ✓".encode(), b"*" * 123):
            with Client(s.port) as c:
                c.send_frame(OP_CLOSE, close_payload(1000, reason))
                fin, rsv, op, payload = c.recv_frame()
                assert (fin, rsv, op) == (True, 0, OP_CLOSE)
                assert struct.unpack("!H", payload[:2])[0] == 1000, payload
                payload[2:].decode("utf-8")
                c.expect_eof()


def test_valid_codes_echoed():
    """Autobahn 7.7.x."""
    with Server() as s:
        for code in VALID_CODES:
            with Client(s.port) as c:
                c.send_frame(OP_CLOSE, close_payload(code))
                fin, rsv, op, payload = c.recv_frame()
                assert op == OP_CLOSE, op
                got = struct.unpack("!H", payload[:2])[0]
                assert got == code, (code, got)
                c.expect_eof()


def test_invalid_codes_are_1002():
    """Autobahn 7.9.x (and 5000, 65535)."""
    with Server() as s:
        for code in INVALID_CODES:
            with Client(s.port) as c:
                c.send_frame(OP_CLOSE, close_payload(code))
                c.fail_expected(1002)
            assert s.wait_log("with 1002: Invalid close code %d" % code), code


def test_one_byte_close_payload_is_1002():
    """Autobahn 7.3.2."""
    with Server() as s, Client(s.port) as c:
        c.send_frame(OP_CLOSE, b"\x03")
        c.fail_expected(1002)
        assert s.wait_log("with 1002: Close frame with a 1-byte payload")


def test_invalid_utf8_reason_is_1007():
    """Autobahn 7.5.1."""
    with Server() as s:
        for reason in (b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
                       b"\xff", b"ok\xc0\xaf", b"truncated \xe2\x82"):
            with Client(s.port) as c:
                c.send_frame(OP_CLOSE, close_payload(1000, reason))
                c.fail_expected(1007)
        assert s.count_log("with 1007: Close reason is not valid UTF-8") == 4


def test_data_after_close_is_ignored():
    """Autobahn 7.1.2-7.1.5: a second close, a ping, a text and a
    continuation sent after our close get no answer."""
    with Server() as s:
        tails = [frame(OP_CLOSE, close_payload(1000)), frame(OP_PING, "ping"),
                 frame(OP_TEXT, "text"), frame(OP_CONT, "cont")]
        for tail in tails:
            with Client(s.port) as c:
                c.send(frame(OP_CLOSE, close_payload(1000)) + tail)
                assert c.recv_frame() == (True, 0, OP_CLOSE, close_payload(1000))
                c.expect_eof()
                assert c.buf == b"", "data after the close frame: %r" % c.buf
        # The same with the trailing frames in a later write.
        with Client(s.port) as c:
            c.send_frame(OP_CLOSE, close_payload(1000))
            assert c.recv_frame() == (True, 0, OP_CLOSE, close_payload(1000))
            try:
                c.send(frame(OP_PING, "late") + frame(OP_TEXT, "late"))
            except OSError:
                pass
            c.expect_eof()
            assert c.buf == b"", c.buf


def test_echo_then_close():
    """Autobahn 7.1.1 and 7.1.6: messages before the close are all echoed,
    in order, before the close answer (and a ping after it is not)."""
    with Server() as s, Client(s.port) as c:
        big = b"BAsd7&jh23" * (256 * 1024 // 10)
        c.send(frame(OP_TEXT, big) + frame(OP_TEXT, "Hello World!")
               + frame(OP_CLOSE, close_payload(1000)) + frame(OP_PING))
        assert c.recv_message() == (OP_TEXT, big)
        assert c.recv_message() == (OP_TEXT, b"Hello World!")
        assert c.recv_frame() == (True, 0, OP_CLOSE, close_payload(1000))
        c.expect_eof()
        assert c.buf == b""


def test_server_closes_tcp_first_without_reset():
    """After the close handshake the server sends FIN first (§7.1.1) and
    never a reset, even when the client keeps its socket open or sends
    more bytes."""
    with Server() as s:
        for i in range(10):
            c = Client(s.port)
            c.send_frame(OP_TEXT, "x" * i)
            c.send_frame(OP_CLOSE, close_payload(1000))
            assert c.recv_message() == (OP_TEXT, b"x" * i)
            assert c.recv_frame()[2] == OP_CLOSE
            c.expect_eof(timeout=3)   # we have not closed our side


def test_close_timeout_after_protocol_error():
    """The server fails the connection (1002) and the client goes silent
    without answering or closing: the server drops the connection after
    close_timeout instead of keeping it forever."""
    with Server(server_extra="close_timeout = 1s\n") as s:
        c = Client(s.port)
        c.send_frame(7)
        c.expect_close_now(1002)
        # FIN follows the close frame at once ...
        c.expect_eof(keep_open=True)
        # ... and the server forgets the connection after close_timeout
        # although our socket stays open.
        assert s.wait_log("connection dropped: close timeout", timeout=5), s.logtext()[-1000:]
        c.close()


def test_close_timeout_after_server_initiated_close():
    """SIGTERM closes with 1001; a client that never answers is dropped
    after close_timeout (1 s) although drain_timeout is 30 s."""
    s = Server(server_extra="close_timeout = 1s\ndrain_timeout = 30s\n")
    with s:
        silent = Client(s.port)
        polite = Client(s.port)
        silent.send_frame(OP_TEXT, "a")
        polite.send_frame(OP_TEXT, "b")
        assert silent.recv_message() == (OP_TEXT, b"a")
        assert polite.recv_message() == (OP_TEXT, b"b")
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        assert s.wait_log("SIGTERM received: closing 2 connections"), s.logtext()[-500:]
        assert polite.expect_close()[0] == 1001
        polite.send_frame(OP_CLOSE, close_payload(1001))
        polite.expect_eof(timeout=3)
        assert silent.expect_close()[0] == 1001
        silent.expect_eof(timeout=5)
        assert s.proc.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 10, "server waited for the drain timeout"


def test_drain_timeout_bounds_shutdown():
    """With a long close_timeout, drain_timeout (1 s) bounds the shutdown:
    silent clients are dropped and the server exits 0."""
    s = Server(server_extra="close_timeout = 60s\ndrain_timeout = 1s\n")
    with s:
        clients = [Client(s.port) for _ in range(3)]
        for c in clients:
            c.send_frame(OP_TEXT, "x")
            assert c.recv_message() == (OP_TEXT, b"x")
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 10
        for c in clients:
            assert c.expect_close()[0] == 1001
            c.expect_eof(timeout=5)


def test_close_handshake_completes_when_client_answers():
    """A client that answers the server's close is closed at once (the
    close timeout is not waited for)."""
    with Server(server_extra="close_timeout = 20s\n") as s:
        c = Client(s.port)
        c.send_frame(OP_TEXT, "bad \xff".encode("latin-1"))
        c.expect_close_now(1007)
        c.send_frame(OP_CLOSE, close_payload(1007))
        c.expect_eof(timeout=3)


def test_closing_state_still_answers_close_but_not_data():
    """After a server-initiated close (SIGTERM, 1001) the client's pending
    messages are not echoed and no pong is sent, but its close completes
    the handshake."""
    s = Server(server_extra="close_timeout = 5s\ndrain_timeout = 5s\n")
    with s:
        c = Client(s.port)
        c.send_frame(OP_TEXT, "hello")
        assert c.recv_message() == (OP_TEXT, b"hello")
        s.proc.send_signal(signal.SIGTERM)
        assert c.recv_frame()[2] == OP_CLOSE
        c.send(frame(OP_TEXT, "ignored") + frame(OP_PING, "ignored")
               + frame(OP_CLOSE, close_payload(1000)))
        c.expect_eof(timeout=3)
        assert c.buf == b"", c.buf
        assert s.proc.wait(timeout=10) == 0


if __name__ == "__main__":
    run_tests([
        test_close_without_payload,
        test_close_1000_with_reason,
        test_valid_codes_echoed,
        test_invalid_codes_are_1002,
        test_one_byte_close_payload_is_1002,
        test_invalid_utf8_reason_is_1007,
        test_data_after_close_is_ignored,
        test_echo_then_close,
        test_server_closes_tcp_first_without_reset,
        test_close_timeout_after_protocol_error,
        test_close_timeout_after_server_initiated_close,
        test_drain_timeout_bounds_shutdown,
        test_close_handshake_completes_when_client_answers,
        test_closing_state_still_answers_close_but_not_data,
    ])
