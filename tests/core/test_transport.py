"""transport: TCP_NODELAY on client sockets (Nagle would stall replies by ~40 ms), keepalive."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from guidist.core import transport
from guidist.core.client import Client
from guidist.core.server import ServerProcess
from tests.conftest import wait_for


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


def _sockopt(conn, level: int, option: int) -> int:  # type: ignore[no-untyped-def]
    s = socket.socket(fileno=conn.fileno())
    try:
        return s.getsockopt(level, option)
    finally:
        s.detach()


def test_client_connections_detect_a_dead_peer(server: ServerProcess, client: Client) -> None:
    """Keepalive, and on Linux a user timeout, so a lost link fails a blocked call."""
    client.snapshot()
    conn = client.connection._broker._tls.connection
    assert _sockopt(conn, socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        expected = int(transport.dead_peer_seconds() * 1000)
        assert _sockopt(conn, socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == expected


def test_the_dead_peer_time_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(transport.DEAD_PEER_ENV, "7")
    assert transport.dead_peer_seconds() == 7.0
    monkeypatch.setenv(transport.DEAD_PEER_ENV, "0.1")
    assert transport.dead_peer_seconds() == 1.0  # below a second the kernel cannot probe
    monkeypatch.setenv(transport.DEAD_PEER_ENV, "soon")
    assert transport.dead_peer_seconds() == transport.DEAD_PEER_SECONDS


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to read the "
                    "server's socket timers")
def test_the_server_keeps_its_connections_under_keepalive(server: ServerProcess,
                                                          client: Client) -> None:
    """The server's end of each connection runs a keepalive timer (seen from outside, by ss)."""
    assert server.address is not None
    client.snapshot()

    def timers() -> list[str]:
        out = subprocess.run(["ss", "-Htno", "state", "established",
                              f"( sport = :{server.address[1]} )"],
                             capture_output=True, text=True, timeout=10).stdout
        return out.splitlines()

    # Right after a reply the retransmit timer runs until the client's delayed ACK arrives;
    # once the connection is quiet, its timer is the keepalive one.
    wait_for(lambda: timers() and all("timer:(keepalive" in line for line in timers()),
             timeout=10, message="keepalive timers on the server's connections")
