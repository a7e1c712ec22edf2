"""Fair dispatch and instant recovery, end to end: real servers, real worker processes.

Every test runs on both backends: the in-memory broker, and the Redis broker behind the same
server (a private redis-server per test). Leases are the default 30 s, so anything that comes
back within seconds came back because a connection closed, not because a lease ran out.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guidist.core.client import Client
from guidist.core.pool import WorkerPool
from guidist.core.protocol import Snapshot, TaskState, WorkerState
from guidist.core.server import ServerProcess
from tests.conftest import connected_client, wait_for
from tests.redis_fixtures import RedisServer, needs_redis


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
def backend_options(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict]:
    """Server options for the backend under test (Redis: its own redis-server)."""
    if request.param == "memory":
        yield {}
        return
    d = tmp_path / "redis"
    d.mkdir()
    redis = RedisServer(d).start()
    yield {"backend": redis.url}
    redis.stop()


@pytest.fixture
def srv(backend_options: dict, server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    """A server with the default 30 s lease (stopped before its redis-server)."""
    return server_factory(**backend_options)


@pytest.fixture
def cli(srv: ServerProcess) -> Iterator[Client]:
    yield from connected_client(srv)


def idle(c: Client, timeout: float = 60) -> Snapshot:
    return wait_for(lambda: (lambda s: s if s.count("queued") == 0 and s.leased == 0
                             else None)(c.snapshot()),
                    timeout=timeout, message="the queue to drain")  # type: ignore[return-value]


def registered(c: Client, n: int) -> None:
    wait_for(lambda: sum(1 for w in c.workers() if w.state is not WorkerState.OFFLINE) >= n,
             timeout=30, message=f"{n} worker(s) to register")


def holds_add_up(snap: Snapshot) -> bool:
    """The snapshot's claimed and running counts are exactly what its workers hold."""
    return (sum(w.claimed for w in snap.workers) == snap.count("claimed")
            and sum(w.running for w in snap.workers) == snap.count("running"))


def worker_named(snap: Snapshot, prefix: str):  # noqa: ANN201 (WorkerInfo | None)
    return next((w for w in snap.workers if w.name.startswith(prefix)), None)


def test_slow_tasks_after_a_burst_of_trivial_ones_are_shared(
        srv: ServerProcess, cli: Client, pool_factory: Callable[..., WorkerPool]) -> None:
    pool = pool_factory(srv)
    pool.launch(2)
    registered(cli, 2)
    cli.submit_many("square", range(20_000))
    ids = cli.submit_many("sleep", [(0.05,)] * 200)
    idle(cli)
    tasks = [cli.get_task(i) for i in ids]
    assert all(t is not None and t.state is TaskState.DONE for t in tasks)
    per_worker = Counter(t.worker for t in tasks)
    assert len(per_worker) == 2 and min(per_worker.values()) >= 60, per_worker  # 30/70 or better
    # The server's own clock: from the sleeps' submission to the last one's result.
    took = max(t.finished for t in tasks) - min(t.submitted for t in tasks)
    assert took < 8.0, f"200 sleep(0.05) on 2 workers took {took:.1f} s"
    assert cli.snapshot().count("done") == 20_200


def test_a_sigkilled_workers_batch_is_requeued_at_once_and_finishes_once_elsewhere(
        srv: ServerProcess, cli: Client, pool_factory: Callable[..., WorkerPool],
        tmp_path: Path) -> None:
    fn = "tests.jobs:sleep_first_time"  # sleeps 30 s the first time its path is seen
    warm, slow = tmp_path / "warm", tmp_path / "slow"
    warm.touch()
    quick = cli.submit_many(fn, [(str(warm), 30.0)] * 3)  # teach the victim it is fast
    batch = cli.submit_many(fn, [(str(slow), 30.0)] * 4)
    victim_pool = pool_factory(srv, prefetch=5)
    [victim] = victim_pool.launch(1, prefix="victim")
    wait_for(slow.exists, timeout=30, message="the victim to start the stalling task")
    # It claimed quick[1:], batch[:3] in one go and is stuck in batch[0]: a batch of five,
    # some claimed and not started.
    snap = wait_for(lambda: (lambda s: s if (w := worker_named(s, "victim")) and w.held == 5
                             else None)(cli.snapshot()), timeout=15, message="its batch")
    assert worker_named(snap, "victim").claimed >= 1 and holds_add_up(snap)
    rescuer_pool = pool_factory(srv)
    rescuer_pool.launch(1, prefix="rescuer")
    wait_for(lambda: cli.get_task(batch[3]).state is TaskState.DONE, timeout=30,
             message="the rescuer to run the one task left in the queue")
    held = {t.id for t in cli.list_tasks("running", 0, 100).tasks
            + cli.list_tasks("claimed", 0, 100).tasks}
    assert held == {*quick[1:], *batch[:3]}

    assert victim_pool.kill(victim.pid)
    killed_at = time.monotonic()
    # The server saw the victim's connections close: no waiting out the 30 s lease.
    wait_for(lambda: cli.snapshot().requeued == 5, timeout=5,
             message="the victim's tasks to be requeued")
    assert time.monotonic() - killed_at < 5
    snap = cli.snapshot()
    assert worker_named(snap, "victim").state is WorkerState.OFFLINE
    assert any(e.kind == "worker-offline" and "connection closed" in e.message
               for e in snap.events)

    snap = idle(cli)
    tasks = {i: cli.get_task(i) for i in [*quick, *batch]}
    assert all(t.state is TaskState.DONE and t.result == "again" for t in tasks.values()), tasks
    for tid in held:
        assert tasks[tid].worker.startswith("rescuer") and tasks[tid].attempts == 2
    assert snap.count("done") == 7 and snap.count("dead") == 0
    assert snap.extra["ignored_late"] == 0
    _, finished = cli.results_since(0, limit=100)
    assert sorted(t.id for t in finished) == sorted(tasks)  # exactly one result each


def test_claimed_and_running_counts_add_up_to_what_the_workers_hold(
        srv: ServerProcess, cli: Client, pool_factory: Callable[..., WorkerPool]) -> None:
    pool = pool_factory(srv)
    pool.launch(1, prefix="inline")
    pool.launch(1, prefix="threads", mode="thread", concurrency=4)
    registered(cli, 2)
    cli.submit_many("sleep", [(0.05,)] * 150)
    seen_claimed = seen_running = samples = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        snap = cli.snapshot()
        assert holds_add_up(snap), (snap.counts, snap.workers)
        samples += 1
        seen_claimed = max(seen_claimed, snap.count("claimed"))
        seen_running = max(seen_running, snap.count("running"))
        if snap.count("queued") == 0 and snap.leased == 0:
            break
        time.sleep(0.02)
    assert snap.count("done") == 150, snap.counts
    # Not a vacuous check: both kinds of lease were there while it ran.
    assert samples >= 5 and seen_claimed >= 1 and seen_running >= 2


def test_an_idle_worker_gets_the_tasks_a_busy_one_has_not_started(
        srv: ServerProcess, cli: Client, pool_factory: Callable[..., WorkerPool]) -> None:
    fn = "tests.jobs:slow_square"
    cli.submit_many(fn, [(n, 0.0) for n in range(5)])  # quick ones: it learns "fast"...
    slow = cli.submit_many(fn, [(n, 0.1) for n in range(40)])  # ...and claims all of these
    pool = pool_factory(srv)
    pool.launch(1, prefix="busy")
    wait_for(lambda: (w := worker_named(cli.snapshot(), "busy")) is not None and w.held >= 40,
             timeout=30, message="the busy worker to claim the slow tasks in one batch")
    pool.launch(1, prefix="idle")
    snap = idle(cli)
    tasks = [cli.get_task(i) for i in slow]
    per_worker = Counter(t.worker.split("-")[0] for t in tasks)
    # Without giving back, the second worker would run none of them.
    assert per_worker["idle"] >= 10, per_worker
    assert all(t.state is TaskState.DONE and t.result == t.args[0] ** 2 for t in tasks)
    assert all(t.attempts == 1 for t in tasks)  # given back, not expired: no attempt lost
    assert snap.requeued == 0 and snap.extra["ignored_late"] == 0
