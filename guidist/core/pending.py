"""A worker's results until a server accepts them, kept as the columns they are sent as.

The inline loop appends each task's value (and, timed per task, its start and run time) to
plain lists, the cheapest thing CPython can do per task, and a run of them joins the pending
results in bulk: the values by a list copy, the times as the raw doubles they travel as
(``struct``, C speed; tasks timed in runs come as raw doubles already, ``TaskRun.times``).
No tuple per result is ever made on the way to the manager, and packing pickles the columns
as they are (``payload.pack_columns``). Ids that follow each other are kept as one range,
not an int each. What a column cannot say is kept beside it, by position: failures (and the
pickled exception they carry), and results without times. The rare paths (a result too big,
one that cannot be pickled, a broker in this process that takes result tuples) read
``items()``, the usual ``(id, ok, value, started, runtime)`` tuples.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Any

from .payload import doubles, floats, pack, pack_columns

_DOUBLE = struct.Struct("d").pack


class PendingResults:
    """Finished tasks not yet accepted by a server: ids, values, start and run times."""

    __slots__ = ("_ids", "values", "started", "runtimes", "failures", "untimed", "span")

    def __init__(self) -> None:
        # The ids as one range while they follow each other (claims without holes arrive as
        # ranges): sent as the range, the server checks the report against its lease in O(1)
        # instead of making an int a task. None once they don't; _ids is the list then.
        self.span: range | None = range(0)
        self._ids: list[int] = []
        self.values: list[Any] = []
        self.started = bytearray()  # wall clock, as doubles
        self.runtimes = bytearray()  # seconds, as doubles
        # position -> what a failure's tuple has after its runtime: () or (pickled exception,)
        self.failures: dict[int, tuple] = {}
        # position -> (started, runtime) of a result whose times are not both numbers
        self.untimed: dict[int, tuple] = {}

    @classmethod
    def of(cls, items: Iterable[tuple]) -> PendingResults:
        """Pending results holding these result tuples, in order."""
        out = cls()
        for item in items:
            out.add(item)
        return out

    def __len__(self) -> int:
        return len(self.values)

    @property
    def ids(self) -> Sequence[int]:
        """The ids, in order (the range itself while they follow each other)."""
        return self.span if self.span is not None else self._ids

    def add_run(self, ids: Sequence[int], values: Sequence,
                started: Sequence[float] | bytes, runtimes: Sequence[float] | bytes,
                failures: dict[int, tuple] | None = None) -> None:
        """Append a run of results given as columns (failures by position in the run); times
        given as bytes are raw doubles already (``taskloop.TaskRun.times``)."""
        self._add_ids_values(ids, values, failures)
        self.started += started if type(started) is bytes else doubles(started)
        self.runtimes += runtimes if type(runtimes) is bytes else doubles(runtimes)

    def _add_ids_values(self, ids: Sequence[int], values: Sequence,
                        failures: dict[int, tuple] | None) -> None:
        if failures:
            base = len(self.values)
            self.failures.update((base + i, extra) for i, extra in failures.items())
        if ids:
            self._join_ids(ids, ids if type(ids) is range else None)
        self.values += values

    def _join_ids(self, ids: Sequence[int], span: range | None) -> None:
        joined = _joined(self.span, span)
        if joined is None and self.span is not None:
            self._ids = list(self.span)  # no longer one range: an int each from here on
        if joined is None:
            self._ids += ids
        self.span = joined

    def add(self, item: tuple) -> None:
        """Append one result tuple: (id, ok, value[, started, runtime[, exception]])."""
        i = len(self.values)
        self._join_ids((item[0],), None)
        started = item[3] if len(item) > 3 else None
        runtime = item[4] if len(item) > 4 else None
        if started is None or runtime is None:
            self.untimed[i] = (started, runtime)
            started = runtime = 0.0
        self.values.append(item[2])
        self.started += _DOUBLE(started)
        self.runtimes += _DOUBLE(runtime)
        if not item[1]:
            self.failures[i] = tuple(item[5:])

    def extend(self, other: PendingResults) -> None:
        """Append other's results after these."""
        base = len(self.values)
        self.failures.update((base + i, x) for i, x in other.failures.items())
        self.untimed.update((base + i, x) for i, x in other.untimed.items())
        if other.values:
            self._join_ids(other.ids, other.span)
        self.values += other.values
        self.started += other.started
        self.runtimes += other.runtimes

    def items(self) -> list[tuple]:
        """The results as (id, ok, value, started, runtime[, exception]) tuples."""
        out = list(zip(self.ids, repeat(True), self.values, floats(self.started),
                       floats(self.runtimes)))
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
        if not self.values or self.untimed or any(self.failures.values()):
            return pack(self.items())
        oks = None
        if self.failures:
            oks = [True] * len(self.values)
            for i in self.failures:
                oks[i] = False
        return pack_columns(self.ids, oks, self.values, bytes(self.started),
                            bytes(self.runtimes))


def _joined(span: range | None, run: range | None) -> range | None:
    """The range of span's ids followed by run's (not empty), or None if they don't follow."""
    if span is None or run is None or run.step != 1:
        return None
    if not span:
        return run
    return range(span.start, run.stop) if run.start == span.stop else None
