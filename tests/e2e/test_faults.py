"""Hostile and broken peers against a real server (issue 5 section 2, items 5, 7, 9 and 12).

The server must survive garbage, huge length headers and silent connections, drop
unauthenticated connections after ``handshake_timeout``, and refuse a remote shutdown.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable
from multiprocessing import connection, managers

import psutil
import pytest

from guidist.core.client import Client
from guidist.core.server import ServerProcess
from tests.conftest import TEST_KEY, wait_for
from tests.e2e.conftest import run_cli

HANDSHAKE = 0.5


@pytest.fixture
def srv(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(handshake_timeout=HANDSHAKE)


def closed_by_server(s: socket.socket, within: float) -> float:
    """Read until the server closes s; returns the seconds it took (fails after within)."""
    s.settimeout(within)
    start = time.monotonic()
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for more than {within} s")
    return time.monotonic() - start


def still_serves(srv: ServerProcess) -> None:
    assert srv.running
    assert srv.address is not None
    c = Client(srv.address, TEST_KEY).connect()
    tid = c.submit("square", 3).id
    assert c.get_task(tid).args == (3,)
    c.close()


def server_threads(srv: ServerProcess) -> int:
    return psutil.Process(srv.pid).num_threads()


def test_random_bytes_are_dropped(srv: ServerProcess) -> None:
    assert srv.address is not None
    for seed in range(5):
        with socket.create_connection(srv.address) as s:
            s.sendall(os.urandom(4096 if seed % 2 else 7))
            closed_by_server(s, within=5)
    still_serves(srv)


@pytest.mark.parametrize("header", [
    struct.pack("!i", 0x7FFFFFFF),  # 2 GiB announced
    struct.pack("!i", -1) + struct.pack("!Q", 2**62),  # the 64-bit length form
], ids=["2GiB", "4EiB"])
def test_a_huge_length_header_before_authenticating_is_dropped(srv: ServerProcess,
                                                               header: bytes) -> None:
    assert srv.address is not None
    rss = psutil.Process(srv.pid).memory_info().rss
    with socket.create_connection(srv.address) as s:
        s.sendall(header + b"x" * 1000)
        closed_by_server(s, within=5)
    still_serves(srv)
    assert psutil.Process(srv.pid).memory_info().rss < rss + 50 * 2**20


def test_a_huge_length_header_after_authenticating_is_refused(srv: ServerProcess) -> None:
    """Someone with the key but a broken client: the server must not try to allocate 4 EiB."""
    assert srv.address is not None
    rss = psutil.Process(srv.pid).memory_info().rss
    conn = connection.Client(srv.address, authkey=TEST_KEY.encode())
    try:
        os.write(conn.fileno(), struct.pack("!i", -1) + struct.pack("!Q", 2**62) + b"x" * 100)
        reply = conn.recv() if conn.poll(5) else None
        # One error reply that says why, and then the connection is closed.
        assert reply is not None and reply[0] == "#ERROR"
        assert "refused a message" in str(reply[1])
        assert conn.poll(5)
        with pytest.raises((EOFError, ConnectionResetError)):
            conn.recv()
    finally:
        conn.close()
    still_serves(srv)
    assert psutil.Process(srv.pid).memory_info().rss < rss + 50 * 2**20


def test_a_huge_message_on_an_established_proxy_connection_is_refused(srv: ServerProcess) -> None:
    assert srv.address is not None
    rss = psutil.Process(srv.pid).memory_info().rss
    c = Client(srv.address, TEST_KEY).connect()
    c.snapshot()  # the proxy's own connection is now in serve_client
    conn = c.connection._broker._tls.connection
    os.write(conn.fileno(), struct.pack("!i", 0x7FFFFFF0) + b"x" * 100)
    time.sleep(0.3)
    assert psutil.Process(srv.pid).memory_info().rss < rss + 50 * 2**20
    c.close()
    still_serves(srv)


def test_connections_that_send_nothing_are_closed_after_the_handshake_timeout(
        srv: ServerProcess) -> None:
    assert srv.address is not None
    still_serves(srv)
    baseline = server_threads(srv)
    socks = [socket.create_connection(srv.address) for _ in range(30)]
    try:
        # While they wait, a normal client is served.
        still_serves(srv)
        start = time.monotonic()
        for s in socks:
            closed_by_server(s, within=5)
        assert time.monotonic() - start < HANDSHAKE + 2.5
    finally:
        for s in socks:
            s.close()
    # Their threads are gone: silent peers cannot pile threads up.
    wait_for(lambda: server_threads(srv) <= baseline + 1, timeout=5,
             message="the handshake threads to end")
    still_serves(srv)


def test_a_trickling_unauthenticated_connection_is_dropped_too(srv: ServerProcess) -> None:
    assert srv.address is not None
    with socket.create_connection(srv.address) as s:
        s.settimeout(HANDSHAKE * 0.6)
        header = struct.pack("!i", 200)
        deadline = time.monotonic() + HANDSHAKE * 6
        closed = False
        for byte in (header + b"\0" * 200):
            try:
                s.sendall(bytes([byte]))
                if s.recv(65536) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass  # nothing from the server yet: go on trickling
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if time.monotonic() > deadline:
                break
        assert closed, "an unauthenticated peer kept its connection open past the timeout"
    still_serves(srv)


def test_remote_shutdown_through_the_manager_protocol_is_refused(srv: ServerProcess) -> None:
    assert srv.address is not None
    conn = connection.Client(srv.address, authkey=TEST_KEY.encode())
    try:
        with pytest.raises(managers.RemoteError, match="cannot shut this server down"):
            managers.dispatch(conn, None, "shutdown")
    finally:
        conn.close()
    time.sleep(0.3)
    still_serves(srv)


def test_remote_shutdown_via_a_connected_manager_is_refused(srv: ServerProcess) -> None:
    """What a script would try: a connected BaseManager has no shutdown(), so it goes raw."""
    from guidist.core.manager import QueueManager

    assert srv.address is not None
    m = QueueManager(address=srv.address, authkey=TEST_KEY.encode())
    m.connect()
    assert not hasattr(m, "shutdown")
    conn = m._Client(m._address, authkey=m._authkey)
    try:
        for name in ("shutdown",):
            with pytest.raises(managers.RemoteError):
                managers.dispatch(conn, None, name)
    finally:
        conn.close()
    still_serves(srv)


def test_weak_key_on_all_interfaces_is_refused_by_serve() -> None:
    out = run_cli("serve", "--host", "0.0.0.0", "--port", "0", "--no-journal", key="abc")
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Refusing a well-known key" in lines[0], out.stderr
    assert "Traceback" not in out.stderr and "abc" not in out.stderr  # the key is not echoed
