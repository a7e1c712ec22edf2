"""Table models (vorta's pattern: column constants, no view needed to test them).

``TasksModel`` is virtual: it knows the total from the server, keeps a few pages of rows in an
LRU cache, and asks for a missing page through its ``page_needed`` signal. A million tasks cost
the window no more than a hundred.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QFont

from ..core.protocol import Event, Task, WorkerInfo, WorkerState
from .state import PageReply, PageRequest
from .style import (
    EVENT_COLORS,
    WORKER_COLORS,
    fmt_ago,
    fmt_clock,
    fmt_duration,
    fmt_int,
    qcolor,
    shorten,
    state_color,
)

_Index = QModelIndex | QPersistentModelIndex
_NO_INDEX = QModelIndex()
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


# ---------------------------------------------------------------------- workers


def fmt_mode(w: WorkerInfo) -> str:
    """How a worker runs its tasks: "inline", or "thread ×32" (classic workers: empty); a
    worker limited to some task functions gets a "*" (the tooltip names them)."""
    if w.kind == "classic":
        return ""
    mode = w.mode or "inline"
    text = mode if mode == "inline" and w.concurrency <= 1 else f"{mode} ×{w.concurrency}"
    return f"{text} *" if w.functions else text


class _RowsModel(QAbstractTableModel):
    """A table with fixed HEADERS over self._rows: the Qt methods the three models share
    (the virtual tasks model counts its rows itself)."""

    HEADERS: tuple[str, ...] = ()
    _rows: list

    def rowCount(self, parent: _Index = _NO_INDEX) -> int:  # noqa: N802 (Qt name)
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = _NO_INDEX) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None


class WorkersModel(_RowsModel):
    """The workers the server knows, updated in place so selections survive refreshes."""

    COL_NAME, COL_WHERE, COL_MODE, COL_STATE, COL_TASK, COL_RUNNING, COL_CLAIMED, COL_DONE, \
        COL_FAILED, COL_HEARTBEAT, COL_HOST, COL_PID, COL_CPU, COL_MEMORY = range(14)
    HEADERS = ("Name", "Where", "Mode", "State", "Current task", "Running", "Claimed", "Done",
               "Failed", "Last heartbeat", "Host", "PID", "CPU", "Memory")
    #: Heartbeats of CPU the trend beside the CPU figure shows.
    TREND = 8
    WorkerRole = Qt.ItemDataRole.UserRole + 1
    #: State text of a worker this window killed (the server may not have noticed yet).
    KILLED = "DEAD (killed)"

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[WorkerInfo] = []
        self._local: frozenset[int] = frozenset()
        self._launched: set[int] = set()  # every pid this window launched, alive or not
        self._killed: set[int] = set()  # pids this window killed
        self._now = 0.0
        self._cpu: dict[str, deque[float]] = {}  # worker id -> its last CPU readings

    # -- Qt interface

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        w = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(w, col)
        if role == self.WorkerRole:
            return w
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == self.COL_STATE:
                state = WorkerState.OFFLINE if self.killed(w) else w.state
                return qcolor(state_color(WORKER_COLORS.get(state.value, "#000000")))
            if w.state is WorkerState.OFFLINE or self.killed(w):
                return qcolor("#9e9e9e")
            if col == self.COL_FAILED and w.failed:
                return qcolor(state_color("failed"))
        if role == Qt.ItemDataRole.FontRole and col == self.COL_STATE \
                and (w.state is WorkerState.OFFLINE or self.killed(w)):
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (
                self.COL_TASK, self.COL_RUNNING, self.COL_CLAIMED, self.COL_DONE,
                self.COL_FAILED, self.COL_PID):
            return _RIGHT
        if role == Qt.ItemDataRole.ToolTipRole:
            claims = ", ".join(w.functions) if w.functions else "every task function"
            killed = "\nkilled from this window (SIGKILL)" if self.killed(w) else ""
            return (f"{w.id} — {w.kind} worker, {w.mode}, concurrency {w.concurrency}\n"
                    f"claims: {claims}\n"
                    f"holds {w.running} running and {w.claimed} claimed (not started) task(s)\n"
                    f"joined {fmt_clock(w.joined)}, last heartbeat {fmt_clock(w.last_seen)}"
                    f"{killed}")
        return None

    def _display(self, w: WorkerInfo, col: int) -> Any:
        if col == self.COL_NAME:
            return w.name
        if col == self.COL_WHERE:
            return self.where(w)
        if col == self.COL_MODE:
            return fmt_mode(w)
        if col == self.COL_STATE:
            if self.killed(w):
                return self.KILLED
            return "OFFLINE" if w.state is WorkerState.OFFLINE else w.state.value
        if col == self.COL_TASK:
            if self.killed(w):
                return ""
            return "" if w.current_task is None else str(w.current_task)
        if col == self.COL_RUNNING:
            return "" if self.killed(w) else fmt_int(w.running)
        if col == self.COL_CLAIMED:
            return "" if self.killed(w) else fmt_int(w.claimed)
        if col == self.COL_DONE:
            return fmt_int(w.done)
        if col == self.COL_FAILED:
            return fmt_int(w.failed)
        if col == self.COL_HEARTBEAT:
            return fmt_ago(self._now - w.last_seen) if w.last_seen else ""
        if col == self.COL_HOST:
            return w.host_label
        if col == self.COL_PID:
            return str(w.pid) if w.pid else ""
        if col == self.COL_CPU:
            if w.cpu_percent is None:
                return ""
            return f"{w.cpu_percent:.0f} % {sparkline(self._cpu.get(w.id, ()))}"
        if col == self.COL_MEMORY:
            return "" if w.rss_bytes is None else f"{w.rss_bytes / 2**20:.0f} MiB"
        return None

    # -- API

    def where(self, w: WorkerInfo) -> str:
        """"local" for a worker this window launched (even once it exited or was killed),
        "remote" (or "classic") otherwise."""
        if w.kind == "classic":
            return "classic"
        return "local" if w.pid in self._local or w.pid in self._launched else "remote"

    def killed(self, w: WorkerInfo) -> bool:
        """True for a worker this window killed."""
        return w.kind != "classic" and w.pid in self._killed

    def mark_killed(self, pids: Collection[int]) -> None:
        """Show these local workers as dead at once, whatever the server says yet."""
        self._killed.update(pids)
        self._launched.update(pids)
        if self._rows:
            self.dataChanged.emit(self.index(0, 0),
                                  self.index(len(self._rows) - 1, len(self.HEADERS) - 1))

    def is_local(self, w: WorkerInfo) -> bool:
        """True when this window launched the worker (so it may be killed)."""
        return w.kind != "classic" and w.pid in self._local

    def worker(self, row: int) -> WorkerInfo:
        """The worker shown on a row."""
        return self._rows[row]

    def workers(self) -> list[WorkerInfo]:
        """Every row's worker."""
        return list(self._rows)

    def set_workers(self, workers: Iterable[WorkerInfo], local_pids: Collection[int] = (),
                    now: float = 0.0) -> None:
        """Replace the rows: removed ids go, known ids update in place, new ids are appended."""
        new = {w.id: w for w in workers}
        for wid in [wid for wid in self._cpu if wid not in new]:
            del self._cpu[wid]
        for w in new.values():
            if w.cpu_percent is not None:
                trend = self._cpu.setdefault(w.id, deque(maxlen=self.TREND))
                old = next((r for r in self._rows if r.id == w.id), None)
                if old is None or old.last_seen != w.last_seen or not trend:
                    trend.append(w.cpu_percent)  # one reading per heartbeat, not per poll
        self._local = frozenset(local_pids)
        self._launched.update(self._local)
        if not new:  # no server (or a fresh one): pids may be reused from here on
            self._launched = set(self._local)
            self._killed.clear()
        self._now = now
        for row in range(len(self._rows) - 1, -1, -1):
            if self._rows[row].id not in new:
                self.beginRemoveRows(_NO_INDEX, row, row)
                del self._rows[row]
                self.endRemoveRows()
        known = set()
        for row, w in enumerate(self._rows):
            self._rows[row] = new[w.id]
            known.add(w.id)
        added = [w for wid, w in new.items() if wid not in known]
        if added:
            first = len(self._rows)
            self.beginInsertRows(_NO_INDEX, first, first + len(added) - 1)
            self._rows.extend(added)
            self.endInsertRows()
        if self._rows:
            self.dataChanged.emit(self.index(0, 0),
                                  self.index(len(self._rows) - 1, len(self.HEADERS) - 1))

    def set_local_pids(self, pids: Collection[int]) -> None:
        """Which pids this window launched (the Where column)."""
        self._local = frozenset(pids)
        self._launched.update(self._local)
        if self._rows:
            self.dataChanged.emit(self.index(0, self.COL_WHERE),
                                  self.index(len(self._rows) - 1, self.COL_WHERE))


def sparkline(values: Iterable[float], top: float = 100.0) -> str:
    """A trend in block characters, one per value (0 .. top, higher values clipped)."""
    blocks = "▁▂▃▄▅▆▇█"
    return "".join(blocks[min(len(blocks) - 1, max(0, int(v / top * (len(blocks) - 1) + 0.5)))]
                   for v in values)


# ---------------------------------------------------------------------- tasks


@dataclass
class _Page:
    generation: int
    tasks: tuple[Task, ...]


class TasksModel(_RowsModel):
    """A virtual view of the server's task ledger, fetched a page at a time and cached.

    Rows not loaded yet show a placeholder; asking for them (the view painting them) emits
    ``page_needed`` once per page and generation. ``refresh()`` starts a new generation: cached
    pages stay on screen until their fresh copies arrive, so the table never flickers.
    """

    COL_ID, COL_STATE, COL_FUNCTION, COL_ARGS, COL_ATTEMPTS, COL_WORKER, COL_SUBMITTED, \
        COL_DURATION, COL_OUTCOME = range(9)
    HEADERS = ("ID", "State", "Function", "Arguments", "Attempts", "Worker", "Submitted",
               "Ran", "Result / error")
    TaskRole = Qt.ItemDataRole.UserRole + 1
    PAGE_SIZE = 200
    MAX_PAGES = 50
    #: The order key (protocol.TASK_ORDERS) each sortable column stands for.
    ORDER_OF_COLUMN = {COL_ID: "id", COL_STATE: "state", COL_FUNCTION: "function",
                       COL_ATTEMPTS: "attempts", COL_SUBMITTED: "submitted",
                       COL_DURATION: "runtime"}

    #: PageRequest: the controller should fetch this page and call on_page with the reply.
    page_needed = Signal(object)
    #: str: a page could not be loaded (the server is not answering, say).
    load_failed = Signal(str)
    #: int: the total changed (for a "N tasks" label).
    total_changed = Signal(int)
    #: A page was stored (rows may now hold other tasks than before).
    page_arrived = Signal()

    def __init__(self, parent: Any = None, page_size: int = PAGE_SIZE,
                 max_pages: int = MAX_PAGES) -> None:
        super().__init__(parent)
        self.page_size = page_size
        self.max_pages = max_pages
        self._state: str | None = None
        self._search: str | None = None
        self._job: int | None = None
        self._order: str | None = None
        self._orderable: frozenset[str] = frozenset()
        self._not_held = 0
        self._generation = 0
        self._total = 0
        self._total_generation = -1
        self._pages: OrderedDict[int, _Page] = OrderedDict()
        self._pending: set[int] = set()  # pages requested in the current generation
        self._touched: set[int] = set()  # pages painted since the last refresh
        self._enabled = False

    # -- Qt interface

    def rowCount(self, parent: _Index = _NO_INDEX) -> int:  # noqa: N802
        return 0 if parent.isValid() else self._total  # virtual: the server's total

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            key = self.ORDER_OF_COLUMN.get(section)
            if key in self._orderable:
                return (f"Click to sort by {self.HEADERS[section].lower()}; again for the "
                        "other direction, a third time for newest activity first")
            return "Newest activity first: running, then finished (latest first), then " \
                "queued in the order they will run. This server cannot sort by this column."
        return super().headerData(section, orientation, role)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        task = self.task_at(index.row())
        col = index.column()
        if task is None:
            if role == Qt.ItemDataRole.DisplayRole and col == self.COL_STATE:
                return "loading…"
            if role == Qt.ItemDataRole.ForegroundRole:
                return qcolor("#9e9e9e")
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(task, col)
        if role == self.TaskRole:
            return task
        if role == Qt.ItemDataRole.ForegroundRole and col in (self.COL_STATE, self.COL_OUTCOME):
            if col == self.COL_STATE or task.error:
                return qcolor(state_color(task.state.value))
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (self.COL_ID, self.COL_ATTEMPTS,
                                                                 self.COL_DURATION):
            return _RIGHT
        if role == Qt.ItemDataRole.ToolTipRole and col in (self.COL_ARGS, self.COL_OUTCOME):
            text = self._display(task, col) if col == self.COL_ARGS else \
                (task.error or repr(task.result))
            return shorten(str(text), 2000)
        return None

    def _display(self, t: Task, col: int) -> Any:
        if col == self.COL_ID:
            return str(t.id)
        if col == self.COL_STATE:
            return t.state.value
        if col == self.COL_FUNCTION:
            return t.function
        if col == self.COL_ARGS:
            parts = [repr(a) for a in t.args]
            parts += [f"{k}={v!r}" for k, v in (t.kwargs or {}).items()]
            return shorten(", ".join(parts), 80)
        if col == self.COL_ATTEMPTS:
            return str(t.attempts)
        if col == self.COL_WORKER:
            return t.worker or ""
        if col == self.COL_SUBMITTED:
            return fmt_clock(t.submitted)
        if col == self.COL_DURATION:
            if t.runtime is not None:
                return fmt_duration(t.runtime)  # as the worker measured it
            if t.started and t.finished:
                return fmt_duration(t.finished - t.started)  # a tutorial worker's task
            return ""
        if col == self.COL_OUTCOME:
            if t.error:
                lines = t.error.strip().splitlines()
                return shorten(lines[-1] if lines else t.error, 100)
            if t.state.value == "done":
                return shorten(repr(t.result), 100)
            return ""
        return None

    # -- API

    @property
    def total(self) -> int:
        """Tasks in the current listing, as the server last said."""
        return self._total

    @property
    def filter(self) -> tuple[str | None, str | None]:
        """(state, search) of the current listing."""
        return self._state, self._search

    @property
    def job(self) -> int | None:
        """The job whose tasks are listed, or None for every task."""
        return self._job

    @property
    def not_held(self) -> int:
        """Finished tasks the listing would hold but the server keeps no longer in memory."""
        return self._not_held

    @property
    def order(self) -> str | None:
        """How the listing is sorted ("-runtime"…), None for newest activity first."""
        return self._order

    @property
    def orderable(self) -> frozenset[str]:
        """The order keys the server can sort by."""
        return self._orderable

    def set_orderable(self, keys: Iterable[str]) -> None:
        """What the server says it can sort by; a sort it cannot do is dropped."""
        self._orderable = frozenset(keys)
        if self._order and self._order.lstrip("-") not in self._orderable:
            self.set_order(None)
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, 0, len(self.HEADERS) - 1)

    def order_for(self, column: int, descending: bool) -> str | None:
        """The order a click on column asks for (None if the server cannot sort by it)."""
        key = self.ORDER_OF_COLUMN.get(column)
        if key is None or key not in self._orderable:
            return None
        return f"-{key}" if descending else key

    def set_order(self, order: str | None) -> None:
        """Sort the listing (None: newest activity first); starts again from the top."""
        if order == self._order:
            return
        self._order = order
        self._restart()

    @property
    def cached_pages(self) -> int:
        """How many pages are held (bounded by max_pages)."""
        return len(self._pages)

    def task_at(self, row: int) -> Task | None:
        """The task on a row if its page is loaded; otherwise asks for the page, returns None."""
        if not 0 <= row < self._total:
            return None
        number, offset = divmod(row, self.page_size)
        self._touched.add(number)
        page = self._pages.get(number)
        if page is None or page.generation < self._generation:
            self._request(number)
        if page is None:
            return None
        self._pages.move_to_end(number)
        return page.tasks[offset] if offset < len(page.tasks) else None

    def set_enabled(self, enabled: bool) -> None:
        """Fetch only while connected to a guidist server (a classic master has no ledger)."""
        self._enabled = enabled
        if enabled:
            self.refresh()

    def set_filter(self, state: str | None = None, search: str | None = None) -> None:
        """Show another listing: forget every page and start again from the top."""
        search = (search or "").strip() or None
        if (state, search) == (self._state, self._search):
            return
        self._state, self._search = state, search
        self._restart()

    def set_job(self, job: int | None) -> None:
        """List only one job's tasks (None: every task), from the top."""
        if job == self._job:
            return
        self._job = job
        self._restart()

    def _restart(self) -> None:
        """Forget every page of the old listing and fetch the new one from the top."""
        self.beginResetModel()
        self._pages.clear()
        self._pending.clear()
        self._touched.clear()
        self._total = 0
        self._generation += 1
        self._total_generation = -1
        self.endResetModel()
        self.total_changed.emit(0)
        self.refresh()

    def clear(self) -> None:
        """Forget everything (the server went away); fetch nothing until enabled again."""
        self._enabled = False
        self.beginResetModel()
        self._pages.clear()
        self._pending.clear()
        self._touched.clear()
        self._total = 0
        self._generation += 1
        self._total_generation = -1
        self.endResetModel()
        self.total_changed.emit(0)

    def refresh(self) -> None:
        """Ask again for the first page (for the total) and for the pages on screen."""
        if not self._enabled:
            return
        self._generation += 1
        self._pending.clear()
        wanted = self._touched | {0}
        self._touched = set()
        for number in sorted(wanted):
            self._request(number)

    def on_page(self, reply: PageReply) -> None:
        """A page arrived (or failed): cache it, adjust the row count, repaint its rows."""
        req = reply.request
        if (req.state, req.search, req.order, req.job) != (self._state, self._search,
                                                             self._order, self._job):
            return  # an answer for a listing no longer shown
        number = req.offset // self.page_size
        if req.generation == self._generation:
            self._pending.discard(number)
        if reply.error is not None or reply.page is None:
            self.load_failed.emit(reply.error or "no page")
            return
        held = self._pages.get(number)
        if held is not None and held.generation > req.generation:
            return
        if req.generation >= self._total_generation:
            self._total_generation = req.generation
            self._not_held = reply.page.not_held
            self._set_total(reply.page.total)
        self._pages[number] = _Page(req.generation, reply.page.tasks)
        self._pages.move_to_end(number)
        while len(self._pages) > self.max_pages:
            self._pages.popitem(last=False)
        first = number * self.page_size
        last = min(first + self.page_size, self._total) - 1
        if last >= first:
            self.dataChanged.emit(self.index(first, 0), self.index(last, len(self.HEADERS) - 1))
        self.page_arrived.emit()

    def row_of(self, task_id: int) -> int | None:
        """The row a task is on, if it is in a cached page of the current generation or older."""
        for number, page in sorted(self._pages.items(), key=lambda kv: -kv[1].generation):
            for i, t in enumerate(page.tasks):
                if t.id == task_id:
                    row = number * self.page_size + i
                    return row if row < self._total else None
        return None

    def _request(self, number: int) -> None:
        if not self._enabled or number in self._pending:
            return
        self._pending.add(number)
        self.page_needed.emit(PageRequest(self._state, self._search, number * self.page_size,
                                          self.page_size, self._generation, self._order,
                                          self._job))

    def _set_total(self, total: int) -> None:
        total = max(0, int(total))
        old = self._total
        if total == old:
            return
        if total > old:
            self.beginInsertRows(_NO_INDEX, old, total - 1)
            self._total = total
            self.endInsertRows()
        else:
            self.beginRemoveRows(_NO_INDEX, total, old - 1)
            self._total = total
            last_page = (total - 1) // self.page_size if total else -1
            for number in [n for n in self._pages if n > last_page]:
                del self._pages[number]
            self.endRemoveRows()
        self.total_changed.emit(total)


# ---------------------------------------------------------------------- events


class EventLogModel(_RowsModel):
    """The event log: server events and the window's own notes, newest last, capped.

    A line with a key (failures of one kind) is updated in place while it is among the last
    few, rather than repeated: 200 identical failures are one line that counts.
    """

    COL_TIME, COL_KIND, COL_MESSAGE = range(3)
    HEADERS = ("Time", "Kind", "Message")
    MAX_ROWS = 5000
    #: How far back a keyed line is looked for before a new one is started.
    FOLD_ROWS = 50

    def __init__(self, parent: Any = None, max_rows: int = MAX_ROWS) -> None:
        super().__init__(parent)
        self.max_rows = max_rows
        self._rows: list[tuple[float, str, str]] = []
        self._keys: list[object] = []  # parallel to _rows: the fold key of each row, or None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        when, kind, message = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (fmt_clock(when), kind, message)[col]
        if role == Qt.ItemDataRole.ForegroundRole and col != self.COL_TIME:
            color = EVENT_COLORS.get(kind)
            return qcolor(state_color(kind)) if color else None
        if role == Qt.ItemDataRole.ToolTipRole:
            # Every column: a cut line is readable by hovering anywhere on it.
            return f"{fmt_clock(when)} {kind}: {message}"
        return None

    def add_events(self, events: Sequence[Event]) -> None:
        """Append the server's events."""
        self.add_rows([(e.time, e.kind, e.message) for e in events])

    def add_note(self, when: float, kind: str, message: str, key: object = None) -> None:
        """Append one line from the window itself (server started, submission finished…);
        with a key, update the recent line of that key instead, if there is one."""
        if key is not None:
            start = max(0, len(self._rows) - self.FOLD_ROWS)
            for row in range(len(self._rows) - 1, start - 1, -1):
                if self._keys[row] == key:
                    self._rows[row] = (when, kind, message)
                    self.dataChanged.emit(self.index(row, 0),
                                          self.index(row, len(self.HEADERS) - 1))
                    return
        self.add_rows([(when, kind, message)], [key])

    def add_rows(self, rows: Sequence[tuple[float, str, str]],
                 keys: Sequence[object] | None = None) -> None:
        """Append rows, dropping the oldest beyond max_rows."""
        if not rows:
            return
        keys = list(keys) if keys is not None else [None] * len(rows)
        rows, keys = list(rows)[-self.max_rows:], keys[-self.max_rows:]
        overflow = len(self._rows) + len(rows) - self.max_rows
        if overflow > 0:
            self.beginRemoveRows(_NO_INDEX, 0, overflow - 1)
            del self._rows[:overflow]
            del self._keys[:overflow]
            self.endRemoveRows()
        first = len(self._rows)
        self.beginInsertRows(_NO_INDEX, first, first + len(rows) - 1)
        self._rows.extend(rows)
        self._keys.extend(keys)
        self.endInsertRows()

    def clear(self) -> None:
        """Empty the log."""
        self.beginResetModel()
        self._rows.clear()
        self._keys.clear()
        self.endResetModel()

    def row(self, i: int) -> tuple[float, str, str]:
        """(time, kind, message) of a row."""
        return self._rows[i]

    def rows(self) -> list[tuple[float, str, str]]:
        """Every row, oldest first."""
        return list(self._rows)
