#!/usr/bin/python3
"""py-echo — the Python `websockets` comparison peer for mbgw-bench (a slow reference).

    /usr/bin/python3 py-echo.py PORT [--path /ws] [--tls CERT KEY] [--deflate]

A plain echo at ws://127.0.0.1:PORT/ws with Debian's python3-websockets on
asyncio: every text or binary message is sent back as it came.
Compression is off unless --deflate (websockets turns it on by default).
SIGTERM/SIGINT stop it.
"""
import asyncio
import signal
import ssl
import sys

import websockets


def main():
    args = sys.argv[1:]
    if not args or not args[0].isdigit():
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    port, path, tls, deflate = int(args[0]), "/ws", None, False
    i = 1
    while i < len(args):
        if args[i] == "--path":
            path = args[i + 1]
            i += 1
        elif args[i] == "--tls":
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(args[i + 1], args[i + 2])
            i += 2
        elif args[i] == "--deflate":
            deflate = True
        else:
            print(f"py-echo: unknown argument {args[i]!r}", file=sys.stderr)
            sys.exit(2)
        i += 1

    async def echo(ws, req_path=None):
        if (req_path or getattr(ws, "path", "")) != path:
            await ws.close(1008, "no such path")
            return
        try:
            async for m in ws:
                await ws.send(m)
        except websockets.ConnectionClosed:
            pass

    async def serve():
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
        async with websockets.serve(echo, "127.0.0.1", port, ssl=tls,
                                    compression="deflate" if deflate else None,
                                    max_size=64 << 20, max_queue=64):
            print(f"py-echo: websockets {websockets.__version__} on 127.0.0.1:{port}{path}",
                  file=sys.stderr, flush=True)
            await stop

    asyncio.run(serve())


if __name__ == "__main__":
    main()
