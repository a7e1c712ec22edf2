"""server: ServerProcess start/stop, bind errors, weak keys, restarts, and the owner's death."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable

import psutil
import pytest

from guidist.core.client import Client
from guidist.core.errors import AddressUnavailable, PortInUse, ServerUnavailable, WeakKey
from guidist.core.server import ServerProcess
from tests.conftest import REPO, TEST_KEY, wait_for


def test_start_reports_the_real_port_and_stop_closes_the_listener(
        server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory(port=0)
    assert server.address is not None
    host, port = server.address
    assert host == "127.0.0.1" and port > 0
    assert server.running and psutil.pid_exists(server.pid)  # type: ignore[arg-type]
    pid = server.pid
    with socket.create_connection(server.address, timeout=5):
        pass
    server.stop()
    assert not server.running
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(server.address, timeout=5).close()
    server.stop()  # idempotent


def test_describe_never_contains_the_key(server: ServerProcess) -> None:
    d = server.describe()
    assert "authkey" not in d and TEST_KEY not in repr(d)
    assert d["port"] == server.address[1]  # type: ignore[index]


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        server = ServerProcess("127.0.0.1", port, TEST_KEY)
        with pytest.raises(PortInUse, match=f"Port {port} .* already in use.*another port"):
            server.start()
        assert not server.running


def test_port_in_use_by_another_guidist_server(server: ServerProcess) -> None:
    assert server.address is not None
    with pytest.raises(PortInUse):
        ServerProcess("127.0.0.1", server.address[1], TEST_KEY).start()
    Client(server.address, TEST_KEY).connect().snapshot()  # the first one is unharmed


def test_an_address_of_another_machine_is_a_clear_error() -> None:
    server = ServerProcess("192.0.2.1", 0, TEST_KEY)  # TEST-NET-1: never local
    with pytest.raises(AddressUnavailable, match="Cannot listen on 192.0.2.1"):
        server.start()
    assert not server.running


def test_weak_key_refused_on_all_interfaces_before_any_process_starts() -> None:
    before = {p.pid for p in psutil.Process().children()}
    for key in ("", "abc", "short"):
        with pytest.raises(WeakKey, match="--insecure"):
            ServerProcess("0.0.0.0", 0, key)
    assert {p.pid for p in psutil.Process().children()} == before


def test_weak_key_allowed_on_loopback_and_when_insisted(
        server_factory: Callable[..., ServerProcess]) -> None:
    s1 = server_factory(host="127.0.0.1", authkey="abc")  # the tutorial's key still works here
    assert s1.address is not None
    Client(s1.address, "abc").connect().snapshot()
    s2 = server_factory(host="0.0.0.0", authkey="abc", insist_weak_key=True)
    assert s2.address == ("0.0.0.0", s2.address[1])  # type: ignore[index]
    Client(("127.0.0.1", s2.address[1]), "abc").connect().snapshot()  # type: ignore[index]


def test_restart_on_the_same_port_right_after_stop(
        server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory()
    assert server.address is not None
    address = server.address
    c = Client(address, TEST_KEY).connect()
    c.submit_many("square", range(100))  # an open, used connection at stop time
    server.stop()
    c.close()  # see test_client's stale-connection test: an open client would poison new ones
    again = server_factory(port=address[1])
    assert again.address == address
    assert Client(address, TEST_KEY).connect().snapshot().submitted == 0
    again.stop()
    server.start()  # the same object restarts on its port too
    assert server.address == address
    assert Client(address, TEST_KEY).connect().snapshot().submitted == 0


def test_start_twice_is_refused(server: ServerProcess) -> None:
    from guidist.core.errors import GuidistError

    with pytest.raises(GuidistError, match="already running"):
        server.start()


OWNER = textwrap.dedent("""
    import sys, threading
    from guidist.core.server import ServerProcess
    if __name__ == "__main__":
        s = ServerProcess("127.0.0.1", 0, sys.argv[1])
        host, port = s.start()
        print(s.pid, port, flush=True)
        threading.Event().wait(120)  # until the test kills this owner (bounded)
""")


def test_server_exits_when_its_owner_is_killed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "owner.py"
    script.write_text(OWNER)
    owner = subprocess.Popen([sys.executable, str(script), TEST_KEY], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    try:
        line = owner.stdout.readline()  # type: ignore[union-attr]
        server_pid, port = map(int, line.split())
        Client(("127.0.0.1", port), TEST_KEY).connect().snapshot()
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(10)

        def gone() -> bool:
            try:
                return psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True

        wait_for(gone, timeout=10, message="the orphaned server to exit")
        with pytest.raises(ServerUnavailable):
            Client(("127.0.0.1", port), TEST_KEY).connect()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        owner.stdout.close()  # type: ignore[union-attr]
