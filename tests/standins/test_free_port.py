"""free_port: a port no parallel test's port-0 server or outgoing connection can be handed."""

from __future__ import annotations

import socket
from pathlib import Path

from agent_core.testing.redis_server import free_port


def _ephemeral() -> range:
    low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    return range(low, high + 1)


def test_a_free_port_is_never_one_the_kernel_hands_out_for_port_zero() -> None:
    ports = {free_port() for _ in range(50)}
    assert not ports & set(_ephemeral())
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))  # what a stand-in on port 0 gets
        assert sock.getsockname()[1] in _ephemeral()


def test_a_free_port_is_not_one_something_listens_on() -> None:
    taken = []
    try:
        for _ in range(20):  # listeners on ports free_port could pick
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", free_port()))
            listener.listen()
            taken.append(listener)
        busy = {s.getsockname()[1] for s in taken}
        assert all(free_port() not in busy for _ in range(200))
        for port in busy:  # and each is really taken
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
                raise AssertionError(f"port {port} was not taken")
    finally:
        for listener in taken:
            listener.close()
