"""The inline worker's task loop: run a group's tasks and record their values and times.

Every task is timed, and its start and run time travel with its result. A task starts when
the one before it ended, so one clock reading a task is enough. How exact that reading is
depends on the function:

- **Per task** (``run_tasks``): one ``perf_counter`` read after each task; its start is the
  end of the one before, its run time the difference. Exact for each task.
- **In runs** (``run_in_runs``), for a function that averages under ``FAST_SECONDS`` a task
  on this worker (the claim sizer's estimate): the clock costs as much as such a task, so
  up to ``RUN_TASKS`` tasks are run by ``list.extend(map(...))`` at C speed and the clock is
  read once per run. Each task of a run gets the run's mean as its run time and starts
  spaced evenly by it from the run's start (in a run shorter than ``SHARED_START_SECONDS``,
  the run's start itself), so the run's times add up to the run's time. A run whose mean is
  over ``FAST_SECONDS`` (a slow task among fast ones) ends the runs for the rest of the
  group: those tasks are timed one by one at once, so a slow task is smeared over one run.

The rule, as users read it: a task's start and run time are its own, unless its function
averages under ``FAST_SECONDS`` a task on that worker; then its run time is the mean of its
run of at most ``RUN_TASKS`` tasks, and its start is spaced evenly from the run's start.
Either way a task that raises is a failure with its traceback and its pickled exception,
and the loop goes on with the next task; a stop is looked at after each task (each run of
fast tasks), and so is the clock that says a partial report is due.
"""

from __future__ import annotations

import struct
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from itertools import accumulate, chain, islice, repeat, starmap
from operator import add, mul
from typing import Any

from . import remote

#: Functions whose measured mean is below this many seconds a task are timed in runs.
FAST_SECONDS = 2e-6
#: The most tasks one run of fast tasks holds (one clock read, one stop check each).
RUN_TASKS = 64
#: Runs of fast tasks shorter than this on average (seconds): their tasks share the run's
#: start instead of evenly spaced ones (see run_times).
SHARED_START_SECONDS = 10e-6

_DOUBLE = struct.Struct("d").pack


class StopFlag(threading.Event):
    """The worker's stop request: an Event the task loop reads as a plain attribute,
    ``raised``, so checking it between two tasks costs no call."""

    def __init__(self) -> None:
        super().__init__()
        self.raised = False

    def set(self) -> None:
        """Ask the worker to stop (safe in a signal handler, as Event.set is)."""
        self.raised = True
        super().set()


class TaskRun:
    """One run of a group's tasks between two reports: the values the task loop appends to
    (plain lists: ``list.append`` is the cheapest call CPython makes), the failures by
    position with what their result tuple carries after the run time, and the times: per
    task (``started``, ``runtimes``) or, for tasks run in runs, the clock at the end of each
    run (``ends``) and how many values there were then (``marks``), from ``first``, the
    clock when the first task started."""

    __slots__ = ("values", "started", "runtimes", "failures", "first", "ends", "marks")

    def __init__(self, first: float = 0.0) -> None:
        self.values: list[Any] = []
        self.started: list[float] = []  # wall clock, per task
        self.runtimes: list[float] = []  # seconds, per task
        self.failures: dict[int, tuple] = {}
        self.first = first
        self.ends: list[float] = []  # perf_counter, per run of fast tasks
        self.marks: list[int] = []  # len(values) at each of ends

    def add(self, item: tuple) -> None:
        """Append one timed result tuple (id, ok, value, started, runtime[, exception])."""
        if not item[1]:
            self.failures[len(self.values)] = tuple(item[5:])
        self.values.append(item[2])
        self.started.append(item[3])
        self.runtimes.append(item[4])

    def run_means(self) -> tuple[list[float], list[int]]:
        """Tasks run in runs: each run's mean run time and its number of tasks."""
        means, counts = [], []
        t, n = self.first, 0
        for end, mark in zip(self.ends, self.marks):
            means.append((end - t) / (mark - n))
            counts.append(mark - n)
            t, n = end, mark
        return means, counts

    def times(self, wall: float) -> tuple[list[float] | bytes, list[float] | bytes]:
        """Each task's wall-clock start and its run time (wall + a perf_counter reading is
        that moment's wall clock): the lists appended per task, or for tasks run in runs,
        raw doubles (``run_times``)."""
        if not self.ends:
            return self.started, self.runtimes
        return run_times(wall + self.first, *self.run_means())


def run_times(start: float, means: list[float], counts: list[int]) -> tuple[bytes, bytes]:
    """The starts and run times, as raw doubles, of tasks run in runs from start (wall
    clock): counts[i] tasks of means[i] seconds each, back to back. Each task's run time is
    its run's mean, one repeated double a run. Starts are spaced by it from the run's start
    (summed from 0, then added to start: exact to the double), which costs two float
    operations a task (~45 ns); when the runs average under SHARED_START_SECONDS, that is
    less than a start's own uncertainty is worth, and each task gets its run's start."""
    runtimes = b"".join([_DOUBLE(mean) * k for mean, k in zip(means, counts)])
    lengths = list(map(mul, means, counts))
    if sum(lengths) < SHARED_START_SECONDS * len(means):
        run_starts = map(add, repeat(start), accumulate(lengths, initial=0.0))
        return b"".join([_DOUBLE(s) * k for s, k in zip(run_starts, counts)]), runtimes
    offsets = accumulate(chain.from_iterable(map(repeat, means, counts)), initial=0.0)
    starts = struct.pack(f"{sum(counts) + 1}d", *map(add, repeat(start), offsets))
    return starts[:-8], runtimes  # the last is where the last run ended


def run_tasks(call: Callable[..., Any], tasks: Iterator[Any], bare: bool, t0: float,
              wall: float, until: float, stop: StopFlag, run: TaskRun) -> float:
    """Run tasks one by one (bare: one argument each; else argument tuples) into run, each
    timed, until there are no more, the clock (perf_counter) passes until, or a stop is
    asked; returns the clock at the end of the last task. t0 is when the first one starts,
    wall what turns a perf_counter reading into wall-clock time.

    Per task: the call, one clock read and three appends. The try is around the whole loop
    (free in CPython 3.11 when nothing raises): a task that raises is recorded as a failure,
    with its traceback and its pickled exception, and the loop resumes with the next task
    from the same iterator."""
    clock = time.perf_counter
    add_value, add_start, add_runtime = (run.values.append, run.started.append,
                                         run.runtimes.append)
    while True:
        try:
            # The loop is written twice, bare values and argument tuples, so that neither pays
            # a test per task for the other: this body is the whole per-task cost.
            if bare:
                for arg in tasks:
                    add_value(call(arg))
                    t = clock()
                    add_start(wall + t0)
                    add_runtime(t - t0)
                    t0 = t
                    if t > until or stop.raised:
                        break
            else:
                for args in tasks:
                    add_value(call(*args))
                    t = clock()
                    add_start(wall + t0)
                    add_runtime(t - t0)
                    t0 = t
                    if t > until or stop.raised:
                        break
            return t0
        except Exception as exc:
            t = clock()
            _add_failure(run, exc)
            add_start(wall + t0)
            add_runtime(t - t0)
            t0 = t
            if t > until or stop.raised:
                return t0


def run_in_runs(call: Callable[..., Any], tasks: Iterator[Any], bare: bool, t0: float,
                until: float, stop: StopFlag, run: TaskRun,
                slow: float = FAST_SECONDS) -> tuple[float, bool]:
    """Run fast tasks in runs of up to RUN_TASKS, one clock read and one stop check a run,
    into run (whose ``first`` is t0), until there are no more, the clock passes until, a stop
    is asked, or a run averages more than slow seconds a task; returns the clock at the end
    of the last run and whether that last reason ended it (the caller then times the rest
    of the group per task).

    A task that raises inside the map: ``list.extend`` has kept the values before it, so its
    position is ``len(values)``; it is recorded as a failure as in run_tasks, its run ends
    with it, and the next run starts with the next task."""
    clock = time.perf_counter
    values = run.values
    extend = values.extend
    add_end, add_mark = run.ends.append, run.marks.append
    size = RUN_TASKS
    n = len(values)
    while True:
        try:
            while True:
                if bare:
                    extend(map(call, islice(tasks, size)))
                else:
                    extend(starmap(call, islice(tasks, size)))
                t = clock()
                m = len(values)
                if m == n:  # the tasks ran out with the run before
                    return t0, False
                add_end(t)
                add_mark(m)
                if t - t0 > slow * (m - n):
                    return t, True
                if m - n < size:  # the tasks ran out in this run
                    return t, False
                t0, n = t, m
                if t > until or stop.raised:
                    return t, False
        except Exception as exc:
            t = clock()
            _add_failure(run, exc)
            m = len(values)
            add_end(t)
            add_mark(m)
            if t - t0 > slow * (m - n):
                return t, True
            t0, n = t, m
            if t > until or stop.raised:
                return t, False


def _add_failure(run: TaskRun, exc: Exception) -> None:
    """The task at len(run.values) raised exc: its value is the traceback, and its pickled
    exception goes in the run's failures by position."""
    run.failures[len(run.values)] = (remote.dump_exception(exc),)
    run.values.append(traceback.format_exc())
