"""Servers can be hostile too: scripted servers that answer the upgrade
wrongly or send frames a client must refuse. libmbgw-client (through
mbgw-cat) must fail with the right close code or a clear handshake error,
and must accept what is legal however it is cut into segments."""
from mbgw_harness import run_tests
from client_util import OK_101, ScriptedServer, cat, server_frame


def test_frames_right_after_the_101():
    """A text message and a ping in the same segment as the 101: the
    message is delivered, the ping answered with a pong carrying its
    payload, and every client frame is masked."""
    after = server_frame(1, b"early bird") + server_frame(9, b"ping!")
    with ScriptedServer(after=after, linger=1.5) as srv:
        r = cat(["-n", "1", "-w", "1", srv.url()])
        assert r.rc == 0 and r.out == "early bird\n", r
    assert (10, b"ping!", True) in srv.frames, srv.frames
    assert all(masked for _, _, masked in srv.frames), srv.frames
    assert srv.close_codes() == [1000], srv.frames


def test_handshake_trickled_byte_by_byte():
    after = server_frame(1, b"fragm", fin=False) + server_frame(0, b"ented")
    with ScriptedServer(after=after, trickle=True, linger=2) as srv:
        r = cat(["-n", "1", "-w", "3", srv.url("/t?q=1")])
        assert r.rc == 0 and r.out == "fragmented\n", r
    assert srv.requests[0].startswith("GET /t?q=1 HTTP/1.1\r\n"), srv.requests


def test_invalid_upgrade_answers():
    cases = [
        (OK_101.replace("{accept}", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="), "", "Sec-WebSocket-Accept does not match"),
        (OK_101.replace("Upgrade: websocket\r\n", ""), "", "Upgrade is not websocket"),
        (OK_101.replace("Connection: Upgrade\r\n", "Connection: keep-alive\r\n"), "", "Connection does not contain"),
        (OK_101, "Sec-WebSocket-Protocol: chat.v9\r\n", "subprotocol 'chat.v9', which we did not offer"),
        (OK_101, "Sec-WebSocket-Extensions: permessage-deflate\r\n", "we did not offer"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "", "server answered 200 OK"),
        ("HTTP/1.1 503 Busy\r\nRetry-After: 1\r\n\r\n", "", "server answered 503 Busy"),
        ("SSH-2.0-OpenSSH_9.2\r\n", "", "not an HTTP response"),
    ]
    for response, extra, why in cases:
        with ScriptedServer(response=response, extra=extra, linger=0.5) as srv:
            r = cat(["-x", "x", srv.url()])
            assert r.rc == 4, (why, r)
            assert why in r.err, (why, r)
    # An extension we offered, with a parameter RFC 7692 forbids.
    with ScriptedServer(extra="Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7\r\n",
                        linger=0.5) as srv:
        r = cat(["--compress", "-x", "x", srv.url()])
        assert r.rc == 4 and "server_max_window_bits must be 8..15" in r.err, r


def test_frames_a_client_must_refuse():
    cases = [
        (server_frame(1, b"masked", mask=b"\x01\x02\x03\x04"), 1002, "Server frame is masked"),
        (server_frame(1, b"\xc3\x28"), 1007, "not valid UTF-8"),
        (server_frame(1, b"x", rsv=4), 1002, "Reserved bits"),
        (server_frame(0, b"x"), 1002, "Continuation frame without a message"),
        (server_frame(9, b"x" * 126), 1002, "Control frame payload exceeds 125"),
        (server_frame(8, b"\x03"), 1002, "1-byte payload"),
        (server_frame(8, b"\x03\xed"), 1002, "Invalid close code"),
        (server_frame(2, b"z" * 2000), 1009, "exceeds the maximum of 1024"),
    ]
    for after, code, why in cases:
        with ScriptedServer(after=after, linger=1.0) as srv:
            r = cat(["--max-size", "1024", "-n", "1", "-w", "2", srv.url()])
            assert r.rc == 5, (why, r)
            assert why in r.err, (why, r)
        assert srv.close_codes() == [code], (why, srv.frames)


def test_close_from_the_server_is_echoed():
    with ScriptedServer(after=server_frame(8, b"\x0f\xa1" + "bye \u00e9".encode()), linger=1.0,
                        server_closes=True) as srv:
        r = cat(["-w", "2", srv.url()])
        assert r.rc == 6 and "closed by the server: 4001 bye \u00e9" in r.err, r
    assert srv.close_codes() == [4001], srv.frames


if __name__ == "__main__":
    run_tests([test_frames_right_after_the_101, test_handshake_trickled_byte_by_byte, test_invalid_upgrade_answers,
               test_frames_a_client_must_refuse, test_close_from_the_server_is_echoed])
