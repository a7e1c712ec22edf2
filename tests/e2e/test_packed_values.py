"""Result values stay the bytes the worker pickled them to, on a real server, until read:
storing and journaling them unpickles nothing, and they read back after a journaled
restart. Real server processes, a real worker, a real journal file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from guidist.core.client import Client
from guidist.core.pool import WorkerPool
from guidist.core.protocol import TaskState
from guidist.core.server import ServerProcess
from tests.conftest import TEST_KEY, wait_for
from tests.e2e.test_journal import _journaled_done

N = 200


def _pids(notes: Path) -> list[int]:
    """The pid of each unpickling of a Noted result so far."""
    return [int(line) for line in notes.read_text().split()] if notes.exists() else []


def test_results_are_stored_and_journaled_unpickled_and_read_back_after_a_restart(
        server_factory: Callable[..., ServerProcess],
        pool_factory: Callable[..., WorkerPool], tmp_path: Path) -> None:
    notes = tmp_path / "unpickled.txt"
    journal = tmp_path / "journal.sqlite"
    srv = server_factory(journal=str(journal))
    assert srv.address is not None
    c = Client(srv.address, TEST_KEY).connect()
    ids = c.submit_many("tests.jobs:noted_value", [(str(notes), n) for n in range(N)])
    pool = pool_factory(srv, prefetch=N)
    pool.launch(1)
    wait_for(lambda: c.snapshot().count("done") == N, timeout=60, message="the tasks to run")
    wait_for(lambda: _journaled_done(journal) == N, timeout=30,
             message="the journal to hold them")
    assert _pids(notes) == []  # stored and journaled: nothing unpickled a value
    pool.stop_all(timeout=10)
    c.close()
    first_pid = srv.pid
    srv.stop()
    srv.start()  # restored from the journal: what it keeps in memory was read back
    restored = _pids(notes)
    assert srv.pid != first_pid and set(restored) <= {srv.pid} and len(restored) <= N
    c = Client(srv.address, TEST_KEY).connect()
    assert c.snapshot().count("done") == N
    before = len(_pids(notes))
    task = c.get_task(ids[7])
    assert task is not None and task.state is TaskState.DONE and task.result.n == 7
    assert _pids(notes)[before:] == [os.getpid()]  # the client unpickles what it reads
    assert [t.result.n for t in c.get_tasks(ids)] == list(range(N))  # type: ignore[union-attr]
    c.close()
