"""Interop with an independent client: Debian's python3-websockets (run
with /usr/bin/python3, see tests/CMakeLists.txt). Text, binary, a
fragmented message, 1 MiB, ping/pong, close codes, subprotocols, the
heartbeat, shutdown, and the IPv6 listener."""
import asyncio
import os
import signal

import websockets  # Debian python3-websockets; a missing module fails the test

from mbgw_harness import Server, Skip, free_port6, run_tests

SUBPROTO_ROUTES = """
[route echo]
path = /ws
plugin = echo
format = raw
subprotocols = chat.v2, chat.v1

[route strict]
path = /strict
plugin = echo
format = raw
subprotocols = chat.v1
require_subprotocol = yes
"""


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_text_binary_and_fragmented():
    async def main(url):
        async with websockets.connect(url, max_size=4 * 2**20) as ws:
            await ws.send("Hello, ünïcödé ✓")
            assert await ws.recv() == "Hello, ünïcödé ✓"
            await ws.send(b"\x00\x01\xfe\xff")
            assert await ws.recv() == b"\x00\x01\xfe\xff"
            await ws.send("")
            assert await ws.recv() == ""

            async def text_parts():
                for p in ("frag", "men", "ted ", "κόσμε"):
                    yield p
            await ws.send(text_parts())
            assert await ws.recv() == "fragmented κόσμε"

            async def binary_parts():
                for i in range(100):
                    yield bytes([i]) * 1000
            await ws.send(binary_parts())
            assert await ws.recv() == b"".join(bytes([i]) * 1000 for i in range(100))

            # A list of fragments (synchronous iterable) as well.
            await ws.send(["a", "b", "c"])
            assert await ws.recv() == "abc"

    with Server() as s:
        run(main(s.url()))


def test_1mib_messages():
    async def main(url):
        async with websockets.connect(url, max_size=2**21) as ws:
            data = os.urandom(2**20)
            await ws.send(data)
            assert await ws.recv() == data
            text = "é" * (2**19)       # 1 MiB of UTF-8
            await ws.send(text)
            assert await ws.recv() == text

    with Server() as s:
        run(main(s.url()))


def test_message_too_big_close_code():
    async def main(url):
        async with websockets.connect(url, max_size=2**22) as ws:
            await ws.send(b"x" * (2**20 + 1))
            try:
                await ws.recv()
                raise AssertionError("oversized message was echoed")
            except websockets.ConnectionClosedError as e:
                assert e.rcvd is not None and e.rcvd.code == 1009, e

    with Server() as s:
        run(main(s.url()))


def test_ping_pong():
    async def main(url):
        async with websockets.connect(url) as ws:
            for payload in (b"", b"hello", os.urandom(125)):
                waiter = await ws.ping(payload)
                await asyncio.wait_for(waiter, 5)
            waiters = [await ws.ping(b"%d" % i) for i in range(10)]
            await asyncio.wait_for(asyncio.gather(*waiters), 5)
            await ws.send("after pings")
            assert await ws.recv() == "after pings"

    with Server() as s:
        run(main(s.url()))


def test_close_codes():
    async def main(url):
        for code, reason in ((1000, ""), (1000, "done"), (1001, "going"), (3000, "app"),
                             (4999, "ünïcödé")):
            ws = await websockets.connect(url)
            await ws.close(code, reason)
            assert ws.close_code == code, (code, ws.close_code)
            await asyncio.wait_for(ws.wait_closed(), 5)

    with Server() as s:
        run(main(s.url()))


def test_subprotocols():
    async def main(s):
        async with websockets.connect(s.url(), subprotocols=["chat.v1", "chat.v2"]) as ws:
            assert ws.subprotocol == "chat.v2"
        async with websockets.connect(s.url(), subprotocols=["chat.v1"]) as ws:
            assert ws.subprotocol == "chat.v1"
        async with websockets.connect(s.url(), subprotocols=["other"]) as ws:
            assert ws.subprotocol is None
        async with websockets.connect(s.url()) as ws:
            assert ws.subprotocol is None
        async with websockets.connect(s.url("/strict"), subprotocols=["chat.v1"]) as ws:
            assert ws.subprotocol == "chat.v1"
            await ws.send("x")
            assert await ws.recv() == "x"
        try:
            await websockets.connect(s.url("/strict"))
            raise AssertionError("/strict accepted a client offering no subprotocol")
        except websockets.InvalidStatusCode as e:
            assert e.status_code == 400, e
        try:
            await websockets.connect(s.url("/missing"))
            raise AssertionError("unknown path accepted")
        except websockets.InvalidStatusCode as e:
            assert e.status_code == 404, e

    with Server(routes=SUBPROTO_ROUTES) as s:
        run(main(s))


def test_heartbeat_answered_by_client():
    """websockets answers our pings by itself: with a 1 s interval and
    timeout the connection survives 3.5 s of silence."""
    async def main(url):
        async with websockets.connect(url, ping_interval=None) as ws:
            await asyncio.sleep(3.5)
            await ws.send("still open")
            assert await ws.recv() == "still open"

    with Server(server_extra="ping_interval = 1s\npong_timeout = 1s\n") as s:
        run(main(s.url()))
        assert "no pong or data" not in s.logtext()


def test_client_keepalive_pings():
    async def main(url):
        async with websockets.connect(url, ping_interval=0.2, ping_timeout=2) as ws:
            await asyncio.sleep(1.2)   # several client pings answered
            await ws.send("ok")
            assert await ws.recv() == "ok"

    with Server() as s:
        run(main(s.url()))


def test_many_concurrent_clients():
    async def one(url, i):
        async with websockets.connect(url) as ws:
            for j in range(20):
                await ws.send("c%d m%d" % (i, j))
                assert await ws.recv() == "c%d m%d" % (i, j)

    async def main(url):
        await asyncio.gather(*(one(url, i) for i in range(50)))

    with Server(workers=4) as s:
        run(main(s.url()))


def test_shutdown_closes_with_1001():
    async def main(s):
        conns = [await websockets.connect(s.url()) for _ in range(5)]
        for ws in conns:
            await ws.send("x")
            assert await ws.recv() == "x"
        s.proc.send_signal(signal.SIGTERM)
        for ws in conns:
            await asyncio.wait_for(ws.wait_closed(), 10)
            assert ws.close_code == 1001, ws.close_code

    with Server() as s:
        run(main(s))
        assert s.proc.wait(timeout=10) == 0


def test_ipv6_listener():
    port6 = free_port6()
    if port6 is None:
        raise Skip("cannot bind [::1] on this machine (no IPv6 loopback)")

    async def main(url):
        async with websockets.connect(url) as ws:
            await ws.send("over IPv6")
            assert await ws.recv() == "over IPv6"

    with Server(server_extra="listen = [::1]:%d\n" % port6) as s:
        run(main("ws://[::1]:%d/ws" % port6))
        run(main(s.url()))   # the IPv4 listener still works beside it
        assert s.wait_log("open remote=[::1]:")


if __name__ == "__main__":
    run_tests([
        test_text_binary_and_fragmented,
        test_1mib_messages,
        test_message_too_big_close_code,
        test_ping_pong,
        test_close_codes,
        test_subprotocols,
        test_heartbeat_answered_by_client,
        test_client_keepalive_pings,
        test_many_concurrent_clients,
        test_shutdown_closes_with_1001,
        test_ipv6_listener,
    ])
