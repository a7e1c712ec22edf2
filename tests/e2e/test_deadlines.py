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
from tests.redis_fixtures import RedisServer, needs_redis

Procs = Callable[..., subprocess.Popen]


class StalledPeer:
    """A listener that accepts every connection and never says a word."""

    def __init__(self, address: tuple[str, int], held: list[socket.socket]) -> None:
        self.address = address
        self.held = held  # the connections it accepted, oldest first


@pytest.fixture
def stalled_peer() -> Iterator[StalledPeer]:
    """A peer whose listener accepts every connection and never says a word."""
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
    yield StalledPeer(listener.getsockname(), held)
    closing.set()
    listener.close()
    for c in held:
        c.close()


def _address(peer: StalledPeer) -> str:
    return f"{peer.address[0]}:{peer.address[1]}"


def test_status_and_submit_fail_fast_against_a_peer_that_never_answers(
        stalled_peer: StalledPeer) -> None:
    for args in (("status",), ("submit", "--range", "1..3")):
        start = time.monotonic()
        out = run_cli(*args, "--connect", _address(stalled_peer), timeout=40)
        assert out.returncode == 3, out.stderr  # ExitCode.UNAVAILABLE
        assert time.monotonic() - start < 20
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "within 5 s" in lines[0], out.stderr


def test_client_connect_has_a_deadline(stalled_peer: StalledPeer) -> None:
    start = time.monotonic()
    with pytest.raises(ServerUnavailable, match="No answer from .* within"):
        Client(stalled_peer.address, TEST_KEY).connect()
    assert time.monotonic() - start < 15


def test_a_worker_gives_up_on_time_and_honours_sigterm_against_a_silent_peer(
        procs: Procs, stalled_peer: StalledPeer) -> None:
    argv = [sys.executable, "-m", "guidist", "worker", "--connect", _address(stalled_peer)]
    start = time.monotonic()
    quitter = procs([*argv, "--give-up-after", "2"])
    quitter.wait(timeout=30)
    assert quitter.returncode == 3
    assert time.monotonic() - start < 20
    accepted = len(stalled_peer.held)
    stayer = procs([*argv, "--give-up-after", "600"])
    # The worker installs its signal handlers before it connects: once the peer holds its
    # connection, it is inside a connect attempt with SIGTERM handled.
    wait_for(lambda: len(stalled_peer.held) > accepted, 30, message="the worker to connect")
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


# ---------------------------------------------------------------------- leases and time limits


def _finished(c: Client, n: int) -> None:
    wait_for(lambda: (lambda s: s.count("queued") + s.count("claimed") + s.count("running") == 0
                      and sum(s.count(x) for x in ("done", "failed", "dead")) >= n)(
        c.snapshot()), timeout=60, message=f"{n} task(s) to finish")


def test_the_first_heartbeat_comes_within_a_short_lease(
        procs: Procs, server_factory: Callable[..., ServerProcess]) -> None:
    """With --lease-timeout 1 a healthy worker's 2 s tasks must each run exactly once."""
    srv = server_factory(lease_timeout=1.0)
    assert srv.address is not None
    c = Client(srv.address, TEST_KEY).connect()
    ids = c.submit_many("tests.jobs:slow_square", [(n, 2.0) for n in range(3)])
    worker = procs([sys.executable, "-m", "guidist", "worker", "--connect",
                    f"127.0.0.1:{srv.address[1]}", "--give-up-after", "10"])  # default heartbeat
    _finished(c, 3)
    snap = c.snapshot()
    assert snap.requeued == 0 and snap.count("done") == 3
    assert [c.get_task(i).attempts for i in ids] == [1, 1, 1]
    worker.send_signal(signal.SIGTERM)
    worker.wait(15)
    c.close()


@pytest.fixture
def limited(server_factory: Callable[..., ServerProcess]) -> Iterator[tuple[ServerProcess,
                                                                               Client]]:
    """A server whose tasks may run 1 s each unless their submission says otherwise."""
    srv = server_factory(lease_timeout=30.0, task_timeout=1.0)
    assert srv.address is not None
    c = Client(srv.address, TEST_KEY).connect()
    yield srv, c
    c.close()


@pytest.mark.parametrize("mode", ["inline", "thread", "async"])
def test_a_task_past_its_limit_is_failed_and_the_worker_goes_on(
        limited: tuple[ServerProcess, Client], pool_factory: Callable[..., object],
        mode: str) -> None:
    srv, c = limited
    hung = c.submit("tests.jobs:hang", 3600).id  # the server's 1 s default applies
    aio = c.submit_many("aio_wait", [(3600,)], timeout=1.5)[0]  # its own limit
    given_time = c.submit_many("tests.jobs:slow_square", [(3, 2.0)], timeout=30.0)[0]
    after = c.submit_many("square", range(5))
    pool = pool_factory(srv, give_up_after=30.0)
    (w,) = pool.launch(1, mode=mode, concurrency=None if mode == "inline" else 4)
    start = time.monotonic()
    _finished(c, 8)
    assert time.monotonic() - start < 30
    for tid in (hung, aio):
        t = c.get_task(tid)
        assert t.state.value == "failed" and t.error.startswith("TaskTimeout"), t.error
    assert "1.5 s limit" in c.get_task(aio).error
    assert c.get_task(given_time).result == 9  # 2 s is within its own 30 s limit
    assert all(c.get_task(i).result == n * n for n, i in enumerate(after))
    assert w.alive


def test_a_process_mode_child_past_its_limit_is_killed_and_replaced(
        limited: tuple[ServerProcess, Client], pool_factory: Callable[..., object]) -> None:
    srv, c = limited
    pool = pool_factory(srv, give_up_after=30.0)
    (w,) = pool.launch(1, mode="process", concurrency=2)
    wait_for(lambda: c.workers(), timeout=15, message="the worker to register")
    children = wait_for(lambda: (lambda k: k if len(k) == 2 else None)(
        {p.pid for p in psutil.Process(w.pid).children()
         if "spawn_main" in " ".join(p.cmdline())}), timeout=30, message="2 task processes")
    hung = c.submit("tests.jobs:stuck_in_c").id  # no signal would stop this one: the kill does
    others = c.submit_many("tests.jobs:slow_square", [(n, 0.2) for n in range(6)])
    _finished(c, 7)
    t = c.get_task(hung)
    assert t.state.value == "failed" and "killed and replaced" in t.error
    assert all(c.get_task(i).result == n * n for n, i in enumerate(others))
    after = {p.pid for p in psutil.Process(w.pid).children()
             if "spawn_main" in " ".join(p.cmdline())}
    assert len(after) == 2 and len(after & children) == 1  # one replaced, one untouched
    assert w.alive


def test_a_process_mode_limit_runs_from_the_task_not_from_its_process_start(
        limited: tuple[ServerProcess, Client], pool_factory: Callable[..., object],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Task processes that take 2 s to start (as on a loaded machine) must not use up the
    1 s limit of the 0.2 s tasks given to them: a child gets a task once it is ready."""
    srv, c = limited
    (tmp_path / "sitecustomize.py").write_text(
        "import os, sys, time\n"
        "if '--multiprocessing-fork' in sys.orig_argv:  # only the task processes\n"
        "    time.sleep(float(os.environ['GUIDIST_TEST_CHILD_START_S']))\n")
    monkeypatch.setenv("GUIDIST_TEST_CHILD_START_S", "2")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(tmp_path), str(Path(__file__).resolve().parents[2]),
         os.environ.get("PYTHONPATH", "")]))
    ids = c.submit_many("tests.jobs:slow_square", [(n, 0.2) for n in range(4)])
    pool = pool_factory(srv, give_up_after=30.0)
    pool.launch(1, mode="process", concurrency=2)
    _finished(c, 4)
    tasks = [c.get_task(i) for i in ids]
    assert [t.state.value for t in tasks] == ["done"] * 4, [t.error for t in tasks]
    assert [t.result for t in tasks] == [n * n for n in range(4)]


def test_an_inline_task_stuck_in_c_fails_and_its_worker_exits_for_a_restart(
        limited: tuple[ServerProcess, Client], pool_factory: Callable[..., object]) -> None:
    srv, c = limited
    stuck = c.submit("tests.jobs:stuck_in_c").id
    rest = c.submit_many("square", range(5))
    pool = pool_factory(srv, give_up_after=30.0)
    (w,) = pool.launch(1)
    w.process.wait(timeout=30)
    assert w.returncode == 8  # ExitCode.STUCK
    t = c.get_task(stuck)
    assert t.state.value == "failed" and "could not be interrupted" in t.error
    # The rest of its batch went back to the queue at once, not after a lease.
    snap = c.snapshot()
    assert snap.count("running") == 0 and snap.count("queued") == len(rest)


@needs_redis
def test_time_limits_hold_for_redis_direct_workers(procs: Procs, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "redis"
    d.mkdir()
    redis = RedisServer(d).start()
    try:
        c = Client.redis(redis.url, task_timeout=1.0).connect()  # the deployment's default
        hung = c.submit("tests.jobs:hang", 3600).id
        own = c.submit_many("tests.jobs:hang", [(3600,)], timeout=2.0)[0]
        fine = c.submit_many("tests.jobs:slow_square", [(4, 1.5)], timeout=30.0)[0]
        monkeypatch.setenv("GUIDIST_REDIS_URL", redis.url)
        worker = procs([sys.executable, "-m", "guidist", "worker", "--redis",
                        "--give-up-after", "20"], key=None)
        _finished(c, 3)
        assert c.get_task(hung).error.startswith("TaskTimeout") and "1 s limit" in \
            c.get_task(hung).error
        assert "2 s limit" in c.get_task(own).error
        assert c.get_task(fine).result == 16
        worker.terminate()
        worker.wait(15)
        c.shutdown()
    finally:
        redis.stop()
