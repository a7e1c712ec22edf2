"""Run-time histograms: constant memory, quantiles close to the truth, mergeable."""

from __future__ import annotations

import random

from guidist.core import histogram as h


def test_buckets_are_log_spaced_and_bounded() -> None:
    assert len(h.BOUNDS) == h.N_BUCKETS
    assert h.bucket_of(0.0) == 0 and h.bucket_of(1e-9) == 0
    assert h.bucket_of(1e6) == h.N_BUCKETS  # longer than the last bound: the overflow bucket
    ratios = {round(b / a, 6) for a, b in zip(h.BOUNDS, h.BOUNDS[1:])}
    assert ratios == {round(10 ** 0.1, 6)}


def test_quantiles_are_within_a_bucket_of_the_truth() -> None:
    rng = random.Random(7)
    samples = [rng.lognormvariate(-2.3, 0.8) for _ in range(20_000)]  # median about 0.1 s
    counts = h.empty_counts()
    h.add_many(counts, samples)
    assert sum(counts) == len(samples)
    samples.sort()
    for q in (0.5, 0.95):
        true = samples[int(q * len(samples))]
        got = h.quantile(counts, q, observed_max=samples[-1])
        assert got is not None and abs(got - true) / true < 0.13, (q, got, true)
    assert h.quantile(counts, 1.0, observed_max=samples[-1]) <= samples[-1]


def test_identical_runs_give_that_run_time() -> None:
    counts = h.empty_counts()
    h.add_many(counts, [0.1003] * 40)
    p50 = h.quantile(counts, 0.5, observed_max=0.1003)
    assert p50 is not None and 0.1 <= p50 <= 0.1003


def test_merge_and_empty() -> None:
    a, b = h.empty_counts(), h.empty_counts()
    h.add_many(a, [0.001, 0.002])
    h.add_many(b, [0.003])
    h.merge_counts(a, b)
    assert sum(a) == 3
    assert h.quantile(h.empty_counts(), 0.5) is None


def test_cumulative_buckets_for_prometheus() -> None:
    counts = h.empty_counts()
    h.add_many(counts, [1e-5, 1e-3, 1.0, 1e5])
    cum = h.cumulative(counts)
    assert [n for _b, n in cum] == sorted(n for _b, n in cum)  # cumulative, never decreasing
    assert cum[-1][1] == 3  # the overflow run is only in +Inf
