"""Fixed-bucket run-time histograms: constant memory per function, mergeable, quantiles.

Buckets are log-spaced, ten per decade from 1 µs to 10,000 s (100 buckets and one for
longer runs), so a p50 read from them is within about 12 % of the true value whatever the
task, and a million tasks cost the same memory as one. Workers add a whole batch of run times
at once (``add_many``); brokers merge the counts (``merge_counts``), never store samples.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

BUCKETS_PER_DECADE = 10
LOWEST = 1e-6  # seconds: the upper bound of the first bucket
N_BUCKETS = 100  # 1 µs .. 10,000 s; index N_BUCKETS holds anything longer
#: Upper bounds of buckets 0 .. N_BUCKETS-1, in seconds (the last bucket has no bound).
BOUNDS: tuple[float, ...] = tuple(LOWEST * 10 ** (i / BUCKETS_PER_DECADE)
                                  for i in range(N_BUCKETS))


def bucket_of(seconds: float) -> int:
    """The index of the bucket a run time falls into (upper bounds are inclusive)."""
    return bisect.bisect_left(BOUNDS, seconds)


def empty_counts() -> list[int]:
    """A fresh list of bucket counts."""
    return [0] * (N_BUCKETS + 1)


def add_many(counts: list[int], runtimes: Iterable[float]) -> None:
    """Count each run time into counts, in place."""
    for r in runtimes:
        counts[bisect.bisect_left(BOUNDS, r)] += 1


def merge_counts(into: list[int], other: Sequence[int]) -> None:
    """Add other's bucket counts to into, in place (a worker's batch into the broker's total)."""
    for i, n in enumerate(other):
        if n:
            into[i] += n


def quantile(counts: Sequence[int], q: float, observed_max: float | None = None) -> float | None:
    """The q-quantile (0..1) of the counted run times; None when nothing was counted.

    Within the bucket that holds it, the value is interpolated on the log scale, and it is
    never reported above the largest run time actually seen.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            lo = BOUNDS[i - 1] if i > 0 else LOWEST / 10 ** (1 / BUCKETS_PER_DECADE)
            hi = BOUNDS[i] if i < N_BUCKETS else (observed_max or BOUNDS[-1] * 10)
            frac = (rank - seen) / n
            value = math.exp(math.log(lo) + frac * (math.log(max(hi, lo)) - math.log(lo)))
            return min(value, observed_max) if observed_max is not None else value
        seen += n
    return observed_max


def cumulative(counts: Sequence[int], every: int = 5) -> list[tuple[float, int]]:
    """(upper bound, runs at or below it) for every ``every``-th bucket, as Prometheus wants."""
    out = []
    running = 0
    for i, n in enumerate(counts[:N_BUCKETS]):
        running += n
        if (i + 1) % every == 0:
            out.append((BOUNDS[i], running))
    return out


def run_time_text(seconds: float | None, missing: str = "-") -> str:
    """A run time for people: 850 µs, 12.3 ms, 1.25 s; ``missing`` when not measured."""
    if seconds is None:
        return missing
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"
