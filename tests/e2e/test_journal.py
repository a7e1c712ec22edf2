"""Nothing lost across server deaths and restarts, with the SQLite journal (issue 5 items 10, 11).

Real server processes, real workers, a real journal file. At-least-once: after a crash a task
may run twice, but no task ever submitted is missing and exactly one result is stored.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from guidist.core.backends.memory.journal import iter_ledger
from guidist.core.client import Client
from guidist.core.pool import WorkerPool
from guidist.core.protocol import TaskState
from guidist.core.server import ServerProcess
from tests.conftest import TEST_KEY, wait_for
from tests.e2e.conftest import run_cli

Procs = Callable[..., subprocess.Popen]


def _journaled_done(path: Path) -> int:
    """Successes the journal file holds now (read beside the running server, WAL allows it)."""
    import sqlite3

    db = sqlite3.connect(path, timeout=5)
    try:
        return db.execute("SELECT COALESCE(SUM(n), 0) FROM done").fetchone()[0]
    finally:
        db.close()


def idle(c: Client, timeout: float = 30) -> None:
    wait_for(lambda: (lambda s: s.count("queued") == 0 and s.leased == 0)(
        c.snapshot()), timeout=timeout, message="the queue to drain")


def test_server_sigkilled_while_workers_run_comes_back_with_its_journal(
        server_factory: Callable[..., ServerProcess],
        pool_factory: Callable[..., WorkerPool], tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    srv = server_factory(lease_timeout=1.0, journal=str(journal))
    assert srv.address is not None
    c = Client(srv.address, TEST_KEY).connect()
    ids = c.submit_many("tests.jobs:slow_square", [(n, 0.01) for n in range(300)])
    pool = pool_factory(srv, give_up_after=30.0, prefetch=20)
    workers = pool.launch(2)
    wait_for(lambda: c.snapshot().count("done") >= 60, timeout=30, message="some progress")
    done_before = c.snapshot().count("done")
    # What the server reported done is on disk within the journal's lag: wait until the file
    # holds it, then crash the server.
    wait_for(lambda: _journaled_done(journal) >= done_before, timeout=10,
             message="the journal to hold the finished tasks")
    c.close()
    os.kill(srv.pid, signal.SIGKILL)  # type: ignore[arg-type]
    srv.stop()
    assert all(w.alive for w in workers)  # backing off, not gone
    srv.start()  # the same address and the same journal
    c = Client(srv.address, TEST_KEY).connect()
    snap = c.snapshot()
    assert snap.submitted == 300  # the counters go on
    # No lease outlives the crash: whatever is held now was claimed by a worker that already
    # reconnected to the new server (they back off briefly, so some may have; under load a
    # fixed "nothing leased" raced them).
    assert snap.leased == sum(w.running + w.claimed for w in snap.workers)
    assert snap.count("done") >= done_before  # only the last flush window can be redone
    assert snap.count("queued") + snap.leased + snap.count("done") == 300  # nothing is missing
    idle(c, timeout=60)
    tasks = {i: c.get_task(i) for i in ids}
    assert all(t is not None and t.state is TaskState.DONE for t in tasks.values())
    assert all(tasks[i].result == n * n for n, i in enumerate(ids))
    assert c.snapshot().count("done") == 300  # one stored result per task, no double count
    assert all(w.alive for w in workers)  # the same workers reconnected and went on
    assert sum(1 for w in c.workers() if w.state.value != "offline") == 2
    c.close()


def test_workers_give_up_when_the_server_never_comes_back(
        server_factory: Callable[..., ServerProcess],
        pool_factory: Callable[..., WorkerPool], tmp_path: Path) -> None:
    srv = server_factory(lease_timeout=1.0, journal=str(tmp_path / "j.sqlite"))
    assert srv.address is not None
    c = Client(srv.address, TEST_KEY).connect()
    pool = pool_factory(srv, give_up_after=1.0)
    workers = pool.launch(2)
    wait_for(lambda: len(c.workers()) == 2, timeout=15, message="the workers to register")
    c.close()
    os.kill(srv.pid, signal.SIGKILL)  # type: ignore[arg-type]
    srv.stop()
    for w in workers:
        w.process.wait(timeout=15)
    assert [w.returncode for w in workers] == [3, 3]


def _start_serve(procs: Procs, journal: Path, port: int = 0) -> tuple[subprocess.Popen, int]:
    p = procs([sys.executable, "-m", "guidist", "serve", "--port", str(port), "--journal",
               str(journal), "--lease-timeout", "1", "--interval", "0.5"],
              stderr=subprocess.PIPE)
    assert p.stdout is not None
    m = re.match(r"guidist server listening on 127.0.0.1:(\d+) \(journal (.*)\)",
                 p.stdout.readline())
    assert m and m.group(2) == str(journal)
    return p, int(m.group(1))


def test_serve_closed_while_workers_run_returns_their_tasks_and_leaves_nothing_behind(
        procs: Procs, pool_factory: Callable[..., WorkerPool], tmp_path: Path) -> None:
    journal = tmp_path / "serve.sqlite"
    serve, port = _start_serve(procs, journal)
    address = ("127.0.0.1", port)
    helpers = [c.pid for c in psutil.Process(serve.pid).children(recursive=True)]
    c = Client(address, TEST_KEY).connect()
    ids = c.submit_many("tests.jobs:slow_square", [(n, 0.05) for n in range(120)])
    pool = WorkerPool(address, TEST_KEY, give_up_after=30.0, prefetch=5)
    try:
        pool.launch(2)
        wait_for(lambda: c.snapshot().count("done") >= 10, timeout=30, message="progress")
        c.close()
        serve.send_signal(signal.SIGTERM)  # what closing the window does to its server
        out, err = serve.communicate(timeout=20)
        assert serve.returncode == 0, err
        assert "server stopped" in out and "Traceback" not in err
        # The listener is closed and psutil finds no orphan.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address, timeout=5).close()
        wait_for(lambda: not [p for p in helpers if psutil.pid_exists(p)
                              and psutil.Process(p).status() != psutil.STATUS_ZOMBIE],
                 timeout=10, message="the server processes to exit")
        # Leased tasks are back in the queue in the journal: every task is queued or done.
        ledger = {t.id: t for t in iter_ledger(journal)}
        assert sorted(ledger) == list(ids)
        assert {t.state for t in ledger.values()} <= {TaskState.QUEUED, TaskState.DONE}
        queued_at_close = [t.id for t in ledger.values() if t.state is TaskState.QUEUED]
        assert queued_at_close
        # Back on the same port with the same journal: the workers come back and finish.
        serve2, port2 = _start_serve(procs, journal, port)
        assert port2 == port
        c = Client(address, TEST_KEY).connect()
        idle(c, timeout=60)
        assert all(c.get_task(i).state is TaskState.DONE for i in ids)
        assert all(c.get_task(i).result == n * n for n, i in enumerate(ids))
        snap = c.snapshot()
        assert snap.submitted == 120 and snap.count("done") == 120
        c.close()
        serve2.send_signal(signal.SIGINT)
        serve2.communicate(timeout=20)
        assert serve2.returncode == 0
    finally:
        pool.stop_all(timeout=5)
    # The export reads the same ledger from the file.
    out = run_cli("export", "--journal", str(journal), "--format", "jsonl", "--state", "done")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(r["id"] for r in rows) == list(ids)
    assert all(r["result"] == r["args"][0] ** 2 for r in rows)
    csv_path = tmp_path / "ledger.csv"
    out = run_cli("export", "--journal", str(journal), "-o", str(csv_path))
    assert out.returncode == 0, out.stderr
    assert len(csv_path.read_text().splitlines()) == 121  # header + one row per task


def test_export_from_a_live_server(server: ServerProcess, client: Client) -> None:
    assert server.address is not None
    client.submit_many("square", range(5))
    out = run_cli("export", "--connect", f"127.0.0.1:{server.address[1]}", "--format", "csv")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("id,function,args") and len(lines) == 6
