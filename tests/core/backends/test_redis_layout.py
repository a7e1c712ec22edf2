"""The Redis backend's batch layout: what it keeps per task, what it frees, what it refuses.

Semantics are the contract suite's; these check the storage underneath against a real
redis-server: a task's fields go when it leaves its finished set, a batch goes with its last
task, and a namespace written by an older guidist is refused with one sentence.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from guidist.core.errors import GuidistError
from guidist.core.protocol import TaskState
from tests.redis_fixtures import RedisServer, needs_redis

pytestmark = needs_redis


@pytest.fixture
def made(shared_redis: RedisServer | None) -> Iterator[Any]:
    """made(**options) -> (broker, raw redis client) in a fresh namespace."""
    import redis

    from guidist.core.backends.redis.broker import RedisBroker

    assert shared_redis is not None
    brokers: list[Any] = []
    raw = redis.Redis.from_url(shared_redis.url)

    def factory(**options: Any) -> tuple[Any, Any]:
        b = RedisBroker(shared_redis.url, namespace=f"layout-{uuid.uuid4().hex[:12]}", **options)
        brokers.append(b)
        return b, raw

    yield factory
    for b in brokers:
        b.close()
    raw.close()


def run_all(broker: Any, worker: str, fail: set[int] = frozenset()) -> None:
    """Claim and complete everything queued, 7 at a time (failing the ids in fail)."""
    results = None
    while True:
        _cmd, groups = broker.exchange(worker, results, 7)
        if not groups:
            return
        results = [(tid, tid not in fail, a[0] * a[0] if tid not in fail else "boom", 1.0, 0.1)
                   for _f, _kw, ids, args, *_ in groups for tid, a in zip(ids, args)]


def test_trimmed_tasks_leave_nothing_behind(made: Any) -> None:
    broker, raw = made(keep_done=10, keep_failed=1000)
    p = broker._prefix
    first, _ = broker.submit("square", [(i,) for i in range(25)])
    second, _ = broker.submit("square", [(i,) for i in range(25, 40)])
    w = broker.register_worker("w", "h", 1)["id"]
    run_all(broker, w, fail={first + 3})
    broker.exchange(w, None, 1)  # nothing left: the last results were sent by run_all
    assert broker.snapshot().count("done") == 39
    # the first batch is kept for its one failure alone: with under 1/8 of it left, that
    # task's arguments moved into a field of its own and the packed strings went
    fields = {f.decode() for f in raw.hkeys(f"{p}b:{first}")}
    assert f"a{first + 3}" in fields and f"{first + 3}" in fields  # a record: the bare id
    assert sum(f.isdigit() for f in fields) == 1
    assert sum(f.startswith("a") for f in fields) == 1
    assert not raw.exists(f"{p}ba:{first}") and not raw.exists(f"{p}bo:{first}")
    # the second holds the 10 newest results (keep_done), its arguments still packed; their
    # records are in their calls' packed blobs, not one field each
    fields = {f.decode() for f in raw.hkeys(f"{p}b:{second}")}
    assert sum(f.isdigit() for f in fields) == 0
    assert int(raw.get(f"{p}dn")) == 10
    assert raw.exists(f"{p}ba:{second}") and raw.exists(f"{p}bo:{second}")
    assert broker.get_task(second + 14).args == (39,)
    assert broker.get_task(second + 4) is None
    t = broker.get_task(first + 3)
    assert t.state is TaskState.FAILED and t.error == "boom" and t.args == (3,)
    assert broker.get_task(first) is None  # dropped (past keep_done)
    # retried, the failure runs again and the first batch goes as its last task is dropped
    assert broker.retry([first + 3]) == 1
    run_all(broker, w)
    third, _ = broker.submit("square", [(i,) for i in range(10)])
    run_all(broker, w)
    # the third batch's 10 results are the newest: the two before are gone whole
    assert not any(raw.exists(f"{p}{k}:{b}") for k in ("b", "ba", "bo") for b in (first, second))
    assert raw.zrange(f"{p}bi", 0, -1) == [f"{third}:10".encode()]
    assert raw.hlen(f"{p}bt") == 0  # no start time outlives its task's run
    # the calls that held them went too: what is left are the third batch's two calls (7
    # results, then 3), each a blob and one P:ri member
    members = [m.decode().split(":") for m in raw.zrange(f"{p}ri", 0, -1)]
    assert [(int(m[0]), int(m[1])) for m in members] == [(third, 7), (third + 7, 3)]
    assert sorted(k.decode() for k in raw.scan_iter(f"{p}rd:*")) == sorted(
        f"{p}rd:{m[2]}" for m in members)


def test_a_namespace_in_the_old_layout_is_refused_in_one_sentence(made: Any) -> None:
    broker, raw = made()
    ns = f"old-{uuid.uuid4().hex[:12]}"
    raw.set(f"{ns}:seq:task", 12)  # what a deployment before the batch layout leaves
    raw.hset(f"{ns}:t:12", mapping={"f": "square", "st": "queued"})
    try:
        _assert_refused(broker._url, ns)
        assert not raw.exists(f"{ns}:layout")  # nothing was written into it
    finally:
        raw.delete(f"{ns}:seq:task", f"{ns}:t:12")


def _assert_refused(url: str, ns: str) -> None:
    """Opening namespace ns is refused in one line that names the keys to clear."""
    from guidist.core.backends.redis.broker import RedisBroker

    with pytest.raises(GuidistError) as err:
        RedisBroker(url, namespace=ns)
    text = str(err.value)
    assert "\n" not in text and "older layout" in text and f"'{ns}:*'" in text


def test_a_claim_reads_attempts_only_in_batches_that_had_a_requeue(made: Any) -> None:
    broker, raw = made()
    p = broker._prefix
    first, _ = broker.submit("square", [(i,) for i in range(4)])
    w = broker.register_worker("w", "h", 1)["id"]
    _cmd, groups = broker.exchange(w, None, 2)
    assert raw.hget(f"{p}b:{first}", "nx") is None
    assert broker.release(w) == 2
    # released: no attempt counted, nothing written per task
    assert [broker.get_task(first + i).attempts for i in range(4)] == [0, 0, 0, 0]
    assert raw.hget(f"{p}b:{first}", "nx") is None
    broker.unregister_worker(w)
    w2 = broker.register_worker("w2", "h", 1)["id"]
    broker.exchange(w2, None, 4)
    assert [broker.get_task(first + i).attempts for i in range(4)] == [1, 1, 1, 1]
    assert broker._eval("expire_worker", [w2, "test"]) == 4  # every lease counts an attempt
    assert raw.hget(f"{p}b:{first}", "nx") == b"1"
    w3 = broker.register_worker("w3", "h", 1)["id"]
    _cmd, groups = broker.exchange(w3, None, 4)
    # a task whose worker died holding it is handed out alone
    assert [ids for _f, _k, ids, *_ in groups] == [[first]]
    assert broker.get_task(first).attempts == 2


def test_packed_arguments_survive_holes_budgets_and_requeues(made: Any) -> None:
    broker, raw = made(max_payload=6000)
    p = broker._prefix
    sizes = [10, 2900, 5, 2500, 700, 30, 2900, 8, 8, 8]
    first, _ = broker.submit("echo", [("x" * s,) for s in sizes[:4]])
    second, _ = broker.submit("echo", [("x" * s,) for s in sizes[4:]])
    assert second == first + 4
    assert raw.hget(f"{p}b:{first}", "A") == raw.hget(f"{p}b:{second}", "A") == b"1"
    assert broker.cancel([first + 2, first + 5]) == 2  # holes in the middle of the batches
    w = broker.register_worker("w", "h", 1)["id"]
    seen: dict[int, int] = {}
    for _ in range(10):
        _cmd, groups = broker.exchange(w, None, 100)
        if not groups:
            break
        got = [(tid, len(a[0])) for _f, _k, ids, args, *_ in groups for tid, a in zip(ids, args)]
        # a claim carries about max_payload of arguments, at least one task
        assert len(got) == 1 or sum(size for _, size in got) <= 6000
        seen.update(got)
        if len(seen) == 4:  # give some back: they come again, same arguments
            assert broker.release(w, [tid for tid, _ in got]) == len(got)
            for tid, _ in got:
                del seen[tid]
    assert seen == {first + i: s for i, s in enumerate(sizes) if i not in (2, 5)}
    assert broker.get_task(first + 6).args == ("x" * 2900,)
    assert broker.get_task(first + 5).state is TaskState.CANCELLED


def test_a_claim_with_gaps_is_remembered_as_runs_and_replayed_whole(made: Any) -> None:
    broker, raw = made()
    first, _ = broker.submit("square", [(i,) for i in range(10)])
    assert broker.cancel([first + 3, first + 7]) == 2
    w = broker.register_worker("w", "h", 1)["id"]
    broker._retry_tokens[w] = "lost-reply"
    claimed = broker.claim(w, 10)
    f = first
    assert raw.get(f"{broker._prefix}lc:{w}") == (
        f"lost-reply:{f}-{f + 2},{f + 4}-{f + 6},{f + 8}-{f + 9}".encode())
    broker._retry_tokens[w] = "lost-reply"  # as if that reply never arrived
    again = broker.claim(w, 10)
    assert again == claimed
    assert [i for g in again for i in g[2]] == [f + k for k in (0, 1, 2, 4, 5, 6, 8, 9)]
    assert broker.snapshot().leased == 8


def test_done_is_a_capped_list_and_every_listing_path_reads_it_alike(made: Any,
                                                                      monkeypatch: Any) -> None:
    from guidist.core.backends.redis import broker as redis_broker

    broker, raw = made(keep_done=10)
    p = broker._prefix
    first, _ = broker.submit("square", [(i,) for i in range(30)])
    w = broker.register_worker("w", "h", 1)["id"]
    fail = {first + 5, first + 27}
    run_all(broker, w, fail=fail)
    broker.exchange(w, None, 1)
    # calls with a failure store each result alone ("<seq>:<id>"), calls of ok results one
    # entry "<fs>:<n>:<skip>|<runs>" each; the oldest kept call skips the results trimmed
    assert raw.type(f"{p}fin:done") == b"list" and int(raw.get(f"{p}dn")) == 10
    entries = [e.decode() for e in raw.lrange(f"{p}fin:done", 0, -1)]
    singles = [e for e in entries if "|" not in e]
    packed = [e for e in entries if "|" in e]
    # results of the calls of 7: 0-6, 7-13 (5 failed: alone), 14-20, 21-27 (27 alone), 28-29
    assert [int(e.split(":")[1]) for e in singles] == [first + k for k in range(21, 27)]
    assert len(packed) == 2 and packed[0].split("|")[0].endswith(":7:5")  # 14-20, 5 trimmed
    assert packed[1].split("|")[1].startswith(f"{first + 28}:2:")
    seqs = [int(e.split(":")[0]) for e in entries]
    assert seqs == sorted(seqs)
    assert broker.get_task(first + 29).state is TaskState.DONE
    assert broker.get_task(first + 18) is None  # past keep_done: unknown, not done
    assert broker.get_task(first + 27).state is TaskState.FAILED
    top = [t.id for t in broker.list_tasks(limit=50).tasks]
    done_only = [t.id for t in broker.list_tasks(state="done", limit=50).tasks]
    assert done_only == [first + k for k in range(29, 18, -1) if k != 27]
    assert top == [first + 29, first + 28, first + 27, *done_only[2:], first + 5]
    # deep pages read one union of the sets (done's list included): the same order
    monkeypatch.setattr(redis_broker, "_LAZY_MERGE_DEPTH", 0)
    assert [t.id for t in broker.list_tasks(limit=50).tasks] == top
    assert [t.id for t in broker.list_tasks(offset=3, limit=4).tasks] == top[3:7]
    cursor, tasks = broker.results_since(0)
    assert sorted(t.id for t in tasks) == sorted(top)
    later, tasks = broker.results_since(cursor)
    assert later == cursor and tasks == []


def test_a_namespace_in_layout_3_is_refused_and_left_as_it_was(made: Any) -> None:
    broker, raw = made()
    ns = f"old3-{uuid.uuid4().hex[:12]}"
    raw.set(f"{ns}:layout", "3")  # every done result a record field and a list entry
    raw.rpush(f"{ns}:fin:done", "3:7")
    try:
        _assert_refused(broker._url, ns)
        assert raw.get(f"{ns}:layout") == b"3" and raw.lrange(f"{ns}:fin:done", 0, -1) == [b"3:7"]
    finally:
        raw.delete(f"{ns}:layout", f"{ns}:fin:done")


def test_packed_results_keep_times_holder_order_and_the_classic_answer(made: Any) -> None:
    broker, raw = made()
    p = broker._prefix
    first, _ = broker.submit("square", [(i,) for i in range(6)])
    w1 = broker.register_worker("w1", "h", 1)["id"]
    w2 = broker.register_worker("w2", "h", 1)["id"]
    assert [i for g in broker.claim(w1, 3) for i in g[2]] == [first, first + 1, first + 2]
    assert [i for g in broker.claim(w2, 3) for i in g[2]] == [first + 3, first + 4, first + 5]
    cursor = broker.result_cursor()
    # one call of ok results: three its sender holds (stored packed) and one w2 holds (the
    # general path, in the same call); the first result wins, w2's later one is ignored
    sent = [(first + k, True, k * k, 100.0 + k, 0.5 + k) for k in range(4)]
    assert broker.complete(w1, sent) == 4
    assert broker.complete(w2, [(first + 3, True, -1, 1.0, 1.0)]) == 0
    assert raw.zcard(f"{p}ri") == 1 and len(list(raw.scan_iter(f"{p}rd:*"))) == 1
    tasks = broker.get_tasks([first + k for k in range(4)])
    assert [(t.state, t.result, t.started, t.runtime, t.worker) for t in tasks] == [
        (TaskState.DONE, k * k, 100.0 + k, 0.5 + k, w1) for k in range(4)]
    _cursor, got = broker.results_since(cursor)
    assert [t.id for t in got] == [first, first + 1, first + 2, first + 3]
    jid = tasks[0].job
    _new, rows, gap = broker.wait_results(cursor, [jid], 1.0)
    assert not gap and sorted((r[0], r[2]) for r in rows) == [(first + k, k * k) for k in range(4)]
    assert broker.snapshot().extra["ignored_late"] == 1
    # a classic task done by a direct worker still answers the tutorial's master in its words
    (cid, _) = broker.submit("square", [(7,)], classic=True)
    assert [i for g in broker.claim(w1, 1) for i in g[2]] == [cid]
    assert broker.complete(w1, [(cid, True, 49, 1.0, 0.1)]) == 1
    assert broker.classic_results.get(timeout=2) == "7 * 7 = 49"
    assert broker.get_task(cid).result == 49


def test_lanes_hold_segments_split_by_cancels_and_retries(made: Any, monkeypatch: Any) -> None:
    from guidist.core.backends.redis import broker as redis_broker

    broker, raw = made()
    p = broker._prefix
    lane = f"{p}q:square"
    first, _ = broker.submit("square", [(i,) for i in range(10)])
    f = first
    assert raw.zrange(lane, 0, -1, withscores=True) == [(f"{f}:{f + 9}".encode(), f)]
    assert broker.cancel([f + 3, f + 7]) == 2  # splits the segment around each
    assert raw.zrange(lane, 0, -1) == [f"{f}:{f + 2}".encode(), f"{f + 4}:{f + 6}".encode(),
                                       f"{f + 8}:{f + 9}".encode()]
    assert int(raw.hget(f"{p}qn", "square")) == broker.queued_count() == 8
    assert [t.id for t in broker.list_tasks("queued", offset=2, limit=4).tasks] == [
        f + 2, f + 4, f + 5, f + 6]
    w = broker.register_worker("w", "h", 1)["id"]
    # a claim takes the head: two whole segments and part of the third
    assert [i for g in broker.claim(w, 5) for i in g[2]] == [f, f + 1, f + 2, f + 4, f + 5]
    assert raw.zrange(lane, 0, -1) == [f"{f + 6}:{f + 6}".encode(), f"{f + 8}:{f + 9}".encode()]
    broker.complete(w, [(f, False, "boom")])
    assert broker.retry([f]) == 1  # behind everything submitted so far: score last id + 0.5
    assert raw.zscore(lane, f"{f}:{f}") == f + 9.5
    assert broker.get_task(f).state is TaskState.QUEUED
    later, _ = broker.submit("square", [(i,) for i in range(3)])
    assert [t.id for t in broker.list_tasks("queued", limit=10).tasks] == [
        f + 6, f + 8, f + 9, f, later, later + 1, later + 2]
    # a purge in chunks of 2 takes them all, in claim order, and leaves no lane behind
    monkeypatch.setattr(redis_broker, "_CHUNK", 2)
    assert broker.purge() == 7
    assert not raw.exists(lane) and raw.hlen(f"{p}qn") == 0 and broker.queued_count() == 0
    assert broker.get_task(later + 2).state is TaskState.CANCELLED


def test_leases_are_slices_cut_by_results_releases_and_expiry(made: Any) -> None:
    broker, raw = made(lease_timeout=30)
    p = broker._prefix
    first, _ = broker.submit("square", [(i,) for i in range(10)])
    f = first
    w = broker.register_worker("w", "h", 1)["id"]
    w2 = broker.register_worker("w2", "h", 1)["id"]
    assert [i for g in broker.claim(w, 6) for i in g[2]] == [f + k for k in range(6)]
    assert raw.zrange(f"{p}wl:{w}", 0, -1) == [f"{f}:{f + 5}".encode()]  # one slice
    assert raw.zrange(f"{p}ls", 0, -1) == [f"{f}:{f + 5}:{w}".encode()]
    # results for the middle of it cut the slice in two; a release trims one end
    assert broker.complete(w, [(f + 2, True, 4), (f + 3, True, 9)]) == 2
    assert raw.zrange(f"{p}wl:{w}", 0, -1) == [f"{f}:{f + 1}".encode(),
                                               f"{f + 4}:{f + 5}".encode()]
    assert broker.release(w, [f + 5]) == 1
    assert raw.zrange(f"{p}wl:{w}", 0, -1) == [f"{f}:{f + 1}".encode(),
                                               f"{f + 4}:{f + 4}".encode()]
    snap = broker.snapshot()
    assert (snap.count("claimed"), snap.count("running")) == (2, 1)  # the first one started
    assert [t.id for t in broker.list_tasks("claimed").tasks] == [f + 4, f + 1]
    assert broker.get_task(f + 4).worker == w and broker.get_task(f).state is TaskState.RUNNING
    # a result from another worker for w's lease is taken, and cuts w's slice
    assert broker.complete(w2, [(f + 1, True, 1)]) == 1
    assert broker.get_task(f + 1).worker == w2
    assert raw.zrange(f"{p}wl:{w}", 0, -1) == [f"{f}:{f}".encode(), f"{f + 4}:{f + 4}".encode()]
    # expiry requeues what is left and every lease key goes with it
    assert broker._eval("expire_worker", [w, "test"]) == 2
    assert not raw.exists(f"{p}wl:{w}") and not raw.exists(f"{p}wr:{w}")
    assert raw.zcard(f"{p}ls") == 0 and int(raw.get(f"{p}nl")) == 0
    assert raw.scard(f"{p}running") == 0
    assert broker.queued_count() == 7  # f and f + 4 requeued, f + 5 released, 4 never claimed
    assert [t.attempts for t in broker.get_tasks([f, f + 4, f + 5])] == [1, 1, 0]
    assert [i for g in broker.claim(w2, 10) for i in g[2]] == [f]  # it had a lease expire
    assert (broker.workers()[1].claimed, broker.workers()[1].running) == (0, 1)


def test_a_big_packed_call_answers_with_only_the_records_asked_for(made: Any) -> None:
    broker, raw = made()
    p = broker._prefix
    first, _ = broker.submit("echo", [(i,) for i in range(300)])
    w = broker.register_worker("a-worker name", "h", 1)["id"]
    ids = [i for g in broker.claim(w, 300) for i in g[2]]
    assert len(ids) == 300
    cursor = broker.result_cursor()
    big = [(tid, True, f"{tid}:" + "x" * 2000, 10.0 + k, 0.25) for k, tid in enumerate(ids)]
    assert broker.complete(w, big) == 300
    (key,) = list(raw.scan_iter(f"{p}rd:*"))
    assert raw.strlen(key) > 262144  # over the size a reply carries whole
    reply = broker._eval("tasks", [first + 7, first + 250])
    assert len(reply[2][1]) < 10_000 and reply[2][2] == [7, 250]  # two records, not 300
    t7, t250 = broker.get_tasks([first + 7, first + 250])
    assert (t7.result, t7.started, t7.runtime, t7.worker) == (
        f"{first + 7}:" + "x" * 2000, 17.0, 0.25, w)
    assert t250.result == f"{first + 250}:" + "x" * 2000 and t250.started == 260.0
    _new, rows, _gap = broker.wait_results(cursor, [t7.job], 1.0)
    assert [r[2] for r in rows] == [v for _, _, v, _, _ in big]
