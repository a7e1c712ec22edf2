"""A worker's results until a server accepts them, kept as the columns they are sent as.

The inline loop appends each task's value, start and run time to plain lists (the cheapest
thing CPython can do per task), and a run of them joins the pending results as a few list
copies (memcpy): no tuple per result is ever made on the way to the manager, and packing
pickles the columns as they are (``payload.pack_columns``). What a column cannot say is kept
beside it, by position: failures (and the pickled exception they carry), and results without
times. The rare paths (a result too big, one that cannot be pickled, a broker in this process
that takes result tuples) read ``items()``, the usual ``(id, ok, value, started, runtime)``
tuples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Any

from .payload import pack, pack_columns


class PendingResults:
    """Finished tasks not yet accepted by a server: ids, values, start and run times."""

    __slots__ = ("ids", "values", "started", "runtimes", "failures", "untimed", "span")

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.values: list[Any] = []
        self.started: list[float] = []  # wall clock
        self.runtimes: list[float] = []  # seconds
        # position -> what a failure's tuple has after its runtime: () or (pickled exception,)
        self.failures: dict[int, tuple] = {}
        # position -> (started, runtime) of a result whose times are not both numbers
        self.untimed: dict[int, tuple] = {}
        # The ids as one range while they follow each other (claims without holes arrive as
        # ranges): sent as the range, the server checks the report against its lease in O(1)
        # instead of making an int a task. None once they don't.
        self.span: range | None = range(0)

    @classmethod
    def of(cls, items: Iterable[tuple]) -> PendingResults:
        """Pending results holding these result tuples, in order."""
        out = cls()
        for item in items:
            out.add(item)
        return out

    def __len__(self) -> int:
        return len(self.ids)

    def add_run(self, ids: Sequence[int], values: Sequence, started: Sequence[float],
                runtimes: Sequence[float], failures: dict[int, tuple] | None = None) -> None:
        """Append a run of results given as columns (failures by position in the run)."""
        if failures:
            base = len(self.ids)
            self.failures.update((base + i, extra) for i, extra in failures.items())
        if ids:
            self.span = _joined(self.span, ids if type(ids) is range else None)
        self.ids += ids
        self.values += values
        self.started += started
        self.runtimes += runtimes

    def add(self, item: tuple) -> None:
        """Append one result tuple: (id, ok, value[, started, runtime[, exception]])."""
        i = len(self.ids)
        self.span = None
        started = item[3] if len(item) > 3 else None
        runtime = item[4] if len(item) > 4 else None
        if started is None or runtime is None:
            self.untimed[i] = (started, runtime)
            started = runtime = 0.0
        self.ids.append(item[0])
        self.values.append(item[2])
        self.started.append(started)
        self.runtimes.append(runtime)
        if not item[1]:
            self.failures[i] = tuple(item[5:])

    def extend(self, other: PendingResults) -> None:
        """Append other's results after these."""
        base = len(self.ids)
        self.failures.update((base + i, x) for i, x in other.failures.items())
        self.untimed.update((base + i, x) for i, x in other.untimed.items())
        if other.ids:
            self.span = _joined(self.span, other.span)
        self.ids += other.ids
        self.values += other.values
        self.started += other.started
        self.runtimes += other.runtimes

    def items(self) -> list[tuple]:
        """The results as (id, ok, value, started, runtime[, exception]) tuples."""
        out = list(zip(self.ids, repeat(True), self.values, self.started, self.runtimes))
        for i, (started, runtime) in self.untimed.items():
            out[i] = (*out[i][:3], started, runtime)
        for i, extra in self.failures.items():
            tid, _ok, value, started, runtime = out[i]
            out[i] = (tid, False, value, started, runtime, *extra)
        return out

    def pack(self) -> bytes:
        """Pickled for the manager: as columns, unless something only a tuple can say is
        among them (an exception attached, a time missing), then as the list of tuples
        (``payload.pack_results`` decides the same way). Raises like pickle.dumps."""
        if not self.ids or self.untimed or any(self.failures.values()):
            return pack(self.items())
        oks = None
        if self.failures:
            oks = [True] * len(self.ids)
            for i in self.failures:
                oks[i] = False
        span = self.span
        ids = span if span is not None and len(span) == len(self.ids) else self.ids
        return pack_columns(ids, oks, self.values, self.started, self.runtimes)


def _joined(span: range | None, run: range | None) -> range | None:
    """The range of span's ids followed by run's (not empty), or None if they don't follow."""
    if span is None or run is None or run.step != 1:
        return None
    if not span:
        return run
    return range(span.start, run.stop) if run.start == span.stop else None
