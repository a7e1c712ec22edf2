"""claims: claim sizes follow what is known of each function, not of the last one run."""

from __future__ import annotations

import math

from guidist.core.claims import MAX_FUNCTIONS, ClaimSizer


def test_an_unknown_function_is_claimed_one_task_at_a_time() -> None:
    sizer = ClaimSizer(0.1, prefetch=1000)
    assert sizer.limit("sleep") == 1
    assert sizer.limits() == {}  # the broker gives a function missing here one task
    assert sizer.estimate("sleep") is None
    assert sizer.seconds("sleep", 3) == math.inf


def test_a_tenth_of_a_second_of_each_function() -> None:
    sizer = ClaimSizer(0.1, prefetch=1000)
    sizer.record("square", 1000, 0.002)  # 2 µs a task: as many as the prefetch allows
    sizer.record("sleep", 2, 0.1)  # 50 ms a task
    sizer.record("primes", 1, 2.0)  # slower than a claim's worth: one at a time
    assert sizer.limits() == {"square": 1000, "sleep": 2, "primes": 1}
    # What the trivial function taught does not carry over to the slow one.
    assert sizer.limit("sleep") == 2


def test_the_latest_measurement_wins() -> None:
    sizer = ClaimSizer(0.1, prefetch=500)
    sizer.record("sleep", 100, 0.0001)
    assert sizer.limit("sleep") == 500
    sizer.record("sleep", 1, 0.5)  # the same function got slow
    assert sizer.limit("sleep") == 1
    sizer.record("sleep", 3, 0.0)  # too fast to measure
    assert sizer.limit("sleep") == 500
    sizer.record("sleep", 0, 1.0)  # nothing ran: nothing learned
    assert sizer.limit("sleep") == 500


def test_seconds_prefers_a_slower_rate_seen_in_the_batch() -> None:
    sizer = ClaimSizer(0.1)
    sizer.record("f", 10, 0.001)
    assert math.isclose(sizer.seconds("f", 50), 0.005)
    assert math.isclose(sizer.seconds("f", 50, measured=0.2), 10.0)
    assert math.isclose(sizer.seconds("g", 5, measured=0.1), 0.5)


def test_only_the_most_recent_functions_are_kept() -> None:
    sizer = ClaimSizer(0.1)
    for i in range(MAX_FUNCTIONS + 10):
        sizer.record(f"f{i}", 1, 0.01)
    sizer.record("f20", 1, 0.01)  # used again: moves to the recent end
    limits = sizer.limits()
    assert len(limits) == MAX_FUNCTIONS
    assert "f0" not in limits and "f20" in limits and f"f{MAX_FUNCTIONS + 9}" in limits
