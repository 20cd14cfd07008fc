"""Framing (RFC 6455 §5.2; the behaviours of Autobahn cases 1, 3 and 4):
every payload length encoding in both directions, payloads that arrive in
small pieces, masking, reserved bits and reserved opcodes (1002), and the
rule that every complete message received before a protocol error is
answered before the close."""
import os
import struct
import threading
import time

from mbgw_harness import (Server, Client, OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING,
                          OP_PONG, close_payload, frame, run_tests)

LENGTHS = [0, 1, 125, 126, 127, 128, 65535, 65536]


def raw_header(c):
    """Peeks at the next server frame's raw header: (b0, b1, ext-length bytes)."""
    c._need(2)
    n = c.buf[1] & 0x7F
    ext = {126: 2, 127: 8}.get(n, 0)
    c._need(2 + ext)
    return c.buf[0], c.buf[1], c.buf[2:2 + ext]


def check_minimal_encoding(c, length):
    b0, b1, ext = raw_header(c)
    assert not b1 & 0x80, "server frame is masked"
    if length < 126:
        assert b1 == length and ext == b"", (length, b1)
    elif length < 65536:
        assert b1 == 126 and struct.unpack("!H", ext)[0] == length, (length, b1, ext)
    else:
        assert b1 == 127 and struct.unpack("!Q", ext)[0] == length, (length, b1, ext)


def test_text_lengths_echoed_with_minimal_encoding():
    with Server() as s, Client(s.port) as c:
        for n in LENGTHS:
            payload = (b"*" * n)
            c.send_frame(OP_TEXT, payload)
            check_minimal_encoding(c, n)
            assert c.recv_frame() == (True, 0, OP_TEXT, payload), n


def test_binary_lengths_echoed_with_minimal_encoding():
    with Server() as s, Client(s.port) as c:
        for n in LENGTHS:
            payload = os.urandom(n)
            c.send_frame(OP_BINARY, payload)
            check_minimal_encoding(c, n)
            assert c.recv_frame() == (True, 0, OP_BINARY, payload), n


def test_all_mask_keys_and_zero_mask():
    with Server() as s, Client(s.port) as c:
        for key in (b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x02\x03\x04"):
            for n in (1, 3, 7, 8, 9, 31, 33, 1000):
                payload = os.urandom(n)
                c.send_frame(OP_BINARY, payload, mask_key=key)
                assert c.recv_message() == (OP_BINARY, payload), (key, n)


def test_payload_in_chunks_of_997():
    """Autobahn 1.1.8 / 1.2.8: a 65535-byte frame written in 997-byte pieces."""
    with Server() as s, Client(s.port) as c:
        for op, payload in ((OP_TEXT, b"BAsd7&jh23" * 6554), (OP_BINARY, os.urandom(65535))):
            payload = payload[:65535]
            c.send_chunks(frame(op, payload), 997)
            assert c.recv_message() == (op, payload)


def test_small_frames_one_byte_at_a_time():
    with Server() as s, Client(s.port) as c:
        for op, payload in ((OP_TEXT, "Hello, world"), (OP_BINARY, b"\x00\xfe\xff"),
                            (OP_TEXT, "x" * 200)):
            data = frame(op, payload)
            c.send_chunks(data, 1)
            want = payload.encode() if isinstance(payload, str) else payload
            assert c.recv_message() == (op, want)
        # Two frames split across each other's boundary.
        data = frame(OP_TEXT, "one") + frame(OP_TEXT, "two")
        c.send_chunks(data, 5)
        assert c.recv_message() == (OP_TEXT, b"one")
        assert c.recv_message() == (OP_TEXT, b"two")


def test_many_messages_in_one_write():
    with Server() as s, Client(s.port) as c:
        msgs = [os.urandom(i % 300) for i in range(500)]
        c.send(b"".join(frame(OP_BINARY, m) for m in msgs))
        for m in msgs:
            assert c.recv_message() == (OP_BINARY, m)


def test_16mib_message():
    big = os.urandom(16 * 1024 * 1024)
    with Server(server_extra="max_payload = 16MiB\nfragment_size = 0\n") as s, \
            Client(s.port, timeout=30) as c:
        c.send_frame(OP_BINARY, big)
        fin, rsv, op, data = c.recv_frame()
        assert fin and op == OP_BINARY and data == big
        text = b"a" * (16 * 1024 * 1024)
        c.send_frame(OP_TEXT, text)
        assert c.recv_frame() == (True, 0, OP_TEXT, text)
        # One byte more than the limit is refused.
        c.send(frame(OP_BINARY, b"", length=16 * 1024 * 1024 + 1)[:14])
        c.fail_expected(1009)


def test_large_replies_while_the_client_does_not_read():
    """Large payloads are answered by reference to the read buffer they
    arrived in (conn.c queue_frame_rsv); the buffer must stay intact while
    such replies wait in the queue: here the client reads nothing for a
    while (its receive buffer fills, the server's writes come up short
    and later reads arrive meanwhile), frames straddle reads, and
    replies are fragmented or stop the reader (send_queue_limit)."""
    sizes = [8192, 8193, 16384, 20000, 12, 65536, 9000, 100, 30000]
    for extra in ("", "fragment_size = 5000\n", "send_queue_limit = 64KiB\n"):
        with Server(server_extra=extra) as s, Client(s.port, timeout=30) as c:
            msgs = [os.urandom(sizes[i % len(sizes)]) for i in range(400)]
            data = b"".join(frame(OP_BINARY, m) for m in msgs)

            def send_all():
                for off in range(0, len(data), 70001):  # writes that split frames anywhere
                    c.sock.sendall(data[off:off + 70001])
            sender = threading.Thread(target=send_all)
            sender.start()
            time.sleep(0.5)
            for k, m in enumerate(msgs):
                got = c.recv_message()
                assert got == (OP_BINARY, m), "message %d (%d bytes) differs" % (k, len(m))
            sender.join()

def test_64bit_length_with_msb_set_is_1002():
    with Server() as s, Client(s.port) as c:
        c.send(bytes([0x82, 0xFF]) + b"\x80" + b"\x00" * 7 + os.urandom(4))
        c.fail_expected(1002)


def test_non_minimal_length_is_1002():
    with Server() as s:
        with Client(s.port) as c:
            c.send(bytes([0x81, 0xFE, 0x00, 0x05]) + b"\x00" * 4 + b"hello")
            c.fail_expected(1002)
        with Client(s.port) as c:
            c.send(bytes([0x81, 0xFF]) + struct.pack("!Q", 200) + b"\x00" * 4 + b"x" * 200)
            c.fail_expected(1002)


def test_unmasked_client_frame_is_1002():
    with Server() as s, Client(s.port) as c:
        c.send_frame(OP_TEXT, "before")
        c.send_frame(OP_TEXT, "unmasked", mask=False)
        assert c.recv_message() == (OP_TEXT, b"before")
        reason = c.fail_expected(1002)
        assert s.wait_log("with 1002: Client frame is not masked"), s.logtext()[-500:]
        assert reason, "close frame should carry a reason"


def test_reserved_bits_are_1002():
    """Autobahn 3.1-3.7: each RSV combination on data and control frames."""
    with Server() as s:
        cases = [(1, OP_TEXT, b"Hello"), (2, OP_TEXT, b"Hello"), (3, OP_TEXT, b"Hello"),
                 (4, OP_TEXT, b"Hello"), (5, OP_BINARY, b"\x00\xff"), (6, OP_PING, b"Hello"),
                 (7, OP_CLOSE, close_payload(1000))]
        for rsv, op, payload in cases:
            with Client(s.port) as c:
                # A message before (echoed), the bad frame, a ping after
                # (never answered: nothing after the error is processed).
                c.send(frame(OP_TEXT, "Hello") + frame(op, payload, rsv=rsv) + frame(OP_PING, "after"))
                assert c.recv_message() == (OP_TEXT, b"Hello"), rsv
                c.fail_expected(1002)
        assert s.count_log("Reserved bits set") >= 6, s.logtext()[-1500:]


def test_reserved_bits_one_byte_at_a_time():
    """Autobahn 3.4: the same, written one byte at a time."""
    with Server() as s, Client(s.port) as c:
        c.send_chunks(frame(OP_TEXT, "Hello") + frame(OP_TEXT, "Hello", rsv=4)
                      + frame(OP_PING, "x"), 1)
        assert c.recv_message() == (OP_TEXT, b"Hello")
        c.fail_expected(1002)


def test_rsv_on_continuation_is_1002():
    with Server() as s, Client(s.port) as c:
        c.send(frame(OP_TEXT, "frag", fin=False) + frame(OP_CONT, "ment", rsv=4))
        c.fail_expected(1002)


def test_reserved_opcodes_are_1002():
    """Autobahn 4.1.x and 4.2.x: opcodes 3-7 and 11-15, alone, with a
    payload, and between a good message and a ping."""
    with Server() as s:
        for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
            with Client(s.port) as c:
                c.send_frame(op)
                c.fail_expected(1002)
            with Client(s.port) as c:
                c.send(frame(OP_TEXT, "Hello") + frame(op, os.urandom(8)) + frame(OP_PING, "p"))
                assert c.recv_message() == (OP_TEXT, b"Hello"), op
                c.fail_expected(1002)
        assert s.count_log("with 1002: Reserved opcode") == 20, s.logtext()[-2000:]


def test_reserved_opcode_one_byte_at_a_time():
    """Autobahn 4.1.5 / 4.2.5."""
    with Server() as s:
        for op in (7, 15):
            with Client(s.port) as c:
                c.send_chunks(frame(OP_TEXT, "Hello") + frame(op, "x") + frame(OP_PING, "p"), 1)
                assert c.recv_message() == (OP_TEXT, b"Hello")
                c.fail_expected(1002)


def test_everything_before_the_error_is_answered_first():
    """Messages, pings and a fragmented message completed before a bad
    frame are all answered, in order, before the close."""
    with Server() as s, Client(s.port) as c:
        big = os.urandom(200000)
        data = (frame(OP_TEXT, "one") + frame(OP_BINARY, big) + frame(OP_PING, "ping!")
                + frame(OP_TEXT, "fr", fin=False) + frame(OP_CONT, "ag") + frame(OP_PONG, "x")
                + frame(OP_TEXT, "last") + frame(OP_BINARY, b"bad", rsv=2) + frame(OP_TEXT, "never"))
        c.send(data)
        assert c.recv_message() == (OP_TEXT, b"one")
        assert c.recv_message() == (OP_BINARY, big)
        assert c.recv_frame() == (True, 0, OP_PONG, b"ping!")
        assert c.recv_message() == (OP_TEXT, b"frag")
        assert c.recv_message() == (OP_TEXT, b"last")
        c.fail_expected(1002)


def test_error_arriving_in_a_later_read():
    """The good messages and the bad frame in separate writes."""
    with Server() as s, Client(s.port) as c:
        for i in range(20):
            c.send_frame(OP_TEXT, "m%d" % i)
        for i in range(20):
            assert c.recv_message() == (OP_TEXT, b"m%d" % i)
        c.send_frame(9 + 4)  # opcode 13
        c.fail_expected(1002)


def test_server_still_serves_after_protocol_errors():
    with Server() as s:
        for op in range(3, 8):
            with Client(s.port) as c:
                c.send_frame(op)
                c.fail_expected(1002)
        with Client(s.port) as c:
            c.send_frame(OP_TEXT, "fine")
            assert c.recv_message() == (OP_TEXT, b"fine")


if __name__ == "__main__":
    run_tests([
        test_text_lengths_echoed_with_minimal_encoding,
        test_binary_lengths_echoed_with_minimal_encoding,
        test_all_mask_keys_and_zero_mask,
        test_payload_in_chunks_of_997,
        test_small_frames_one_byte_at_a_time,
        test_many_messages_in_one_write,
        test_16mib_message,
        test_large_replies_while_the_client_does_not_read,
        test_64bit_length_with_msb_set_is_1002,
        test_non_minimal_length_is_1002,
        test_unmasked_client_frame_is_1002,
        test_reserved_bits_are_1002,
        test_reserved_bits_one_byte_at_a_time,
        test_rsv_on_continuation_is_1002,
        test_reserved_opcodes_are_1002,
        test_reserved_opcode_one_byte_at_a_time,
        test_everything_before_the_error_is_answered_first,
        test_error_arriving_in_a_later_read,
        test_server_still_serves_after_protocol_errors,
    ])
