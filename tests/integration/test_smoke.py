"""Smoke test: the server starts, upgrades, echoes and shuts down cleanly."""
from mbgw_harness import Server, Client, OP_TEXT, OP_BINARY, OP_CLOSE, close_payload, run_tests
import signal


def test_echo_text_and_binary():
    with Server() as s:
        c = Client(s.port)
        assert c.status == 101, c.status
        c.send_frame(OP_TEXT, "hello")
        assert c.recv_message() == (OP_TEXT, b"hello")
        c.send_frame(OP_BINARY, b"\x00\xff" * 100)
        assert c.recv_message() == (OP_BINARY, b"\x00\xff" * 100)
        c.send_frame(OP_CLOSE, close_payload(1000))
        assert c.expect_close() == (1000, b"")
        c.expect_eof()


def test_sigterm_exits_zero_and_closes_clients_with_1001():
    s = Server()
    s.start()
    try:
        c = Client(s.port)
        c.send_frame(OP_TEXT, "x")
        assert c.recv_message() == (OP_TEXT, b"x")
        s.proc.send_signal(signal.SIGTERM)
        code, _ = c.expect_close()
        assert code == 1001, code
        c.send_frame(OP_CLOSE, close_payload(1001))
        c.expect_eof()
        assert s.proc.wait(timeout=10) == 0
        assert "SIGTERM received" in s.logtext()
        assert not s.problems(s.proc.returncode), s.problems(s.proc.returncode)
    finally:
        s.stop()
        s.log.close()
        s.dir.cleanup()


if __name__ == "__main__":
    run_tests([test_echo_text_and_binary, test_sigterm_exits_zero_and_closes_clients_with_1001])
