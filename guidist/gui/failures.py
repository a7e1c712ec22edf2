"""Failures as a person reads them: identical errors folded into one Event log line, and a
banner with the fix when a burst of them has a cause we recognise. Qt-free, tested without a
window.

An unimportable module made every task fail within a second while the window said nothing:
the failures were only visible by filtering the table, selecting a row, widening the pane and
scrolling. The session now reads the newest failed tasks whenever the failed count moves (one
extra call, only then) and hands the new ones to a ``FailureDigest``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..core.protocol import Task
from .text import plural, shorten

#: Failed tasks read per poll when the count moved: more than this since the last poll is
#: reported as "at least".
SAMPLE = 500
#: Identical failures within BURST_SECONDS that raise the banner.
BURST = 20
BURST_SECONDS = 10.0
#: A line is folded into the previous one of the same error if that is this recent.
FOLD_SECONDS = 60.0

_NO_MODULE = re.compile(r"No module named '([^']+)'")
_NO_ATTRIBUTE = re.compile(r"'([^']+)' has no attribute '([^']+)'")


def error_line(error: str | None) -> str:
    """The line of a traceback that says what went wrong (its last non-empty one)."""
    lines = [line.strip() for line in (error or "").strip().splitlines() if line.strip()]
    return shorten(lines[-1], 300) if lines else "(no error text)"


def fix_for(line: str) -> str | None:
    """What to do about an error we recognise, in one sentence (None if we do not)."""
    m = _NO_MODULE.search(line)
    if m:
        top = m.group(1).split(".")[0]
        return (f"Workers cannot import {top}: start them in the folder that holds it, or "
                "pass --path.")
    m = _NO_ATTRIBUTE.search(line)
    if m and "TaskNotFound" in line:
        return (f"{m.group(1)} has no function {m.group(2)}: check the name after the colon "
                "in the task's function.")
    if "TaskNotFound" in line and "is not callable" in line:
        return "The task names something that is not a function: check the name after the colon."
    if "pickle" in line.lower() and ("result" in line.lower() or "can't" in line.lower()):
        return ("A result could not be sent back: return plain data (numbers, strings, lists, "
                "dicts) from the task.")
    return None


class NewFailures:
    """Which failed tasks of the newest page were not reported before (lives on the session
    thread: it holds no Qt object)."""

    def __init__(self) -> None:
        self._seen: set[tuple[int, float]] = set()
        self._floor = 0.0  # finish time of the oldest task of the previous page

    def pick(self, newest: Sequence[Task]) -> tuple[list[Task], bool]:
        """(new failures, oldest first; True when the page was all new, so more may have
        failed since the last look than it holds)."""
        fresh = [t for t in newest if (t.id, t.finished or 0.0) not in self._seen
                 and (t.finished or 0.0) >= self._floor]
        all_new = bool(newest) and len(fresh) == len(newest) and len(newest) >= SAMPLE
        self._seen = {(t.id, t.finished or 0.0) for t in newest}
        if newest:
            self._floor = min(t.finished or 0.0 for t in newest)
        fresh.reverse()
        return fresh, all_new

    def reset(self) -> None:
        """Forget what was seen (another server)."""
        self._seen.clear()
        self._floor = 0.0


@dataclass
class FailureLine:
    """One Event log line: count × function failed: error."""

    key: tuple[str, str]
    count: int
    at_least: bool
    first: float
    last: float
    deliberate: bool = False

    @property
    def function(self) -> str:
        """The task function that failed."""
        return self.key[0]

    @property
    def error(self) -> str:
        """The error line."""
        return self.key[1]

    def text(self) -> str:
        """The sentence for the Event log."""
        n = f"{self.count:,}{'+' if self.at_least else ''}"
        tail = " (deliberate: the demo's failing tasks)" if self.deliberate else ""
        return f"{n} × {self.function} failed: {self.error}{tail}"


@dataclass(frozen=True)
class Burst:
    """Many identical failures in a short time: the banner's sentence."""

    key: tuple[str, str]
    count: int
    fix: str | None

    def text(self) -> str:
        """What the banner says."""
        what = f"{plural(self.count, 'task')} of {self.key[0]} failed: {self.key[1]}."
        if self.fix:
            return f"{what} {self.fix}"
        return (f"{what} Select one under Tasks → failed for its traceback, fix the cause, "
                "then Retry all failed.")


class FailureDigest:
    """Folds failures into Event log lines and spots bursts worth a banner."""

    def __init__(self) -> None:
        self.lines: dict[tuple[str, str], FailureLine] = {}
        self._recent: list[tuple[float, tuple[str, str]]] = []
        self._bannered: set[tuple[str, str]] = set()
        #: Functions whose failures are on purpose (the demo's "fail"): labelled, no banner.
        self.deliberate: frozenset[str] = frozenset()

    def add(self, tasks: Iterable[Task], at_least: bool = False,
            now: float | None = None) -> tuple[list[FailureLine], Burst | None]:
        """Take new failures; returns the lines that changed and a burst to announce."""
        now = time.time() if now is None else now
        changed: dict[tuple[str, str], FailureLine] = {}
        for t in tasks:
            key = (t.function, error_line(t.error))
            line = self.lines.get(key)
            when = t.finished or now
            if line is None or when - line.last > FOLD_SECONDS:
                line = FailureLine(key, 0, False, when, when, t.function in self.deliberate)
                self.lines[key] = line
            line.count += 1
            line.last = max(line.last, when)
            line.at_least = line.at_least or at_least
            changed[key] = line
            self._recent.append((when, key))
        return list(changed.values()), self._burst(now)

    def _burst(self, now: float) -> Burst | None:
        self._recent = [(w, k) for w, k in self._recent if now - w <= BURST_SECONDS]
        counts: dict[tuple[str, str], int] = {}
        for _, key in self._recent:
            counts[key] = counts.get(key, 0) + 1
        for key, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            if n < BURST or key in self._bannered or key[0] in self.deliberate:
                continue
            self._bannered.add(key)
            return Burst(key, self.lines[key].count, fix_for(key[1]))
        return None

    def reset(self) -> None:
        """Forget everything (another server)."""
        self.lines.clear()
        self._recent.clear()
        self._bannered.clear()
