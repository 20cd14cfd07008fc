"""Control frames and fragmentation (RFC 6455 §5.4, §5.5; the behaviours
of Autobahn cases 2 and 5): ping/pong payloads and limits, unsolicited
pongs, pings between fragments, fragmented messages of every shape, and
the continuation rules (1002)."""
import os
import time

from mbgw_harness import (Server, Client, OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING,
                          OP_PONG, close_payload, frame, run_tests)


def test_ping_payloads_answered_with_same_payload():
    """Autobahn 2.1-2.4: empty, text, binary and 125-byte pings."""
    with Server() as s, Client(s.port) as c:
        for payload in (b"", b"Hello, world!", bytes([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff]),
                        b"\xfe" * 125, os.urandom(125)):
            c.send_frame(OP_PING, payload)
            assert c.recv_frame() == (True, 0, OP_PONG, payload), payload


def test_ping_125_one_byte_at_a_time():
    """Autobahn 2.6."""
    with Server() as s, Client(s.port) as c:
        payload = os.urandom(125)
        c.send_chunks(frame(OP_PING, payload), 1)
        assert c.recv_frame() == (True, 0, OP_PONG, payload)


def test_ping_126_is_1002():
    """Autobahn 2.5: control frames carry at most 125 bytes."""
    with Server() as s:
        with Client(s.port) as c:
            c.send_frame(OP_PING, b"\xfe" * 126)
            c.fail_expected(1002)
        with Client(s.port) as c:
            # Refused from the header alone, before the payload arrives.
            c.send(frame(OP_PING, b"", length=1000)[:8])
            c.fail_expected(1002)
        assert s.wait_log("Control frame payload exceeds 125 bytes")


def test_pong_126_and_close_126_are_1002():
    with Server() as s:
        with Client(s.port) as c:
            c.send_frame(OP_PONG, b"x" * 126)
            c.fail_expected(1002)
        with Client(s.port) as c:
            # Autobahn 7.3.6: close frame with a 126-byte payload.
            c.send_frame(OP_CLOSE, close_payload(1000, b"*" * 124))
            c.fail_expected(1002)


def test_unsolicited_pongs_ignored():
    """Autobahn 2.7-2.9: a pong nobody asked for produces nothing; the next
    frame we get is the answer to what follows it."""
    with Server() as s, Client(s.port) as c:
        c.send_frame(OP_PONG)
        c.send_frame(OP_PONG, "unsolicited pong payload")
        c.send_frame(OP_PING, "ping payload")
        assert c.recv_frame() == (True, 0, OP_PONG, b"ping payload")
        c.send_frame(OP_PONG, os.urandom(125))
        c.send_frame(OP_TEXT, "next")
        assert c.recv_frame() == (True, 0, OP_TEXT, b"next")


def test_ten_pings_ten_pongs():
    """Autobahn 2.10 and 2.11 (also one byte at a time)."""
    with Server() as s, Client(s.port) as c:
        payloads = [b"payload-%d" % i for i in range(10)]
        c.send(b"".join(frame(OP_PING, p) for p in payloads))
        for p in payloads:
            assert c.recv_frame() == (True, 0, OP_PONG, p)
        c.send_chunks(b"".join(frame(OP_PING, p) for p in payloads), 1)
        for p in payloads:
            assert c.recv_frame() == (True, 0, OP_PONG, p)


def test_fragmented_ping_and_pong_are_1002():
    """Autobahn 5.1, 5.2: control frames must not be fragmented."""
    with Server() as s:
        for op in (OP_PING, OP_PONG, OP_CLOSE):
            with Client(s.port) as c:
                c.send(frame(op, "frag", fin=False) + frame(OP_CONT, "ment"))
                c.fail_expected(1002)
        assert s.count_log("with 1002: Fragmented control frame") == 3


def test_fragmented_messages():
    """Autobahn 5.3-5.5: two fragments, written whole, in chops, byte by byte."""
    with Server() as s, Client(s.port) as c:
        data = frame(OP_TEXT, "fragment1", fin=False) + frame(OP_CONT, "fragment2")
        for chop in (len(data), 3, 1):
            c.send_chunks(data, chop)
            assert c.recv_message() == (OP_TEXT, b"fragment1fragment2"), chop


def test_many_fragments_and_empty_fragments():
    with Server() as s, Client(s.port) as c:
        # 1000 one-byte fragments.
        data = frame(OP_BINARY, b"\x00", fin=False)
        data += b"".join(frame(OP_CONT, bytes([i % 256]), fin=False) for i in range(1, 999))
        data += frame(OP_CONT, b"\xff")
        c.send(data)
        want = b"\x00" + bytes(i % 256 for i in range(1, 999)) + b"\xff"
        assert c.recv_message() == (OP_BINARY, want)
        # Autobahn 6.1.2/6.1.3: empty fragments, alone and around a payload.
        c.send(frame(OP_TEXT, "", fin=False) + frame(OP_CONT, "", fin=False) + frame(OP_CONT, ""))
        assert c.recv_message() == (OP_TEXT, b"")
        c.send(frame(OP_TEXT, "", fin=False) + frame(OP_CONT, "middle", fin=False) + frame(OP_CONT, ""))
        assert c.recv_message() == (OP_TEXT, b"middle")
        c.send(frame(OP_BINARY, "", fin=False) + frame(OP_CONT, ""))
        assert c.recv_message() == (OP_BINARY, b"")
        # Fragments of every length encoding.
        parts = [os.urandom(n) for n in (125, 126, 65535, 65536, 0, 1)]
        data = frame(OP_BINARY, parts[0], fin=False)
        data += b"".join(frame(OP_CONT, p, fin=False) for p in parts[1:-1])
        data += frame(OP_CONT, parts[-1])
        c.send(data)
        assert c.recv_message() == (OP_BINARY, b"".join(parts))


def test_ping_between_fragments_answered_first():
    """Autobahn 5.6-5.8: the pong comes before the (later completed) message."""
    with Server() as s, Client(s.port) as c:
        data = (frame(OP_TEXT, "fragment1", fin=False) + frame(OP_PING, "ping payload")
                + frame(OP_CONT, "fragment2"))
        for chop in (len(data), 5, 1):
            c.send_chunks(data, chop)
            assert c.recv_frame() == (True, 0, OP_PONG, b"ping payload"), chop
            assert c.recv_message() == (OP_TEXT, b"fragment1fragment2"), chop


def test_ping_answered_while_a_message_is_incomplete():
    """Autobahn 5.19/5.20: pings inside a fragmented message are answered
    at once, not when the message completes."""
    with Server() as s, Client(s.port) as c:
        c.send(frame(OP_TEXT, "fragment1", fin=False) + frame(OP_CONT, "fragment2", fin=False)
               + frame(OP_PING, "pongme 1!"))
        assert c.recv_frame() == (True, 0, OP_PONG, b"pongme 1!")
        c.send(frame(OP_CONT, "fragment3", fin=False) + frame(OP_PONG, "unsolicited")
               + frame(OP_CONT, "fragment4", fin=False) + frame(OP_PING, "pongme 2!"))
        assert c.recv_frame() == (True, 0, OP_PONG, b"pongme 2!")
        # A ping split across two writes, still inside the message.
        p = frame(OP_PING, "pongme 3!")
        c.send(p[:4])
        time.sleep(0.05)
        c.send(p[4:])
        assert c.recv_frame() == (True, 0, OP_PONG, b"pongme 3!")
        c.send(frame(OP_CONT, "fragment5"))
        assert c.recv_message() == (OP_TEXT, b"fragment1fragment2fragment3fragment4fragment5")


def test_continuation_without_start_is_1002():
    """Autobahn 5.9-5.14: a continuation (fin or not) with no message in
    progress, whole, in chops and byte by byte."""
    with Server() as s:
        for fin in (True, False):
            for chop in (None, 4, 1):
                with Client(s.port) as c:
                    data = (frame(OP_CONT, "non-continuation payload", fin=fin)
                            + frame(OP_TEXT, "Hello, world!") + frame(OP_PING, "x"))
                    c.send_chunks(data, chop or len(data))
                    c.fail_expected(1002)
        assert s.count_log("with 1002: Continuation frame without a message in progress") == 6


def test_continuation_after_a_completed_message_is_1002():
    """Autobahn 5.15-5.17: the first message completes and is echoed, the
    stray continuation that follows fails the connection."""
    with Server() as s:
        with Client(s.port) as c:
            c.send(frame(OP_TEXT, "fragment1", fin=False) + frame(OP_CONT, "fragment2")
                   + frame(OP_CONT, "fragment3", fin=False) + frame(OP_TEXT, "fragment4"))
            assert c.recv_message() == (OP_TEXT, b"fragment1fragment2")
            c.fail_expected(1002)
        with Client(s.port) as c:
            c.send(frame(OP_CONT, "fragment1") + frame(OP_TEXT, "fragment2", fin=False)
                   + frame(OP_CONT, "fragment3"))
            c.fail_expected(1002)


def test_new_message_inside_fragmented_is_1002():
    """Autobahn 5.18: a text frame where a continuation is required."""
    with Server() as s:
        for second in (frame(OP_TEXT, "fragment2"), frame(OP_TEXT, "fragment2", fin=False),
                       frame(OP_BINARY, b"fragment2")):
            with Client(s.port) as c:
                c.send_frame(OP_TEXT, "whole")
                c.send(frame(OP_TEXT, "fragment1", fin=False) + second)
                assert c.recv_message() == (OP_TEXT, b"whole")
                c.fail_expected(1002)
        assert s.count_log("with 1002: New data frame while a fragmented message is in progress") == 3


def test_close_inside_fragmented_message():
    """A close between fragments is answered; the partial message is
    dropped and nothing after the close is processed."""
    with Server() as s, Client(s.port) as c:
        c.send(frame(OP_TEXT, "frag", fin=False) + frame(OP_CLOSE, close_payload(1000))
               + frame(OP_CONT, "ment") + frame(OP_PING, "late"))
        assert c.recv_frame() == (True, 0, OP_CLOSE, close_payload(1000))
        c.expect_eof()


if __name__ == "__main__":
    run_tests([
        test_ping_payloads_answered_with_same_payload,
        test_ping_125_one_byte_at_a_time,
        test_ping_126_is_1002,
        test_pong_126_and_close_126_are_1002,
        test_unsolicited_pongs_ignored,
        test_ten_pings_ten_pongs,
        test_fragmented_ping_and_pong_are_1002,
        test_fragmented_messages,
        test_many_fragments_and_empty_fragments,
        test_ping_between_fragments_answered_first,
        test_ping_answered_while_a_message_is_incomplete,
        test_continuation_without_start_is_1002,
        test_continuation_after_a_completed_message_is_1002,
        test_new_message_inside_fragmented_is_1002,
        test_close_inside_fragmented_message,
    ])
