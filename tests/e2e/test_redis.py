"""The Redis backend end to end: real redis-server, real worker processes, real kills.

Each test starts its own redis-server (random loopback port, temp dir, stopped by its PID).
Direct workers run ``guidist worker --redis`` with the URL (and its password) in
GUIDIST_REDIS_URL; the facade is a ServerProcess with backend=redis://... .
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guidist.core.backends.redis.broker import RedisBroker
from guidist.core.client import Client
from guidist.core.errors import AuthenticationFailed, ServerUnavailable
from guidist.core.protocol import Task
from guidist.core.server import ServerProcess
from tests.conftest import TEST_KEY, wait_for
from tests.e2e.conftest import cli_env, output_of, run_cli, script_argv, worker_argv
from tests.redis_fixtures import RedisServer, needs_redis

pytestmark = needs_redis

Procs = Callable[..., subprocess.Popen]
PASSWORD = "pw-4f7c1e9a-not-logged"


@pytest.fixture
def redis_srv(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server with a password (no persistence)."""
    d = tmp_path / "redis"
    d.mkdir()
    server = RedisServer(d, password=PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture
def direct_worker(procs: Procs, monkeypatch: pytest.MonkeyPatch) -> Callable[..., subprocess.Popen]:
    """start(url, *args): ``guidist worker --redis`` with the URL in the environment only."""

    def start(url: str, *args: str) -> subprocess.Popen:
        monkeypatch.setenv("GUIDIST_REDIS_URL", url)  # procs copies os.environ
        return procs([sys.executable, "-m", "guidist", "worker", "--redis", "--give-up-after",
                      "20", *args], key=None)

    return start


def all_tasks(c: Client, state: str | None = None) -> list[Task]:
    out: list[Task] = []
    while True:
        page = c.list_tasks(state, offset=len(out), limit=10_000)
        out.extend(page.tasks)
        if len(out) >= page.total or not page.tasks:
            return out


def live_workers(c: Client) -> int:
    return sum(1 for w in c.workers() if w.state.value != "offline")


def stop_all(ps: list[subprocess.Popen], timeout: float = 15) -> list[str]:
    """SIGTERM (a graceful stop), wait, and return each one's output."""
    for p in ps:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    return [output_of(p, timeout) for p in ps]


def test_two_direct_workers_and_one_through_the_facade_finish_10000(
        redis_srv: RedisServer, procs: Procs, direct_worker: Callable) -> None:
    with ServerProcess(authkey=TEST_KEY, backend=redis_srv.url, lease_timeout=5.0) as server:
        assert server.address is not None
        assert PASSWORD not in repr(server.describe())
        c = Client(server.address, TEST_KEY).connect()
        workers = [direct_worker(redis_srv.url, "--name", f"direct-{i}",
                                 "--prefetch", "50") for i in (1, 2)]
        workers.append(procs(worker_argv(server.address, "--name", "facade", "--prefetch", "50",
                                         "--give-up-after", "20")))
        wait_for(lambda: live_workers(c) == 3, timeout=30, message="3 workers to register")
        ids = c.submit_many("square", range(10_000))
        assert len(ids) == 10_000
        wait_for(lambda: c.snapshot().count("done") == 10_000, timeout=60,
                 message="10,000 tasks to finish")
        snap = c.snapshot()
        assert snap.counts == {"queued": 0, "claimed": 0, "running": 0, "done": 10_000,
                               "failed": 0, "dead": 0, "cancelled": 0}
        done = all_tasks(c, "done")
        assert sorted(t.id for t in done) == list(ids)  # every id once, none missing
        assert all(t.result == t.args[0] ** 2 for t in done)
        per_worker = {w.name: w.done for w in c.workers()}
        assert sum(per_worker.values()) == 10_000
        assert all(per_worker[n] > 0 for n in ("direct-1", "direct-2", "facade")), per_worker
        outputs = stop_all(workers)
        c.close()
    assert all(p.returncode == 0 for p in workers), outputs
    assert not any(PASSWORD in out for out in outputs)


def test_sigkilled_direct_worker_loses_nothing(redis_srv: RedisServer, direct_worker: Callable,
                                               tmp_path: Path) -> None:
    """No server process at all: the surviving worker's claims reap the dead one's leases."""
    marker = tmp_path / "started"
    client = Client.redis(redis_srv.url, lease_timeout=1.0, max_attempts=3).connect()
    try:
        first, _ = client.call("submit", "tests.redis_fixtures:stall_once",
                               [(str(marker), 0)])
        ids = [first, *client.submit_many("square", range(1, 20))]
        victim = direct_worker(redis_srv.url, "--name", "victim")
        wait_for(marker.exists, timeout=30, message="the stalling task to start")
        held = next(w.held for w in client.workers() if w.name == "victim")
        assert held >= 1
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        survivor = direct_worker(redis_srv.url, "--name", "survivor")
        wait_for(lambda: client.snapshot().count("done") == 20, timeout=30,
                 message="every task to finish on the survivor")
        snap = client.snapshot()
        assert (snap.count("queued"), snap.leased, snap.count("dead")) == (0, 0, 0)
        assert snap.requeued == held
        tasks = {t.id: t for t in all_tasks(client, "done")}
        assert sorted(tasks) == ids
        assert tasks[first].attempts == 2 and tasks[first].worker.startswith("survivor")
        assert all(t.result == t.args[-1] ** 2 for t in tasks.values())
        offline = [w for w in client.workers() if w.name == "victim"]
        assert offline and offline[0].state.value == "offline"
        stop_all([survivor])
        assert survivor.returncode == 0
    finally:
        client.shutdown()


def test_redis_restart_with_aof_loses_nothing_acknowledged(direct_worker: Callable,
                                                            procs: Procs,
                                                            tmp_path: Path) -> None:
    """SIGKILL Redis mid-run and start it again: a direct worker and a facade worker carry on."""
    d = tmp_path / "aof"
    d.mkdir()
    redis = RedisServer(d, aof=True, password=PASSWORD).start()
    client = Client.redis(redis.url, lease_timeout=10.0).connect()
    server = ServerProcess(authkey=TEST_KEY, backend=redis.url, lease_timeout=10.0)
    workers: list[subprocess.Popen] = []
    try:
        n = 3000
        ids = list(client.submit_many("tests.redis_fixtures:slow_square", range(n),
                                      {"seconds": 0.001}))
        address = server.start()
        workers = [direct_worker(redis.url, "--name", "direct", "--prefetch", "100"),
                   procs(worker_argv(address, "--name", "facade", "--prefetch", "100",
                                     "--give-up-after", "20"))]
        wait_for(lambda: client.snapshot().count("done") >= 300, timeout=30,
                 message="a tenth of the tasks to finish")
        acked = {t.id: t.result for t in all_tasks(client, "done")}
        assert len(acked) < n  # the restart really happens mid-run
        redis.kill()  # SIGKILL mid-run: only what AOF (fsync always) holds survives
        time.sleep(0.5)
        redis.start()
        wait_for(lambda: client.call("snapshot").count("done") == n, timeout=60,
                 message="the worker to finish after the restart")
        snap = client.snapshot()
        assert (snap.count("queued"), snap.leased, snap.submitted) == (0, 0, n)
        done = {t.id: t for t in all_tasks(client, "done")}
        assert sorted(done) == ids
        assert all(done[i].result == r for i, r in acked.items())  # acknowledged: still there
        assert all(t.result == t.args[0] ** 2 for t in done.values())
        assert {t.worker.split("#")[0] for t in done.values()} == {"direct", "facade"}
        outs = stop_all(workers)
        assert all(w.returncode == 0 for w in workers), outs
        assert not any(PASSWORD in out for out in outs)
    finally:
        client.shutdown()
        server.stop()
        redis.stop()


def test_classic_queue_names_work_over_the_redis_facade(
        redis_srv: RedisServer, procs: Procs, direct_worker: Callable) -> None:
    """DESIGN.md compatibility 1 and 2 with the state in Redis."""
    with ServerProcess(authkey=TEST_KEY, backend=redis_srv.url, lease_timeout=5.0) as server:
        assert server.address is not None
        host, port = server.address
        out = run_cli("submit", "--connect", f"{host}:{port}", "--task", "square",
                      "--range", "1..12")
        assert "queued 12 square task(s), ids 1..12" in out.stdout, out.stderr
        tutorial = procs(script_argv("task_worker.py", host, str(port), TEST_KEY, "12"))
        text = output_of(tutorial)
        assert tutorial.returncode == 0, text
        c = Client(server.address, TEST_KEY).connect()
        assert [c.get_task(i).result for i in (1, 12)] == ["1 * 1 = 1", "12 * 12 = 144"]
        # A tutorial-style master puts bare payloads; a worker on Redis directly runs them and
        # the master reads the tutorial's strings back through the facade.
        worker = direct_worker(redis_srv.url, "--name", "direct")
        master = procs(script_argv("task_master_client.py", host, str(port), TEST_KEY, "20"))
        text = output_of(master)
        assert master.returncode == 0, text
        results = re.findall(r"^Result: (.*)$", text, re.M)
        assert sorted(results) == sorted("%d * %d = %d" % (k, k, k * k) for k in range(1, 21))
        snap = c.snapshot()
        assert snap.count("done") == 32 and snap.extra["classic_results"] == 0
        c.close()
        stop_all([worker])
    assert worker.returncode == 0


def test_connection_errors_are_clear_and_keep_the_password_out(redis_srv: RedisServer) -> None:
    wrong = redis_srv.url.replace(PASSWORD, "wrong-password")
    with pytest.raises(AuthenticationFailed) as auth:
        RedisBroker(wrong)
    assert "wrong-password" not in str(auth.value) and "password" in str(auth.value)
    with pytest.raises(AuthenticationFailed):
        RedisBroker(redis_srv.url.replace(f":{PASSWORD}@", ""))
    free = RedisServer(redis_srv.dir).port  # a port nobody listens on
    with pytest.raises(ServerUnavailable) as down:
        RedisBroker(f"redis://:{PASSWORD}@127.0.0.1:{free}/0")
    assert "redis-server" in str(down.value) and PASSWORD not in str(down.value)
    env = cli_env(None)
    env["GUIDIST_REDIS_URL"] = wrong
    r = subprocess.run([sys.executable, "-m", "guidist", "worker", "--redis",
                        "--give-up-after", "1"], env=env, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 4, r.stderr  # EXIT_AUTH
    assert "refused the credentials" in r.stderr and "wrong-password" not in r.stderr
