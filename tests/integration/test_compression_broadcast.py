"""Group publications and route broadcasts to compressed connections
(issue 4: "a message broadcast to many recipients with the same negotiated
parameters and no context takeover is compressed once").

Through the probe test plugin (tests/plugins/probe.c) on two workers:
subscribers on a route with compression_no_context_takeover = yes (each
message compressed once per window size and shared), on a route with
context takeover (each compressed with the recipient's own stream), with
a smaller window, and without compression, all in one group. Every
subscriber must receive every publication, in order, with the right
content after inflation; shared recipients get byte-identical frames,
context-takeover recipients get the back-references only their own
window explains."""
import json
import os

from mbgw_harness import MBGW_BIN, Server, OP_TEXT, OP_CLOSE, close_payload, run_tests
from test_compression import (PMD, Inflater, connect, ext_of, letters, recv_msg, strict_inflate)

PLUGIN_DIR = os.environ.get("MBGW_TEST_PLUGIN_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(MBGW_BIN)), "test-plugins")


def probe_route(name, path, extra=""):
    so = os.path.join(PLUGIN_DIR, "probe.so")
    assert os.path.isfile(so), "test plugin %s missing: build the tests/plugins targets" % so
    return "[route %s]\npath = %s\nplugin = %s\nsettings = %s\n%s\n" % (
        name, path, so, json.dumps({"name": name, "events": False}), extra)


ROUTES = probe_route("nct", "/nct", "compression_no_context_takeover = yes") + \
    probe_route("ctx", "/ctx")


class Sub:
    """A subscriber: a raw client with its own inflater."""

    def __init__(self, port, path, offer, kind):
        self.kind = kind
        self.c = connect(port, offer, path, timeout=15)
        self.ext = ext_of(self.c)
        self.infl = Inflater()
        self.got = []        # (text, compressed, payload as received, frames)
        self.seq = 0

    def call(self, cmd, body):
        """A probe command and its (small, uncompressed) reply body."""
        self.seq += 1
        self.c.send_frame(OP_TEXT, ("%s id=s%d\n%s" % (cmd, self.seq, json.dumps(body))).encode())
        op, compressed, payload, _ = recv_msg(self.c)
        assert not compressed, "a %d-byte reply was compressed" % len(payload)
        head, _, rest = payload.decode().partition("\n")
        assert head.startswith("r cmd=%s id=s%d" % (cmd, self.seq)), head
        return json.loads(rest)

    def read(self, n):
        for _ in range(n):
            op, compressed, payload, frames = recv_msg(self.c)
            assert op == OP_TEXT
            if compressed:
                text = (strict_inflate(payload, 10)[0] if self.kind == "w10"
                        else self.infl.inflate(payload))
            else:
                text = payload
            self.got.append((text, compressed, payload, frames))

    def close(self):
        try:
            self.c.send_frame(OP_CLOSE, close_payload(1000))
            self.c.expect_close(1000)
        finally:
            self.c.close()


def publications():
    """Texts to publish: below and above the threshold, compressible and
    not, large enough to be fragmented (fragment_size 16 KiB), and one
    text twice in a row (where context takeover shows)."""
    out = []
    for i, n in enumerate([100, 1023, 1024, 3000, 50000, 8000, 200, 120000, 5000]):
        out.append(letters(n, "pub%d" % i).decode())
        out.append(("event %d: " % i + "the quick brown fox " * (n // 20))[:n])
    twice = letters(6000, "twice").decode()
    return out + [twice, twice]


def test_group_publish_to_mixed_compression():
    """A group with 30 shared-compression members, 30 with context
    takeover, 5 with a 10-bit window and 5 without compression, on two
    workers: every member gets every publication in order and intact."""
    texts = publications()
    with Server(routes=ROUTES, workers=2, log_level="info",
                server_extra="fragment_size = 16KiB\n") as s:
        subs = []
        try:
            subs += [Sub(s.port, "/nct", PMD, "nct") for _ in range(30)]
            subs += [Sub(s.port, "/ctx", PMD, "ctx") for _ in range(30)]
            subs += [Sub(s.port, "/nct", PMD + "; server_max_window_bits=10", "w10") for _ in range(5)]
            subs += [Sub(s.port, "/ctx", None, "plain") for _ in range(5)]
            for sub in subs:
                want = {"nct": PMD + "; server_no_context_takeover",
                        "ctx": PMD,
                        "w10": PMD + "; server_no_context_takeover; server_max_window_bits=10",
                        "plain": None}[sub.kind]
                assert sub.ext == want, (sub.kind, sub.ext)
            workers = {int(sub.call("whoami", {})["conn"]) >> 48 for sub in subs}
            assert len(workers) == 2, "subscribers all on worker(s) %r" % workers
            for sub in subs:
                assert sub.call("join", {"group": "room"}) == {"rc": 0}
            pub = Sub(s.port, "/ctx", None, "plain")
            try:
                for t in texts:
                    assert pub.call("publish", {"group": "room", "text": t}) == {"rc": 0}
            finally:
                pub.close()
            for sub in subs:
                sub.read(len(texts))
            check(subs, texts)
        finally:
            for sub in subs:
                sub.c.close()


def check(subs, texts):
    for k, sub in enumerate(subs):
        got = [g[0].decode() for g in sub.got]
        for i, (a, b) in enumerate(zip(got, texts)):
            assert a == b, "%s subscriber %d, message %d: %d bytes, expected %d" % (
                sub.kind, k, i, len(a), len(b))
        for i, (text, compressed, payload, frames) in enumerate(sub.got):
            want = sub.kind != "plain" and len(text) >= 1024
            assert compressed == want, "%s subscriber %d, message %d (%d bytes): compressed=%s" % (
                sub.kind, k, i, len(text), compressed)
            assert all(f[3] <= 16384 for f in frames), frames
    # shared recipients: one compressed form per window size, each decodable
    # on its own; context takeover: the repeated text is mostly a reference
    for kind in ("nct", "w10"):
        group = [s for s in subs if s.kind == kind]
        for i in range(len(texts)):
            forms = {s.got[i][2] for s in group}
            assert len(forms) == 1, "%s: message %d reached %d members in %d forms" % (
                kind, i, len(group), len(forms))
        if texts[-1] == texts[-2]:
            last, before = group[0].got[-1], group[0].got[-2]
            assert last[2] == before[2], "no context takeover, yet the repeat differs"
        bits = 10 if kind == "w10" else 15
        for text, compressed, payload, _ in group[0].got:
            if compressed:
                assert strict_inflate(payload, bits)[0] == text
    for s in subs:
        if s.kind == "ctx" and texts[-1] == texts[-2]:
            first, again = s.got[-2][2], s.got[-1][2]
            assert len(again) < len(first) / 10, (len(first), len(again))
    # frames of the large ones are fragmented, RSV1 on the first only
    big = [g for g in subs[0].got if len(g[2]) > 16384]
    assert big and all(len(g[3]) > 1 for g in big)


def test_route_broadcast_to_mixed_compression():
    """host->broadcast on the shared-compression route reaches each of its
    connections (the publisher too) once per message, intact; the other
    route hears nothing."""
    texts = [letters(n, "b%d" % n).decode() for n in (2000, 500, 40000, 1024, 7000)]
    with Server(routes=ROUTES, workers=2, log_level="info",
                server_extra="fragment_size = 16KiB\n") as s:
        subs = []
        try:
            subs += [Sub(s.port, "/nct", PMD, "nct") for _ in range(30)]
            subs += [Sub(s.port, "/nct", PMD + "; server_max_window_bits=10", "w10") for _ in range(3)]
            subs += [Sub(s.port, "/nct", None, "plain") for _ in range(3)]
            other = Sub(s.port, "/ctx", PMD, "ctx")
            pub = Sub(s.port, "/nct", PMD, "nct")
            for t in texts:
                # the reply and the broadcast may come in either order
                pub.seq += 1
                pub.c.send_frame(OP_TEXT, ("broadcast id=s%d\n%s" % (
                    pub.seq, json.dumps({"text": t}))).encode())
            for sub in subs:
                sub.read(len(texts))
            check(subs, texts)
            # the publisher: its replies and the broadcasts, interleaved
            seen, replies = [], 0
            while len(seen) < len(texts) or replies < len(texts):
                op, compressed, payload, _ = recv_msg(pub.c)
                data = pub.infl.inflate(payload) if compressed else payload
                if data.startswith(b"r cmd=broadcast"):
                    assert json.loads(data.partition(b"\n")[2]) == {"rc": 0}, data
                    replies += 1
                else:
                    seen.append(data.decode())
            assert seen == texts
            assert other.c.try_recv_frame(0.3) is None, "a broadcast leaked to another route"
            other.close()
            pub.close()
        finally:
            for sub in subs:
                sub.c.close()


if __name__ == "__main__":
    run_tests([
        test_group_publish_to_mixed_compression,
        test_route_broadcast_to_mixed_compression,
    ])
