"""TLS robustness (issue 4, "non-blocking integration ... a handshake
timeout; no busy loops"): clients that send nothing, half a ClientHello,
or stop after the ClientHello are dropped after handshake_timeout; garbage
instead of a ClientHello and clients vanishing mid-handshake are dropped
at once without harm; a client that sends hundreds of KB of frames at once
and reads slowly gets every echo (plaintext buffered inside OpenSSL is
processed, also after reading was paused for backpressure); record
buffers kept by busy connections and released by quiet ones; fifty
concurrent TLS clients; an idle server with stuck handshakes and blocked
writers uses no CPU; no file descriptor leaks."""
import asyncio
import os
import socket
import ssl
import struct
import threading
import time

import websockets

from mbgw_harness import OP_TEXT, OP_BINARY, frame, run_tests
from tls_certs import Certs, TLSServer, TLSClient, tls_section, client_context, BioHandshake


def echo_once(t, text="ping"):
    t.send_frame(OP_TEXT, text)
    assert t.recv_message() == (OP_TEXT, text.encode())


def fd_count(s):
    return len(os.listdir("/proc/%d/fd" % s.pid()))


def wait_fds(s, baseline, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fd_count(s) <= baseline:
            return
        time.sleep(0.05)
    raise AssertionError("server holds %d file descriptors, %d before" % (fd_count(s), baseline))


def cpu_seconds(s):
    with open("/proc/%d/stat" % s.pid()) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick  # utime + stime


def time_to_eof(sock, limit):
    """Seconds until the server closes sock (EOF or reset), at most limit."""
    t0 = time.monotonic()
    sock.settimeout(limit)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError("still open after %ss" % limit)
    return time.monotonic() - t0


# --- handshake timeout ---------------------------------------------------------

def test_handshake_timeout():
    """handshake_timeout = 1s: a silent client, one that sent half a
    ClientHello, and one that sent a whole ClientHello but never its
    Finished are each dropped after about a second, and the drop is
    logged."""
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv")), server_extra="handshake_timeout = 1s\n") as s:
            base = fd_count(s)
            silent = socket.create_connection(("127.0.0.1", s.tls_port), timeout=5)
            half = BioHandshake(s.tls_port, "localhost")
            hello = half.client_hello()
            half.sock.sendall(hello[:len(hello) // 2])
            stalled = BioHandshake(s.tls_port, "localhost")
            stalled.sock.sendall(stalled.client_hello())
            # The server answers the ClientHello...
            stalled.sock.settimeout(5)
            assert stalled.sock.recv(65536)[:1] == b"\x16", "no handshake record from the server"
            # ... and then waits for a Finished that never comes.
            t0 = time.monotonic()
            results = {}

            def watch(name, sock):
                try:
                    results[name] = time_to_eof(sock, 5)
                except AssertionError as e:
                    results[name] = e
            threads = [threading.Thread(target=watch, args=(n, x)) for n, x in
                       (("silent", silent), ("half", half.sock), ("stalled", stalled.sock))]
            for th in threads:
                th.start()
            for th in threads:
                th.join(10)
            for name in ("silent", "half", "stalled"):
                r = results.get(name)
                assert isinstance(r, float), "%s: %r" % (name, r)
                assert r < 3.0, "%s dropped after %.2fs" % (name, r)
            assert time.monotonic() - t0 >= 0.5, "dropped long before the timeout"
            assert s.count_log("TLS handshake timeout: 127.0.0.1:") >= 3, s.logtext()[-2000:]
            assert "did not finish within 1000 ms" in s.logtext()
            for x in (silent, half.sock, stalled.sock):
                x.close()
            wait_fds(s, base)
            # A prompt client is not affected.
            with TLSClient(s.tls_port, client_context(c.ca_cert)) as t:
                time.sleep(1.3)  # longer than handshake_timeout, after the handshake
                echo_once(t)


def test_slow_but_steady_handshake_is_not_cut():
    """The timeout is for the whole handshake, but a ClientHello trickled
    in over 0.6 s with handshake_timeout = 2s completes."""
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv")), server_extra="handshake_timeout = 2s\n") as s:
            h = BioHandshake(s.tls_port, "localhost")
            hello = h.client_hello()
            step = max(1, len(hello) // 6)
            for i in range(0, len(hello), step):
                h.sock.sendall(hello[i:i + step])
                time.sleep(0.1)
            h.finish()
            resp = h.request(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert resp.startswith(b"HTTP/1.1 200 OK"), resp
            h.close()


# --- garbage and vanishing clients ---------------------------------------------

def test_garbage_instead_of_client_hello():
    """Plain HTTP, random bytes, a TLS record header announcing an
    oversized record, an SSLv2-style hello: each dropped at once (long
    before the 5 s handshake timeout) and logged; the server keeps
    serving."""
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv")), server_extra="handshake_timeout = 5s\n") as s:
            base = fd_count(s)
            junk = [
                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n",
                os.urandom(3000),
                b"\x16\x03\x01\xff\xff" + os.urandom(200),
                b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10" + os.urandom(37),
                b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",  # a ClientHello body far too short
            ]
            n_before = s.count_log("TLS handshake with 127.0.0.1:")
            for data in junk:
                raw = socket.create_connection(("127.0.0.1", s.tls_port), timeout=5)
                try:
                    raw.sendall(data)
                    took = time_to_eof(raw, 4)
                    assert took < 2.0, "garbage %r kept for %.2fs" % (data[:20], took)
                finally:
                    raw.close()
            deadline = time.monotonic() + 5
            while s.count_log("TLS handshake with 127.0.0.1:") < n_before + len(junk) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert s.count_log("TLS handshake with 127.0.0.1:") >= n_before + len(junk), s.logtext()[-3000:]
            wait_fds(s, base)
            with TLSClient(s.tls_port, client_context(c.ca_cert)) as t:
                echo_once(t)


def test_client_vanishes_mid_handshake():
    """Clients that disappear at every stage of the handshake — after
    connecting, after half a ClientHello, after the whole ClientHello
    (with FIN or with a reset), after reading the server's flight — leave
    nothing behind."""
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv")), server_extra="handshake_timeout = 10s\n") as s:
            base = fd_count(s)
            for stage in range(5):
                for rst in (False, True):
                    h = BioHandshake(s.tls_port, "localhost")
                    hello = h.client_hello()
                    if stage >= 1:
                        h.sock.sendall(hello[:len(hello) // 2])
                    if stage >= 2:
                        h.sock.sendall(hello[len(hello) // 2:])
                    if stage >= 3:
                        h.sock.settimeout(5)
                        assert h.sock.recv(65536)
                    if stage >= 4:
                        # Our Finished goes out, then we vanish before the
                        # HTTP request.
                        try:
                            h.obj.do_handshake()
                        except ssl.SSLWantReadError:
                            pass
                        out = h.outgoing.read()
                        if out:
                            h.sock.sendall(out)
                    if rst:
                        h.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    h.close()
            # Well before the 10 s timeout, everything is released.
            wait_fds(s, base, timeout=5)
            with TLSClient(s.tls_port, client_context(c.ca_cert)) as t:
                echo_once(t)


# --- buffered plaintext, backpressure --------------------------------------------

def burst_and_read_slowly(s, ctx, count, size, read_pause):
    """Sends `count` masked text frames of `size` bytes in one go (from a
    thread) and reads the echoes slowly; every echo must arrive, in order."""
    t = TLSClient(s.tls_port, ctx, timeout=20)
    try:
        payloads = [(b"%06d:" % i) + bytes([97 + i % 26]) * (size - 7) for i in range(count)]
        blob = b"".join(frame(OP_TEXT, p) for p in payloads)
        err = []

        def send():
            try:
                t.sock.sendall(blob)
            except Exception as e:  # reported by the main thread
                err.append(e)
        th = threading.Thread(target=send)
        th.start()
        try:
            got = 0
            while got < count:
                if read_pause and got % 50 == 0:
                    time.sleep(read_pause)
                op, data = t.recv_message()
                assert op == OP_TEXT, op
                assert data == payloads[got], "echo %d differs: %r" % (got, data[:20])
                got += 1
        finally:
            th.join(30)
        assert not err, err
        assert t.try_recv_frame(0.3) is None, "more echoes than messages"
        echo_once(t, "after the burst")
    finally:
        t.close()


def test_burst_200k_read_slowly():
    """200 KB of small frames in one write (many TLS records, far more
    than one read takes), read back slowly."""
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv"))) as s:
            burst_and_read_slowly(s, client_context(c.ca_cert), 2000, 100, 0.02)
            burst_and_read_slowly(s, client_context(c.ca_cert, max_version=ssl.TLSVersion.TLSv1_2),
                                  2000, 100, 0.02)


def test_burst_with_backpressure():
    """send_queue_limit = 16KiB: reading stops while the echoes pile up
    and resumes as the client drains them; frames already decrypted (or
    still inside OpenSSL) when reading paused must not be stranded."""
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv")), server_extra="send_queue_limit = 16KiB\n") as s:
            burst_and_read_slowly(s, client_context(c.ca_cert), 3000, 300, 0.02)
            # One large write of 1 MiB in 64 KiB messages.
            burst_and_read_slowly(s, client_context(c.ca_cert), 16, 65536, 0.05)


# --- record buffers: kept while busy, released when quiet -------------------------

UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def bio_read_exact(h, n):
    """n plaintext bytes from a BioHandshake client."""
    got = b""
    deadline = time.monotonic() + h.timeout
    while len(got) < n:
        assert time.monotonic() < deadline, "got %d of %d bytes" % (len(got), n)
        try:
            got += h.obj.read(n - len(got))
        except ssl.SSLWantReadError:
            h._pump()
    return got


def bio_echo(h, payload, split_pause=None):
    """Sends payload as one text frame in one TLS record and checks the
    echo; with split_pause, the record goes out in two halves that far
    apart."""
    h.obj.write(frame(OP_TEXT, payload))
    record = h.outgoing.read()
    if split_pause is None:
        h.sock.sendall(record)
    else:
        h.sock.sendall(record[:len(record) // 2])
        time.sleep(split_pause)
        h.sock.sendall(record[len(record) // 2:])
    assert len(payload) < 126
    assert bio_read_exact(h, 2) == bytes([0x81, len(payload)])
    assert bio_read_exact(h, len(payload)) == payload


def test_record_buffers_kept_while_busy_released_when_quiet():
    """The worker looks at TLS connections once a second: one busy
    through two looks keeps its record buffers, one quiet for a look gives
    them back (and, while half a record sits in them, keeps them until the
    rest arrives). Echoes stay exact through every change."""
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv"))) as s:
            h = BioHandshake(s.tls_port, "localhost")
            try:
                h.sock.sendall(h.client_hello())
                h.finish()
                assert b" 101 " in h.request(UPGRADE)
                n = 0
                for phase in range(2):
                    end = time.monotonic() + 2.6  # busy through two looks
                    while time.monotonic() < end:
                        bio_echo(h, b"busy %d" % n)
                        n += 1
                    # Half a record waits through a whole quiet look, then more.
                    bio_echo(h, b"split across a look", split_pause=2.3)
                    time.sleep(2.3)
                    bio_echo(h, b"after a quiet spell %d" % phase)
                assert n > 100, n
            finally:
                h.close()


# --- many clients, CPU -------------------------------------------------------------

def test_fifty_concurrent_tls_clients():
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv")), workers=2) as s:
            ctx = client_context(c.ca_cert)

            async def one(i):
                async with websockets.connect(s.wss_url(), ssl=ctx, compression=None) as ws:
                    for k in range(20):
                        msg = "client %d message %d" % (i, k)
                        await ws.send(msg)
                        assert await ws.recv() == msg
                    await ws.send(os.urandom(10000))
                    assert len(await ws.recv()) == 10000
                return i

            async def main():
                return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(50))), 60)
            assert sorted(asyncio.run(main())) == list(range(50))


def test_no_busy_loop():
    """Ten handshakes stuck halfway, ten idle TLS connections and one
    whose reader stopped reading (the server's writes wait for the socket)
    for 1.5 s: the server's CPU time stays near zero."""
    with Certs() as c:
        with TLSServer(tls_section(*c.server("srv")), server_extra="handshake_timeout = 20s\n",
                       log_level="info") as s:
            ctx = client_context(c.ca_cert)
            stuck = []
            for i in range(10):
                h = BioHandshake(s.tls_port, "localhost")
                hello = h.client_hello()
                h.sock.sendall(hello[:len(hello) // 2])
                stuck.append(h)
            idle = [TLSClient(s.tls_port, ctx) for _ in range(10)]
            blocked = TLSClient(s.tls_port, ctx, timeout=10)
            blocked.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            try:
                for t in idle:
                    echo_once(t)
                # Fill the server's writes towards `blocked` (it never reads).
                msg = frame(OP_BINARY, b"z" * 60000)
                blocked.sock.settimeout(0.5)
                sent = 0
                try:
                    while sent < 20 * 1024 * 1024:
                        blocked.sock.sendall(msg)
                        sent += len(msg)
                except socket.timeout:
                    pass
                blocked.sock.settimeout(10)
                assert sent >= 600000, "sent only %d bytes before blocking" % sent
                time.sleep(0.3)
                c0 = cpu_seconds(s)
                time.sleep(1.5)
                used = cpu_seconds(s) - c0
                assert used < 0.3, "the server used %.2fs of CPU in 1.5s while idle" % used
                for t in idle:
                    echo_once(t, "still here")
            finally:
                for x in stuck + idle + [blocked]:
                    x.close()


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_") and callable(v)])
