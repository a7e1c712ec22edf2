"""Nothing waits for ever (issue 11 items 5, 6 and 10), with real processes and sockets.

Connects and handshakes have deadlines, a burst of clients fits the listen backlog, ``serve``
exits when its server process dies, heartbeats follow the lease from the first one, and a
task that runs past its time limit is failed (a process-mode child is killed and replaced).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from guidist.core.client import Client
from guidist.core.errors import ServerUnavailable
from guidist.core.server import ServerProcess
from tests.conftest import TEST_KEY, wait_for
from tests.e2e.conftest import run_cli

Procs = Callable[..., subprocess.Popen]


@pytest.fixture
def stalled_peer() -> Iterator[tuple[str, int]]:
    """An address whose listener accepts every connection and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    closing = threading.Event()

    def accept() -> None:
        while not closing.is_set():
            try:
                c, _ = listener.accept()
            except OSError:
                return
            held.append(c)

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield listener.getsockname()
    closing.set()
    listener.close()
    for c in held:
        c.close()


def _address(peer: tuple[str, int]) -> str:
    return f"{peer[0]}:{peer[1]}"


def test_status_and_submit_fail_fast_against_a_peer_that_never_answers(
        stalled_peer: tuple[str, int]) -> None:
    for args in (("status",), ("submit", "--range", "1..3")):
        start = time.monotonic()
        out = run_cli(*args, "--connect", _address(stalled_peer), timeout=40)
        assert out.returncode == 1, out.stderr
        assert time.monotonic() - start < 20
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "within 5 s" in lines[0], out.stderr


def test_client_connect_has_a_deadline(stalled_peer: tuple[str, int]) -> None:
    start = time.monotonic()
    with pytest.raises(ServerUnavailable, match="No answer from .* within"):
        Client(stalled_peer, TEST_KEY).connect()
    assert time.monotonic() - start < 15


def test_a_worker_gives_up_on_time_and_honours_sigterm_against_a_silent_peer(
        procs: Procs, stalled_peer: tuple[str, int]) -> None:
    argv = [sys.executable, "-m", "guidist", "worker", "--connect", _address(stalled_peer)]
    start = time.monotonic()
    quitter = procs([*argv, "--give-up-after", "2"])
    quitter.wait(timeout=30)
    assert quitter.returncode == 3
    assert time.monotonic() - start < 20
    stayer = procs([*argv, "--give-up-after", "600"])
    time.sleep(1.0)  # it is inside a connect attempt now (nothing to await: the peer is mute)
    start = time.monotonic()
    stayer.send_signal(signal.SIGTERM)
    stayer.wait(timeout=30)
    assert stayer.returncode == 0
    assert time.monotonic() - start < 12


def test_fifty_clients_connecting_at_once_all_get_through(server: ServerProcess) -> None:
    assert server.address is not None
    results: dict[int, object] = {}

    def one(i: int) -> None:
        try:
            c = Client(server.address, TEST_KEY).connect()  # type: ignore[arg-type]
            results[i] = c.snapshot().count("queued")
            c.close()
        except Exception as exc:  # noqa: BLE001 - reported below
            results[i] = exc

    for _ in range(2):
        results.clear()
        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(50)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        for t in threads:
            t.join(max(0.01, deadline - time.monotonic()))
        assert not [t for t in threads if t.is_alive()], "some connects hung"
        assert all(v == 0 for v in results.values()), [v for v in results.values() if v != 0][:3]
        assert len(results) == 50


# ---------------------------------------------------------------------- serve and its server


def test_serve_exits_non_zero_when_its_server_process_is_killed(procs: Procs,
                                                                  tmp_path: Path) -> None:
    serve = procs([sys.executable, "-m", "guidist", "serve", "--port", "0", "--no-journal",
                   "--interval", "5"], stderr=subprocess.PIPE)
    assert serve.stdout is not None
    assert serve.stdout.readline().startswith("guidist server listening")
    server_pid = wait_for(lambda: [p.pid for p in psutil.Process(serve.pid).children()
                                   if "spawn_main" in " ".join(p.cmdline())],
                          timeout=10, message="the server process")[0]  # type: ignore[index]
    os.kill(server_pid, signal.SIGKILL)  # what the OOM killer does
    start = time.monotonic()
    out, err = serve.communicate(timeout=30)
    assert serve.returncode == 1
    assert time.monotonic() - start < 5
    assert "killed by SIGKILL" in err and "Traceback" not in err
    assert "status unavailable" not in out
