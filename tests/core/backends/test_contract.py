"""One broker-semantics suite, run against both backends: in memory and Redis (a real server).

Each test gets a fresh broker from ``make``, with a fake clock it can move to expire leases.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from guidist.core.backends.memory.broker import Broker
from guidist.core.payload import pack_results
from guidist.core.protocol import SERIES_FIELDS, TaskState, WorkerState
from tests.conftest import FakeClock, wait_for
from tests.redis_fixtures import RedisServer, needs_redis

LEASE = 10.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_000_000.0)


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make(backend: str, clock: FakeClock,
         shared_redis: RedisServer | None) -> Iterator[Callable]:
    """make(**options) -> a fresh broker of the parametrized backend, on the fake clock."""
    made: list[Any] = []

    def factory(**options: Any) -> Any:
        options.setdefault("lease_timeout", LEASE)
        options.setdefault("max_attempts", 3)
        if backend == "memory":
            broker = Broker(clock=clock, **options)
        else:
            from guidist.core.backends.redis.broker import RedisBroker

            assert shared_redis is not None
            ns = f"test-{uuid.uuid4().hex[:12]}"
            broker = RedisBroker(shared_redis.url, clock=clock, namespace=ns, **options)
        made.append(broker)
        return broker

    yield factory
    for b in made:
        close = getattr(b, "close", None)
        if close is not None:
            close()


@pytest.fixture
def broker(make: Callable) -> Any:
    return make()


def ids_of(groups: list) -> list[int]:
    return [tid for _, _, ids, _ in groups for tid in ids]


def register(broker: Any, name: str = "w") -> str:
    return broker.register_worker(name, "host", 123)["id"]


def counts(broker: Any) -> dict[str, int]:
    return broker.snapshot().counts


# ---------------------------------------------------------------------- claim and lease


def test_submit_returns_consecutive_ids(broker: Any) -> None:
    assert broker.submit("square", [(1,), (2,), (3,)]) == (1, 3)
    assert broker.submit("square", [4, [5]]) == (4, 2)  # bare values and lists become tuples
    assert broker.submit("square", [])[1] == 0
    assert broker.queued_count() == 5
    with pytest.raises(ValueError):
        broker.submit("", [(1,)])


def test_claim_leases_in_batches_oldest_first(broker: Any) -> None:
    broker.submit("square", [(i,) for i in range(5)])
    w1, w2 = register(broker, "a"), register(broker, "b")
    groups = broker.claim(w1, 3)
    assert groups == [("square", None, [1, 2, 3], [(0,), (1,), (2,)])]
    assert ids_of(broker.claim(w2, 10)) == [4, 5]
    assert broker.claim(w1, 10) == []
    # An inline worker starts the first task of a claim at once; the rest wait, claimed.
    t = broker.get_task(1)
    assert (t.state, t.attempts, t.worker) == (TaskState.RUNNING, 1, w1)
    assert t.started is not None
    t = broker.get_task(2)
    assert (t.state, t.attempts, t.worker, t.started) == (TaskState.CLAIMED, 1, w1, None)
    c = counts(broker)
    assert (c["queued"], c["claimed"], c["running"]) == (0, 3, 2)
    info = {w.id: w for w in broker.workers()}
    assert (info[w1].running, info[w1].claimed) == (1, 2)
    assert info[w1].state is WorkerState.BUSY
    assert (info[w2].running, info[w2].claimed) == (1, 1)


def test_claim_is_fifo_across_functions_and_keeps_kwargs(broker: Any) -> None:
    broker.submit("square", [(1,), (2,)])
    broker.submit("echo", [("a",)], {"sep": "-"})
    broker.submit("square", [(3,)])
    w = register(broker)
    groups = broker.claim(w, 10)
    assert groups == [("square", None, [1, 2], [(1,), (2,)]),
                      ("echo", {"sep": "-"}, [3], [("a",)]),
                      ("square", None, [4], [(3,)])]


def test_exchange_reports_and_claims_in_one_call(broker: Any) -> None:
    broker.submit("square", [(i,) for i in range(4)])
    w = register(broker)
    cmd, groups = broker.exchange(w, None, 2)
    assert cmd == "ok" and ids_of(groups) == [1, 2]
    cmd, groups = broker.exchange(w, [(1, True, 0), (2, True, 1)], 5)
    assert cmd == "ok" and ids_of(groups) == [3, 4]
    assert counts(broker)["done"] == 2
    assert broker.exchange("nobody#9", [], 5) == ("unknown", [])


def test_results_packed_as_columns_are_taken_like_tuples(broker: Any) -> None:
    """A guidist worker packs its results as columns (pack_results); both backends decode
    them with payload.unpack, as the server does for a call that arrives as bytes."""
    broker.submit("square", [(i,) for i in range(6)])
    w = register(broker)
    assert ids_of(broker.claim(w, 6)) == [1, 2, 3, 4, 5, 6]
    oks = pack_results([(t, True, t * t, 1000.0 + t, 0.25) for t in (1, 2, 3, 5)])
    assert broker.complete(w, oks) == 4
    mixed = pack_results([(4, False, "Traceback\nValueError: no", 1004.0, 0.5),
                          (6, True, 36, 1006.0, 0.5)])
    assert broker.exchange(w, mixed, 0)[0] == "ok"
    assert counts(broker)["done"] == 5 and counts(broker)["failed"] == 1
    t3, t4, t6 = broker.get_tasks([3, 4, 6])
    assert (t3.state, t3.result, t3.started, t3.runtime) == (TaskState.DONE, 9, 1003.0, 0.25)
    assert t4.state is TaskState.FAILED and t4.error.endswith("ValueError: no")
    assert (t6.result, t6.started) == (36, 1006.0)


def test_results_with_and_without_times_in_one_call_keep_theirs(broker: Any) -> None:
    broker.submit("square", [(i,) for i in range(4)])
    w = register(broker)
    assert ids_of(broker.claim(w, 4)) == [1, 2, 3, 4]
    assert broker.complete(w, [(1, True, 0), (2, True, 1, 500.0, 0.5)]) == 2
    assert broker.complete(w, [(3, True, 4), (4, True, 9)]) == 2  # a tutorial-style report
    tasks = broker.get_tasks([1, 2, 3, 4])
    assert [t.result for t in tasks] == [0, 1, 4, 9]
    assert [t.state for t in tasks] == [TaskState.DONE] * 4
    assert (tasks[1].started, tasks[1].runtime) == (500.0, 0.5)
    assert tasks[0].runtime is None and tasks[3].runtime is None


def test_claim_long_polls_until_work_arrives(broker: Any) -> None:
    w = register(broker)
    got: list = []
    t = threading.Thread(target=lambda: got.append(broker.claim(w, 5, 5.0)))
    start = time.monotonic()
    t.start()
    time.sleep(0.2)
    broker.submit("square", [(7,)])
    t.join(5)
    assert not t.is_alive()
    assert ids_of(got[0]) == [1]
    assert time.monotonic() - start < 3.0


def test_claim_wait_ends_on_an_empty_queue(backend: str, broker: Any) -> None:
    """wait_s is a duration: it must end even when the (injectable) wall clock stands still."""
    w = register(broker)
    got: list = []
    t = threading.Thread(target=lambda: got.append(broker.claim(w, 5, 0.3)), daemon=True)
    t.start()
    t.join(3)
    stuck = t.is_alive()
    if stuck:
        broker.submit("square", [(1,)])  # free the waiting thread before failing
        t.join(3)
    assert not stuck and got == [[]]


# ---------------------------------------------------------------------- leases


def test_heartbeat_renews_every_lease(broker: Any, clock: FakeClock) -> None:
    broker.submit("square", [(1,), (2,)])
    w = register(broker)
    broker.claim(w, 2)
    clock.advance(LEASE * 0.75)
    assert broker.heartbeat(w, 1) == "ok"
    clock.advance(LEASE * 0.75)
    assert broker.reap() == 0
    assert broker.snapshot().leased == 2
    clock.advance(LEASE + 1)
    assert broker.reap() == 2


def test_requeue_on_expiry(broker: Any, clock: FakeClock) -> None:
    broker.submit("square", [(i,) for i in range(3)])
    w1 = register(broker, "dies")
    broker.claim(w1, 2)
    clock.advance(LEASE + 1)
    assert broker.reap() == 2
    c = counts(broker)
    assert (c["queued"], c["running"]) == (3, 0)
    snap = broker.snapshot()
    assert snap.requeued == 2
    assert {w.id: w.state for w in snap.workers}[w1] is WorkerState.OFFLINE
    assert any(e.kind == "requeued" for e in snap.events)
    assert broker.heartbeat(w1) == "unknown"
    assert broker.exchange(w1, None, 5) == ("unknown", [])
    t = broker.get_task(1)
    assert (t.state, t.attempts, t.worker) == (TaskState.QUEUED, 1, None)
    w2 = register(broker, "lives")
    # One per claim: whichever of them killed w1 must not take the others down with it.
    assert [ids_of(broker.claim(w2, 10)) for _ in range(3)] == [[1], [2], [3]]
    assert broker.get_task(1).attempts == 2
    assert broker.get_task(3).attempts == 1


def test_dead_after_max_attempts(make: Callable, clock: FakeClock) -> None:
    broker = make(max_attempts=2)
    broker.submit("square", [(1,)])
    for attempt in (1, 2):
        w = register(broker, f"w{attempt}")
        assert ids_of(broker.claim(w, 1)) == [1]
        clock.advance(LEASE + 1)
        assert broker.reap() == 1
    t = broker.get_task(1)
    assert t.state is TaskState.DEAD and t.attempts == 2
    assert "lease expired 2 times" in (t.error or "")
    c = counts(broker)
    assert (c["dead"], c["queued"], c["running"]) == (0 + 1, 0, 0)
    assert any(e.kind == "dead" for e in broker.events(0))


def test_unregister_and_release_return_tasks_uncounted(broker: Any) -> None:
    broker.submit("square", [(i,) for i in range(4)])
    w = register(broker)
    broker.claim(w, 4)
    assert broker.release(w, [1, 2, 99]) == 2
    assert broker.get_task(1).attempts == 0
    assert broker.get_task(1).state is TaskState.QUEUED
    assert broker.unregister_worker(w) == 2
    assert counts(broker)["queued"] == 4 and counts(broker)["running"] == 0
    assert w not in {x.id for x in broker.workers()}
    assert broker.unregister_worker(w) == 0


def test_request_stop_reaches_the_worker(broker: Any) -> None:
    broker.submit("square", [(1,)])
    w = register(broker)
    assert broker.request_stop([w, "nobody#1"]) == 1
    assert broker.heartbeat(w) == "stop"
    assert broker.exchange(w, None, 5) == ("stop", [])
    assert {x.id: x.state for x in broker.workers()}[w] is WorkerState.STOPPING


def test_forget_offline(broker: Any, clock: FakeClock) -> None:
    w1 = register(broker, "a")
    clock.advance(LEASE + 1)
    w2 = register(broker, "b")
    broker.reap()
    assert broker.forget_offline() == 1
    assert [w.id for w in broker.workers()] == [w2]
    assert w1 != w2


# ---------------------------------------------------------------------- claimed and running


def held_adds_up(broker: Any) -> tuple[int, int]:
    """(claimed, running) of the snapshot, checked against what the workers hold."""
    snap = broker.snapshot()
    live = [w for w in snap.workers]
    assert sum(w.claimed for w in live) == snap.count("claimed")
    assert sum(w.running for w in live) == snap.count("running")
    return snap.count("claimed"), snap.count("running")


def test_claimed_tasks_run_once_the_worker_says_so(broker: Any) -> None:
    broker.submit("square", [(i,) for i in range(6)])
    w = broker.register_worker("w", "host", 1, "thread", 2)["id"]
    assert ids_of(broker.claim(w, 4)) == [1, 2, 3, 4]
    assert held_adds_up(broker) == (2, 2)  # two free slots: the first two started at once
    assert broker.get_task(3).state is TaskState.CLAIMED
    cmd, _ = broker.exchange(w, [(1, True, 0)], 0, 0.0, [2, 3])
    assert cmd == "ok"
    t = broker.get_task(3)
    assert t.state is TaskState.RUNNING and t.started is not None
    assert held_adds_up(broker) == (1, 2)
    assert broker.heartbeat(w, [4, 99]) == "ok"  # an id it does not hold is ignored
    assert held_adds_up(broker) == (0, 3)
    info = {x.id: x for x in broker.workers()}[w]
    assert (info.running, info.claimed, info.held, info.current_task) == (3, 0, 3, 4)
    # A claimed task may finish before its worker said it started: it is done all the same.
    other = register(broker, "other")
    assert ids_of(broker.claim(other, 2)) == [5, 6]
    assert broker.complete(other, [(6, True, 25)]) == 1
    assert held_adds_up(broker) == (0, 4)
    assert broker.get_task(6).state is TaskState.DONE


def test_claimed_and_running_both_return_when_released_or_expired(
        broker: Any, clock: FakeClock) -> None:
    broker.submit("square", [(i,) for i in range(4)])
    w = register(broker)
    broker.claim(w, 4)
    assert broker.release(w, [1, 2]) == 2  # one running, one claimed
    assert held_adds_up(broker) == (2, 0)
    assert [broker.get_task(i).state for i in (1, 2)] == [TaskState.QUEUED] * 2
    clock.advance(LEASE + 1)
    assert broker.reap() == 2
    assert held_adds_up(broker) == (0, 0)
    assert counts(broker)["queued"] == 4


def test_claims_are_sized_per_function(broker: Any) -> None:
    broker.submit("square", [(i,) for i in range(10)])  # ids 1-10
    broker.submit("sleep", [(0.05,)] * 6)  # ids 11-16
    w = register(broker)
    limits = {"square": 4}
    assert ids_of(broker.exchange(w, None, 1000, 0.0, None, limits)[1]) == [1, 2, 3, 4]
    # The rest of the squares fill a tenth of the claim; an unknown function's task does
    # not fit in what is left, so it waits for a claim of its own.
    limits = {"square": 100}
    assert ids_of(broker.exchange(w, None, 1000, 0.0, None, limits)[1]) == list(range(5, 11))
    assert ids_of(broker.exchange(w, None, 1000, 0.0, None, limits)[1]) == [11]
    limits = {"square": 100, "sleep": 2}
    assert ids_of(broker.exchange(w, None, 1000, 0.0, None, limits)[1]) == [12, 13]
    assert ids_of(broker.exchange(w, None, 1, 0.0, None, limits)[1]) == [14]  # max_n caps
    assert ids_of(broker.exchange(w, None, 1000)[1]) == [15, 16]  # no limits: max_n only


def test_a_claim_mixes_functions_within_its_budget(broker: Any) -> None:
    broker.submit("square", [(i,) for i in range(5)])  # ids 1-5
    broker.submit("sleep", [(0.05,)] * 4)  # ids 6-9
    w = register(broker)
    # Five squares are half of this claim (limit 10), so one of two sleeps fits beside them.
    groups = broker.exchange(w, None, 1000, 0.0, None, {"square": 10, "sleep": 2})[1]
    assert ids_of(groups) == [1, 2, 3, 4, 5, 6]


def test_an_idle_worker_makes_a_busy_one_give_back_what_it_has_not_started(
        broker: Any) -> None:
    broker.submit("sleep", [(1.0,)] * 5)
    busy = register(broker, "busy")
    assert ids_of(broker.claim(busy, 5)) == [1, 2, 3, 4, 5]  # 1 runs, 2-5 wait in its batch
    idle = register(broker, "idle")
    got: list = []
    t = threading.Thread(target=lambda: got.append(broker.claim(idle, 10, 10.0)), daemon=True)
    t.start()
    # The idle worker's long poll asked; the busy one hears it on its next heartbeat.
    replies = []
    deadline = time.monotonic() + 10
    while "give-back" not in replies and time.monotonic() < deadline:
        replies.append(broker.heartbeat(busy, [1]))
        time.sleep(0.01)
    assert "give-back" in replies
    assert broker.heartbeat(busy, [1]) == "ok"  # said once
    assert broker.release(busy, [2, 3, 4, 5]) == 4
    t.join(10)
    assert not t.is_alive() and ids_of(got[0]) == [2, 3, 4, 5]
    t2 = broker.get_task(2)
    assert (t2.worker, t2.attempts) == (idle, 1)  # the give-back cost no attempt
    assert held_adds_up(broker) == (3, 2)


def test_give_back_is_asked_only_of_a_worker_holding_unstarted_tasks(broker: Any) -> None:
    broker.submit("sleep", [(1.0,)] * 3)
    a = register(broker, "a")
    b = broker.register_worker("b", "h", 2, "thread", 2)["id"]
    assert ids_of(broker.claim(a, 1)) == [1]  # running: nothing to give back
    assert ids_of(broker.claim(b, 2)) == [2, 3]  # both running (two slots)
    idle = register(broker, "idle")
    assert broker.exchange(idle, None, 5, 0.05) == ("ok", [])
    assert broker.heartbeat(a, [1]) == "ok" and broker.heartbeat(b, [2, 3]) == "ok"
    broker.submit("sleep", [(1.0,)] * 2)  # ids 4, 5
    assert ids_of(broker.claim(a, 2)) == [4, 5]  # claimed behind task 1
    assert broker.exchange(idle, None, 5, 0.05) == ("ok", [])
    # The exchange says it as well, and then claims nothing: the worker is to release.
    assert broker.exchange(a, None, 5) == ("give-back", [])
    assert broker.exchange(a, None, 5) == ("ok", [])  # nothing queued meanwhile


def test_a_worker_whose_connections_all_closed_loses_its_tasks_at_once(broker: Any) -> None:
    conn = {"key": "1@host"}
    broker.connection_key = lambda: conn["key"]
    broker.submit("square", [(i,) for i in range(3)])
    w = register(broker)  # on connection 1
    broker.claim(w, 3)
    conn["key"] = "2@host"
    broker.heartbeat(w, [1])  # the heartbeat thread's own connection
    conn["key"] = "3@host"
    client = register(broker, "other")  # another worker, on a third connection
    broker.connection_closed("1@host")
    assert held_adds_up(broker) == (2, 1)  # one connection left: nothing happens yet
    broker.connection_closed("2@host")
    snap = broker.snapshot()
    assert (snap.count("queued"), snap.leased, snap.requeued) == (3, 0, 3)
    states = {x.id: x.state for x in snap.workers}
    assert states == {w: WorkerState.OFFLINE, client: WorkerState.IDLE}
    assert broker.get_task(1).attempts == 1  # counted: the worker may have died of it
    assert any(e.kind == "worker-offline" and "connection closed" in e.message
               for e in snap.events)
    assert broker.heartbeat(w) == "unknown"
    broker.connection_closed("9@host")  # a connection no worker used: nothing to do


def test_a_worker_that_left_is_not_expired_when_its_connection_closes(broker: Any) -> None:
    broker.connection_key = lambda: "1@host"
    broker.submit("square", [(1,)])
    w = register(broker)
    broker.claim(w, 1)
    assert broker.unregister_worker(w) == 1
    broker.connection_closed("1@host")
    snap = broker.snapshot()
    assert snap.requeued == 0 and snap.workers == ()
    assert broker.get_task(1).attempts == 0


# ---------------------------------------------------------------------- results


def test_exactly_one_stored_result(broker: Any, clock: FakeClock) -> None:
    broker.submit("square", [(3,)])
    slow = register(broker, "slow")
    broker.claim(slow, 1)
    clock.advance(LEASE + 1)
    broker.reap()
    fast = register(broker, "fast")
    assert ids_of(broker.claim(fast, 1)) == [1]
    assert broker.complete(fast, [(1, True, 9)]) == 1
    assert broker.complete(slow, [(1, True, "late")]) == 0  # a late duplicate is ignored
    assert broker.complete(fast, [(1, True, "again")]) == 0
    t = broker.get_task(1)
    assert (t.state, t.result, t.worker, t.attempts) == (TaskState.DONE, 9, fast, 2)
    snap = broker.snapshot()
    assert snap.counts["done"] == 1 and snap.extra["ignored_late"] == 2
    cursor, tasks = broker.results_since(0)
    assert [x.id for x in tasks] == [1]
    assert broker.results_since(cursor) == (cursor, [])


def test_late_result_for_a_requeued_task_wins_once(broker: Any, clock: FakeClock) -> None:
    broker.submit("square", [(3,)])
    w = register(broker)
    broker.claim(w, 1)
    clock.advance(LEASE + 1)
    broker.reap()
    assert counts(broker)["queued"] == 1
    assert broker.complete(w, [(1, True, 9), (1, True, 10)]) == 1
    c = counts(broker)
    assert (c["queued"], c["done"]) == (0, 1)
    assert broker.get_task(1).result == 9
    other = register(broker, "other")
    assert broker.claim(other, 5) == []


def test_failure_keeps_its_traceback(broker: Any) -> None:
    broker.submit("square", [(1,), (2,)])
    w = register(broker)
    broker.claim(w, 2)
    tb = "Traceback (most recent call last):\n  ...\nValueError: boom"
    assert broker.complete(w, [(1, False, tb), (2, True, 4)]) == 2
    t = broker.get_task(1)
    assert t.state is TaskState.FAILED and t.error == tb and t.result is None
    info = {x.id: x for x in broker.workers()}[w]
    assert (info.done, info.failed) == (1, 1)


def test_the_workers_own_timing_is_kept(broker: Any, clock: FakeClock) -> None:
    """A worker reports when each task began and how long it ran; that replaces the claim
    time, which for the last task of a batch includes waiting behind the others."""
    broker.submit("square", [(1,), (2,), (3,)])
    w = register(broker)
    broker.claim(w, 3)
    claimed = clock.now
    clock.advance(2.0)
    assert broker.complete(w, [(1, True, 1, claimed + 0.5, 0.25),
                               (2, False, "tb", claimed + 0.75, 0.125),
                               (3, True, 9)]) == 3  # a tutorial worker measures nothing
    one, two, three = (broker.get_task(i) for i in (1, 2, 3))
    assert (one.started, one.runtime, one.finished) == (claimed + 0.5, 0.25, clock.now)
    assert (two.state, two.started, two.runtime) == (TaskState.FAILED, claimed + 0.75, 0.125)
    # claimed and never said to have started (concurrency 1: the worker ran 1 first)
    assert (three.state, three.started, three.runtime) == (TaskState.DONE, None, None)
    assert one.waited == pytest.approx(0.5)
    broker.retry([2])
    assert broker.get_task(2).runtime is None and broker.get_task(2).started is None


def test_results_since_pages_in_finishing_order(broker: Any) -> None:
    broker.submit("square", [(i,) for i in range(5)])
    w = register(broker)
    broker.claim(w, 5)
    broker.complete(w, [(3, True, 4), (1, False, "x")])
    broker.cancel([])  # nothing: a no-op must not disturb the sequence
    broker.complete(w, [(2, True, 1), (5, True, 16)])
    cursor, tasks = broker.results_since(0, limit=3)
    assert [t.id for t in tasks] == [3, 1, 2]
    assert [t.state for t in tasks] == [TaskState.DONE, TaskState.FAILED, TaskState.DONE]
    cursor, tasks = broker.results_since(cursor, limit=3)
    assert [t.id for t in tasks] == [5]
    assert broker.results_since(cursor) == (cursor, [])


def test_finished_records_are_capped(make: Callable) -> None:
    broker = make(keep_done=5)
    broker.submit("square", [(i,) for i in range(20)])
    w = register(broker)
    broker.claim(w, 20)
    broker.complete(w, [(i, True, i) for i in range(1, 21)])
    page = broker.list_tasks("done", limit=100)
    assert page.total == 5
    assert [t.id for t in page.tasks] == [20, 19, 18, 17, 16]
    assert counts(broker)["done"] == 20
    # The listing says how many it counts but no longer holds (the window tells the person).
    assert page.not_held == 15
    assert broker.list_tasks().not_held == 15 and broker.list_tasks("queued").not_held == 0


# ---------------------------------------------------------------------- control


def test_cancel_only_queued(broker: Any) -> None:
    broker.submit("square", [(i,) for i in range(5)])
    w = register(broker)
    broker.claim(w, 1)
    assert broker.cancel([1, 2, 3, 99]) == 2
    assert broker.get_task(2).state is TaskState.CANCELLED
    assert broker.get_task(1).state is TaskState.RUNNING
    c = counts(broker)
    assert (c["cancelled"], c["queued"], c["running"]) == (2, 2, 1)
    assert ids_of(broker.claim(w, 10)) == [4, 5]
    assert broker.cancel([2]) == 0


def test_purge_cancels_everything_queued(broker: Any, clock: FakeClock) -> None:
    broker.submit("square", [(i,) for i in range(6)])
    broker.submit("echo", [(i,) for i in range(4)])
    w = register(broker)
    broker.claim(w, 2)
    clock.advance(LEASE + 1)
    broker.reap()  # two requeued records back in the queue
    w2 = register(broker, "w2")
    broker.claim(w2, 1)
    assert broker.purge() == 9
    c = counts(broker)
    assert (c["queued"], c["cancelled"], c["running"]) == (0, 9, 1)
    assert broker.claim(w2, 10) == []
    assert broker.get_task(2).state is TaskState.CANCELLED
    assert broker.submit("square", [(1,)])[1] == 1
    assert ids_of(broker.claim(w2, 10)) == [11]


def test_pause_and_resume(broker: Any) -> None:
    broker.submit("square", [(1,), (2,)])
    w = register(broker)
    broker.pause()
    assert broker.snapshot().paused
    assert broker.claim(w, 5) == []
    assert broker.exchange(w, None, 5) == ("ok", [])
    broker.resume()
    assert not broker.snapshot().paused
    assert ids_of(broker.claim(w, 5)) == [1, 2]
    kinds = [e.message for e in broker.events(0) if e.kind == "control"]
    assert kinds == ["dispatch paused", "dispatch resumed"]


def test_retry_failed_and_dead(make: Callable, clock: FakeClock) -> None:
    broker = make(max_attempts=1)
    broker.submit("square", [(1,), (2,), (3,)])
    w = register(broker)
    broker.claim(w, 3)
    broker.complete(w, [(1, False, "boom"), (2, True, 4)])
    clock.advance(LEASE + 1)
    broker.reap()  # task 3 dies (one attempt allowed)
    c = counts(broker)
    assert (c["failed"], c["dead"], c["done"]) == (1, 1, 1)
    requeued = broker.snapshot().requeued
    assert broker.retry([1, 2]) == 1  # a done task is not retried
    t = broker.get_task(1)
    # A retry is visible: the attempts go on counting and the task counts as requeued.
    assert (t.state, t.attempts, t.error, t.result) == (TaskState.QUEUED, 1, None, None)
    assert broker.snapshot().requeued == requeued + 1
    assert broker.retry_all() == 1
    c = counts(broker)
    assert (c["failed"], c["dead"], c["queued"]) == (0, 0, 2)
    assert broker.snapshot().requeued == requeued + 2
    broker.submit("square", [(4,)])
    w2 = register(broker, "w2")
    # Retried tasks rejoin at the back, and in one claim: they are not suspected of killing
    # workers as a task whose lease expired is.
    assert ids_of(broker.claim(w2, 5)) == [1, 3, 4]
    assert (broker.get_task(1).attempts, broker.get_task(3).attempts) == (2, 2)
    # The lease rules start afresh after a retry: one more expiry (max_attempts=1) is dead.
    clock.advance(LEASE + 1)
    broker.reap()
    t = broker.get_task(3)
    assert (t.state, t.attempts) == (TaskState.DEAD, 2)
    assert "lease expired 1 times" in t.error


# ---------------------------------------------------------------------- monitoring


def test_snapshot_counters_and_series(backend: str, broker: Any, clock: FakeClock) -> None:
    clock.now = 2_000_000.0
    broker.snapshot()
    broker.submit("square", [(i,) for i in range(5)])
    w = register(broker)
    broker.claim(w, 3)
    clock.advance(1)
    broker.complete(w, [(1, True, 1), (2, False, "x")])
    clock.advance(1)
    snap = broker.snapshot()
    assert snap.submitted == 5
    assert snap.counts == {"queued": 2, "claimed": 1, "running": 0, "done": 1, "failed": 1,
                           "dead": 0, "cancelled": 0}
    assert snap.time == clock.now
    pts = [dict(zip(SERIES_FIELDS, p)) for p in snap.series]
    assert [p["t"] for p in pts][-2:] == [2_000_000, 2_000_001]
    first, second = pts[-2], pts[-1]
    # In memory a second's gauges are its peaks (5 were queued before the claim took 3);
    # Redis records them as the second ends.
    peak_queued = 5 if backend == "memory" else 2
    assert (first["submitted"], first["queued"], first["running"], first["claimed"],
            first["workers"]) == (5, peak_queued, 1, 2, 1)
    # The second began with 1 running and 2 claimed (its peaks in memory) and ended with 0, 1.
    ended = (0, 1) if backend != "memory" else (1, 2)
    assert (second["done"], second["failed"], second["running"], second["claimed"]) == \
        (1, 1, *ended)
    assert snap.throughput == pytest.approx(0.2)
    assert snap.connected_workers == 1
    later = broker.snapshot(series_since=snap.series[-1][0],
                            events_since=snap.events[-1].seq)
    assert later.series == () and later.events == ()
    clock.advance(3)
    assert [p[0] for p in broker.snapshot(series_since=2_000_001).series] == \
        [2_000_002, 2_000_003, 2_000_004]


def test_list_tasks_pages_by_state(broker: Any) -> None:
    broker.submit("square", [(i,) for i in range(10)])
    w = register(broker)
    broker.claim(w, 4)
    broker.complete(w, [(1, True, 0), (2, True, 1)])
    broker.heartbeat(w, [4])  # the worker says it runs task 4 now
    page = broker.list_tasks()
    assert page.total == 10
    assert [t.state for t in page.tasks][:2] == [TaskState.RUNNING, TaskState.CLAIMED]
    # Newest activity first: running, claimed, finished (latest first), then queued in turn.
    assert [t.id for t in page.tasks] == [4, 3, 2, 1, 5, 6, 7, 8, 9, 10]
    assert [t.id for t in broker.list_tasks("claimed").tasks] == [3]
    page = broker.list_tasks(offset=3, limit=4)
    assert [t.id for t in page.tasks] == [1, 5, 6, 7]
    assert broker.list_tasks("queued", limit=2).tasks[1].id == 6
    assert broker.list_tasks(TaskState.DONE).total == 2
    found = broker.list_tasks(search="(7,)")
    assert [t.id for t in found.tasks] == [8]
    assert broker.get_task(999) is None


# ---------------------------------------------------------------------- jobs


def job_counts(job: Any) -> tuple[int, ...]:
    """(queued, leased: claimed or running, done, failed, dead, cancelled)."""
    return (job.queued, job.claimed + job.running, job.done, job.failed, job.dead,
            job.cancelled)


def test_every_submission_belongs_to_a_job(broker: Any, clock: FakeClock) -> None:
    broker.submit("square", [(1,), (2,)])  # nobody named it: function and time
    broker.submit("echo", [(3,)], job="nightly")
    broker.submit("tests.jobs:boom", [(4,), (5,)], job="nightly")  # the same name: one job
    jobs = broker.jobs()
    assert [j.name for j in jobs][0] == "nightly"  # newest first
    auto, nightly = jobs[1], jobs[0]
    assert auto.name.startswith("square-") and auto.functions == ("square",)
    assert (auto.total, auto.queued, auto.state) == (2, 2, "queued")
    assert nightly.functions == ("echo", "tests.jobs:boom") and nightly.total == 3
    assert nightly.ranges == ((3, 3),)  # consecutive submissions: one run of ids
    assert nightly.submitted == clock.now and nightly.started is None
    assert broker.get_task(4).job == nightly.id and broker.get_task(1).job == auto.id
    assert broker.job("nightly") == broker.job(nightly.id)
    assert broker.job(str(nightly.id)).id == nightly.id  # an id typed as text
    assert broker.job("no such job") is None
    assert broker.open_job("nightly").id == nightly.id
    fresh = broker.open_job("later", "square")
    assert (fresh.total, fresh.state) == (0, "done") and broker.job("later") is not None
    with pytest.raises(ValueError):
        broker.submit("square", [(1,)], job=9999)  # an id must exist
    with pytest.raises(ValueError):
        broker.submit("square", [(1,)], job="#7")  # a name that would read as an id


def test_job_counts_follow_every_state_change(make: Callable, clock: FakeClock) -> None:
    broker = make(max_attempts=1)
    broker.submit("square", [(i,) for i in range(8)], job="j")  # 1..8
    broker.submit("square", [(9,)], job="other")
    w = register(broker)
    clock.advance(1.0)
    broker.claim(w, 5)  # 1..5 leased: the first running, the others claimed
    assert job_counts(broker.job("j")) == (3, 5, 0, 0, 0, 0)
    c = counts(broker)
    assert (broker.job("j").claimed, broker.job("j").running) == (c["claimed"], c["running"])
    assert broker.job("j").started == clock.now and broker.job("j").state == "running"
    clock.advance(1.0)
    broker.complete(w, [(1, True, 0), (2, False, "boom")])
    assert broker.release(w, [3]) == 1  # back to the queue
    assert broker.cancel([6]) == 1
    assert job_counts(broker.job("j")) == (3, 2, 1, 1, 0, 1)
    clock.advance(LEASE + 1)
    broker.reap()  # 4 and 5 die: one attempt allowed
    assert job_counts(broker.job("j")) == (3, 0, 1, 1, 2, 1)
    assert broker.retry_job("j") == 3
    assert job_counts(broker.job("j")) == (6, 0, 1, 0, 0, 1)
    assert broker.cancel_job("j") == 6
    j = broker.job("j")
    assert job_counts(j) == (0, 0, 1, 0, 0, 7)
    assert (j.state, j.ok, j.finished, j.eta_s) == ("cancelled", False, clock.now, 0.0)
    assert job_counts(broker.job("other")) == (1, 0, 0, 0, 0, 0)  # untouched
    assert broker.cancel_job("j") == 0 and broker.cancel_job("nobody") == 0
    assert broker.purge() == 1
    assert broker.job("other").cancelled == 1
    assert sum(j.total for j in broker.jobs()) == broker.snapshot().submitted


def test_job_rate_and_eta(broker: Any, clock: FakeClock) -> None:
    broker.submit("square", [(i,) for i in range(10)], job="r")
    w = register(broker)
    broker.claim(w, 10)
    started = clock.now
    clock.advance(2.0)
    broker.complete(w, [(i, True, i) for i in range(1, 5)])  # 4 in 2 s
    j = broker.job("r")
    assert j.time == clock.now
    assert j.rate == pytest.approx(2.0) and j.eta_s == pytest.approx(3.0)
    broker.complete(w, [(i, True, i) for i in range(5, 11)])
    j = broker.job("r")
    assert (j.state, j.ok, j.remaining, j.started) == ("done", True, 0, started)
    assert j.to_dict()["eta_s"] == 0.0 and j.to_dict()["done"] == 10


def test_finished_jobs_beyond_the_limit_are_forgotten(make: Callable) -> None:
    broker = make(keep_jobs=2)
    broker.submit("square", [(1,)], job="old")  # stays queued: never forgotten
    w = register(broker)
    for name in ("a", "b", "c"):
        first, _ = broker.submit("square", [(2,)], job=name)
        groups = broker.claim(w, 5)
        broker.complete(w, [(tid, True, 4) for tid in ids_of(groups) if tid == first])
    names = [j.name for j in broker.jobs()]
    assert "old" in names and "c" in names and len(names) <= 3
    assert broker.job("a") is None


def test_all_states_lists_newest_activity_first(broker: Any, clock: FakeClock) -> None:
    """A failure is listed above the older successes, not after every done task."""
    broker.submit("square", [(i,) for i in range(6)])  # ids 1..6
    w = register(broker)
    broker.claim(w, 5)
    broker.complete(w, [(1, True, 0), (2, True, 1)])
    clock.advance(1)
    broker.complete(w, [(3, False, "boom")])
    clock.advance(1)
    broker.complete(w, [(4, True, 9)])
    page = broker.list_tasks()
    assert [(t.id, t.state.value) for t in page.tasks] == [
        (5, "claimed"), (4, "done"), (3, "failed"), (2, "done"), (1, "done"), (6, "queued")]
    # Paging through the merged finished part gives the same rows.
    rows = [t.id for off in range(0, 6, 2) for t in broker.list_tasks(offset=off,
                                                                      limit=2).tasks]
    assert rows == [5, 4, 3, 2, 1, 6]
    assert [t.id for t in broker.list_tasks(search="square").tasks] == rows


def test_list_tasks_sorts_by_what_the_backend_offers(broker: Any, clock: FakeClock) -> None:
    broker.submit("square", [(i,) for i in range(4)])  # ids 1..4
    broker.submit("echo", [(1,)])  # id 5
    w = register(broker)
    broker.claim(w, 4)
    broker.complete(w, [(1, True, 0), (2, False, "x")])
    orders = broker.task_orders()
    assert "state" in orders
    by_state = [t.state.value for t in broker.list_tasks(order="state").tasks]
    # 3 and 4 are claimed, not started: the worker (concurrency 1) ran only 1 and 2.
    assert by_state == ["queued", "claimed", "claimed", "done", "failed"]
    by_state = [t.state.value for t in broker.list_tasks(order="-state").tasks]
    assert by_state == ["failed", "done", "claimed", "claimed", "queued"]
    for key in ("id", "function", "runtime", "attempts", "submitted"):
        if key not in orders:
            with pytest.raises(ValueError):
                broker.list_tasks(order=key)
    with pytest.raises(ValueError):
        broker.list_tasks(order="colour")


# ---------------------------------------------------------------------- classic facade


def test_classic_round_trip(broker: Any) -> None:
    """A bare payload put by a tutorial master is run by a tutorial worker (and read back)."""
    broker.submit(broker.default_task, [(7,)], classic=True)
    assert broker.classic_get("1@host", block=False) == 7
    broker.classic_put_result("1@host", "7 * 7 = 49")
    assert broker.classic_results.get(True, 1.0) == "7 * 7 = 49"
    t = broker.get_task(1)
    assert (t.state, t.result) == (TaskState.DONE, "7 * 7 = 49")
    with pytest.raises(queue.Empty):
        broker.classic_get("1@host", block=True, timeout=0.1)
    with pytest.raises(queue.Empty):
        broker.classic_results.get(False)


def test_tutorial_worker_result_for_a_batched_task_stays_in_the_ledger(broker: Any) -> None:
    broker.submit("square", [(3,)])  # submitted through the batched API, not the classic queue
    assert broker.classic_get("2@host", block=False) == 3
    broker.classic_put_result("2@host", "3 * 3 = 9")
    assert broker.get_task(1).result == "3 * 3 = 9"
    assert broker.classic_results.qsize() == 0


def test_classic_task_run_by_guidist_worker_answers_in_tutorial_format(broker: Any) -> None:
    broker.submit("square", [(6,), (5,)], classic=True)
    w = register(broker)
    broker.claim(w, 2)
    broker.complete(w, [(1, True, 36), (2, False, "Traceback\nValueError: no")])
    assert broker.classic_results.get(True, 1.0) == "6 * 6 = 36"
    assert broker.classic_results.get(True, 1.0) == "task 2 failed: ValueError: no"
    assert broker.classic_results.qsize() == 0


def test_classic_worker_disconnect_requeues(broker: Any) -> None:
    broker.submit("square", [(1,), (2,)])
    assert broker.classic_get("5@peer", block=False) == 1
    assert {w.kind for w in broker.workers()} == {"classic"}
    broker.connection_closed("5@peer")
    assert broker.workers() == ()
    assert broker.get_task(1).state is TaskState.QUEUED
    broker.classic_put_result("6@other", "stray")  # no lease: passed through as-is
    assert broker.classic_results.get(False) == "stray"


def test_workers_are_listed_with_the_address_they_connect_from(broker: Any) -> None:
    """Host names are often alike across machines (containers, images); addresses are not."""
    broker.register_worker("w", "node", 1, "inline", 1, "guidist", None, "10.0.0.7")
    broker.register_worker("old", "node", 2)  # a worker that does not say
    broker.submit("square", [(1,)])
    broker.classic_get("5@10.0.0.9", block=False)
    got = {w.name: w for w in broker.workers()}
    assert got["w"].address == "10.0.0.7" and got["w"].host_label == "node (10.0.0.7)"
    assert got["old"].address == "" and got["old"].host_label == "node"
    assert got["classic"].address == "10.0.0.9" and got["classic"].host_label == "10.0.0.9"


# ---------------------------------------------------------------------- Redis only


# These tests take only the Redis parameter of the backend fixture (not a skipped memory copy).
redis_only = pytest.mark.parametrize("backend", [pytest.param("redis", marks=needs_redis)],
                                     indirect=True)


@pytest.fixture
def rbroker(backend: str, make: Callable) -> Any:
    assert backend == "redis"
    return make()


@redis_only
def test_redis_claim_replayed_after_a_lost_reply(rbroker: Any) -> None:
    """A call retried with its token gets the same lease back: none is orphaned."""
    rbroker.submit("square", [(i,) for i in range(6)])
    w = register(rbroker)
    rbroker._retry_tokens[w] = "lost-reply"
    first = rbroker.claim(w, 3)
    rbroker._retry_tokens[w] = "lost-reply"  # as if that reply never arrived
    assert rbroker.claim(w, 3) == first
    assert ids_of(rbroker.claim(w, 10)) == [4, 5, 6]  # a fresh token claims anew
    assert rbroker.snapshot().leased == 6


@redis_only
def test_redis_submit_replayed_after_a_lost_reply(rbroker: Any) -> None:
    import pickle

    args = ["tok-1", "a-job", "square", b"", "0", 2, "", pickle.dumps((1,)), pickle.dumps((2,))]
    assert rbroker._eval("submit", args) == rbroker._eval("submit", args) == 1
    assert rbroker.queued_count() == 2


@redis_only
def test_redis_claims_reap_when_no_server_runs(rbroker: Any, clock: FakeClock) -> None:
    rbroker.submit("square", [(1,), (2,)])
    dead = register(rbroker, "dead")
    rbroker.claim(dead, 2)
    clock.advance(LEASE + 1)
    alive = register(rbroker, "alive")
    rbroker._redis.delete(rbroker._key("reaplock"))
    # No reap() call: the claim did it (and hands the requeued tasks out one at a time).
    assert ids_of(rbroker.claim(alive, 5)) == [1]
    assert ids_of(rbroker.claim(alive, 5)) == [2]


@redis_only
def test_redis_settings_are_shared_by_the_deployment(rbroker: Any) -> None:
    from guidist.core.backends.redis.broker import RedisBroker

    other = RedisBroker(rbroker._url, namespace=rbroker._prefix[:-1])
    try:
        assert other.lease_timeout == LEASE and other.max_attempts == 3
        assert other.register_worker("x", "h", 1)["lease_timeout"] == LEASE
    finally:
        other.close()


def test_redact_url_drops_credentials() -> None:
    from guidist.core.urls import redact_url, resolve_url

    assert redact_url("redis://user:s3cret@db.example:6380/2") == "redis://db.example:6380/2"
    assert redact_url("redis://:s3cret@[::1]:6379/0") == "redis://[::1]:6379/0"
    with pytest.raises(ValueError) as exc:
        resolve_url("http://:s3cret@host/0")
    assert "s3cret" not in str(exc.value)


def test_a_worker_with_a_function_list_claims_only_those(broker: Any) -> None:
    broker.submit("primes", [(10,), (20,)])  # ids 1, 2
    broker.submit("io_wait", [(0.1,)])  # id 3
    broker.submit("square", [(4,)])  # id 4
    cpu = broker.register_worker("cpu", "h", 1, "process", 2, "guidist", ["primes"])["id"]
    io = broker.register_worker("io", "h", 2, "thread", 8, "guidist", ["io_wait", "square"])["id"]
    assert ids_of(broker.claim(io, 10)) == [3, 4]
    assert ids_of(broker.claim(io, 10)) == []  # the primes are not for it
    assert ids_of(broker.claim(cpu, 10)) == [1, 2]
    info = {w.id: w.functions for w in broker.workers()}
    assert info == {cpu: ("primes",), io: ("io_wait", "square")}


def test_list_tasks_of_one_job(broker: Any) -> None:
    broker.submit("square", [(i,) for i in range(4)], job="a")  # 1..4
    broker.submit("square", [(i,) for i in range(3)], job="b")  # 5..7
    broker.submit("square", [(9,)], job="a")  # 8
    w = register(broker)
    broker.claim(w, 2)
    broker.complete(w, [(1, True, 0)])
    page = broker.list_tasks(job="a")
    assert page.total == 5
    assert [t.id for t in page.tasks] == [2, 1, 3, 4, 8]  # leased, finished, queued
    assert [t.id for t in broker.list_tasks("queued", job="a", offset=1, limit=1).tasks] == [4]
    assert broker.list_tasks(job="b").total == 3
    assert [t.id for t in broker.list_tasks(job="a", search="(9,)").tasks] == [8]
    assert broker.list_tasks(job="nobody").total == 0


# ---------------------------------------------------------------------- results for callers


def test_wait_results_returns_what_finished_in_the_jobs_asked_for(broker: Any) -> None:
    cursor = broker.result_cursor()
    broker.submit("square", [(1,), (2,), (3,)], job="mine")  # 1..3
    broker.submit("square", [(4,)], job="theirs")  # 4
    mine = broker.job("mine").id
    w = register(broker)
    broker.claim(w, 4)
    broker.complete(w, [(4, True, 16), (2, True, 4), (1, False, "tb\nValueError: x", None,
                                                       None, b"pickled")])
    cursor, got, gap = broker.wait_results(cursor, [mine], 5.0)
    assert not gap
    assert got == [(2, "done", 4, None, None), (1, "failed", None, "tb\nValueError: x",
                                                b"pickled")]
    assert broker.get_task(1).exception == b"pickled"
    # nothing new: waits its timeout (a duration, whatever the fake clock says)
    start = time.monotonic()
    assert broker.wait_results(cursor, [mine], 0.3) == (cursor, [], False)
    assert time.monotonic() - start >= 0.25
    assert [t.id if t else None for t in broker.get_tasks([3, 99, 2])] == [3, None, 2]


def test_wait_results_blocks_until_a_result_arrives(broker: Any) -> None:
    broker.submit("square", [(5,)], job="j")
    jid = broker.job("j").id
    w = register(broker)
    broker.claim(w, 1)
    cursor = broker.result_cursor()
    got: list = []
    t = threading.Thread(target=lambda: got.append(broker.wait_results(cursor, [jid], 10.0)))
    start = time.monotonic()
    t.start()
    wait_for(lambda: t.is_alive(), message="the waiter to start")
    time.sleep(0.1)  # it must be blocked, not returning at once
    assert t.is_alive()
    broker.complete(w, [(1, True, 25)])
    t.join(5)
    assert not t.is_alive() and got[0][1] == [(1, "done", 25, None, None)]
    assert time.monotonic() - start < 5


def test_poke_ends_a_wait_early(broker: Any) -> None:
    cursor = broker.result_cursor()
    got: list = []
    t = threading.Thread(target=lambda: got.append(broker.wait_results(cursor, [], 10.0, "tk")))
    t.start()
    time.sleep(0.2)
    broker.poke("tk")
    t.join(5)
    assert not t.is_alive() and got == [(cursor, [], False)]


def test_wait_results_says_when_results_were_missed(make: Callable) -> None:
    broker = make(keep_done=5)
    cursor = broker.result_cursor()
    broker.submit("square", [(i,) for i in range(2000)], job="big")
    jid = broker.job("big").id
    w = register(broker)
    broker.claim(w, 2000)
    broker.complete(w, [(i, True, i) for i in range(1, 2001)])
    _, got, gap = broker.wait_results(cursor, [jid], 1.0)
    assert gap  # the first ones left memory before this caller looked: it must ask by id
    assert broker.wait_results(10**9, [jid], 0.1)[2]  # a cursor of another server's life


def test_cancelled_in_bulk_is_seen_by_waiters(broker: Any) -> None:
    cursor = broker.result_cursor()
    broker.submit("square", [(i,) for i in range(3)], job="gone")
    jid = broker.job("gone").id
    assert broker.purge() == 3
    cursor2, got, gap = broker.wait_results(cursor, [jid], 1.0)
    assert gap or [g[1] for g in got] == ["cancelled"] * 3
    assert [t.state for t in broker.get_tasks([1, 2, 3])] == [TaskState.CANCELLED] * 3
    broker.submit("square", [(i,) for i in range(2)], job="also")
    assert broker.cancel_job("also") == 2
    assert [t.state for t in broker.get_tasks([4, 5])] == [TaskState.CANCELLED] * 2


def test_functions_sent_by_value_are_kept_as_bytes(broker: Any) -> None:
    assert broker.get_function("__main__:f#abc") is None
    broker.define_function("__main__:f#abc", b"\x80\x05bytes")
    broker.define_function("__main__:f#abc", b"other")  # the first definition stays
    assert broker.get_function("__main__:f#abc") == b"\x80\x05bytes"
    with pytest.raises(ValueError):
        broker.define_function("no-marker", b"x")


def test_the_snapshot_carries_the_newest_jobs(broker: Any) -> None:
    broker.submit("square", [(1,), (2,)], job="first")
    broker.submit("echo", [(3,)], job="second")
    jobs = broker.snapshot().jobs
    assert [j.name for j in jobs] == ["second", "first"]  # newest first
    assert (jobs[1].total, jobs[1].queued, jobs[1].ranges) == (2, 2, ())  # no id ranges


def test_a_submit_in_pieces_queues_every_task_with_its_arguments(broker: Any) -> None:
    """A client sends its arguments as pieces; either backend queues them in order (the
    memory broker keeps the bytes, Redis decodes them) and workers get each task's own."""
    from guidist.core.payload import MAX_PAYLOAD, PackedArgs, pack_pieces, submission_args

    sent = {"square": list(range(50)), "operator:add": [(i, -i) for i in range(40)]}
    ids: dict[int, tuple] = {}
    for fn, items in sent.items():
        done = 0
        for _n, call in pack_pieces(submission_args(items), MAX_PAYLOAD, str, per_piece=16):
            first, n = broker.submit(fn, call)
            for k, a in enumerate(items[done:done + n]):
                ids[first + k] = (fn, a if type(a) is tuple else (a,))
            done += n
    assert broker.snapshot().count("queued") == 90
    w = register(broker)
    got: dict[int, tuple] = {}
    while len(got) < 90:
        groups = broker.claim(w, 100)
        assert groups
        for fn, _kw, tids, args, *_ in groups:
            if type(args) is PackedArgs:
                args = args.args()
            got.update((t, (fn, a)) for t, a in zip(tids, args))
    assert got == ids
