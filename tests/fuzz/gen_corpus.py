#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/<target>/ (committed).

Seeds are small, readable where the format allows, and each shows the
fuzzer one feature it would take long to find alone: the RFC 6455
examples, every length encoding, fragments with interleaved control
frames, UTF-8 edge cases, each conf key. Run it again after changing it;
it only (re)writes the files it names and never touches regress-* files
(inputs that once crashed, kept as regression tests).

    python3 tests/fuzz/gen_corpus.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


# Seeds that trip a reported, not yet fixed bug (README.md, "Known bugs")
# are held back so that `make fuzz` fails only when fuzzing finds
# something; remove a tag here once its bug is fixed.
KNOWN_BUGS = set()  # none open


def write(target, name, data, known=None):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if known in KNOWN_BUGS:
        if os.path.exists(os.path.join(d, name)):
            os.remove(os.path.join(d, name))
        return
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- fuzz_http_request: raw request heads --------------------------------

RFC_UPGRADE = (
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n"
)


def http_seeds():
    w = lambda name, s: write("fuzz_http_request", name, s)
    w("upgrade-rfc6455", RFC_UPGRADE)
    w("upgrade-then-frame", RFC_UPGRADE.encode() + bytes.fromhex("818537fa213d7f9f4d5158"))
    w("upgrade-browser",
      "GET /ws?token=abc HTTP/1.1\r\nHost: localhost:8080\r\nConnection: keep-alive, Upgrade\r\n"
      "Pragma: no-cache\r\nUpgrade: websocket\r\nOrigin: http://localhost:8080\r\n"
      "Sec-WebSocket-Version: 13\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
      "Accept-Encoding: gzip, deflate, br\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")
    w("upgrade-subprotocol-pref",
      "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: h2c, WebSocket\r\nConnection: upgrade\r\n"
      "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Protocol: v2.mbgw.example\r\nSec-WebSocket-Protocol: superchat , chat\r\n\r\n")
    w("upgrade-subprotocol-case",
      "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Protocol: CHAT, Superchat,\tsuperchat\r\n\r\n")
    w("upgrade-bad-key",
      "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAB==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    w("upgrade-version-8",
      "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n")
    w("upgrade-post",
      "POST /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    w("healthz", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    w("metrics-query", "GET /metrics?name[]=a&b HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n")
    w("absolute-form", "GET http://example.com:8080/ws?x=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n")
    w("absolute-no-path", "GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n")
    w("asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
    w("http10", "GET / HTTP/1.0\r\n\r\n")
    w("http20", "GET / HTTP/2.0\r\nHost: a\r\n\r\n")
    w("http11-no-host", "GET / HTTP/1.1\r\nAccept: *\r\n\r\n")
    w("leading-crlf", "\r\nGET /ws HTTP/1.1\r\nHost: a\r\n\r\n")
    w("fragment", "GET /ws#frag HTTP/1.1\r\nHost: a\r\n\r\n")
    w("content-length-0", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    w("content-length-00", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 00\r\n\r\n")
    w("content-length-5", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
    w("content-length-bad", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n")
    w("content-length-twice", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\ncontent-length: 0\r\n\r\n")
    w("transfer-encoding", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    w("host-twice", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n")
    w("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n")
    w("space-before-colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n")
    w("bare-lf", "GET / HTTP/1.1\nHost: a\r\n\r\n")
    w("bare-cr", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n")
    w("nul", "GET / HTTP/1.1\r\nHost: a\x00\r\n\r\n")
    w("ctl-in-value", "GET / HTTP/1.1\r\nHost: a\r\nX: \x01\x7f\r\n\r\n")
    w("tabs-in-value", "GET / HTTP/1.1\r\nHost:\t a \t\r\nX-Empty:\r\nX: a\tb\r\n\r\n")
    w("incomplete", "GET /ws HTTP/1.1\r\nHost: a\r\n")
    w("garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    w("many-headers", "GET / HTTP/1.1\r\nHost: a\r\n" + "".join("X-%d: %d\r\n" % (i, i) for i in range(70)) + "\r\n")
    w("long-target", "GET /" + "a" * 2100 + " HTTP/1.1\r\nHost: a\r\n\r\n")
    w("pipelined", "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n")


# --- fuzz_ws_reader: settings byte, split offset, client bytes ------------

def frame(op, payload=b"", fin=True, rsv=0, mask=b"\x37\xfa\x21\x3d", length=None):
    """A frame as a client sends it (masked unless mask is None)."""
    n = len(payload) if length is None else length
    b = bytes([(0x80 if fin else 0) | rsv | op])
    m = 0x80 if mask is not None else 0
    if n < 126:
        b += bytes([m | n])
    elif n <= 0xFFFF:
        b += bytes([m | 126]) + struct.pack(">H", n)
    else:
        b += bytes([m | 127]) + struct.pack(">Q", n)
    if mask is not None:
        b += mask
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return b + payload


def settings(require_mask=True, rsv1=False, max_payload=3, chunk=1, stop=False):
    """max_payload: 0 -> 16, 1 -> 200, 2 -> 70000, 3 -> 1 MiB."""
    return bytes([(1 if require_mask else 0) | (2 if rsv1 else 0) | (max_payload << 2) |
                  ((chunk - 1) << 4) | (0x80 if stop else 0)])


def reader_seeds():
    def w(name, stream, split=None, streamed=False, known=None, **kw):
        """streamed: compressed messages go through on_piece (not for the whole run)."""
        sp = len(stream) // 2 if split is None else split
        write("fuzz_ws_reader", name, settings(**kw) + struct.pack(">H", sp | (0x8000 if streamed else 0)) + stream,
              known)

    # RFC 6455 §5.7 examples.
    w("rfc-masked-hello", bytes.fromhex("818537fa213d7f9f4d5158"))
    w("rfc-unmasked-hello", bytes.fromhex("810548656c6c6f"), require_mask=False)
    w("rfc-fragmented", bytes.fromhex("010348656c") + bytes.fromhex("80026c6f"), require_mask=False, chunk=3)
    w("rfc-ping", bytes.fromhex("890548656c6c6f"), require_mask=False)
    w("rfc-masked-pong", bytes.fromhex("8a8537fa213d7f9f4d5158"))
    w("rfc-256-binary", frame(2, bytes(range(256)) * 1, mask=None), require_mask=False)
    w("len16-partial", frame(2, bytes(300)), split=5, chunk=7)
    w("len64-header", frame(2, b"", length=70000)[:14] + bytes(100), max_payload=2)
    w("len64-too-big", frame(2, b"", length=1 << 21)[:14], max_payload=3)
    w("len64-msb", b"\x82\xff" + b"\x80" + bytes(7) + b"abcd")
    w("non-minimal-16", b"\x81\xfe\x00\x05abcd" + b"hello")
    w("non-minimal-64", b"\x81\xff" + struct.pack(">Q", 200) + b"abcd")
    w("fragments-ping-between",
      frame(1, "καλη".encode()[:3], fin=False) + frame(9, b"ping") +
      frame(0, "καλη".encode()[3:], fin=False) + frame(10, b"") + frame(0, " μέρα".encode()), chunk=2)
    w("utf8-split-4byte", frame(1, b"\xf0\x9f", fin=False) + frame(0, b"\x98\x80!"), chunk=1)
    w("utf8-invalid-surrogate", frame(1, b"ok \xed\xa0\x80 no"))
    w("utf8-invalid-in-fragment", frame(1, b"ab", fin=False) + frame(0, b"\xc0\xaf", fin=False) + frame(0, b"z"))
    w("utf8-truncated-end", frame(1, b"abc\xe2\x82"))
    w("utf8-max", frame(1, b"\xf4\x8f\xbf\xbf\xef\xbf\xbf\xed\x9f\xbf"))
    w("utf8-above-max", frame(1, b"\xf4\x90\x80\x80"))
    w("close-1000-reason", frame(8, struct.pack(">H", 1000) + b"bye"))
    w("close-empty", frame(8, b""))
    w("close-1byte", frame(8, b"\x03"))
    w("close-1005", frame(8, struct.pack(">H", 1005)))
    w("close-4999-bad-utf8", frame(8, struct.pack(">H", 4999) + b"\xff"))
    w("close-3000-split", frame(8, struct.pack(">H", 3000) + "ünïcødé".encode()), split=9, chunk=4)
    w("compressed-text", frame(1, b"\xf2\x48\xcd\xc9\xc9\x07\x00", rsv=0x40), rsv1=True)
    w("compressed-fragments", frame(1, b"\xf2\x48", fin=False, rsv=0x40) + frame(0, b"\xcd\xc9\xc9\x07\x00"), rsv1=True)
    w("compressed-over-16", frame(2, bytes(40), rsv=0x40), rsv1=True, max_payload=0)
    w("compressed-over-allowance", frame(2, bytes(1041), rsv=0x40), rsv1=True, max_payload=0)
    w("streamed-fragments", frame(1, b"\xf2\x48", fin=False, rsv=0x40) + frame(9, b"p") +
      frame(0, b"\xcd\xc9", fin=False) + frame(0, b"\xc9\x07\x00"), rsv1=True, streamed=True, chunk=3)
    w("streamed-one-frame-partial", frame(2, bytes(range(60)), rsv=0x40), rsv1=True, streamed=True, split=20)
    w("streamed-stop", frame(2, b"ab", fin=False, rsv=0x40) + frame(0, b"") + frame(1, b"x", rsv=0x40) +
      frame(2, b"cd", fin=False, rsv=0x40) + frame(0, b"ef"), rsv1=True, streamed=True, stop=True, chunk=2)
    w("streamed-too-big", frame(2, bytes(1000), fin=False, rsv=0x40) + frame(0, bytes(100)), rsv1=True,
      streamed=True, max_payload=0, chunk=8, known="reader-streamed-limit")
    w("rsv1-not-negotiated", frame(1, b"x", rsv=0x40))
    w("rsv1-on-continuation", frame(1, b"x", fin=False, rsv=0x40) + frame(0, b"y", rsv=0x40), rsv1=True)
    w("rsv2", frame(2, b"x", rsv=0x20))
    w("reserved-opcode-3", frame(3, b"x"))
    w("reserved-opcode-b", frame(0xB, b""))
    w("fragmented-ping", frame(9, b"x", fin=False))
    w("long-ping", frame(9, bytes(126)))
    w("ping-rsv1", frame(9, b"", rsv=0x40), rsv1=True)
    w("unmasked-client", frame(1, b"hi", mask=None))
    w("continuation-first", frame(0, b"x"))
    w("text-during-fragments", frame(1, b"a", fin=False) + frame(1, b"b"))
    w("too-big-16", frame(2, bytes(17)), max_payload=0)
    w("too-big-fragments-16", frame(2, bytes(10), fin=False) + frame(0, bytes(7)), max_payload=0)
    w("too-big-200-stream", frame(1, b"a" * 150, fin=False) + frame(0, b"b" * 60), max_payload=1, chunk=8)
    w("empty-fragments", frame(1, b"", fin=False) + frame(0, b"", fin=False) + frame(0, b""))
    w("zero-mask", frame(2, b"abc", mask=b"\0\0\0\0") + frame(1, b"", mask=b"\xff\xff\xff\xff"))
    w("many-small", b"".join(frame(9 if i % 3 == 0 else 2, bytes([i]) * (i % 5)) for i in range(40)), stop=True)
    w("stop-each", frame(1, b"one") + frame(2, b"two") + frame(9, b"") + frame(1, b"four"), stop=True, chunk=5)
    w("incomplete-header", frame(1, b"hello")[:4])


# --- fuzz_ws_frame: flags byte, mask offset byte, bytes under test -----------

def frame_seeds():
    def w(name, body, flags=0x01, offset=0):
        write("fuzz_ws_frame", name, bytes([flags, offset]) + body)

    w("hdr-masked-text", bytes.fromhex("818537fa213d7f9f4d5158"))
    w("hdr-unmasked", bytes.fromhex("810548656c6c6f"), flags=0x00)
    w("hdr-len16", b"\x82\xfe\x01\x00abcd" + bytes(20))
    w("hdr-len64", b"\x82\xff" + struct.pack(">Q", 65536) + b"abcd")
    w("hdr-len64-msb", b"\x82\xff\x80" + bytes(7) + b"abcd")
    w("hdr-rsv1", b"\xc1\x80abcd", flags=0x41)
    w("hdr-control", b"\x88\x82abcd\x03\xe8")
    w("hdr-short", b"\x81")
    w("mask-long", b"\x01\x02\x03\x04" + bytes(range(200)), flags=0x07, offset=3)
    w("utf8-greek", "κόσμε".encode(), flags=0x05)
    w("utf8-edges", b"\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", flags=0x03)
    w("utf8-overlong", b"\xc0\xaf\xe0\x80\xaf\xf0\x80\x80\xaf", flags=0x01)
    w("utf8-surrogates", b"\xed\xa0\x80\xed\xbf\xbf", flags=0x03)
    w("utf8-above-max", b"\xf4\x90\x80\x80\xf5\x80", flags=0x01)
    w("utf8-ascii-run", b"plain ascii text that is longer than one word" * 2 + b"\xe2\x82\xac", flags=0x0f)
    w("close-1000", struct.pack(">H", 1000) + b"normal")
    w("close-1015", struct.pack(">H", 1015))
    w("close-2999", struct.pack(">H", 2999))


# --- fuzz_msg: settings byte, then "<header line>\n<payload>" -------------

def msg_seeds():
    def w(name, body, text=True, max_header=5, known=None):
        """max_header: index into 1, 8, 16, 64, 256, 1024, 4096, 65536."""
        if isinstance(body, str):
            body = body.encode()
        write("fuzz_msg", name, bytes([(1 if text else 0) | (max_header << 1)]) + body, known)

    w("chat-send", 'chat.send id=42 room=lobby\n{"text":"hi \\u00e9 \\ud83d\\ude00"}')
    w("empty-payload", "chat.leave\n")
    w("blank-payload", "chat.leave id=9\n \r\n\t")
    w("spaces", "   chat.x    id=1   k-2.x_y=   \n  [1, 2.5e3, null, true]  \n")
    w("binary", b"blob id=7\n\x00\x01\xff\n", text=False)
    w("binary-no-payload", "blob\n", text=False)
    w("nested-json", 'deep\n' + '[' * 40 + '{"a":"\\"}"}' + ']' * 40)
    w("no-newline", '{"text":"hi"}')
    w("type-with-eq", "a=b\n{}")
    w("attr-no-eq", "chat bad\n{}")
    w("attr-bad-key", "chat k!=v\n{}")
    w("attr-empty-key", "chat =v\n{}")
    w("invalid-json-keeps-id", "chat id=5\n{bad")
    w("trailing-text", "chat id=6\n{} x")
    w("two-values", "chat\n1 2")
    w("ctl-in-header", "chat\tid=1\n{}")
    w("utf8-in-header", "chät\n{}")
    w("header-too-long", "chat.send id=1234567\n{}", max_header=1)
    w("header-exactly-max", "12345678\n{}", max_header=1)
    w("many-attrs", "m " + " ".join("a%d=%d" % (i, i) for i in range(33)) + "\n{}")
    w("quote-in-type", 'bad"type id=1\n"a \\" b"', known="msg-reply-code")
    w("two-ids", "chat id=1 id=2\n{}")
    w("patterns", "chat.send p=chat.*\n{}")
    w("pattern-star", "x p=*\nnull")


# --- fuzz_ws_deflate: settings, level/piece byte, then messages or offers --

def deflate(data, wbits=15, level=6, final=False):
    """Raw DEFLATE as a permessage-deflate sender makes it (tail removed)."""
    import zlib
    c = zlib.compressobj(level, zlib.DEFLATED, -wbits)
    if final:
        return c.compress(data) + c.flush(zlib.Z_FINISH)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def deflate_stream(messages, wbits=15, level=6):
    """Several messages through one context (context takeover)."""
    import zlib
    c = zlib.compressobj(level, zlib.DEFLATED, -wbits)
    out = []
    for m in messages:
        o = c.compress(m) + c.flush(zlib.Z_SYNC_FLUSH)
        out.append(o[:-4])
    return out


SEP = b"\xff\xfe\xfd"


def deflate_seeds():
    def w(name, body, bits=15, cnct=False, max_size=3, snct=False, level=1, piece=3):
        """max_size: 0 -> 1, 1 -> 64, 2 -> 4096, 3 -> 1 MiB."""
        b0 = (bits - 8) | (8 if cnct else 0) | (max_size << 4) | (0x80 if snct else 0)
        write("fuzz_ws_deflate", name, bytes([b0, level | (piece << 4)]) + body)

    def offer(name, text, cbits=15, cnct=False, sbits=15, snct=False):
        b0 = 0x40 | (cbits - 8) | (8 if cnct else 0)
        b1 = (sbits - 8) | (8 if snct else 0)
        write("fuzz_ws_deflate", name, bytes([b0, b1]) + text.encode())

    # RFC 7692 §7.2.3 examples.
    w("rfc-hello", bytes.fromhex("f248cdc9c90700"))
    w("rfc-hello-twice-context", bytes.fromhex("f248cdc9c90700") + SEP + bytes.fromhex("f200110000"))
    w("rfc-stored-block", bytes.fromhex("000500faff48656c6c6f"))
    w("rfc-bfinal", bytes.fromhex("f348cdc9c9070000"))
    w("rfc-bfinal-then-more", bytes.fromhex("f348cdc9c9070000") + SEP + bytes.fromhex("f200110000"))
    w("rfc-two-blocks", bytes.fromhex("f24805000000ffffcac9c90700"))
    w("empty-message", b"\x00" + SEP + b"" + SEP + deflate(b"after"))
    w("text-stream", SEP.join(deflate_stream([b"chat.send id=1\n{\"t\":\"hi\"}"] * 3)), snct=True)
    w("no-context", SEP.join([deflate(b"abcabcabc")] * 3), cnct=True)
    w("window-8", deflate(bytes(range(256)) * 2, wbits=9), bits=8, snct=True)
    w("window-8-too-far", deflate(bytes(range(200)) + b"x" * 300 + bytes(range(200)), wbits=15), bits=8)
    w("bomb-64", deflate(bytes(100000)), max_size=1)
    w("bomb-4096", deflate(b"a" * 5000), max_size=2, piece=15)
    w("max-1", deflate(b"ab"), max_size=0)
    w("truncated", deflate(b"hello hello hello hello")[:-2])
    w("garbage", b"\xff\xff\xff\xff")
    w("reserved-btype", b"\x07\x00")
    w("level-9", SEP.join(deflate_stream([b"x" * 300, b"y" * 10, b"x" * 300], level=9)), level=9, piece=1)
    w("level-0", deflate(b"stored only", level=0), level=0)

    offer("offer-plain", "permessage-deflate")
    offer("offer-client-bits", "permessage-deflate; client_max_window_bits", cbits=10)
    offer("offer-both-bits", "permessage-deflate; client_max_window_bits=10; server_max_window_bits=12, permessage-deflate",
          cbits=12, sbits=9)
    offer("offer-no-context", "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
          snct=True)
    offer("offer-quoted", 'permessage-deflate; server_max_window_bits="10"; client_max_window_bits="8"')
    offer("offer-others-first", "x-webkit-deflate-frame, permessage-deflate; foo=1, permessage-deflate;client_max_window_bits")
    offer("offer-lines", "foo; bar=\"baz\"\n\npermessage-deflate; server_max_window_bits=15\n, ,")
    offer("offer-bad-values", "permessage-deflate; server_max_window_bits=08, permessage-deflate; client_max_window_bits=16, "
          "permessage-deflate; server_max_window_bits, permessage-deflate; server_no_context_takeover=1")
    offer("offer-duplicate", "permessage-deflate; client_max_window_bits; client_max_window_bits=9")
    offer("offer-syntax-semicolon", "permessage-deflate;")
    offer("offer-syntax-quoted", 'permessage-deflate; a="b c"')
    offer("offer-syntax-escape", 'permessage-deflate; a="\\9"; b="9')
    offer("offer-syntax-space", "permessage deflate")
    offer("offer-browser", "permessage-deflate; client_max_window_bits", cbits=15, sbits=15)


# --- fuzz_conf: conf.d text, files separated by "\n\f\n" ---------------------

def conf_seeds():
    w = lambda name, s: write("fuzz_conf", name, s)
    for name in sorted(os.listdir(os.path.join(HERE, "..", "..", "conf.d"))):
        if name.endswith(".conf"):
            with open(os.path.join(HERE, "..", "..", "conf.d", name), "rb") as f:
                write("fuzz_conf", "conf.d-" + name, f.read())
    w("all-server-keys",
      "[server]\nlisten = 0.0.0.0:8080\nlisten = [::1]:9000\nlisten = *:81\nlisten = 8082\n"
      "workers = 4\nbacklog = 511\nmax_payload = 16MiB\nmax_header_size = 4KiB\nmax_headers = 32\n"
      "handshake_timeout = 500ms\nclose_timeout = 2m\nping_interval = 0\npong_timeout = 1h\n"
      "send_queue_limit = 1MB\nfragment_size = 16kB\ndrain_timeout = 1d\nlog_level = debug\n"
      "plugin_dir = /usr/lib/mbgw/plugins\npid_file = \"/run/mbgw.pid\"   # quoted\nwatch = on\n"
      "max_message_header = 2K\n"
      "[route a]\npath = /a\nplugin = echo\n")
    w("all-route-keys",
      "[route chat-v1.main]\npath = /chat\nplugin = chat\nsubprotocols = chat.v1, chat.v0 ,x\n"
      "require_subprotocol = yes\nformat = header+json\ntypes = chat.send, chat.*, presence\n"
      "settings = { \"rooms\": 10,\n  \"names\": [\"a\", \"}\"],\n  \"nested\": {\"k\": \"\\\"\"}\n}\n"
      "reload = move\nslow_consumer = drop_client\ndrain = 30s\n"
      "[route raw]\npath = /chat\nplugin = echo\nsubprotocols = raw\nformat = raw\nreload = keep\n"
      "slow_consumer = drop_message\n")
    w("shared-path-types",
      "[route a]\npath = /x\nplugin = p\ntypes = a.*\n[route b]\npath = /x\nplugin = p\ntypes = b.*\n"
      "[route c]\npath = /x\nplugin = p\n[route d]\npath = /x\nplugin = p\ntypes = a.*\n")
    w("errors-mix",
      "oops = 1\n[server]\nmax_paylaod = 1MiB\nlisten = 1.2.3.4:0\nlisten = ::1:80\nlisten = host:80\n"
      "workers = 0\nbacklog = 1k\nmax_headers = 200\nping_interval = 5 fortnights\nlog_level = loud\n"
      "watch = maybe\nlisten = 8080\nlisten = 0.0.0.0:8080\nmax_payload = 99999999999999999999\n"
      "[server extra]\n[rout x]\n[route]\n[route bad name]\n[route ok] trailing\n"
      "path = ws\npath = /ws?x\nplugin =\nplugin = \"\"\nsubprotocols = a b, (c)\nformat = xml\n"
      "types = a*, *.b, =x\nsettings = [1, 2]\nsettings = {\"a\":}\nreload = later\n"
      "slow_consumer = ignore\ndrain = -1\nno equals sign\n = novalue\nkey = \"unterminated\n"
      "[unclosed\n")
    w("json-unclosed", "[route a]\npath = /a\nplugin = echo\nsettings = {\"a\": [1,\n2\n")
    w("multi-file",
      "[server]\nlisten = 8080\nmax_payload = 1MiB\n\n\f\n[server]\nlisten = 8080\nmax_payload = 2MiB\n"
      "[route a]\npath = /a\nplugin = echo\n\n\f\n[route a]\npath = /b\n[route b]\npath = /a\nplugin = echo\n")
    w("too-many",
      "[server]\n" + "".join("listen = %d\n" % (1000 + i) for i in range(18)) +
      "[route t]\npath = /t\nplugin = echo\nsubprotocols = " + ",".join("p%d" % i for i in range(18)) +
      "\ntypes = " + ",".join("t%d" % i for i in range(18)) + "\n")
    w("comments-quotes",
      "# comment\n; comment\n[server] # c\n  log_level = \"warn\"  ; c\nmax_payload = 1MiB#not a comment\n"
      "[route q]\npath = \"/a#b\"\nplugin = \"echo\" trailing\n\r\n")
    w("long-line", "[server]\nlog_level = " + "x" * 4200 + "\n")


if __name__ == "__main__":
    http_seeds()
    reader_seeds()
    frame_seeds()
    msg_seeds()
    deflate_seeds()
    conf_seeds()
