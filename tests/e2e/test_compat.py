"""DESIGN.md compatibility points 1-3, with stdlib-only tutorial scripts and real processes."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable

from guidist.core.client import Client
from guidist.core.pool import WorkerPool
from guidist.core.server import ServerProcess
from tests.conftest import TEST_KEY, wait_for
from tests.e2e.conftest import connect_arg, output_of, run_cli, script_argv, worker_argv

Procs = Callable[..., subprocess.Popen]


def test_1_tutorial_worker_runs_tasks_submitted_with_guidist_submit(
        server: ServerProcess, client: Client, procs: Procs) -> None:
    assert server.address is not None
    host, port = server.address
    out = run_cli("submit", "--connect", connect_arg(server.address), "--task", "square",
                  "--range", "1..12")
    assert out.returncode == 0, out.stderr
    assert "queued 12 square task(s), ids 1..12" in out.stdout
    worker = procs(script_argv("task_worker.py", host, str(port), TEST_KEY, "12"))
    text = output_of(worker)
    assert worker.returncode == 0, text
    assert "worker exit." in text and "task queue is empty." not in text
    snap = client.snapshot()
    assert snap.count("done") == 12 and snap.count("queued") == snap.leased == 0
    for tid in range(1, 13):
        t = client.get_task(tid)
        assert t.result == "%d * %d = %d" % (tid, tid, tid * tid)
        assert t.attempts == 1
    # The tutorial worker's strings stay in the ledger: none left waiting on the result queue.
    assert snap.extra["classic_results"] == 0
    # It was a classic worker while connected, and left when its connection closed.
    wait_for(lambda: client.workers() == (), timeout=10, message="the classic worker to leave")
    messages = [e.message for e in client.snapshot().events]
    assert any("classic worker connected" in m for m in messages)
    assert any("classic worker" in m and "disconnected" in m for m in messages)


def test_2_tutorial_style_master_client_with_guidist_workers(
        server: ServerProcess, client: Client, pool_factory: Callable[..., WorkerPool],
        procs: Procs) -> None:
    assert server.address is not None
    host, port = server.address
    pool = pool_factory(server)
    pool.launch(2)
    master = procs(script_argv("task_master_client.py", host, str(port), TEST_KEY, "40"))
    text = output_of(master)
    assert master.returncode == 0, text
    results = re.findall(r"^Result: (.*)$", text, re.M)
    assert sorted(results) == sorted("%d * %d = %d" % (n, n, n * n) for n in range(1, 41))
    snap = client.snapshot()
    assert snap.count("done") == 40 and snap.submitted == 40
    assert snap.extra["classic_results"] == 0  # every result was read, none left over
    assert {t.function for t in client.list_tasks("done", limit=100).tasks} == {"square"}


def test_2b_master_client_mixed_with_batched_submissions(
        server: ServerProcess, client: Client, pool_factory: Callable[..., WorkerPool],
        procs: Procs) -> None:
    """Results of tasks submitted through guidist never leak into the tutorial master's queue."""
    assert server.address is not None
    host, port = server.address
    client.submit_many("square", range(1000, 1500))
    pool = pool_factory(server)
    pool.launch(2)
    master = procs(script_argv("task_master_client.py", host, str(port), TEST_KEY, "20"))
    text = output_of(master)
    assert master.returncode == 0, text
    results = re.findall(r"^Result: (.*)$", text, re.M)
    assert sorted(results) == sorted("%d * %d = %d" % (n, n, n * n) for n in range(1, 21))
    client.wait_idle(30)
    snap = client.snapshot()
    assert snap.count("done") == 520 and snap.extra["classic_results"] == 0


def test_3_guidist_worker_falls_back_to_an_unmodified_tutorial_master(procs: Procs) -> None:
    master = procs(script_argv("tutorial_master.py", "10"))
    assert master.stdout is not None
    first = master.stdout.readline()
    port = int(re.fullmatch(r"LISTENING (\d+)\n", first).group(1))  # type: ignore[union-attr]
    worker = procs(worker_argv(("127.0.0.1", port), "--max-tasks", "10"), key="abc")
    text = output_of(master)
    assert master.returncode == 0, text
    puts = [int(n) for n in re.findall(r"^Put task (\d+)\.\.\.$", text, re.M)]
    results = re.findall(r"^Result: (.*)$", text, re.M)
    assert len(puts) == 10
    assert results == ["%d * %d = %d" % (n, n, n * n) for n in puts]  # FIFO, one worker
    assert "master exit." in text
    wtext = output_of(worker, timeout=15)
    assert worker.returncode == 0, wtext
    assert "no guidist broker" in wtext and "Traceback" not in wtext


def test_3b_fallback_worker_exits_when_the_tutorial_master_goes(procs: Procs) -> None:
    master = procs(script_argv("tutorial_master.py", "3"))
    assert master.stdout is not None
    port = int(master.stdout.readline().split()[1])
    worker = procs(worker_argv(("127.0.0.1", port)), key="abc")  # no --max-tasks
    text = output_of(master)
    assert master.returncode == 0 and len(re.findall("^Result: ", text, re.M)) == 3, text
    wtext = output_of(worker, timeout=15)  # the master shut its manager down
    assert worker.returncode == 3, wtext
    assert "Traceback" not in wtext


def test_3c_status_and_submit_against_a_tutorial_master(procs: Procs) -> None:
    # Three commands run before its worker does: more than the tutorial's 10 s wait for the
    # first result on a loaded machine, so it waits longer (it still exits after its two).
    master = procs(script_argv("tutorial_master.py", "2", "120"))
    assert master.stdout is not None
    port = int(master.stdout.readline().split()[1])
    while master.stdout.readline() != "Try get results...\n":  # its 2 tasks are queued
        pass
    where = f"127.0.0.1:{port}"
    status = run_cli("status", "--connect", where, key="abc")
    assert status.returncode == 0, status.stderr
    assert status.stdout.strip() == "classic master: 2 queued, 0 results waiting"
    sub = run_cli("submit", "--connect", where, "--range", "1..3", key="abc")
    assert sub.returncode == 0, sub.stderr
    assert "queued 3 payload(s) on the classic task queue" in sub.stdout
    status = run_cli("status", "--connect", where, "--json", key="abc")
    assert status.returncode == 0, status.stderr
    assert '"queued": 5' in status.stdout and '"kind": "classic"' in status.stdout
    # FIFO: the master's own two come first, so --max-tasks 2 serves exactly the master.
    worker = procs(worker_argv(("127.0.0.1", port), "--max-tasks", "2"), key="abc")
    wtext = output_of(worker, timeout=15)
    assert worker.returncode == 0, wtext
    text = output_of(master)
    assert master.returncode == 0, text
    assert len(re.findall("^Result: ", text, re.M)) == 2
