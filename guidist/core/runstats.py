"""Per-function run statistics: counted by each worker per batch, merged by the broker.

A worker counts its results into a ``RunStats`` once per batch (never a call per task on the
wire) and attaches ``report()`` to an exchange at most every REPORT_SECONDS: the functions'
done and failed counts, their run-time bucket counts and the task-stream spans. The broker
merges those into a ``FunctionTable`` (memory) or a Redis hash: constant memory per function,
whatever the number of tasks.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from itertools import repeat
from operator import itemgetter, mul, truth
from typing import Any

from . import histogram
from .protocol import FunctionStats
from .spans import MERGE_GAP, SpanRecorder

#: A worker attaches its statistics to an exchange at most this often (seconds).
REPORT_SECONDS = 0.5
#: A report: {"functions": [(function, done, failed, {bucket: n}, runtime sum, runtime max)],
#: "spans": [Span tuples]}; both keys optional.
Report = dict

_OK, _STARTED, _RUNTIME = itemgetter(1), itemgetter(3), itemgetter(4)


class RunStats:
    """A worker's statistics since its last report: per function, and its spans."""

    def __init__(self, slots: int = 1) -> None:
        self._fns: dict[str, list] = {}  # function -> [done, failed, {bucket: n}, sum, max]
        self._spans = SpanRecorder()
        self._lane_end = [0.0] * max(1, slots)  # concurrent modes: when each lane is free

    def add_batch(self, function: str, items: Sequence[tuple],
                  slot: int = 0) -> tuple[int, int, float]:
        """Count consecutive ResultItems of one function run back to back on one slot;
        returns (done, failed, seconds of run time) of these items."""
        if not items:
            return 0, 0, 0.0
        try:
            started, runtimes = list(map(_STARTED, items)), list(map(_RUNTIME, items))
        except IndexError:  # a result without times (a tutorial-style item)
            started = runtimes = [None]
        if None not in runtimes and None not in started:
            # Every item timed (a worker's usual batch): counted over columns.
            oks = None if all(map(_OK, items)) else list(map(truth, map(_OK, items)))
            return self.add_columns(function, started, runtimes, oks, slot)
        entry = self._entry(function)
        buckets = entry[2]
        failed = 0
        total = 0.0
        for item in items:
            ok = item[1]
            if not ok:
                failed += 1
            start = item[3] if len(item) > 4 else None
            rt = item[4] if len(item) > 4 else None
            if rt is None:
                continue
            b = bisect.bisect_left(histogram.BOUNDS, rt)
            buckets[b] = buckets.get(b, 0) + 1
            total += rt
            entry[4] = max(entry[4], rt)
            if start is not None:
                self._spans.record(slot, function, start, rt, bool(ok))
        entry[0] += len(items) - failed
        entry[1] += failed
        entry[3] += total
        return len(items) - failed, failed, total

    def add_columns(self, function: str, started: Sequence[float], runtimes: Sequence[float],
                    oks: Sequence[bool] | None = None, slot: int = 0) -> tuple[int, int, float]:
        """Count results of one function run back to back on one slot, given as columns of
        their start and run times (oks None: all succeeded); returns (done, failed, seconds
        of run time). No Python step per task: a sum and ``_count_buckets``."""
        n = len(runtimes)
        if not n:
            return 0, 0, 0.0
        entry = self._entry(function)
        failed = 0 if oks is None else n - sum(map(truth, oks))
        top = _count_buckets(entry[2], runtimes)
        total = sum(runtimes)
        entry[0] += n - failed
        entry[1] += failed
        entry[3] += total
        entry[4] = max(entry[4], top)
        if failed == 0 and total <= MERGE_GAP * n:
            # A run of short successes: one span, whatever its length (the fast path).
            self._spans.record(slot, function, started[0],
                               started[-1] + runtimes[-1] - started[0], True, n)
        else:
            for start, rt, ok in zip(started, runtimes, repeat(True) if oks is None else oks):
                self._spans.record(slot, function, start, rt, bool(ok))
        return n - failed, failed, total

    def add_runs(self, function: str, start: float, means: Sequence[float],
                 counts: Sequence[int], slot: int = 0) -> tuple[int, int, float] | None:
        """Count successes of one function timed in runs (``taskloop``): counts[i] tasks of
        means[i] seconds each, back to back from start (wall clock) on one slot; returns
        (done, 0, seconds of run time), or None when the runs are too slow to be one span
        (the caller counts their tasks one by one then). A bisect a run, not a task."""
        n = sum(counts)
        total = sum(map(mul, means, counts))
        if not n or total > MERGE_GAP * n:
            return None
        entry = self._entry(function)
        buckets = entry[2]
        bounds = histogram.BOUNDS
        for mean, k in zip(means, counts):
            b = bisect.bisect_left(bounds, mean)
            buckets[b] = buckets.get(b, 0) + k
        entry[0] += n
        entry[3] += total
        entry[4] = max(entry[4], max(means))
        self._spans.record(slot, function, start, total, True, n)
        return n, 0, total

    def add_one(self, function: str, item: tuple) -> tuple[int, int, float]:
        """Count one result of a concurrent mode, on the first lane free when it started."""
        started = item[3] if len(item) > 4 else None
        lane = 0
        if started is not None:
            ends = self._lane_end
            lane = next((i for i, e in enumerate(ends) if e <= started + 1e-3),
                        min(range(len(ends)), key=ends.__getitem__))
            ends[lane] = started + (item[4] or 0.0)
        return self.add_batch(function, (item,), lane)

    def _entry(self, function: str) -> list:
        entry = self._fns.get(function)
        if entry is None:
            entry = self._fns[function] = [0, 0, {}, 0.0, 0.0]
        return entry

    def report(self) -> Report | None:
        """What to send now (None when nothing happened); reset() once it was accepted."""
        spans = self._spans.peek()
        if not self._fns and not spans:
            return None
        return {"functions": [(f, e[0], e[1], dict(e[2]), e[3], e[4])
                              for f, e in self._fns.items()],
                "spans": spans}

    def reset(self) -> None:
        """Forget what report() returned (the broker has it)."""
        self._fns = {}
        self._spans.take()


class FunctionTable:
    """A broker's per-function totals: merged from workers' reports, constant memory each."""

    def __init__(self) -> None:
        self._fns: dict[str, list] = {}  # function -> [done, failed, counts, sum, max]

    def merge(self, functions: Iterable[Sequence[Any]]) -> None:
        """Add the "functions" part of a worker's report (malformed entries are skipped)."""
        for entry in functions:
            try:
                function, done, failed, buckets, total, top = entry
                function, done, failed = str(function), int(done), int(failed)
                total, top = float(total), float(top)
                pairs = [(int(b), int(n)) for b, n in dict(buckets).items()]
            except (TypeError, ValueError):
                continue
            mine = self._fns.get(function)
            if mine is None:
                mine = self._fns[function] = [0, 0, histogram.empty_counts(), 0.0, 0.0]
            mine[0] += done
            mine[1] += failed
            counts = mine[2]
            for b, n in pairs:
                if 0 <= b < len(counts):
                    counts[b] += n
            mine[3] += total
            mine[4] = max(mine[4], top)

    def stats(self) -> tuple[FunctionStats, ...]:
        """Frozen copies, by function name."""
        return tuple(FunctionStats(f, e[0], e[1], tuple(e[2]), e[3], e[4])
                     for f, e in sorted(self._fns.items()))


def _count_buckets(buckets: dict[int, int], runtimes: Sequence[float]) -> float:
    """Add run times to histogram bucket counts (bucket b holds BOUNDS[b-1] < t <= BOUNDS[b],
    as ``bisect_left`` finds it) and return the largest, with no Python step per task: the
    bucket of the run time in the middle takes every run time within its edges in one pass
    (a comprehension's float comparisons, the cheapest loop there is), and what falls
    outside (a trivial batch's few outliers) goes round again; run times spread over many
    buckets are sorted instead. The largest is among the outliers above, if there are any."""
    bounds = histogram.BOUNDS
    rest = runtimes
    top = -math.inf  # until known: the largest is still in rest
    while len(rest) > _FEW:
        b = bisect.bisect_left(bounds, rest[len(rest) // 2])
        low = bounds[b - 1] if b else -math.inf
        high = bounds[b] if b < len(bounds) else math.inf
        outside = [t for t in rest if t > high or t <= low]
        buckets[b] = buckets.get(b, 0) + len(rest) - len(outside)
        if top == -math.inf and (not outside or max(outside) <= high):
            top = max(rest)  # nothing above this bucket: the largest is in it
        if len(outside) > len(rest) // 2:  # spread out: one sort beats many passes
            ordered = sorted(outside)
            _count_sorted(buckets, ordered)
            return max(top, ordered[-1])
        rest = outside
    for t in rest:
        b = bisect.bisect_left(bounds, t)
        buckets[b] = buckets.get(b, 0) + 1
    return max(top, max(rest)) if rest else top


def _count_sorted(buckets: dict[int, int], ordered: list[float]) -> None:
    """_count_buckets for sorted run times: a bisect per bucket they span."""
    if not ordered:
        return
    bounds = histogram.BOUNDS
    lo = bisect.bisect_left(bounds, ordered[0])
    hi = bisect.bisect_left(bounds, ordered[-1])
    below = 0  # run times counted so far (all <= bounds[b - 1])
    for b in range(lo, hi):
        upto = bisect.bisect_right(ordered, bounds[b])
        if upto > below:
            buckets[b] = buckets.get(b, 0) + upto - below
            below = upto
    buckets[hi] = buckets.get(hi, 0) + len(ordered) - below


#: _count_buckets: this many run times or fewer are put in their buckets one by one.
_FEW = 16
