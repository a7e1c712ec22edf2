"""transport: TCP_NODELAY on client sockets (Nagle would stall replies by ~40 ms)."""

from __future__ import annotations

import socket
import time

from guidist.core.client import Client
from guidist.core.server import ServerProcess


def test_client_connections_set_tcp_nodelay(server: ServerProcess, client: Client) -> None:
    client.snapshot()
    conn = client.connection._broker._tls.connection
    s = socket.socket(fileno=conn.fileno())
    try:
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        s.detach()


def test_no_nagle_stall_on_large_replies(server: ServerProcess, client: Client) -> None:
    """A listing of 2,000 tasks is a reply of tens of KB: with Nagle on either end each call
    would wait for a delayed ACK (~40 ms); with TCP_NODELAY it takes a few ms."""
    client.submit_many("echo", [("x" * 20,)] * 2000)
    client.list_tasks(limit=2000)
    best = min(_timed(lambda: client.list_tasks(limit=2000)) for _ in range(7))
    assert best < 0.035, f"best of 7 listings took {best * 1e3:.0f} ms"


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
