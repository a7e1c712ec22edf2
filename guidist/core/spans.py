"""The task stream's raw material: what each worker slot ran, merged into bounded spans.

A span is (slot, function, start, end, count, failed): ``count`` consecutive runs of one
function on one slot, ``failed`` of which raised. Consecutive runs merge while the gap between
them is short, so a worker doing 500,000 trivial tasks a second sends a handful of spans per
report, and one doing a task a second sends one span per task: the volume stays bounded by
time, not by the task rate. Failures never merge with successes, so they stay visible in red.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

#: Runs closer together than this (seconds) merge into one span.
MERGE_GAP = 0.05
#: Spans a worker buffers between reports; older ones merge into the newest when over.
MAX_PENDING = 64
#: How far back the task stream shows (seconds).
STREAM_SECONDS = 60.0


@dataclass(frozen=True)
class Span:
    """count runs of function on one worker slot between start and end (wall clock)."""

    slot: int
    function: str
    start: float
    end: float
    count: int = 1
    failed: int = 0

    def as_tuple(self) -> tuple:
        """The compact form that crosses the wire."""
        return (self.slot, self.function, self.start, self.end, self.count, self.failed)

    @classmethod
    def from_tuple(cls, t: Iterable) -> Span:
        """The inverse of as_tuple."""
        slot, function, start, end, count, failed = t
        return cls(int(slot), str(function), float(start), float(end), int(count), int(failed))


class SpanRecorder:
    """Collects a worker's runs as merged spans until the next report takes them."""

    def __init__(self, merge_gap: float = MERGE_GAP, max_pending: int = MAX_PENDING) -> None:
        self.merge_gap = merge_gap
        self.max_pending = max_pending
        self._open: dict[int, list] = {}  # slot -> [function, start, end, count, failed]
        self._closed: list[tuple] = []

    def record(self, slot: int, function: str, start: float, runtime: float, ok: bool,
               count: int = 1) -> None:
        """count back-to-back runs lasting runtime in all: merged into the slot's open span when
        they are short, follow it closely and match it; else that span closes, another opens.

        A run longer than the merge gap keeps a bar of its own, so slow tasks show one bar each
        while a flood of trivial ones shows as a few."""
        end = start + max(runtime, 0.0)
        failed = 0 if ok else count
        cur = self._open.get(slot)
        gap = self.merge_gap
        if (cur is not None and cur[0] == function and (cur[4] > 0) == (not ok)
                and start - cur[2] <= gap and runtime <= gap * count
                and cur[2] - cur[1] <= gap * cur[3]):
            cur[2] = max(cur[2], end)
            cur[3] += count
            cur[4] += failed
            return
        if cur is not None:
            self._close(slot, cur)
        self._open[slot] = [function, start, end, count, failed]

    def _close(self, slot: int, cur: list) -> None:
        self._closed.append((slot, cur[0], cur[1], cur[2], cur[3], cur[4]))
        if len(self._closed) > self.max_pending:
            # Over budget: fold the two oldest together rather than grow (bounded volume).
            a, b = self._closed[0], self._closed[1]
            if a[0] == b[0] and a[1] == b[1] and (a[5] > 0) == (b[5] > 0):
                self._closed[0:2] = [(a[0], a[1], a[2], b[3], a[4] + b[4], a[5] + b[5])]
            else:
                del self._closed[0]

    def peek(self) -> list[tuple]:
        """Every span so far (open ones as they stand), keeping them."""
        return self._closed + [(slot, c[0], c[1], c[2], c[3], c[4])
                               for slot, c in self._open.items()]

    def take(self) -> list[tuple]:
        """Every span so far (open ones included, as they stand), and start afresh."""
        out = self._closed
        out.extend((slot, c[0], c[1], c[2], c[3], c[4]) for slot, c in self._open.items())
        self._closed = []
        self._open = {}
        return out


class SpanWindow:
    """A broker's recent spans per worker: at most ``per_worker`` each, none older than horizon."""

    def __init__(self, per_worker: int = 2000, horizon: float = STREAM_SECONDS) -> None:
        self.per_worker = per_worker
        self.horizon = horizon
        self._by_worker: dict[str, deque[tuple]] = {}
        self._seq = 0  # spans ever added: the cursor clients pass back

    def add(self, worker: str, spans: Iterable[tuple]) -> None:
        """Keep a worker's new spans (as sent: tuples of Span fields)."""
        lane = self._by_worker.get(worker)
        if lane is None:
            lane = self._by_worker[worker] = deque(maxlen=self.per_worker)
        for s in spans:
            self._seq += 1
            lane.append((self._seq, worker, *s))

    def since(self, cursor: int, now: float, limit: int = 5000) -> tuple[int, list[tuple]]:
        """(new cursor, spans after cursor that ended within the horizon), oldest first."""
        cutoff = now - self.horizon
        for worker in [w for w, lane in self._by_worker.items()
                       if not lane or lane[-1][5] < cutoff]:
            del self._by_worker[worker]  # a worker silent for the whole horizon (or gone)
        out = [s for lane in self._by_worker.values() for s in lane
               if s[0] > cursor and s[5] >= cutoff]
        out.sort()
        out = out[-limit:]
        return self._seq, out

    def forget(self, worker: str) -> None:
        """Drop a worker's lane (it was removed from the list)."""
        self._by_worker.pop(worker, None)
