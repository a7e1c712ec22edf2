"""worker: the loop in-process against a real server, result checks, and the classic fallback."""

from __future__ import annotations

import pickle
import queue
import threading
import time

from guidist.core.client import Client
from guidist.core.server import ServerProcess
from guidist.core.taskloop import StopFlag, TaskRun, run_tasks
from guidist.core.worker import (
    EXIT_GAVE_UP,
    EXIT_OK,
    Worker,
    WorkerConfig,
    results_are_picklable,
    results_within,
)
from tests.conftest import TEST_KEY, wait_for


def test_results_are_picklable_replaces_only_the_bad_ones() -> None:
    out = results_are_picklable([(1, True, 5), (2, True, threading.Lock()), (3, False, "err")])
    assert out[0] == (1, True, 5) and out[2] == (3, False, "err")
    tid, ok, text = out[1]
    assert (tid, ok) == (2, False) and "could not be sent" in text and "lock" in text


def test_results_within_replaces_oversized_ones() -> None:
    out = results_within([(1, True, b"x" * 100), (2, True, b"x" * 5000)], 1000)
    assert out[0] == (1, True, b"x" * 100)
    assert out[1][:2] == (2, False) and "PayloadTooLarge" in out[1][2]


def test_the_task_loop_fails_a_task_that_raises_and_goes_on_with_the_next() -> None:
    run, t0 = TaskRun(), time.perf_counter()
    end = run_tasks(lambda x: 10 // x, iter([1, 0, 2, 0, 5]), True, t0, 1000.0, t0 + 60,
                    StopFlag(), run)
    assert [run.values[i] for i in (0, 2, 4)] == [10, 5, 2] and set(run.failures) == {1, 3}
    for i in (1, 3):
        assert run.values[i].startswith("Traceback (most recent call last)")
        assert "ZeroDivisionError" in run.values[i]
        assert isinstance(pickle.loads(run.failures[i][0]), ZeroDivisionError)
    # Each task starts when the one before it ended, in wall-clock time (1000 + perf_counter).
    assert run.started[0] == 1000.0 + t0 and all(rt >= 0 for rt in run.runtimes)
    for i in range(4):
        assert abs(run.started[i] + run.runtimes[i] - run.started[i + 1]) < 1e-6
    assert abs(t0 + sum(run.runtimes) - end) < 1e-6


def test_the_task_loop_spreads_argument_tuples() -> None:
    run, t0 = TaskRun(), time.perf_counter()
    run_tasks(divmod, iter([(7, 2), (1, 0), (9, 3)]), False, t0, 0.0, t0 + 60, StopFlag(), run)
    assert run.values[0] == (3, 1) and run.values[2] == (3, 0) and list(run.failures) == [1]


def test_the_task_loop_stops_after_the_task_at_hand_and_resumes_where_it_stopped() -> None:
    stop = StopFlag()

    def task(x: int) -> int:
        if x == 2:
            stop.set()  # as SIGTERM's handler does, mid-task
        return x

    run, t0, tasks = TaskRun(), time.perf_counter(), iter(range(6))
    run_tasks(task, tasks, True, t0, 0.0, t0 + 60, stop, run)
    assert run.values == [0, 1, 2] and stop.is_set()
    # A report falls due (the clock passed `until`): the run ends after the task at hand,
    # and the next run picks up the next task.
    first, second = TaskRun(), TaskRun()
    t1 = run_tasks(task, tasks, True, t0, 0.0, t0, StopFlag(), first)
    run_tasks(task, tasks, True, t1, 0.0, t1 + 60, StopFlag(), second)
    assert first.values == [3] and second.values == [4, 5]


def test_worker_loop_in_process_with_max_tasks(server: ServerProcess, client: Client) -> None:
    assert server.address is not None
    ids = client.submit_many("square", range(30))
    worker = Worker(WorkerConfig(server.address, TEST_KEY.encode(), name="inproc",
                                 prefetch=10, max_tasks=30, give_up_after=5))
    assert worker.run() == EXIT_OK
    assert worker.processed == 30
    assert all(client.get_task(i).result == n * n for n, i in enumerate(ids))
    assert client.workers() == ()  # it said goodbye


def test_request_stop_ends_an_idle_worker(server: ServerProcess, client: Client) -> None:
    assert server.address is not None
    worker = Worker(WorkerConfig(server.address, TEST_KEY.encode(), wait_s=0.2,
                                 give_up_after=5))
    codes: list[int] = []
    t = threading.Thread(target=lambda: codes.append(worker.run()))
    t.start()
    wait_for(lambda: len(client.workers()) == 1, timeout=10, message="the worker to register")
    assert client.request_stop([client.workers()[0].id]) == 1  # from the window, say
    t.join(10)
    assert not t.is_alive() and codes == [EXIT_OK]


class _FakeQueue:
    def __init__(self, items: list, put_error: BaseException | None = None) -> None:
        self.items, self.put_error, self.got = items, put_error, []

    def get(self, timeout: float | None = None) -> object:
        if not self.items:
            raise queue.Empty
        return self.items.pop(0)

    def put(self, value: object) -> None:
        if self.put_error is not None:
            raise self.put_error
        self.got.append(value)


class _FakeConnection:
    """Stands in for a tutorial master's manager connection: just its two queues."""

    def __init__(self, tasks: _FakeQueue, results: _FakeQueue) -> None:
        self.tasks, self.results = tasks, results

    def task_queue(self) -> _FakeQueue:
        return self.tasks

    def result_queue(self) -> _FakeQueue:
        return self.results


def _classic_worker(tasks: _FakeQueue, results: _FakeQueue, **config: object) -> Worker:
    w = Worker(WorkerConfig(("127.0.0.1", 1), b"k" * 10, wait_s=0.01, **config))  # type: ignore
    w._client.connection = _FakeConnection(tasks, results)  # type: ignore[assignment]
    return w


def test_classic_fallback_formats_like_the_tutorial() -> None:
    results = _FakeQueue([])
    w = _classic_worker(_FakeQueue([3, 4]), results, max_tasks=2)
    assert w._run_classic() == EXIT_OK
    assert results.got == ["3 * 3 = 9", "4 * 4 = 16"]


def test_classic_fallback_losing_the_master_while_reporting_exits_cleanly() -> None:
    """The master shuts down between the worker's get and put: exit 3 like a lost get."""
    w = _classic_worker(_FakeQueue([3]), _FakeQueue([], put_error=EOFError()), max_tasks=5)
    assert w._run_classic() == EXIT_GAVE_UP
    w = _classic_worker(_FakeQueue([3]), _FakeQueue([], put_error=BrokenPipeError()))
    assert w._run_classic() == EXIT_GAVE_UP
