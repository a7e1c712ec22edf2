"""The task stream's and the functions view's data, Qt-free (tested without a view).

``TaskStream`` keeps the last minute of spans the snapshots carry, one lane per worker slot,
at most MAX_BARS in all (the oldest go first), and answers "what is under this point" for
the hover tooltip. ``FunctionRows`` turns a snapshot's per-function statistics into table
rows and the histogram of one function.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..core import histogram
from ..core.protocol import FunctionStats
from ..core.spans import STREAM_SECONDS

#: Bars the task stream draws at most, whatever the task rate (one pyqtgraph item holds them).
MAX_BARS = 4000
#: Colours of task functions, in order of first appearance; failures are always FAILED_COLOR.
PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
           "#bcbd22", "#7f7f7f", "#aec7e8")
FAILED_COLOR = "#d62728"


@dataclass(frozen=True)
class Bar:
    """One span as drawn: lane index, start and end (wall clock), what ran."""

    lane: int
    start: float
    end: float
    function: str
    count: int
    failed: int
    worker: str

    @property
    def color(self) -> str:
        """Red when any run in it failed, else its function's colour (set by TaskStream)."""
        return FAILED_COLOR if self.failed else ""

    def describe(self) -> str:
        """The hover text."""
        took = self.end - self.start
        runs = "1 run" if self.count == 1 else f"{self.count} runs"
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.function}: {runs}{failed} in {_run_time(took)}\non {self.worker}"


class TaskStream:
    """The spans of the last minute, by lane (worker id and slot), bounded in number."""

    def __init__(self, horizon: float = STREAM_SECONDS, max_bars: int = MAX_BARS) -> None:
        self.horizon = horizon
        self._bars: deque[Bar] = deque(maxlen=max_bars)
        self._lanes: dict[tuple[str, int], int] = {}
        self._names: dict[str, str] = {}  # worker id -> name, for lane labels
        self._colors: dict[str, str] = {}

    def clear(self) -> None:
        """Forget everything (another server)."""
        self._bars.clear()
        self._lanes.clear()
        self._colors.clear()

    def add(self, spans: Iterable[Sequence], names: dict[str, str] | None = None) -> None:
        """Add a snapshot's spans: (seq, worker, slot, function, start, end, count, failed)."""
        if names:
            self._names.update(names)
        for _seq, worker, slot, function, start, end, count, failed in spans:
            lane = self._lanes.setdefault((str(worker), int(slot)), len(self._lanes))
            function = str(function)
            if function not in self._colors:
                self._colors[function] = PALETTE[len(self._colors) % len(PALETTE)]
            self._bars.append(Bar(lane, float(start), float(end), function, int(count),
                                  int(failed), self._names.get(str(worker), str(worker))))

    def prune(self, now: float) -> None:
        """Drop bars that ended before the horizon."""
        cutoff = now - self.horizon
        bars = self._bars
        if any(b.end < cutoff for b in bars):
            kept = [b for b in bars if b.end >= cutoff]
            bars.clear()
            bars.extend(kept)

    def bars(self) -> list[Bar]:
        """Every bar kept, oldest first."""
        return list(self._bars)

    def color_of(self, bar: Bar) -> str:
        """The colour a bar is drawn in."""
        return bar.color or self._colors.get(bar.function, PALETTE[0])

    def lane_labels(self, room: int = 1000) -> list[str]:
        """One label per lane, in lane order: the worker's name, and the slot when several.
        With more lanes than room (labels that fit), only each worker's first lane is
        labelled, with its number of slots ("" for the others)."""
        slots: dict[str, int] = {}
        for worker, _slot in self._lanes:
            slots[worker] = slots.get(worker, 0) + 1
        labels = [""] * len(self._lanes)
        crowded = len(self._lanes) > room
        lanes_of: dict[str, list[int]] = {}
        for (worker, slot), lane in sorted(self._lanes.items(), key=lambda kv: kv[1]):
            name = self._names.get(worker, worker)
            lanes_of.setdefault(worker, []).append(lane)
            if slots[worker] == 1:
                labels[lane] = name
            elif not crowded:
                labels[lane] = f"{name} #{slot}"
        if crowded:
            for worker, lanes in lanes_of.items():
                if len(lanes) > 1:  # one label, in the middle of the worker's lanes
                    name = self._names.get(worker, worker)
                    labels[lanes[len(lanes) // 2]] = f"{name} ({len(lanes)} slots)"
        return labels

    def bar_at(self, t: float, lane_y: float, tolerance: float = 0.0) -> Bar | None:
        """The bar under a point (time, lane coordinate), the newest if several."""
        lane = round(lane_y)
        if abs(lane_y - lane) > 0.4:
            return None
        for b in reversed(self._bars):
            if b.lane == lane and b.start - tolerance <= t <= b.end + tolerance:
                return b
        return None

    def legend(self) -> list[tuple[str, str]]:
        """(function, colour) for the functions shown, and failures."""
        shown = {b.function for b in self._bars}
        out = [(f, c) for f, c in self._colors.items() if f in shown]
        return out + [("failed", FAILED_COLOR)] if any(b.failed for b in self._bars) else out


def _run_time(seconds: float | None) -> str:
    """A run time for the window's tables; an en dash when not measured."""
    return histogram.run_time_text(seconds, missing="–")


class FunctionRows:
    """The functions table (one row per task function) and a histogram of one of them."""

    HEADERS = ("Function", "Done", "Failed", "p50", "p95", "Max", "Total run time")

    def __init__(self) -> None:
        self.stats: tuple[FunctionStats, ...] = ()

    def update(self, stats: Sequence[FunctionStats]) -> None:
        """Take a snapshot's statistics."""
        self.stats = tuple(stats)

    def rows(self) -> list[tuple[str, ...]]:
        """The table's cells, as text."""
        return [(f.function, str(f.done), str(f.failed), _run_time(f.runtime_p50),
                 _run_time(f.runtime_p95), _run_time(f.runtime_max if f.measured else None),
                 _run_time(f.runtime_sum)) for f in self.stats]

    def find(self, function: str) -> FunctionStats | None:
        """One function's statistics."""
        return next((f for f in self.stats if f.function == function), None)

    def histogram(self, function: str) -> tuple[list[float], list[float], list[int]]:
        """(log10 of each bucket's lower bound, log10 of its upper bound, count) over the
        buckets from the first to the last that holds a run; empty when none."""
        f = self.find(function)
        if f is None or not f.measured:
            return [], [], []
        counts = list(f.counts)
        used = [i for i, n in enumerate(counts) if n]
        lo_i, hi_i = used[0], used[-1]
        step = 1 / histogram.BUCKETS_PER_DECADE
        lows, highs, ns = [], [], []
        for i in range(lo_i, hi_i + 1):
            upper = histogram.BOUNDS[i] if i < histogram.N_BUCKETS else histogram.BOUNDS[-1] * 10
            highs.append(math.log10(upper))
            lows.append(highs[-1] - step)
            ns.append(counts[i])
        return lows, highs, ns
