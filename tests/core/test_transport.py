"""transport: TCP_NODELAY on client sockets (Nagle would stall replies by ~40 ms), keepalive,
replies sent early from another thread."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from multiprocessing import connection
from typing import Any

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


# ------------------------------------------------------------------ early replies


def _tcp_pair(small_buffers: bool = False) -> tuple[connection.Connection,
                                                    connection.Connection]:
    """(server end, client end): multiprocessing Connections over a real loopback socket;
    with small_buffers, both kernel buffers hold a few KB (set before connecting)."""
    listener = socket.create_server(("127.0.0.1", 0))
    peer = socket.socket()
    if small_buffers:
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    peer.connect(listener.getsockname())
    accepted, _ = listener.accept()
    listener.close()
    if small_buffers:
        accepted.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return connection.Connection(accepted.detach()), connection.Connection(peer.detach())


@pytest.fixture
def tcp_pair() -> Iterator[tuple[connection.Connection, connection.Connection]]:
    """A _tcp_pair, closed after the test."""
    ends = _tcp_pair()
    try:
        yield ends
    finally:
        for end in ends:
            end.close()


def _serve_one(conn: connection.Connection, result: Any) -> None:
    """What the manager's reply loop does with a call's return value."""
    conn.send(("#RETURN", result))


def test_an_early_reply_goes_out_from_another_thread_and_the_reply_loop_adds_nothing(
        tcp_pair: tuple[connection.Connection, connection.Connection]) -> None:
    server_end, client_end = tcp_pair
    reply = transport.early_replies(server_end)
    assert reply is not None
    sent: list[transport.SentReply] = []
    other = threading.Thread(target=lambda: sent.append(reply((7, [(1, "done", 49)], False))))
    other.start()
    other.join(10)
    assert client_end.poll(10) and client_end.recv() == ("#RETURN", (7, [(1, "done", 49)], False))
    assert sent and sent[0].rest == b""
    _serve_one(server_end, sent[0])  # the call returns the marker: nothing more is written
    _serve_one(server_end, "next")  # and the next call's reply is untouched
    assert client_end.recv() == ("#RETURN", "next")


def test_an_early_reply_the_socket_cannot_take_whole_is_finished_by_the_reply_loop() -> None:
    server_end, client_end = _tcp_pair(small_buffers=True)  # far below the reply
    try:
        reply = transport.early_replies(server_end)
        assert reply is not None
        payload = (1, [(2, "done", b"x" * 200_000)], False)  # under EARLY_REPLY_MAX
        marker = reply(payload)  # the peer reads nothing yet: only part of it fits
        assert 0 < len(marker.rest) < 200_000
        finisher = threading.Thread(target=_serve_one, args=(server_end, marker))
        finisher.start()  # blocks until the peer reads
        assert client_end.recv() == ("#RETURN", payload)
        finisher.join(10)
        assert not finisher.is_alive()
    finally:
        server_end.close()
        client_end.close()


def test_a_large_early_reply_is_left_whole_to_the_reply_loop(
        tcp_pair: tuple[connection.Connection, connection.Connection]) -> None:
    server_end, client_end = tcp_pair
    reply = transport.early_replies(server_end)
    assert reply is not None
    payload = (1, [(2, "done", b"y" * (transport.EARLY_REPLY_MAX + 1))], False)
    marker = reply(payload)
    assert not client_end.poll(0.1)  # nothing was sent under the caller's lock
    finisher = threading.Thread(target=_serve_one, args=(server_end, marker))
    finisher.start()
    assert client_end.recv() == ("#RETURN", payload)
    finisher.join(10)


def test_a_result_wait_is_answered_by_the_thread_that_stores_the_result(
        tcp_pair: tuple[connection.Connection, connection.Connection]) -> None:
    from guidist.core.backends.memory.broker import Broker

    server_end, client_end = tcp_pair
    reply = transport.early_replies(server_end)
    assert reply is not None
    senders: list[int] = []

    def recording(result: Any) -> transport.SentReply:
        senders.append(threading.get_ident())
        assert reply is not None
        return reply(result)

    broker = Broker()
    broker.early_reply = lambda: recording
    broker.submit("square", [(5,)], job="j")
    jid = broker.job("j").id  # type: ignore[union-attr]
    wid = broker.register_worker("w", "localhost", 1)["id"]
    broker.claim(wid, 1)
    returned: list[Any] = []
    waiter = threading.Thread(target=lambda: returned.append(
        broker.wait_results(broker.result_cursor(), [jid], 10.0, "tk")))
    waiter.start()
    wait_for(lambda: broker._lock._waiters, message="the wait to register")
    broker.complete(wid, [(1, True, 25)])
    assert senders == [threading.get_ident()]  # this thread sent it, as complete() let go
    kind, (cursor, outcomes, gap) = client_end.recv()
    assert (kind, outcomes, gap) == ("#RETURN", [(1, "done", 25, None, None)], False)
    waiter.join(10)
    assert isinstance(returned[0], transport.SentReply) and returned[0].rest == b""
    # A poke is answered the same way, and a wait with nothing to say returns by itself.
    waiter = threading.Thread(target=lambda: returned.append(
        broker.wait_results(cursor, [jid], 10.0, "tk")))
    waiter.start()
    wait_for(lambda: broker._lock._waiters, message="the second wait to register")
    broker.poke("tk")
    assert client_end.recv() == ("#RETURN", (cursor, [], False))
    waiter.join(10)
    assert broker.wait_results(cursor, [jid], 0.05, "tk") == (cursor, [], False)
    assert not broker._lock._waiters


def test_an_answer_that_fails_leaves_the_reply_to_the_waiting_thread() -> None:
    from guidist.core.backends.memory.broker import Broker

    def broken(result: Any) -> transport.SentReply:
        raise RuntimeError("the reply could not be sent early")

    broker = Broker()
    broker.early_reply = lambda: broken
    broker.submit("square", [(6,)], job="j")
    jid = broker.job("j").id  # type: ignore[union-attr]
    wid = broker.register_worker("w", "localhost", 1)["id"]
    broker.claim(wid, 1)
    returned: list[Any] = []
    waiter = threading.Thread(target=lambda: returned.append(
        broker.wait_results(broker.result_cursor(), [jid], 10.0)))
    waiter.start()
    wait_for(lambda: broker._lock._waiters, message="the wait to register")
    assert broker.complete(wid, [(1, True, 36)]) == 1  # the worker's report is unharmed
    waiter.join(10)
    assert returned and returned[0][1] == [(1, "done", 36, None, None)]
