"""UTF-8 handling of text messages (RFC 6455 §8.1; the behaviours of
Autobahn case 6): valid text is echoed however it is fragmented, invalid
text fails the connection with 1007, and fails it fast — at the first
invalid byte, before the rest of the message (or even of the frame) has
been sent."""
import socket

from mbgw_harness import (Server, Client, OP_CONT, OP_TEXT, OP_BINARY, OP_PING, OP_PONG,
                          frame, run_tests)

VALID = [
    "Hello-µ@ßöäüàá-UTF-8!!".encode(),
    "κόσμε".encode(),
    b"\x00",                        # U+0000 is valid
    b"\xc2\x80", b"\xe0\xa0\x80", b"\xf0\x90\x80\x80",                 # first of each length
    b"\x7f", b"\xdf\xbf", b"\xef\xbf\xbf", b"\xf4\x8f\xbf\xbf",         # last of each length
    b"\xed\x9f\xbf", b"\xee\x80\x80", b"\xef\xbf\xbd",                 # around the surrogates
    b"\xef\xbf\xbe", b"\xef\xbf\xbf",                                  # noncharacters are valid
    "\ufdd0\ufdef\U0001fffe\U0001ffff\U0010fffe\U0010ffff".encode(),
    b"\xf3\xbf\xbf\xbf",
    "日本語テキスト😀🎉".encode() * 50,
    bytes(range(0x20, 0x7f)) * 10,
]

INVALID = [
    # Autobahn 6.3: the "κόσμε" example with a surrogate in it.
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
    # beyond U+10FFFF and 5/6-byte forms
    b"\xf4\x90\x80\x80", b"\xf7\xbf\xbf\xbf", b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80",
    # unexpected continuation bytes
    b"\x80", b"\xbf", b"a\x80b", b"\x80\xbf\x80\xbf",
    # lonely start bytes followed by a space
    b"\xc0 ", b"\xdf ", b"\xe0 ", b"\xef ", b"\xf0 ", b"\xf4 ",
    # sequences with the last byte missing (at the end of the message)
    b"\xc2", b"\xe0\xa0", b"\xf0\x90\x80", b"\xdf", b"\xef\xbf", b"\xf4\x8f\xbf",
    b"abc\xce", b"\xe1\xbd",
    # impossible bytes
    b"\xfe", b"\xff", b"\xfe\xfe\xff\xff",
    # overlong forms
    b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xc1\xbf", b"\xe0\x9f\xbf",
    b"\xf0\x8f\xbf\xbf", b"\xc0\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80",
    # UTF-16 surrogates, single and paired
    b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf", b"\xed\xb0\x80",
    b"\xed\xbe\x80", b"\xed\xbf\xbf", b"\xed\xa0\x80\xed\xb0\x80", b"\xed\xaf\xbf\xed\xbf\xbf",
    # an invalid byte after a long valid ASCII run (the word-at-a-time path)
    b"a" * 1000 + b"\xff" + b"a" * 10,
]


def test_valid_text_echoed():
    with Server() as s, Client(s.port) as c:
        for v in VALID:
            c.send_frame(OP_TEXT, v)
            assert c.recv_message() == (OP_TEXT, v), v


def test_valid_text_split_at_every_byte():
    """Autobahn 6.2.2/6.2.3/6.6.x: two fragments, split at every position,
    so multi-byte characters straddle the fragment boundary."""
    with Server() as s, Client(s.port) as c:
        for v in ("Hello-µ@ßöäüàá-UTF-8!!".encode(), "κόσμε".encode(), b"\xf4\x8f\xbf\xbf\xf0\x90\x80\x80"):
            for i in range(len(v) + 1):
                c.send(frame(OP_TEXT, v[:i], fin=False) + frame(OP_CONT, v[i:]))
                assert c.recv_message() == (OP_TEXT, v), (v, i)
        # One fragment per byte (Autobahn 6.2.4).
        v = "κόσμε".encode()
        data = frame(OP_TEXT, v[:1], fin=False)
        data += b"".join(frame(OP_CONT, v[i:i + 1], fin=False) for i in range(1, len(v) - 1))
        data += frame(OP_CONT, v[-1:])
        c.send(data)
        assert c.recv_message() == (OP_TEXT, v)


def test_valid_single_frame_in_byte_chops():
    with Server() as s, Client(s.port) as c:
        v = "Hello-µ@ßöäüàá-UTF-8!!".encode() * 3
        c.send_chunks(frame(OP_TEXT, v), 1)
        assert c.recv_message() == (OP_TEXT, v)


def test_binary_is_not_checked():
    with Server() as s, Client(s.port) as c:
        for v in INVALID[:10]:
            c.send_frame(OP_BINARY, v)
            assert c.recv_message() == (OP_BINARY, v)


def test_invalid_text_is_1007():
    with Server() as s:
        for v in INVALID:
            with Client(s.port) as c:
                c.send_frame(OP_TEXT, "good")
                c.send_frame(OP_TEXT, v)
                c.send_frame(OP_PING, "never answered")
                assert c.recv_message() == (OP_TEXT, b"good")
                c.fail_expected(1007)
        assert s.count_log("with 1007: Invalid UTF-8 in text message") == len(INVALID)


def test_invalid_text_fragmented_is_1007():
    """The same sequences split over fragments at every position."""
    with Server() as s:
        for v in (b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
                  b"\xf0\x90\x80", b"\xe0\x80\xaf"):
            for i in range(len(v) + 1):
                with Client(s.port) as c:
                    c.send(frame(OP_TEXT, v[:i], fin=False) + frame(OP_CONT, v[i:]))
                    c.fail_expected(1007)


def test_truncated_sequence_at_message_end_across_fragments():
    with Server() as s:
        with Client(s.port) as c:
            c.send(frame(OP_TEXT, b"abc\xf0\x90", fin=False) + frame(OP_CONT, b"\x80", fin=False)
                   + frame(OP_CONT, b""))
            c.fail_expected(1007)
        # ... but completed by the final fragment it is fine.
        with Client(s.port) as c:
            c.send(frame(OP_TEXT, b"abc\xf0\x90", fin=False) + frame(OP_CONT, b"\x80", fin=False)
                   + frame(OP_CONT, b"\x80"))
            assert c.recv_message() == (OP_TEXT, b"abc\xf0\x90\x80\x80")


def no_close_within(c, seconds):
    """Asserts no frame at all arrives within `seconds` (the connection is
    still waiting for more input)."""
    f = c.try_recv_frame(seconds)
    assert f is None, "server answered early: %r" % (f,)


# Autobahn 6.4.x: PAYLOAD1 valid, PAYLOAD2 invalid (U+110000), PAYLOAD3 valid.
P1 = "κόσμε".encode()
P2 = b"\xf4\x90\x80\x80"
P3 = b"edited"


def test_fail_fast_on_invalid_fragment():
    """Autobahn 6.4.1: 1007 arrives after the invalid 2nd fragment, before
    the 3rd is sent."""
    with Server() as s, Client(s.port) as c:
        c.send_frame(OP_TEXT, P1, fin=False)
        no_close_within(c, 0.3)
        c.send_frame(OP_CONT, P2, fin=False)
        c.expect_close_now(1007, timeout=3)
        try:
            c.send_frame(OP_CONT, P3)
        except OSError:
            pass
        c.expect_eof()


def test_fail_fast_inside_a_character_split_over_fragments():
    """Autobahn 6.4.2: the bad character starts at the end of one fragment
    and the 1st byte of the next fragment proves it invalid."""
    with Server() as s, Client(s.port) as c:
        c.send_frame(OP_TEXT, P1 + P2[:1], fin=False)
        no_close_within(c, 0.3)
        c.send_frame(OP_CONT, P2[1:], fin=False)
        c.expect_close_now(1007, timeout=3)
        c.expect_eof()


def test_fail_fast_inside_one_frame():
    """Autobahn 6.4.3: one frame sent in three pieces; 1007 comes after the
    2nd piece, while the frame is still incomplete."""
    with Server() as s, Client(s.port) as c:
        data = frame(OP_TEXT, P1 + P2 + P3)
        head = len(data) - len(P1 + P2 + P3)
        c.send(data[:head + len(P1)])
        no_close_within(c, 0.3)
        c.send(data[head + len(P1):head + len(P1) + len(P2)])
        c.expect_close_now(1007, timeout=3)
        c.expect_eof()


def test_fail_fast_byte_by_byte():
    """Autobahn 6.4.4: the frame trickles in byte by byte; the close comes
    right after the first byte that cannot be valid (0x90 after 0xF4)."""
    with Server() as s, Client(s.port) as c:
        data = frame(OP_TEXT, P1 + P2 + P3)
        head = len(data) - len(P1 + P2 + P3)
        c.send_chunks(data[:head + len(P1) + 1], 1)   # ... up to and including 0xF4
        no_close_within(c, 0.3)
        c.send(data[head + len(P1) + 1:head + len(P1) + 2])  # 0x90
        c.expect_close_now(1007, timeout=3)
        c.expect_eof()


def test_fail_fast_invalid_byte_in_first_chunk_of_large_frame():
    """A 1 MiB text frame whose first chunk holds an invalid byte is
    refused at once: the server does not wait for (or buffer) the rest."""
    with Server() as s, Client(s.port) as c:
        payload = b"ok \xff" + b"a" * (1024 * 1024 - 4)
        data = frame(OP_TEXT, payload)
        c.send(data[:64])
        c.expect_close_now(1007, timeout=3)
        c.expect_eof()


def test_fail_fast_large_fragmented_message():
    """A message of many 64 KiB fragments with a bad byte in the 2nd: the
    close arrives while we are still able to send (no deadlock waiting
    for the whole message)."""
    with Server() as s, Client(s.port) as c:
        c.send_frame(OP_TEXT, b"a" * 65536, fin=False)
        c.send_frame(OP_CONT, b"a" * 100 + b"\xc0\xaf" + b"a" * 65000, fin=False)
        c.expect_close_now(1007, timeout=3)
        c.expect_eof()


def test_text_pings_interleaved_with_invalid_text():
    """A ping completed before the invalid byte is answered first."""
    with Server() as s, Client(s.port) as c:
        c.send(frame(OP_TEXT, P1, fin=False) + frame(OP_PING, "p") + frame(OP_CONT, P2))
        assert c.recv_frame() == (True, 0, OP_PONG, b"p")
        c.fail_expected(1007)


if __name__ == "__main__":
    run_tests([
        test_valid_text_echoed,
        test_valid_text_split_at_every_byte,
        test_valid_single_frame_in_byte_chops,
        test_binary_is_not_checked,
        test_invalid_text_is_1007,
        test_invalid_text_fragmented_is_1007,
        test_truncated_sequence_at_message_end_across_fragments,
        test_fail_fast_on_invalid_fragment,
        test_fail_fast_inside_a_character_split_over_fragments,
        test_fail_fast_inside_one_frame,
        test_fail_fast_byte_by_byte,
        test_fail_fast_invalid_byte_in_first_chunk_of_large_frame,
        test_fail_fast_large_fragmented_message,
        test_text_pings_interleaved_with_invalid_text,
    ])
