"""How many tasks a worker claims at once: about a tenth of a second of work of each function.

The estimate is kept per task function, so a burst of trivial tasks does not teach the worker
to claim a thousand slow ones of another function: a function it has not run yet is claimed
one task at a time (the broker's default for a function missing from the limits), and a
measured one in as many tasks as fill ``batch_seconds``, up to ``prefetch``.
"""

from __future__ import annotations

import math

#: Functions whose estimate a worker keeps (and sends with each claim); the oldest go first.
MAX_FUNCTIONS = 256

#: The most tasks one claim leases by default. Only functions under 10 µs a task reach it (the
#: tenth of a second decides for the rest), and for them the claim's round trip is the cost:
#: a server spends about 0.17 ms of CPU on an exchange whatever it carries, so at 1,000 a claim
#: that was half of its work per task, and behind 20 ms of round trip a worker kept 13 % of
#: its rate where 10,000 keeps 47 %.
DEFAULT_PREFETCH = 10_000


class ClaimSizer:
    """Per-function seconds-per-task estimates and the claim limits that follow from them."""

    def __init__(self, batch_seconds: float = 0.1, prefetch: int = DEFAULT_PREFETCH) -> None:
        self.batch_seconds = batch_seconds
        self.prefetch = max(1, int(prefetch))
        self._seconds: dict[str, float] = {}  # function -> seconds per task, last measured

    def record(self, function: str, tasks: int, seconds: float) -> None:
        """Remember what running tasks of function took (the latest measurement wins, so a
        function whose tasks got slower is claimed in small batches from the next claim)."""
        if tasks <= 0:
            return
        self._seconds.pop(function, None)  # re-insert: the dict stays in least-recent order
        self._seconds[function] = max(seconds, 0.0) / tasks
        if len(self._seconds) > MAX_FUNCTIONS:
            del self._seconds[next(iter(self._seconds))]

    def estimate(self, function: str) -> float | None:
        """Seconds per task of function, or None when it has not run here yet."""
        return self._seconds.get(function)

    def limit(self, function: str) -> int:
        """Most tasks of function one claim should take."""
        per_task = self._seconds.get(function)
        if per_task is None:
            return 1
        if per_task <= 0:
            return self.prefetch
        return max(1, min(self.prefetch, int(self.batch_seconds / per_task)))

    def limits(self) -> dict[str, int]:
        """The limit of every function with an estimate (the broker gives others 1 task)."""
        return {f: self.limit(f) for f in self._seconds}

    def seconds(self, function: str, tasks: int, measured: float | None = None) -> float:
        """Expected seconds for tasks of function (infinite when unknown); measured, a rate
        seen in the batch at hand, counts when it is slower than the estimate."""
        per_task = self._seconds.get(function)
        if measured is not None:
            per_task = measured if per_task is None else max(per_task, measured)
        if per_task is None:
            return math.inf
        return per_task * tasks
