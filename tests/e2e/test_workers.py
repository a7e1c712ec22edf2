"""Real worker processes against a real server: recovery, failures, volume, stopping.

Covers issue 2's test list and issue 5 section 2 items 1-4, 8, 9 and 10 (without a journal).
Leases are 1 s, so a worker's heartbeat is 0.25 s and a dead worker's tasks come back in ~1.5 s.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import operator
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from guidist.core.client import Client
from guidist.core.connection import ManagerConnection
from guidist.core.errors import RemoteError, ServerUnavailable
from guidist.core.pool import LocalWorker, WorkerPool
from guidist.core.protocol import Task, TaskState
from guidist.core.server import ServerProcess
from tests.conftest import TEST_KEY, wait_for
from tests.e2e.conftest import output_of, worker_argv

Procs = Callable[..., subprocess.Popen]
LEASE = 1.0


@pytest.fixture
def srv(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(lease_timeout=LEASE, max_attempts=3)


@pytest.fixture
def cli(srv: ServerProcess) -> Client:
    assert srv.address is not None
    c = Client(srv.address, TEST_KEY).connect()
    yield c  # type: ignore[misc]
    c.close()


def all_tasks(c: Client, state: str | None = None) -> list[Task]:
    out: list[Task] = []
    while True:
        page = c.list_tasks(state, offset=len(out), limit=10_000)
        out.extend(page.tasks)
        if len(out) >= page.total or not page.tasks:
            return out


def idle(c: Client, timeout: float = 30) -> None:
    wait_for(lambda: (lambda s: s.count("queued") == 0 and s.leased == 0)(
        c.snapshot()), timeout=timeout, message="the queue to drain")


def registered(c: Client, n: int) -> None:
    wait_for(lambda: sum(1 for w in c.workers() if w.state.value != "offline") >= n,
             timeout=15, message=f"{n} worker(s) to register")


def log_text(w: LocalWorker) -> str:
    return "\n".join(w.log)


# ---------------------------------------------------------------------- recovery


def test_sigkill_mid_task_requeues_and_every_task_finishes_exactly_once(
        srv: ServerProcess, cli: Client, pool_factory: Callable[..., WorkerPool],
        tmp_path: Path) -> None:
    started = tmp_path / "started"
    first = cli.submit("tests.jobs:sleep_first_time", str(started), 30.0).id
    squares = cli.submit_many("square", range(40))
    victim_pool = pool_factory(srv, prefetch=5)
    [victim] = victim_pool.launch(1, prefix="victim")
    wait_for(started.exists, timeout=15, message="the long task to start")
    held = [t for t in all_tasks(cli, "running") + all_tasks(cli, "claimed")]
    held_ids = {t.id for t in held}
    # A function it never ran is claimed one task at a time, so it holds just that one.
    # (test_fair_dispatch kills a worker holding a whole batch.)
    assert held_ids == {first}
    rescuer_pool = pool_factory(srv)
    rescuer_pool.launch(1, prefix="rescuer")
    assert victim_pool.kill(victim.pid)
    assert victim.returncode == -signal.SIGKILL
    idle(cli)
    tasks = {t.id: t for t in all_tasks(cli)}
    assert len(tasks) == 41
    assert all(t.state is TaskState.DONE for t in tasks.values())
    assert tasks[first].result == "again"  # finished by the rescuer, not the killed worker
    for tid, t in tasks.items():
        assert t.attempts == (2 if tid in held_ids else 1), t
        assert not t.worker.startswith("victim") or tid not in held_ids
    for i, tid in enumerate(squares):
        assert tasks[tid].result == i * i
    snap = cli.snapshot()
    assert snap.count("done") == 41 and snap.requeued == 1
    assert snap.extra["ignored_late"] == 0
    cursor, finished = cli.results_since(0, limit=1000)
    assert sorted(t.id for t in finished) == sorted(tasks)  # exactly one result per task
    kinds = [e.kind for e in snap.events]
    assert "worker-offline" in kinds and "requeued" in kinds


def test_a_task_that_always_kills_its_worker_goes_dead_and_the_rest_finish(
        server_factory: Callable[..., ServerProcess],
        pool_factory: Callable[..., WorkerPool]) -> None:
    srv = server_factory(lease_timeout=LEASE, max_attempts=2)
    assert srv.address is not None
    c = Client(srv.address, TEST_KEY).connect()
    killer = c.submit("tests.jobs:crash").id
    others = c.submit_many("square", range(30))
    pool = pool_factory(srv, respawn=True, prefetch=1)  # one task per claim: it dies alone
    pool.launch(2)
    wait_for(lambda: pool.reap() is not None and c.get_task(killer).state is TaskState.DEAD,
             timeout=30, message="the killer task to go dead")
    idle(c)
    t = c.get_task(killer)
    assert t.attempts == 2 and "lease expired 2 times" in t.error
    assert all(c.get_task(i).state is TaskState.DONE for i in others)
    assert c.snapshot().count("dead") == 1
    c.close()


def test_a_killer_task_does_not_take_its_batch_neighbours_with_it(
        server_factory: Callable[..., ServerProcess],
        pool_factory: Callable[..., WorkerPool]) -> None:
    srv = server_factory(lease_timeout=LEASE, max_attempts=2)
    assert srv.address is not None
    c = Client(srv.address, TEST_KEY).connect()
    before = c.submit_many("square", range(3))
    killer = c.submit("tests.jobs:crash").id
    after = c.submit_many("square", range(3, 30))
    pool = pool_factory(srv, respawn=True)  # default prefetch: batches
    pool.launch(2)
    wait_for(lambda: pool.reap() is not None and c.get_task(killer).state is TaskState.DEAD,
             timeout=30, message="the killer task to go dead")
    idle(c)
    states = {i: c.get_task(i).state for i in [*before, *after]}
    c.close()
    assert set(states.values()) == {TaskState.DONE}, states


def test_a_late_result_after_the_task_finished_elsewhere_is_ignored(
        srv: ServerProcess, cli: Client, pool_factory: Callable[..., WorkerPool],
        tmp_path: Path) -> None:
    started = tmp_path / "started"
    tid = cli.submit("tests.jobs:sleep_first_time", str(started), 2.0).id
    slow_pool = pool_factory(srv, prefetch=1)
    [slow] = slow_pool.launch(1, prefix="slow")
    wait_for(started.exists, timeout=15, message="the task to start")
    os.kill(slow.pid, signal.SIGSTOP)  # hung: no heartbeat, its lease expires
    try:
        wait_for(lambda: cli.get_task(tid).state is TaskState.QUEUED, timeout=10,
                 message="the stalled lease to expire")
        fast_pool = pool_factory(srv, prefetch=1)
        fast_pool.launch(1, prefix="fast")
        wait_for(lambda: cli.get_task(tid).state is TaskState.DONE, timeout=15,
                 message="the task to finish on the other worker")
    finally:
        os.kill(slow.pid, signal.SIGCONT)
    # The stalled worker wakes up, finishes its sleep and reports "first": too late.
    wait_for(lambda: cli.snapshot().extra["ignored_late"] >= 1, timeout=15,
             message="the late result to arrive")
    t = cli.get_task(tid)
    assert (t.state, t.result, t.attempts) == (TaskState.DONE, "again", 2)
    assert t.worker.startswith("fast")
    snap = cli.snapshot()
    assert snap.count("done") == 1 and snap.submitted == 1
    assert [x.id for x in cli.results_since(0)[1]] == [tid]
    # ...and the stalled worker re-registers and goes on working.
    more = cli.submit_many("square", range(10))
    idle(cli)
    assert all(cli.get_task(i).state is TaskState.DONE for i in more)
    assert slow.alive


def test_server_killed_and_back_on_the_same_address_workers_reconnect(
        srv: ServerProcess, cli: Client, pool_factory: Callable[..., WorkerPool]) -> None:
    assert srv.address is not None
    pool = pool_factory(srv, give_up_after=20.0)
    workers = pool.launch(2)
    registered(cli, 2)
    os.kill(srv.pid, signal.SIGKILL)  # type: ignore[arg-type]
    srv.stop()  # reaps the dead process
    time.sleep(1.0)  # the workers are backing off now; none may exit
    assert all(w.alive for w in workers)
    srv.start()  # same address, fresh in-memory state
    ids = cli.submit_many("square", range(200))
    idle(cli, timeout=30)
    assert all(cli.get_task(i).result == n * n for n, i in enumerate(ids))
    assert all(w.alive for w in workers)
    registered(cli, 2)


# ---------------------------------------------------------------------- failures


def test_a_task_that_raises_is_failed_with_its_traceback_and_the_worker_goes_on(
        srv: ServerProcess, cli: Client, pool_factory: Callable[..., WorkerPool]) -> None:
    a = cli.submit_many("square", range(5))
    boom = cli.submit_many("tests.jobs:boom", range(3))
    b = cli.submit_many("square", range(5, 10))
    pool = pool_factory(srv)
    [w] = pool.launch(1)
    idle(cli)
    for n, tid in enumerate(boom):
        t = cli.get_task(tid)
        assert t.state is TaskState.FAILED
        assert t.error.startswith("Traceback (most recent call last)")
        assert f"ValueError: boom {n}" in t.error and "jobs.py" in t.error
        assert t.attempts == 1
    assert all(cli.get_task(i).state is TaskState.DONE for i in [*a, *b])
    [info] = cli.workers()
    assert (info.done, info.failed) == (10, 3)
    assert w.alive


def test_failures_amid_one_batch_keep_their_exceptions_and_the_rest_their_values_and_times(
        srv: ServerProcess, cli: Client, pool_factory: Callable[..., WorkerPool]) -> None:
    # Queued first, then claimed in big batches: every 5th task raises in the middle of its
    # batch, with one argument (bare), with two, and with keyword arguments.
    bare = cli.submit_many(math.sqrt, [-1 if i % 5 == 0 else i for i in range(500)])
    pairs = cli.submit_many(operator.truediv, [(i, i % 5) for i in range(500)])
    keyword = cli.submit_many(int, ["x" if i % 5 == 0 else str(i) for i in range(500)],
                              kwargs={"base": 10})
    [w] = pool_factory(srv).launch(1)
    idle(cli)
    tasks = all_tasks(cli)
    assert len(tasks) == 1500
    for ids, error, value in ((bare, "ValueError", math.sqrt), (pairs, "ZeroDivisionError",
                              lambda i: i / (i % 5)), (keyword, "ValueError", lambda i: i)):
        for i, t in enumerate(cli.get_tasks(ids)):
            assert t is not None and t.runtime is not None and t.runtime >= 0
            assert t.submitted <= t.started <= t.finished
            if i % 5:
                assert t.state is TaskState.DONE and t.result == value(i)
            else:
                assert t.state is TaskState.FAILED
                assert t.error.startswith("Traceback (most recent call last)") and error in t.error
    # The exception itself travels too: a future raises it, with the traceback as its cause.
    with pytest.raises(ZeroDivisionError) as info:
        cli.future(list(pairs)[5]).result(timeout=30)
    assert "Traceback" in str(info.value.__cause__)
    [info_w] = cli.workers()
    assert (info_w.done, info_w.failed) == (1200, 300) and w.alive


def test_fast_tasks_timed_in_runs_keep_a_failure_at_its_task_and_their_times(
        srv: ServerProcess, cli: Client, pool_factory: Callable[..., WorkerPool]) -> None:
    # Once the worker has measured math.sqrt as fast, it runs its tasks in runs with one
    # clock read a run (taskloop): a task raising mid-run fails alone, at its own id.
    [w] = pool_factory(srv).launch(1)
    cli.submit_many(math.sqrt, range(2000))
    idle(cli)
    bad = 2500
    ids = list(cli.submit_many(math.sqrt, [-1 if i == bad else i for i in range(5000)]))
    idle(cli)
    tasks = cli.get_tasks(ids)
    failed = tasks[bad]
    assert failed is not None and failed.state is TaskState.FAILED
    assert failed.error.startswith("Traceback (most recent call last)")
    assert "ValueError: math domain error" in failed.error
    with pytest.raises(ValueError, match="math domain error"):
        cli.future(ids[bad]).result(timeout=30)
    ok = [t for i, t in enumerate(tasks) if i != bad]
    assert all(t is not None and t.state is TaskState.DONE for t in ok)
    assert [t.result for t in ok] == [math.sqrt(i) for i in range(5000) if i != bad]
    assert all(t.runtime is not None and t.runtime >= 0 and
               t.submitted <= t.started <= t.finished for t in ok)
    starts = [t.started for t in tasks]
    assert all(a <= b for a, b in zip(starts, starts[1:]))  # run back to back, in order
    # Timed in runs: whole runs of tasks share their run's mean as their run time.
    runtimes = [t.runtime for t in tasks]
    assert any(len(set(runtimes[i:i + 32])) == 1 for i in range(0, 5000 - 32))
    [info] = cli.workers()
    assert (info.done, info.failed) == (6999, 1) and w.alive


def test_unknown_task_function_fails_cleanly(srv: ServerProcess, cli: Client,
                                             pool_factory: Callable[..., WorkerPool]) -> None:
    bad = cli.submit("no_such_module_xyz:func", 1).id
    good = cli.submit("square", 4).id
    pool_factory(srv).launch(1)
    idle(cli)
    t = cli.get_task(bad)
    assert t.state is TaskState.FAILED and "no_such_module_xyz" in t.error
    assert cli.get_task(good).result == 16


def test_unpicklable_result_and_exception_fail_readably_and_the_worker_goes_on(
        srv: ServerProcess, cli: Client, pool_factory: Callable[..., WorkerPool]) -> None:
    r = cli.submit("tests.jobs:unpicklable").id
    e = cli.submit("tests.jobs:raise_unpicklable").id
    ok = cli.submit_many("square", range(20))
    pool = pool_factory(srv)
    [w] = pool.launch(1)
    idle(cli)
    tr, te = cli.get_task(r), cli.get_task(e)
    assert tr.state is TaskState.FAILED and "pickle" in tr.error and "lock" in tr.error
    assert te.state is TaskState.FAILED and "cannot cross a process boundary" in te.error
    assert all(cli.get_task(i).state is TaskState.DONE for i in ok)
    assert w.alive and "Traceback" not in log_text(w)


def test_oversized_result_is_refused_with_a_clear_error(
        server_factory: Callable[..., ServerProcess],
        pool_factory: Callable[..., WorkerPool]) -> None:
    srv = server_factory(max_payload=256 * 1024)
    assert srv.address is not None
    c = Client(srv.address, TEST_KEY, max_payload=256 * 1024).connect()
    big = c.submit("tests.jobs:big_result", 1024 * 1024).id
    small = c.submit("tests.jobs:big_result", 1000).id
    after = c.submit_many("square", range(10))
    pool = pool_factory(srv)
    [w] = pool.launch(1)
    idle(c)
    t = c.get_task(big)
    assert t.state is TaskState.FAILED
    assert "MiB" in t.error and "limit" in t.error
    assert c.get_task(small).result == b"x" * 1000
    assert all(c.get_task(i).state is TaskState.DONE for i in after)
    assert w.alive
    server_rss = psutil.Process(srv.pid).memory_info().rss
    assert server_rss < 500 * 2**20
    c.close()


# ---------------------------------------------------------------------- volume


@pytest.mark.slow
def test_10000_tasks_through_2_workers_all_accounted_for(
        srv: ServerProcess, cli: Client, pool_factory: Callable[..., WorkerPool]) -> None:
    ids = cli.submit_many("square", range(10_000))
    pool = pool_factory(srv)
    pool.launch(2)
    idle(cli, timeout=60)
    snap = cli.snapshot()
    assert snap.count("done") == 10_000 and snap.submitted == 10_000
    assert snap.count("failed") == snap.count("dead") == snap.requeued == 0
    done = all_tasks(cli, "done")
    assert len(done) == 10_000
    by_id = {t.id: t for t in done}
    assert sorted(by_id) == list(ids)
    assert all(by_id[tid].result == n * n and by_id[tid].attempts == 1
               for n, tid in enumerate(ids))
    assert sum(w.done for w in cli.workers()) == 10_000
    cursor, finished = cli.results_since(0, limit=10_000)
    assert len(finished) == 10_000 and len({t.id for t in finished}) == 10_000


# ---------------------------------------------------------------------- stopping


def test_sigterm_returns_leased_tasks_and_exits_0(
        srv: ServerProcess, cli: Client, procs: Procs, tmp_path: Path) -> None:
    assert srv.address is not None
    marks = [str(tmp_path / f"t{i}") for i in range(6)]
    # A quick one first: the worker learns the function is fast and claims the 6 at once.
    warm = cli.submit("tests.jobs:touch_and_sleep", str(tmp_path / "warm"), 0.0)
    ids = cli.submit_many("tests.jobs:touch_and_sleep", [(m, 0.5) for m in marks])
    w = procs(worker_argv(srv.address, "--prefetch", "6", "--name", "term"))
    wait_for(lambda: Path(marks[0]).exists(), timeout=15, message="the first task to start")
    snap = cli.snapshot()
    assert snap.leased == 6  # it leased the whole batch: one runs, five wait in it
    assert (snap.count("running"), snap.count("claimed")) == (1, 5)
    assert cli.get_task(warm).state is TaskState.DONE
    w.send_signal(signal.SIGTERM)
    text = output_of(w, timeout=15)
    assert w.returncode == 0, text
    assert "Traceback" not in text
    first = cli.get_task(ids[0])
    assert (first.state, first.result) == (TaskState.DONE, "slept")  # finished, not abandoned
    snap = cli.snapshot()
    rest = [cli.get_task(i) for i in ids[1:]]
    assert all(t.state is TaskState.QUEUED and t.attempts == 0 for t in rest), rest
    assert snap.count("queued") == 5 and snap.leased == 0
    assert snap.requeued == 0  # handed back, not expired
    assert cli.workers() == ()  # it unregistered
    assert not any(Path(m).exists() for m in marks[1:])


def claiming_ahead(c: Client, prefetch: int) -> None:
    """Wait until a worker holds more than a claim: one batch running, the next claimed ahead."""
    wait_for(lambda: c.snapshot().leased > prefetch, timeout=30,
             message="a worker to claim a batch ahead of the one it runs")


def test_a_call_sent_ahead_is_answered_when_read_and_its_failures_say_why(
        srv: ServerProcess, cli: Client) -> None:
    assert srv.address is not None
    conn = ManagerConnection(srv.address, TEST_KEY)
    reply = conn.send("register_worker", "early", "host", 1, "inline", 1, "guidist")
    # Meanwhile the server serves others (from another thread: a thread's calls to one
    # server share its socket, where this reply waits).
    other = cf.ThreadPoolExecutor(1)
    ids = other.submit(cli.submit_many, "square", range(3)).result(timeout=15)
    other.shutdown()
    assert reply()["id"]
    assert conn.call("snapshot").count("queued") == len(ids)  # the socket is free again
    with pytest.raises(RemoteError, match="refused complete"):
        conn.send("complete", "no-such-worker", object())()
    srv.stop()
    with pytest.raises(ServerUnavailable):  # on sending, or on reading the reply
        conn.send("snapshot")()
    conn.close()


def test_sigterm_while_a_batch_is_claimed_ahead_hands_it_back_and_reports_each_once(
        srv: ServerProcess, cli: Client, procs: Procs) -> None:
    assert srv.address is not None
    # 1 ms tasks, 10 a claim: a 10 ms batch is short, so the next is claimed while it runs.
    ids = cli.submit_many("tests.jobs:slow_square", [(n, 0.001) for n in range(3000)])
    w = procs(worker_argv(srv.address, "--prefetch", "10", "--name", "ahead"))
    claiming_ahead(cli, 10)
    w.send_signal(signal.SIGTERM)
    text = output_of(w, timeout=15)
    assert w.returncode == 0, text
    assert "Traceback" not in text
    snap = cli.snapshot()
    assert snap.leased == 0 and snap.requeued == 0 and cli.workers() == ()
    done = all_tasks(cli, "done")
    queued = all_tasks(cli, "queued")
    assert len(done) + len(queued) == len(ids) and done
    assert all(t.attempts == 1 and t.result == (t.id - ids[0]) ** 2 for t in done)
    assert all(t.attempts == 0 for t in queued)  # handed back, uncounted
    _, finished = cli.results_since(0, limit=len(ids))
    assert sorted(t.id for t in finished) == sorted(t.id for t in done)  # each reported once


def test_sigkill_while_a_batch_is_claimed_ahead_requeues_it_and_all_finish_once(
        srv: ServerProcess, cli: Client, pool_factory: Callable[..., WorkerPool]) -> None:
    ids = cli.submit_many("tests.jobs:slow_square", [(n, 0.001) for n in range(3000)])
    victims = pool_factory(srv, prefetch=10)
    [victim] = victims.launch(1, prefix="victim")
    claiming_ahead(cli, 10)
    assert victims.kill(victim.pid)
    wait_for(lambda: cli.snapshot().leased == 0, timeout=5,
             message="the victim's tasks, the ones claimed ahead too, to be requeued")
    assert cli.snapshot().requeued > 10
    pool_factory(srv).launch(1, prefix="rescuer")
    idle(cli, timeout=60)
    done = all_tasks(cli, "done")
    assert sorted(t.id for t in done) == list(ids)
    assert all(t.result == (t.id - ids[0]) ** 2 for t in done)
    _, finished = cli.results_since(0, limit=len(ids))
    assert sorted(t.id for t in finished) == list(ids)  # exactly one result each
    assert cli.snapshot().extra["ignored_late"] == 0


def test_server_stopped_while_workers_run_they_exit_3_without_hanging(
        srv: ServerProcess, cli: Client, pool_factory: Callable[..., WorkerPool]) -> None:
    cli.submit_many("tests.jobs:slow_square", [(n, 0.05) for n in range(200)])
    pool = pool_factory(srv, give_up_after=1.5)
    workers = pool.launch(2)
    wait_for(lambda: cli.snapshot().count("done") > 0, timeout=15, message="work to start")
    cli.close()
    stopped = time.monotonic()
    srv.stop()
    for w in workers:
        w.process.wait(timeout=15)
    elapsed = time.monotonic() - stopped
    assert [w.returncode for w in workers] == [3, 3], [log_text(w) for w in workers]
    assert elapsed < 10
    for w in workers:
        assert "Gave up after" in log_text(w)
        assert "Traceback" not in log_text(w)


def test_worker_with_a_wrong_key_exits_4_and_the_server_serves_the_others(
        srv: ServerProcess, cli: Client, procs: Procs,
        pool_factory: Callable[..., WorkerPool]) -> None:
    assert srv.address is not None
    bad = procs(worker_argv(srv.address, "--give-up-after", "5"), key="wrong-key-123456789")
    text = output_of(bad, timeout=15)
    assert bad.returncode == 4, text
    assert "rejected the key" in text and "Traceback" not in text
    assert "wrong-key-123456789" not in text and TEST_KEY not in text
    pool_factory(srv).launch(1)
    ids = cli.submit_many("square", range(10))
    idle(cli)
    assert all(cli.get_task(i).state is TaskState.DONE for i in ids)


def test_worker_with_nothing_to_connect_to_gives_up(procs: Procs) -> None:
    from tests.e2e.conftest import free_port

    start = time.monotonic()
    w = procs(worker_argv(("127.0.0.1", free_port()), "--give-up-after", "1"))
    text = output_of(w, timeout=20)
    assert w.returncode == 3, text
    assert time.monotonic() - start < 10
    assert "Gave up after" in text and "Traceback" not in text
