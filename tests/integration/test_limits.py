"""Limits, large messages and robustness (the behaviours of Autobahn cases
9 and 10 and the limit items of issue 2): max_payload over fragments
(1009, exact log line, no buffering), outgoing fragmentation, messages
up to 16 MiB in many frame sizes, backpressure with bounded server
memory, the heartbeat, and abrupt disconnects of every kind."""
import os
import select
import signal
import socket
import struct
import threading
import time

from mbgw_harness import (Server, Client, OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING,
                          OP_PONG, close_payload, frame, run_tests)

MiB = 1024 * 1024


# --- max_payload ----------------------------------------------------------------

def test_max_payload_over_fragments_is_1009():
    """Two 1 MiB fragments: the 2nd header alone exceeds the 1 MiB limit;
    the close comes before we send its payload."""
    with Server() as s, Client(s.port) as c:
        c.send_frame(OP_TEXT, b"a" * MiB, fin=False)
        c.send(frame(OP_CONT, b"", length=MiB)[:14] + b"b" * 1000)
        c.expect_close_now(1009, timeout=3)
        c.expect_eof()
        assert s.wait_log("with 1009: Frame size of 2097152 exceeds maximum of 1048576"), \
            s.logtext()[-1000:]


def test_max_payload_many_small_fragments():
    """The limit is counted over all fragments: 17 fragments of 64 KiB."""
    with Server() as s, Client(s.port) as c:
        for i in range(16):
            c.send_frame(OP_BINARY if i == 0 else OP_CONT, b"x" * 65536, fin=False)
        c.send_frame(OP_CONT, b"y")
        c.expect_close_now(1009, timeout=3)
        c.expect_eof()
        assert s.wait_log("Frame size of 1048577 exceeds maximum of 1048576")


def test_max_payload_single_frame_header_only():
    """A 2 MiB frame is refused from its header: we send 2 KiB of it."""
    with Server() as s, Client(s.port) as c:
        rss0 = s.rss_kib()
        c.send(frame(OP_BINARY, b"", length=2 * MiB)[:14] + os.urandom(2048))
        c.expect_close_now(1009, timeout=3)
        c.expect_eof()
        assert s.wait_log("with 1009: Frame size of 2097152 exceeds maximum of 1048576")
        assert s.rss_kib() - rss0 < 1024, "server reserved memory for the refused frame"


def test_huge_declared_length_is_1009():
    """A 64-bit length near 2^63 is refused from the header, no overflow."""
    with Server() as s:
        for n in (2**63 - 1, 2**62, 2**32 + 5):
            with Client(s.port) as c:
                c.send(bytes([0x82, 0xFF]) + struct.pack("!Q", n) + os.urandom(4) + b"abc")
                c.fail_expected(1009)
            assert s.wait_log("Frame size of %d exceeds maximum of 1048576" % n)


def test_exactly_max_payload_is_accepted():
    with Server() as s, Client(s.port, timeout=10) as c:
        msg = os.urandom(MiB)
        c.send_frame(OP_BINARY, msg)
        assert c.recv_message() == (OP_BINARY, msg)
        parts = [msg[i:i + 100000] for i in range(0, MiB, 100000)]
        c.send(frame(OP_BINARY, parts[0], fin=False)
               + b"".join(frame(OP_CONT, p, fin=False) for p in parts[1:-1])
               + frame(OP_CONT, parts[-1]))
        assert c.recv_message() == (OP_BINARY, msg)


def test_custom_max_payload():
    with Server(server_extra="max_payload = 1000\n") as s:
        with Client(s.port) as c:
            c.send_frame(OP_TEXT, "a" * 1000)
            assert c.recv_message() == (OP_TEXT, b"a" * 1000)
            c.send_frame(OP_TEXT, "a" * 1001)
            c.fail_expected(1009)
        assert s.wait_log("Frame size of 1001 exceeds maximum of 1000")


# --- outgoing fragmentation and large messages (Autobahn 9, 10) ------------------------

def test_outgoing_fragmentation():
    with Server(server_extra="fragment_size = 1000\n") as s, Client(s.port) as c:
        for op, n in ((OP_TEXT, 65536), (OP_BINARY, 1001), (OP_BINARY, 1000), (OP_TEXT, 2000)):
            msg = (b"abcdefghij" * (n // 10 + 1))[:n] if op == OP_TEXT else os.urandom(n)
            c.send_frame(op, msg)
            frames = []
            for _ in range(n // 1000 + 2):
                f = c.recv_frame()
                frames.append(f)
                if f[0]:
                    break
            assert frames[0][2] == op and all(f[2] == OP_CONT for f in frames[1:]), \
                [f[2] for f in frames]
            assert all(len(f[3]) <= 1000 for f in frames)
            assert len(frames) == (n + 999) // 1000, (n, len(frames))
            assert all(not f[0] for f in frames[:-1])
            assert b"".join(f[3] for f in frames) == msg


def test_client_fragmented_1300():
    """Autobahn 10.1.1: a 65536-byte text message in 1300-byte fragments."""
    with Server() as s, Client(s.port) as c:
        msg = b"*" * 65536
        parts = [msg[i:i + 1300] for i in range(0, len(msg), 1300)]
        data = frame(OP_TEXT, parts[0], fin=False)
        data += b"".join(frame(OP_CONT, p, fin=False) for p in parts[1:-1])
        data += frame(OP_CONT, parts[-1])
        c.send(data)
        assert c.recv_message() == (OP_TEXT, msg)


BIG = "max_payload = 16MiB\n"


def test_large_single_frame_messages():
    """Autobahn 9.1.x / 9.2.x: 64 KiB to 16 MiB, text and binary."""
    with Server(server_extra=BIG) as s, Client(s.port, timeout=30) as c:
        for n in (64 * 1024, 256 * 1024, MiB, 4 * MiB, 8 * MiB, 16 * MiB):
            text = b"*" * n
            c.send_frame(OP_TEXT, text)
            assert c.recv_message() == (OP_TEXT, text), n
            binary = b"\xfe" * n
            c.send_frame(OP_BINARY, binary)
            assert c.recv_message() == (OP_BINARY, binary), n


def fragments(op, msg, size):
    parts = [msg[i:i + size] for i in range(0, len(msg), size)]
    if len(parts) == 1:
        return frame(op, parts[0])
    return (frame(op, parts[0], fin=False)
            + b"".join(frame(OP_CONT, p, fin=False) for p in parts[1:-1])
            + frame(OP_CONT, parts[-1]))


def test_4mib_in_many_fragment_sizes():
    """Autobahn 9.3.x / 9.4.x: a 4 MiB message in fragments of 64 B .. 4 MiB."""
    with Server(server_extra=BIG) as s, Client(s.port, timeout=30) as c:
        msg_t = b"*" * (4 * MiB)
        msg_b = os.urandom(4 * MiB)
        for size in (64, 256, 1024, 4096, 16384, 65536, 256 * 1024, MiB, 4 * MiB):
            c.send(fragments(OP_TEXT, msg_t, size))
            assert c.recv_message() == (OP_TEXT, msg_t), size
            c.send(fragments(OP_BINARY, msg_b, size))
            assert c.recv_message() == (OP_BINARY, msg_b), size


def test_1mib_frame_in_chops():
    """Autobahn 9.5.x / 9.6.x: one 1 MiB frame written in chops of 64 B .. 4 KiB."""
    with Server(server_extra=BIG) as s, Client(s.port, timeout=30) as c:
        msg = b"*" * MiB
        for chop in (64, 128, 256, 512, 1024, 2048, 4096):
            c.send_chunks(frame(OP_TEXT, msg), chop)
            assert c.recv_message() == (OP_TEXT, msg), chop
            c.send_chunks(frame(OP_BINARY, msg), chop)
            assert c.recv_message() == (OP_BINARY, msg), chop


def test_many_round_trips():
    """Autobahn 9.7.x / 9.8.x: 1000 messages of 0 .. 4 KiB, one at a time."""
    with Server() as s, Client(s.port) as c:
        for n in (0, 16, 64, 256, 1024, 4096):
            t, b = b"*" * n, b"\xfe" * n
            for _ in range(1000 if n <= 256 else 200):
                c.send_frame(OP_TEXT, t)
                assert c.recv_message() == (OP_TEXT, t)
                c.send_frame(OP_BINARY, b)
                assert c.recv_message() == (OP_BINARY, b)


# --- backpressure ------------------------------------------------------------------

def send_until_blocked(sock, messages, stall=1.0, limit_s=20):
    """Sends the encoded messages until the socket makes no progress for
    `stall` seconds (the server stopped reading) or all are sent. Returns
    the number of complete messages sent and the bytes of the one in
    progress."""
    sock.setblocking(False)
    sent_msgs, off = 0, 0
    deadline = time.monotonic() + limit_s
    try:
        while sent_msgs < len(messages) and time.monotonic() < deadline:
            _, w, _ = select.select([], [sock], [], stall)
            if not w:
                break
            try:
                n = sock.send(messages[sent_msgs][off:])
            except BlockingIOError:
                continue
            off += n
            if off == len(messages[sent_msgs]):
                sent_msgs, off = sent_msgs + 1, 0
    finally:
        sock.setblocking(True)
    return sent_msgs, off


def test_backpressure_bounds_server_memory():
    """A client that sends much more than send_queue_limit and never reads
    is stopped (the server stops reading); the server's memory does not
    follow what the client sends; once the client reads, every message is
    echoed in order."""
    asan = os.environ.get("ASAN_OPTIONS", "")
    env = {"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=4"}
    with Server(server_extra="send_queue_limit = 1MiB\n", env=env) as s:
        c = Client(s.port, timeout=30)
        c.send_frame(OP_TEXT, "warm-up")
        assert c.recv_message() == (OP_TEXT, b"warm-up")
        rss0 = s.rss_kib()
        total = 256  # 256 x 256 KiB = 64 MiB
        payloads = [struct.pack("!I", i) + b"\xab" * (256 * 1024 - 4) for i in range(total)]
        encoded = [frame(OP_BINARY, p, mask_key=b"\x00\x00\x00\x00") for p in payloads]
        sent, partial = send_until_blocked(c.sock, encoded)
        rss1 = s.rss_kib()
        grew = (rss1 - rss0) / 1024.0
        assert sent < total, "the server kept reading 64 MiB from a client that never reads"
        # Kernel socket buffers hold some MiB; the server itself must hold
        # about send_queue_limit plus one message, not what was sent.
        assert grew < 16, "server RSS grew by %.1f MiB after the client sent %d MiB" % (
            grew, sent // 4)
        assert s.alive()
        # Now read: everything sent so far comes back, in order, and the
        # server resumes reading the rest.
        c.sock.settimeout(30)
        for i in range(sent):
            assert c.recv_message() == (OP_BINARY, payloads[i]), i
            # Keep the writer going while we read (the partial message and
            # the rest), so the whole 64 MiB round-trips.
        rest = encoded[sent][partial:] + b"".join(encoded[sent + 1:])
        t = threading.Thread(target=c.sock.sendall, args=(rest,))
        t.start()
        for i in range(sent, total):
            assert c.recv_message() == (OP_BINARY, payloads[i]), i
        t.join(30)
        assert not t.is_alive()
        c.send_frame(OP_CLOSE, close_payload(1000))
        assert c.expect_close() == (1000, b"")
        c.expect_eof()


def test_backpressure_does_not_starve_other_clients():
    with Server(server_extra="send_queue_limit = 1MiB\n", workers=1) as s:
        hog = Client(s.port, timeout=30)
        msgs = [frame(OP_BINARY, b"\x00" * 65536) for _ in range(400)]
        send_until_blocked(hog.sock, msgs, stall=0.5)
        with Client(s.port) as c:
            for i in range(50):
                c.send_frame(OP_TEXT, "m%d" % i)
                assert c.recv_message() == (OP_TEXT, b"m%d" % i)
        hog.close()


def test_ping_flood_without_reading_is_bounded():
    """Pongs count against send_queue_limit like echoes: a client that
    floods pings and never reads stops being read."""
    with Server(server_extra="send_queue_limit = 1MiB\n") as s:
        c = Client(s.port, timeout=30)
        c.send_frame(OP_PING, "warm-up")
        assert c.recv_frame()[2] == OP_PONG
        rss0 = s.rss_kib()
        ping = frame(OP_PING, b"\x77" * 125, mask_key=b"\x00\x00\x00\x00")
        batch = ping * 1000                     # 131 KB per batch
        batches = [batch] * 400                 # 52 MB of pings in all
        sent, partial = send_until_blocked(c.sock, batches)
        grew = (s.rss_kib() - rss0) / 1024.0
        assert sent < len(batches), "the server kept reading a ping flood nobody reads"
        assert grew < 16, "server RSS grew by %.1f MiB" % grew
        # Reading resumes the flow: a few thousand pongs come back intact.
        for _ in range(3000):
            assert c.recv_frame() == (True, 0, OP_PONG, b"\x77" * 125)
        c.close()
        assert_serves(s)


def test_shutdown_with_connections_in_every_state():
    """SIGTERM with one connection mid-handshake, one open, one paused by
    backpressure and one silent after a protocol error: the server exits
    0 within close_timeout, not drain_timeout, and frees everything."""
    s = Server(server_extra="close_timeout = 1s\ndrain_timeout = 20s\nsend_queue_limit = 1MiB\n")
    with s:
        half = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        half.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        open_ = Client(s.port, timeout=10)
        paused = Client(s.port, timeout=10)
        send_until_blocked(paused.sock, [frame(OP_BINARY, b"\x01" * 65536)] * 400, stall=0.5)
        failed = Client(s.port, timeout=10)
        failed.send_frame(3)
        failed.expect_close_now(1002)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        assert open_.expect_close()[0] == 1001
        assert s.proc.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 10
        for sock in (half, open_.sock, paused.sock, failed.sock):
            sock.close()


# --- heartbeat ---------------------------------------------------------------------

HEARTBEAT = "ping_interval = 1s\npong_timeout = 1s\n"


def test_idle_client_is_pinged_and_stays_if_it_answers():
    with Server(server_extra=HEARTBEAT) as s, Client(s.port, timeout=5) as c:
        for _ in range(3):
            fin, rsv, op, payload = c.recv_frame()   # within ~1.2 s, bounded by 5 s
            assert op == OP_PING, op
            c.send_frame(OP_PONG, payload)
        # Still open and working after 3 pings (more than pong_timeout).
        c.send_frame(OP_TEXT, "still here")
        for _ in range(10):
            f = c.recv_frame()
            if f[2] == OP_PING:
                c.send_frame(OP_PONG, f[3])
                continue
            assert f == (True, 0, OP_TEXT, b"still here"), f
            break
        else:
            raise AssertionError("no echo among 10 frames")
        assert "no pong or data" not in s.logtext()


def test_data_counts_as_an_answer():
    with Server(server_extra=HEARTBEAT) as s, Client(s.port, timeout=5) as c:
        for i in range(2):
            f = c.recv_frame()
            assert f[2] == OP_PING
            c.send_frame(OP_TEXT, "data %d" % i)   # not a pong, but proof of life
            assert c.recv_message() == (OP_TEXT, b"data %d" % i)
        assert "no pong or data" not in s.logtext()


def test_silent_client_is_dropped():
    with Server(server_extra=HEARTBEAT) as s:
        c = Client(s.port, timeout=8)
        port = c.local_port
        fin, rsv, op, payload = c.recv_frame()
        assert op == OP_PING
        # We do not answer: the server drops us after pong_timeout.
        c.expect_eof(timeout=8)
        assert s.wait_log("no pong or data from 127.0.0.1:%d within 1000 ms: dropping" % port)


def test_busy_client_is_not_pinged():
    with Server(server_extra="ping_interval = 2s\npong_timeout = 1s\n") as s, \
            Client(s.port) as c:
        end = time.monotonic() + 5
        n = 0
        while time.monotonic() < end:
            c.send_frame(OP_TEXT, "tick %d" % n)
            f = c.recv_frame()
            assert f[2] != OP_PING, "a client sending every 100 ms was pinged"
            assert f == (True, 0, OP_TEXT, b"tick %d" % n), f
            n += 1
            time.sleep(0.1)
        assert n > 10


def test_heartbeat_disabled():
    with Server(server_extra="ping_interval = 0\n") as s, Client(s.port) as c:
        assert c.try_recv_frame(1.5) is None


# --- abrupt disconnects --------------------------------------------------------------

def rst_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def assert_serves(s):
    with Client(s.port) as c:
        c.send_frame(OP_TEXT, "alive?")
        assert c.recv_message() == (OP_TEXT, b"alive?")


def test_reset_by_peer():
    with Server() as s:
        for i in range(20):
            c = Client(s.port)
            if i % 2:
                c.send_frame(OP_BINARY, os.urandom(100000))
            if i % 3 == 0:
                c.send(frame(OP_TEXT, b"", length=5000)[:14] + b"partial")
            rst_close(c.sock)
        # RST during the handshake, too.
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", s.port))
            sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
            rst_close(sock)
        assert_serves(s)


def test_half_close():
    """A client that shuts down its sending side (no close frame): the
    server ends the connection; it neither hangs nor crashes."""
    with Server() as s:
        for payload in (b"", b"hi", os.urandom(300000)):
            c = Client(s.port, timeout=5)
            if payload:
                c.send_frame(OP_BINARY, payload)
            c.sock.shutdown(socket.SHUT_WR)
            c.sock.settimeout(5)
            deadline = time.monotonic() + 10
            try:
                while c.sock.recv(65536) and time.monotonic() < deadline:
                    pass
            except ConnectionResetError:
                pass
            assert time.monotonic() < deadline, "half-closed connection never ended"
            c.close()
        assert_serves(s)


def test_vanish_mid_frame_and_mid_message():
    with Server() as s:
        for data in (frame(OP_TEXT, "x" * 1000)[:500],
                     frame(OP_BINARY, os.urandom(70000))[:3],
                     frame(OP_TEXT, "frag", fin=False),
                     frame(OP_TEXT, "frag", fin=False) + frame(OP_PING, "p")[:3],
                     frame(OP_CLOSE, close_payload(1000))[:4]):
            c = Client(s.port)
            c.send(data)
            c.close()
        assert_serves(s)
        assert s.wait_log("vanished mid-message")


def test_disconnect_with_unread_data_in_flight():
    """The client makes the server write a lot, then disappears without
    reading: the server's writes fail (EPIPE/ECONNRESET) and it must not
    die of SIGPIPE or misuse the freed connection."""
    with Server(server_extra="max_payload = 4MiB\n") as s:
        clients = []
        for _ in range(8):
            c = Client(s.port)
            msg = frame(OP_BINARY, b"\x55" * (2 * MiB), mask_key=b"\x00\x00\x00\x00")
            c.sock.setblocking(False)
            try:
                c.sock.send(msg * 2)
            except BlockingIOError:
                pass
            clients.append(c)
        time.sleep(0.3)
        for i, c in enumerate(clients):
            if i % 2:
                rst_close(c.sock)
            else:
                c.close()   # unread data in our buffer: the kernel sends RST
        # Many pings answered to a client that is gone.
        for _ in range(5):
            c = Client(s.port)
            c.send(b"".join(frame(OP_PING, os.urandom(125)) for _ in range(2000)))
            rst_close(c.sock)
        assert_serves(s)
        time.sleep(0.3)
        assert_serves(s)


def test_close_then_reset():
    """A fast peer: close frame and RST right after."""
    with Server() as s:
        for _ in range(20):
            c = Client(s.port)
            c.send(frame(OP_TEXT, "bye") + frame(OP_CLOSE, close_payload(1000)))
            rst_close(c.sock)
        assert_serves(s)


def test_many_concurrent_clients():
    with Server() as s:
        clients = [Client(s.port) for _ in range(100)]
        for i, c in enumerate(clients):
            c.send_frame(OP_TEXT, "client %d" % i)
        for i, c in enumerate(clients):
            assert c.recv_message() == (OP_TEXT, b"client %d" % i)
        for i, c in enumerate(clients):
            if i % 3 == 0:
                c.send_frame(OP_CLOSE, close_payload(1000))
                assert c.expect_close()[0] == 1000
                c.expect_eof()
            elif i % 3 == 1:
                rst_close(c.sock)
            else:
                c.close()
        assert_serves(s)


if __name__ == "__main__":
    run_tests([
        test_max_payload_over_fragments_is_1009,
        test_max_payload_many_small_fragments,
        test_max_payload_single_frame_header_only,
        test_huge_declared_length_is_1009,
        test_exactly_max_payload_is_accepted,
        test_custom_max_payload,
        test_outgoing_fragmentation,
        test_client_fragmented_1300,
        test_large_single_frame_messages,
        test_4mib_in_many_fragment_sizes,
        test_1mib_frame_in_chops,
        test_many_round_trips,
        test_backpressure_bounds_server_memory,
        test_backpressure_does_not_starve_other_clients,
        test_ping_flood_without_reading_is_bounded,
        test_shutdown_with_connections_in_every_state,
        test_idle_client_is_pinged_and_stays_if_it_answers,
        test_data_counts_as_an_answer,
        test_silent_client_is_dropped,
        test_busy_client_is_not_pinged,
        test_heartbeat_disabled,
        test_reset_by_peer,
        test_half_close,
        test_vanish_mid_frame_and_mid_message,
        test_disconnect_with_unread_data_in_flight,
        test_close_then_reset,
        test_many_concurrent_clients,
    ])
