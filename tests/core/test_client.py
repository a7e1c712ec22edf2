"""client: typed errors with real servers, every operation, and reconnecting after a restart."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from guidist.core.client import Client, TaskIds
from guidist.core.errors import (
    AuthenticationFailed,
    PayloadTooLarge,
    RemoteError,
    ServerUnavailable,
)
from guidist.core.protocol import TaskState
from guidist.core.server import ServerProcess
from tests.conftest import TEST_KEY, wait_for


def free_port() -> int:
    """A port nothing listens on (bound and released: good enough on a test machine)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_wrong_key_is_a_clear_error_and_the_server_keeps_serving(server: ServerProcess,
                                                                  client: Client) -> None:
    assert server.address is not None
    for _ in range(3):
        with pytest.raises(AuthenticationFailed, match="rejected the key.*GUIDIST_AUTHKEY"):
            Client(server.address, "not-the-right-key").connect()
    assert client.submit("square", 3).id == 1
    fresh = Client(server.address, TEST_KEY).connect()
    assert fresh.snapshot().count("queued") == 1
    fresh.close()


def test_wrong_key_message_does_not_contain_either_key(server: ServerProcess) -> None:
    assert server.address is not None
    with pytest.raises(AuthenticationFailed) as info:
        Client(server.address, "guessed-key-abcdef").connect()
    assert "guessed-key-abcdef" not in str(info.value)
    assert TEST_KEY not in str(info.value)


def test_nothing_listening_is_server_unavailable() -> None:
    port = free_port()
    with pytest.raises(ServerUnavailable, match=f"Nothing is listening at 127.0.0.1:{port}"):
        Client(("127.0.0.1", port), TEST_KEY).connect()


def test_unresolvable_host_is_server_unavailable() -> None:
    with pytest.raises(ServerUnavailable, match="resolve"):
        Client(("no-such-host.invalid", 5000), TEST_KEY).connect()


def test_operations_round_trip(client: Client) -> None:
    ids = client.submit_many("square", range(10), chunk=4)
    assert isinstance(ids, TaskIds)
    assert list(ids) == list(range(1, 11)) and len(ids) == 10
    assert ids[0] == 1 and ids[-1] == 10 and 5 in ids and 11 not in ids
    assert len(ids.ranges) == 3  # one range per chunk, not one int per task
    assert client.submit("echo", "x", "y").id == 11
    t = client.get_task(11)
    assert (t.function, t.args, t.state) == ("echo", ("x", "y"), TaskState.QUEUED)
    assert client.submit("echo", k=1).id == 12
    assert client.get_task(12).kwargs == {"k": 1}
    page = client.list_tasks("queued", offset=2, limit=3)
    assert page.total == 12 and [t.id for t in page.tasks] == [3, 4, 5]
    assert client.cancel([1, 2]) == 2
    client.pause()
    assert client.snapshot().paused
    client.resume()
    assert client.purge() == 10
    snap = client.snapshot()
    assert snap.count("cancelled") == 12 and snap.count("queued") == 0 and snap.submitted == 12
    assert client.retry_all() == 0 and client.retry([1]) == 0
    assert client.workers() == () and client.forget_offline() == 0
    assert client.results_since(0)[1] != []  # cancelled tasks are results too
    assert client.get_task(999) is None


def test_submit_many_progress_can_stop_early(client: Client) -> None:
    seen = []
    ids = client.submit_many("square", range(100), chunk=30,
                             progress=lambda n: seen.append(n) or n < 60)
    assert seen == [30, 60]
    assert len(ids) == 60
    assert client.snapshot().count("queued") == 60


def test_server_side_errors_are_remote_errors(client: Client) -> None:
    with pytest.raises(RemoteError, match="submit"):
        client.call("submit", "", [(1,)])
    assert client.snapshot().count("queued") == 0  # and the connection still works


def test_oversized_argument_is_refused_before_sending(server_factory: Callable[...,
                                                                               ServerProcess]
                                                      ) -> None:
    server = server_factory(max_payload=64 * 1024)
    assert server.address is not None
    c = Client(server.address, TEST_KEY, max_payload=64 * 1024).connect()
    with pytest.raises(PayloadTooLarge, match="over the 0.1 MiB limit"):
        c.submit_many("echo", [b"x" * 10, b"y" * 200_000])
    assert c.snapshot().submitted == 0  # nothing of that chunk was queued
    ids = c.submit_many("echo", [b"x" * 30_000] * 10)  # fine one by one: split into blobs
    assert len(ids) == 10 and c.snapshot().count("queued") == 10
    c.close()


def test_lost_connection_then_reconnect_after_restart_on_the_same_port(
        server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory()
    assert server.address is not None
    c = Client(server.address, TEST_KEY).connect()
    c.submit("square", 2)
    server.stop()
    with pytest.raises(ServerUnavailable):
        c.snapshot()
    with pytest.raises(ServerUnavailable):
        c.snapshot()
    server.start()  # same port: a restart
    assert c.snapshot().submitted == 0  # a fresh in-memory server, reached by the same client
    c.close()


def test_a_new_client_reaches_a_restarted_server_while_an_old_one_is_still_open(
        server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory()
    assert server.address is not None
    old = Client(server.address, TEST_KEY).connect()  # e.g. the window's monitor client
    old.submit("square", 1)
    server.stop()
    server.start()  # same address
    fresh = Client(server.address, TEST_KEY)

    def reached() -> bool:
        try:
            return fresh.snapshot().submitted == 0
        except ServerUnavailable:
            return False

    wait_for(reached, timeout=5, message="a fresh client to reach the restarted server")
    old.close()


def test_a_dropped_client_leaves_the_socket_other_clients_share_open(server: ServerProcess,
                                                                     client: Client) -> None:
    # Every client of one server in a thread shares one cached socket; multiprocessing's
    # proxy finalizer closed it when any one client's proxy was freed (the collector can run
    # that inside another client's call).
    import gc

    from guidist.core.connection import _cached_connection

    assert server.address is not None
    assert client.submit("square", 2).id == 1
    shared = _cached_connection(client.connection._broker)
    assert shared is not None and not shared.closed
    other = Client(server.address, TEST_KEY).connect()
    assert other.snapshot().count("queued") == 1
    del other
    gc.collect()
    assert not shared.closed
    assert _cached_connection(client.connection._broker) is shared
    assert client.snapshot().count("queued") == 1
