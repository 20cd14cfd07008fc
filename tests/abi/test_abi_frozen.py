"""A plugin built against the frozen SDK 1.0 header keeps loading and
working in this host (the ABI promise of DESIGN.md)."""
import os
from mbgw_harness import Server, Client, OP_TEXT, run_tests

FROZEN = os.environ["MBGW_FROZEN_PLUGIN"]

ROUTES = """
[route frozen]
path = /frozen
plugin = %s
format = raw
""" % FROZEN


def test_frozen_plugin_loads_and_answers():
    with Server(routes=ROUTES) as s:
        c = Client(s.port, path="/frozen")
        assert c.status == 101, c.status
        op, data = c.recv_message()
        assert (op, data) == (OP_TEXT, b'frozen.open\n{"abi":"1.0"}'), (op, data)
        c.send_frame(OP_TEXT, "ping")
        assert c.recv_message() == (OP_TEXT, b"frozen:ping")
        c.close()
        assert "plugin frozen-1.0 1.0.0 loaded" in s.logtext()


if __name__ == "__main__":
    run_tests([test_frozen_plugin_loads_and_answers])
