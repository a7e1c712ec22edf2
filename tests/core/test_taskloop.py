"""taskloop: fast tasks run and timed in runs, slow ones per task, failures at their place."""

from __future__ import annotations

import pickle
import time
from array import array

import pytest

from guidist.core import worker
from guidist.core.payload import floats
from guidist.core.protocol import BareArgs
from guidist.core.taskloop import (
    FAST_SECONDS,
    RUN_TASKS,
    SHARED_START_SECONDS,
    StopFlag,
    TaskRun,
    run_in_runs,
    run_times,
)
from guidist.core.worker import Worker, WorkerConfig

WALL = 1_700_000_000.0  # what turns a perf_counter reading into wall-clock time


def in_runs(call, tasks, bare=True, until=None, stop=None, slow=FAST_SECONDS):
    t0 = time.perf_counter()
    run = TaskRun(t0)
    end, switched = run_in_runs(call, iter(tasks), bare, t0, t0 + 60 if until is None else until,
                                stop or StopFlag(), run, slow)
    return run, end, switched


def test_a_raise_in_the_middle_of_a_run_fails_that_task_only_at_its_index() -> None:
    n = 3 * RUN_TASKS
    bad = RUN_TASKS + 17  # inside the second run
    run, _end, switched = in_runs(lambda x: 100 // (x - bad), range(n), slow=1.0)
    assert not switched and len(run.values) == n
    assert list(run.failures) == [bad]
    text = run.values[bad]
    assert text.startswith("Traceback (most recent call last)") and "ZeroDivisionError" in text
    assert isinstance(pickle.loads(run.failures[bad][0]), ZeroDivisionError)
    assert [run.values[i] for i in range(n) if i != bad] == \
        [100 // (i - bad) for i in range(n) if i != bad]
    # The failing task ends its run: the run before it and the one after it are whole.
    assert bad + 1 in run.marks and run.marks[-1] == n


def test_argument_tuples_run_in_runs_too() -> None:
    run, _end, _ = in_runs(divmod, [(7, 2), (1, 0), (9, 3)], bare=False, slow=1.0)
    assert run.values[0] == (3, 1) and run.values[2] == (3, 0) and list(run.failures) == [1]


def test_the_times_of_a_run_add_up_to_the_run_and_follow_each_other() -> None:
    # Tasks of ~20 us: runs last over SHARED_START_SECONDS, so starts are evenly spaced.
    def task(x: int) -> int:
        until = time.perf_counter() + 20e-6
        while time.perf_counter() < until:
            pass
        return x

    run, end, _ = in_runs(task, range(2 * RUN_TASKS + 5), slow=1.0)
    started, runtimes = (floats(c) for c in run.times(WALL))
    assert len(started) == len(runtimes) == len(run.values) == 2 * RUN_TASKS + 5
    assert sum(runtimes) == pytest.approx(end - run.first, abs=1e-9)
    assert started[0] == WALL + run.first
    for i in range(len(started) - 1):  # each starts when the one before it ended
        assert started[i] + runtimes[i] == pytest.approx(started[i + 1], abs=1e-6)
    # Within a run every task has the run's mean, which is its share of the run's time.
    t = run.first
    n = 0
    for stop_at, mark in zip(run.ends, run.marks):
        [mean] = set(runtimes[n:mark])
        assert mean == pytest.approx((stop_at - t) / (mark - n))
        t, n = stop_at, mark


def test_very_short_runs_share_their_start_and_still_add_up() -> None:
    means, counts = [1e-8, 2e-8, 3e-8], [64, 64, 10]
    started, runtimes = (floats(c) for c in run_times(WALL, means, counts))
    assert sum(m * k for m, k in zip(means, counts)) < SHARED_START_SECONDS * len(means)
    assert started == [WALL] * 64 + [WALL + 64e-8] * 64 + [WALL + (64e-8 + 128e-8)] * 10
    assert runtimes == [1e-8] * 64 + [2e-8] * 64 + [3e-8] * 10


def test_a_slow_task_among_fast_ones_switches_the_rest_of_its_group_to_per_task_timing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A threshold of 1 ms a task: only a stall of over 64 ms in one run would switch early.
    fast = 1e-3
    monkeypatch.setattr(worker, "FAST_SECONDS", fast)
    monkeypatch.setattr(worker, "_REPORT_SECONDS", 600.0)  # no partial report to send
    slow_at, n, pause = 100, 400, 0.3

    def task(x: int) -> int:
        if x == slow_at:
            time.sleep(pause)
        return x * x

    w = Worker(WorkerConfig(address=("127.0.0.1", 9), authkey=b"unused"))
    w._stats_due = float("inf")  # counted as usual, never sent
    w._functions["fast"] = task
    w._sizer.record("fast", 1000, 1000 * fast / 10)  # measured as fast before
    w._run_groups([("fast", None, list(range(n)), BareArgs(range(n)))])
    items = w._pending.items()
    assert [it[2] for it in items] == [x * x for x in range(n)] and all(it[1] for it in items)
    runtimes = [it[4] for it in items]
    first = slow_at - slow_at % RUN_TASKS  # where the slow task's run starts
    last = first + RUN_TASKS
    # The run holding the slow task is smeared over its tasks (each its share)...
    assert len(set(runtimes[first:last])) == 1 and runtimes[first] >= pause / RUN_TASKS
    # ...the runs before it were fast, and every task after it is timed on its own.
    assert all(rt < fast for rt in runtimes[:first])
    assert len(set(runtimes[last:])) > 1 and max(runtimes[last:]) < pause / RUN_TASKS
    starts = [it[3] for it in items]
    assert all(a <= b for a, b in zip(starts, starts[1:]))
    assert sum(runtimes) >= pause
    # The statistics saw the same: the slow run's share in its bucket, 400 done.
    report = w._stats.report()
    assert report is not None
    [(function, done, failed, _buckets, total, top)] = report["functions"]
    assert (function, done, failed) == ("fast", n, 0)
    assert total == pytest.approx(sum(runtimes)) and top == max(runtimes)


def test_a_stop_waits_for_the_run_at_hand_only_and_the_rest_resumes_in_order() -> None:
    stop = StopFlag()

    def task(x: int) -> int:
        if x == 5:
            stop.set()  # as SIGTERM's handler does, mid-task
        return x

    tasks = iter(range(10 * RUN_TASKS))
    t0 = time.perf_counter()
    run = TaskRun(t0)
    run_in_runs(task, tasks, True, t0, t0 + 60, stop, run, 1.0)
    assert run.values == list(range(RUN_TASKS))  # the run at hand finished, no more
    assert next(tasks) == RUN_TASKS


def test_the_report_time_ends_the_runs_after_the_run_at_hand() -> None:
    run, _end, switched = in_runs(lambda x: x, range(10 * RUN_TASKS), until=0.0, slow=1.0)
    assert not switched and run.values == list(range(RUN_TASKS))


def test_the_running_task_is_known_while_a_run_goes() -> None:
    # The heartbeat reads ids[first + len(values)] from another thread: extend grows the
    # list task by task, so each task sees itself as the one running.
    w = Worker(WorkerConfig(address=("127.0.0.1", 9), authkey=b"unused"))
    w._stats_due = float("inf")
    w._functions["whoami"] = lambda _x: w._running_now()
    w._sizer.record("whoami", 1000, 1000 * FAST_SECONDS / 10)
    ids = list(range(500, 500 + 3 * RUN_TASKS))
    w._run_groups([("whoami", None, ids, BareArgs([0] * len(ids)))])
    assert [it[2] for it in w._pending.items()] == [[i] for i in ids]
    assert w._running_now() == []


def test_run_times_are_the_bytes_the_wire_carries() -> None:
    started, runtimes = run_times(WALL, [1e-3, 2e-3], [2, 3])
    assert isinstance(started, bytes) and isinstance(runtimes, bytes)
    assert array("d", runtimes).tolist() == [1e-3, 1e-3, 2e-3, 2e-3, 2e-3]
    assert array("d", started).tolist() == pytest.approx(
        [WALL, WALL + 1e-3, WALL + 2e-3, WALL + 4e-3, WALL + 6e-3], abs=1e-6)
