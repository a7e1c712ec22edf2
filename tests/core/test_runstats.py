"""Run statistics: counted per batch on the worker, merged by the broker, constant size."""

from __future__ import annotations

import bisect
import random

import pytest

from guidist.core import histogram
from guidist.core.backends.memory.broker import Broker
from guidist.core.runstats import FunctionTable, RunStats
from guidist.core.spans import Span


def items(n: int, runtime: float, start: float = 1000.0, ok: bool = True) -> list[tuple]:
    return [(i, ok, None if ok else "Traceback\nValueError: x", start + i * runtime, runtime)
            for i in range(n)]


def test_a_batch_of_trivial_tasks_is_one_span_and_one_bucket() -> None:
    stats = RunStats()
    done, failed, seconds = stats.add_batch("square", items(10_000, 2e-6))
    assert (done, failed) == (10_000, 0) and abs(seconds - 0.02) < 1e-9
    report = stats.report()
    assert report is not None
    [(function, done, failed, buckets, total, top)] = report["functions"]
    assert (function, done, failed) == ("square", 10_000, 0)
    assert buckets == {histogram.bucket_of(2e-6): 10_000} and top == 2e-6
    [span] = [Span.from_tuple(s) for s in report["spans"]]
    assert span.count == 10_000 and span.failed == 0
    stats.reset()
    assert stats.report() is None


def test_slow_tasks_keep_a_bar_each_and_failures_are_red() -> None:
    stats = RunStats()
    stats.add_batch("sleep", items(3, 0.2))
    stats.add_batch("sleep", items(1, 0.01, start=2000.0, ok=False))
    report = stats.report()
    assert report is not None
    spans = [Span.from_tuple(s) for s in report["spans"]]
    assert [s.count for s in spans] == [1, 1, 1, 1]
    assert [s.failed for s in spans] == [0, 0, 0, 1]


def test_concurrent_results_go_to_lanes_that_do_not_overlap() -> None:
    stats = RunStats(slots=2)
    for item in [(1, True, 0, 0.0, 1.0), (2, True, 0, 0.0, 1.0), (3, True, 0, 1.0, 1.0)]:
        stats.add_one("io", item)
    report = stats.report()
    assert report is not None
    spans = sorted((Span.from_tuple(s) for s in report["spans"]), key=lambda s: s.start)
    assert {s.slot for s in spans} == {0, 1}
    for lane in (0, 1):
        mine = [s for s in spans if s.slot == lane]
        assert all(a.end <= b.start for a, b in zip(mine, mine[1:]))


def test_the_broker_merges_reports_into_constant_size_stats() -> None:
    table = FunctionTable()
    for _ in range(100):
        stats = RunStats()
        stats.add_batch("sleep", items(40, 0.1))
        table.merge(stats.report()["functions"])  # type: ignore[index]
    table.merge([("bad",), ("x", "not a number", 0, {}, 0.0, 0.0)])  # ignored, not raised
    [s] = table.stats()
    assert (s.function, s.done, s.failed, s.measured) == ("sleep", 4000, 0, 4000)
    assert len(s.counts) == histogram.N_BUCKETS + 1
    assert abs(s.runtime_p50 - 0.1) < 0.015 and s.runtime_max == 0.1  # type: ignore[operator]
    assert s.to_dict()["runtime_p95"] == s.runtime_p95


def test_memory_broker_snapshot_carries_functions_and_spans_after_a_cursor() -> None:
    b = Broker()
    wid = b.register_worker("w", "h", 1)["id"]
    assert b.claim(wid, 10) == []  # nothing queued: the report still rides on the exchange
    stats = RunStats()
    now = __import__("time").time()
    stats.add_batch("square", items(5, 1e-6, start=now))
    b.exchange(wid, [], 0, 0.0, None, None, stats.report())
    b.heartbeat(wid, None, (55.5, 30_000_000))
    snap = b.snapshot(spans_since=0)
    assert [f.function for f in snap.functions] == ["square"]
    assert len(snap.spans) == 1 and snap.spans[0][1] == wid
    assert (snap.workers[0].cpu_percent, snap.workers[0].rss_bytes) == (55.5, 30_000_000)
    assert b.snapshot(spans_since=snap.spans_cursor).spans == ()
    assert b.snapshot().spans == ()  # not asked for


def test_a_batch_is_bucketed_as_one_bisect_per_task_would_bucket_it() -> None:
    bounds = histogram.BOUNDS
    cases = [[3e-7] * 50,  # one bucket
             [0.0, bounds[0], bounds[5], bounds[5] * 1.01, 1e-4, 2.5, 1e9],  # edges, beyond
             [bounds[i] for i in range(0, len(bounds), 7)] * 2 + [5e-6, 5e-3],
             # a trivial batch: most in one bucket, outliers on and beyond its edges
             [2e-7 + 1e-10 * i for i in range(900)] + [bounds[0]] * 5 + [bounds[0] * 1.001]
             + [3e-6, 4e-5, 0.02, 2e3] * 20 + [bounds[1]] * 10,
             # spread over many buckets: the sorted count
             [bounds[i % len(bounds)] * (1.0 if i % 3 else 0.999) for i in range(300)]]
    for runtimes in cases:
        batch = [(i, True, None, 1.0 + i, rt) for i, rt in enumerate(runtimes)]
        batch.append((99, False, "boom", 2.0, 1e-3))
        stats = RunStats()
        assert stats.add_batch("f", batch) == (len(runtimes), 1,
                                               pytest.approx(sum(runtimes) + 1e-3))
        expected: dict[int, int] = {}
        for _, _, _, _, rt in batch:
            b = bisect.bisect_left(bounds, rt)
            expected[b] = expected.get(b, 0) + 1
        [(fn, done, failed, buckets, total, top)] = stats.report()["functions"]
        assert (fn, done, failed, buckets) == ("f", len(runtimes), 1, expected)
        assert top == max(rt for *_, rt in batch)


def test_bucket_counts_and_the_largest_match_one_bisect_per_task_whatever_the_spread() -> None:
    rng = random.Random(17)
    bounds = histogram.BOUNDS
    for _ in range(300):
        n = rng.choice([1, 5, 17, 40, 1000])
        centre = rng.choice([2e-7, 3e-6, 0.01, 5.0])
        runtimes = [centre * rng.uniform(0.9, 1.1) if rng.random() > rng.random() * 0.3
                    else rng.choice([rng.lognormvariate(-9, 4), *bounds])
                    for _ in range(n)]
        stats = RunStats()
        stats.add_columns("f", [1.0] * n, runtimes)
        expected: dict[int, int] = {}
        for rt in runtimes:
            b = bisect.bisect_left(bounds, rt)
            expected[b] = expected.get(b, 0) + 1
        [(_fn, done, _failed, buckets, total, top)] = stats.report()["functions"]
        assert (done, buckets, top) == (n, expected, max(runtimes))
