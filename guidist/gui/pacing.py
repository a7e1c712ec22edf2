"""Drawing a snapshot in slices: one panel (or one plot) per event-loop turn.

Every widget changed in one turn is painted in one uninterrupted run of update requests: Qt
paints each plot's view in an update request of its own, and the next one follows at once,
before any timer is served. Applying a whole snapshot in one slot made that run 15-45 ms
under full load (the window could not react meanwhile). ``Pacer`` runs queued steps a short
timer apart instead; timers due in between (a person's key repeat, an animation, a
benchmark's probe) run between the steps, so no single run is longer than one panel's paint.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from PySide6.QtCore import QObject, Qt, QTimer

#: Milliseconds between two steps: long enough to be a timer of its own (a 0 ms timer is a
#: posted event and joins the run), short enough that a whole snapshot is drawn in ~20 ms.
STEP_GAP_MS = 1
#: Steps that may wait: a window this far behind (a machine too busy to run a slice every
#: millisecond or so) catches up in one go rather than falling further behind.
MAX_PENDING = 64


class Pacer(QObject):
    """Runs callables in the order queued, one per timer turn."""

    def __init__(self, parent: QObject | None = None, gap_ms: int = STEP_GAP_MS,
                 max_pending: int = MAX_PENDING) -> None:
        super().__init__(parent)
        self._max_pending = max_pending
        self._steps: deque[Callable[[], None]] = deque()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(gap_ms)
        self._timer.timeout.connect(self._run_next)

    def add(self, steps: Iterable[Callable[[], None]]) -> None:
        """Queue steps after the ones already queued (order is kept: a panel sees every
        snapshot in turn); too many waiting already: those run now."""
        if len(self._steps) > self._max_pending:
            self.flush()
        self._steps.extend(steps)
        if self._steps and not self._timer.isActive():
            self._timer.start()

    def clear(self) -> None:
        """Drop every queued step (the window shows no server any more)."""
        self._steps.clear()
        self._timer.stop()

    def pending(self) -> int:
        """Steps still queued."""
        return len(self._steps)

    def flush(self) -> None:
        """Run every queued step now (tests, and before the window is torn down)."""
        self._timer.stop()
        while self._steps:
            self._steps.popleft()()

    def _run_next(self) -> None:
        if self._steps:
            step = self._steps.popleft()
            try:
                step()
            finally:
                if self._steps:
                    self._timer.start()
