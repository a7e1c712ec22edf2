"""A submit's arguments stay the client's bytes on the server, end to end: real server, real
worker processes; a worker SIGKILLed holding a whole piece, a server SIGKILLed with pieces only
in its journal, and a piece no worker can read."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guidist.core.client import Client
from guidist.core.payload import PIECE_TASKS
from guidist.core.pool import WorkerPool
from guidist.core.protocol import TaskState
from guidist.core.server import ServerProcess
from tests.conftest import TEST_KEY, wait_for


@pytest.fixture
def srv(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(lease_timeout=30.0, max_attempts=3)


@pytest.fixture
def cli(srv: ServerProcess) -> Iterator[Client]:
    assert srv.address is not None
    c = Client(srv.address, TEST_KEY).connect()
    yield c
    c.close()


def idle(c: Client, timeout: float = 60) -> None:
    wait_for(lambda: (lambda s: s.count("queued") == 0 and s.leased == 0)(
        c.snapshot()), timeout=timeout, message="the queue to drain")


def test_a_sigkilled_workers_whole_piece_is_requeued_and_run_once_by_another(
        srv: ServerProcess, cli: Client, pool_factory: Callable[..., WorkerPool],
        tmp_path: Path) -> None:
    fn = "tests.jobs:sleep_first_time"  # sleeps 30 s the first time its path is seen
    warm, slow = tmp_path / "warm", tmp_path / "slow"
    warm.touch()
    victim_pool = pool_factory(srv, prefetch=100)
    [victim] = victim_pool.launch(1, prefix="victim")
    quick = cli.submit_many(fn, [(str(warm), 30.0)] * 3)  # teach the victim it is fast
    wait_for(lambda: all(cli.get_task(t).state is TaskState.DONE for t in quick), timeout=30,
             message="the victim to run the first tasks")
    piece = list(cli.submit_many(fn, [(str(slow), 30.0)] + [(str(warm), 30.0)] * 39))
    wait_for(slow.exists, timeout=30, message="the victim to start the stalling task")
    # One claim took the whole piece (40 tasks, one piece of the client's): its bytes went
    # to the victim as they came.
    snap = wait_for(lambda: (lambda s: s if s.leased == 40 else None)(cli.snapshot()),
                    timeout=15, message="the victim to hold the piece")
    assert [w.held for w in snap.workers if w.name.startswith("victim")] == [40]
    assert victim_pool.kill(victim.pid)
    wait_for(lambda: cli.snapshot().requeued == 40, timeout=10,
             message="the victim's piece to be requeued")
    pool_factory(srv).launch(1, prefix="rescuer")
    idle(cli)
    tasks = [cli.get_task(t) for t in piece]
    assert all(t.state is TaskState.DONE and t.result == "again" for t in tasks), tasks
    assert all(t.worker.startswith("rescuer") and t.attempts == 2 for t in tasks)
    assert tasks[0].args == (str(slow), 30.0) and tasks[-1].args == (str(warm), 30.0)
    _, finished = cli.results_since(0, limit=100)
    assert sorted(t.id for t in finished) == sorted([*quick, *piece])  # exactly once each


def test_pieces_only_in_the_journal_come_back_after_a_sigkill_and_run(
        server_factory: Callable[..., ServerProcess],
        pool_factory: Callable[..., WorkerPool], tmp_path: Path) -> None:
    srv = server_factory(journal=str(tmp_path / "journal.sqlite"))
    assert srv.address is not None
    c = Client(srv.address, TEST_KEY).connect()
    n = 2 * PIECE_TASKS + 7
    ids = list(c.submit_many("square", list(range(n))))
    pairs = list(c.submit_many("operator:add", [(i, 1) for i in range(50)]))
    c.close()
    os.kill(srv.pid, signal.SIGKILL)  # type: ignore[arg-type]
    srv.stop()
    srv.start()  # the same journal: its submit rows hold the pieces as the client sent them
    c = Client(srv.address, TEST_KEY).connect()
    try:
        assert c.snapshot().count("queued") == n + 50
        assert c.get_task(ids[-1]).args == (n - 1,)
        pool_factory(srv).launch(2)
        idle(c)
        assert [c.get_task(t).result for t in (ids[0], ids[PIECE_TASKS], ids[-1])] == \
            [0, PIECE_TASKS ** 2, (n - 1) ** 2]
        assert [c.get_task(t).result for t in (pairs[0], pairs[-1])] == [1, 50]
        assert c.snapshot().count("done") == n + 50
    finally:
        c.close()


def test_a_piece_no_worker_can_read_fails_its_tasks_in_one_line_and_the_worker_goes_on(
        srv: ServerProcess, cli: Client, pool_factory: Callable[..., WorkerPool],
        ghost: type) -> None:
    bad = list(cli.submit_many("echo", [ghost() for _ in range(40)]))  # the server kept them
    [worker] = pool_factory(srv).launch(1)
    wait_for(lambda: cli.snapshot().count("failed") == 40, timeout=30,
             message="the unreadable tasks to fail")
    for t in (cli.get_task(bad[0]), cli.get_task(bad[-1])):
        assert t.state is TaskState.FAILED
        assert t.error is not None and "\n" not in t.error.strip()
        assert t.error.startswith("UnreadableArguments: the arguments of ")
        assert "ModuleNotFoundError: No module named 'guidist_test_ghost'" in t.error
    good = cli.submit_many("square", list(range(100)))
    wait_for(lambda: cli.get_task(good[-1]).state is TaskState.DONE, timeout=30,
             message="the same worker to run what follows")
    assert worker.alive and cli.get_task(good[-1]).result == 99 ** 2
