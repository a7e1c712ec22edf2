"""Table models tested directly, without a view (vorta's pattern)."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtTest import QAbstractItemModelTester

from guidist.core.protocol import Event, Task, TaskPage, TaskState, WorkerInfo, WorkerState
from guidist.gui.models import EventLogModel, PageReply, PageRequest, TasksModel, WorkersModel

DISPLAY = Qt.ItemDataRole.DisplayRole


def _worker(wid: str, pid: int, state: WorkerState = WorkerState.IDLE, done: int = 0,
            kind: str = "guidist", last_seen: float = 100.0) -> WorkerInfo:
    return WorkerInfo(id=wid, name=wid.split("#")[0], host="box", pid=pid, kind=kind,
                      state=state, joined=90.0, last_seen=last_seen, done=done)


def _tasks(first: int, n: int, state: TaskState = TaskState.QUEUED) -> tuple[Task, ...]:
    return tuple(Task(i, "square", (i,), state=state, submitted=1.0) for i in
                 range(first, first + n))


class FakeLedger:
    """Answers the model's page requests from a list, like the server would."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.requests: list[PageRequest] = []

    def ask(self, req: PageRequest) -> None:
        """The model's page_needed signal lands here."""
        self.requests.append(req)

    def page(self, req: PageRequest) -> PageReply:
        n = max(0, min(req.limit, self.total - req.offset))
        return PageReply(req, TaskPage(self.total, req.offset, _tasks(req.offset + 1, n)))

    def serve(self, model: TasksModel) -> int:
        """Answer every request so far; returns how many were answered."""
        pending, self.requests = self.requests, []
        for req in pending:
            model.on_page(self.page(req))
        return len(pending)


def _tasks_model(qtbot, total: int, **kwargs) -> tuple[TasksModel, FakeLedger]:
    model = TasksModel(**kwargs)
    ledger = FakeLedger(total)
    model.page_needed.connect(ledger.ask)
    QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Fatal)
    model.set_enabled(True)
    return model, ledger


# ---------------------------------------------------------------------- workers


def test_workers_model_rows_columns_and_data(qtbot) -> None:
    model = WorkersModel()
    QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Fatal)
    assert model.rowCount() == 0 and model.columnCount() == len(WorkersModel.HEADERS)
    workers = [_worker("local-1#1", 11, WorkerState.BUSY, done=5),
               _worker("remote#2", 22),
               _worker("classic:1@10.0.0.2", 0, kind="classic")]
    model.set_workers(workers, local_pids={11}, now=103.5)
    assert model.rowCount() == 3
    assert model.headerData(WorkersModel.COL_HEARTBEAT, Qt.Orientation.Horizontal) == \
        "Last heartbeat"
    col = {c: model.index(0, c).data() for c in range(model.columnCount())}
    assert col[WorkersModel.COL_NAME] == "local-1"
    assert col[WorkersModel.COL_WHERE] == "local"
    assert col[WorkersModel.COL_STATE] == "busy"
    assert col[WorkersModel.COL_DONE] == "5"
    assert col[WorkersModel.COL_HEARTBEAT] == "3.5 s ago"
    assert col[WorkersModel.COL_PID] == "11"
    assert model.index(1, WorkersModel.COL_WHERE).data() == "remote"
    assert model.index(2, WorkersModel.COL_WHERE).data() == "classic"
    assert model.index(0, 0).data(WorkersModel.WorkerRole) is workers[0]
    assert model.is_local(workers[0]) and not model.is_local(workers[1])


def test_workers_model_updates_in_place_and_badges_offline(qtbot) -> None:
    model = WorkersModel()
    a, b = _worker("a#1", 1), _worker("b#2", 2)
    model.set_workers([a, b], {1, 2}, 100.0)
    removed: list[int] = []
    inserted: list[int] = []
    reset: list[bool] = []
    model.rowsRemoved.connect(lambda _p, first, _l: removed.append(first))
    model.rowsInserted.connect(lambda _p, first, _l: inserted.append(first))
    model.modelReset.connect(lambda: reset.append(True))
    # a goes offline, b stays, c joins: a's row keeps its place, c is appended, no reset.
    c = _worker("c#3", 3)
    model.set_workers([_worker("a#1", 1, WorkerState.OFFLINE), b, c], {2, 3}, 100.0)
    assert not reset and not removed and inserted == [2]
    assert [model.worker(r).id for r in range(3)] == ["a#1", "b#2", "c#3"]
    state = model.index(0, WorkersModel.COL_STATE)
    assert state.data() == "OFFLINE"
    assert state.data(Qt.ItemDataRole.FontRole).bold()
    # b leaves the server's list: only its row goes.
    model.set_workers([_worker("a#1", 1, WorkerState.OFFLINE), c], {3}, 100.0)
    assert removed == [1] and [model.worker(r).id for r in range(2)] == ["a#1", "c#3"]


def test_workers_model_shows_running_apart_from_claimed(qtbot) -> None:
    model = WorkersModel()
    w = WorkerInfo("a#1", "a", "box", 7, state=WorkerState.BUSY, running=1, claimed=40,
                   current_task=12)
    model.set_workers([w], {7}, 100.0)
    assert model.index(0, WorkersModel.COL_RUNNING).data() == "1"
    assert model.index(0, WorkersModel.COL_CLAIMED).data() == "40"
    assert "1 running and 40 claimed" in model.index(0, 0).data(Qt.ItemDataRole.ToolTipRole)


def test_a_killed_worker_reads_dead_and_local_at_once(qtbot) -> None:
    model = WorkersModel()
    busy = WorkerInfo("a#1", "a", "box", 7, state=WorkerState.BUSY, running=1, claimed=3,
                      current_task=5)
    other = _worker("b#2", 8)
    model.set_workers([busy, other], {7, 8}, 100.0)
    model.mark_killed({7})
    # The server has not noticed yet (busy, and the pid is no longer a live local one).
    model.set_workers([busy, other], {8}, 100.5)
    state = model.index(0, WorkersModel.COL_STATE)
    assert state.data() == WorkersModel.KILLED and state.data(Qt.ItemDataRole.FontRole).bold()
    assert model.index(0, WorkersModel.COL_WHERE).data() == "local"  # never "remote"
    assert model.index(0, WorkersModel.COL_TASK).data() == ""
    assert model.index(0, WorkersModel.COL_CLAIMED).data() == ""
    assert not model.is_local(model.worker(0))  # nothing more to kill or stop there
    assert model.index(1, WorkersModel.COL_STATE).data() == "idle"
    # Once the server marks it offline, it still reads as killed.
    model.set_workers([_worker("a#1", 7, WorkerState.OFFLINE), other], {8}, 101.0)
    assert model.index(0, WorkersModel.COL_STATE).data() == WorkersModel.KILLED


# ---------------------------------------------------------------------- tasks


def test_tasks_model_fetches_pages_on_demand(qtbot) -> None:
    model, ledger = _tasks_model(qtbot, 1000, page_size=100)
    assert ledger.requests and ledger.requests[0].offset == 0  # enabling asks for the top
    assert model.rowCount() == 0
    ledger.serve(model)
    assert model.rowCount() == 1000 and model.total == 1000
    assert model.index(0, TasksModel.COL_ID).data() == "1"
    assert model.index(99, TasksModel.COL_ARGS).data() == "100"
    assert model.index(0, TasksModel.COL_STATE).data() == "queued"
    # A row on a page not loaded yet: a placeholder, and exactly one request for that page.
    assert model.index(550, TasksModel.COL_ID).data() is None
    assert model.index(550, TasksModel.COL_STATE).data() == "loading…"
    assert model.index(599, TasksModel.COL_ID).data() is None
    assert [r.offset for r in ledger.requests] == [500]
    ledger.serve(model)
    assert model.index(550, TasksModel.COL_ID).data() == "551"
    assert model.index(550, 0).data(TasksModel.TaskRole).args == (551,)
    assert model.cached_pages == 2


def test_a_million_tasks_cost_no_more_than_a_hundred(qtbot) -> None:
    small, small_ledger = _tasks_model(qtbot, 100)
    small_ledger.serve(small)
    big, big_ledger = _tasks_model(qtbot, 1_000_000)
    big_ledger.serve(big)
    assert big.rowCount() == 1_000_000
    assert big.cached_pages == small.cached_pages == 1
    # Reading rows anywhere loads only their pages, and the cache stays bounded.
    for row in range(0, 900_000, 3_000):
        big.task_at(row)
        big_ledger.serve(big)
    assert big.cached_pages == TasksModel.MAX_PAGES
    assert big.task_at(999_999) is None
    big_ledger.serve(big)
    assert big.task_at(999_999).id == 1_000_000


def test_refresh_keeps_rows_until_fresh_pages_arrive(qtbot) -> None:
    model, ledger = _tasks_model(qtbot, 500, page_size=100)
    ledger.serve(model)
    model.task_at(250)
    ledger.serve(model)
    model.refresh()
    offsets = {r.offset for r in ledger.requests}
    # The first page (for the total) and the page read since; not the pages never shown.
    assert {0, 200} <= offsets and not offsets & {100, 300}
    assert model.index(250, TasksModel.COL_ID).data() == "251"  # stale, still shown
    # The ledger shrank meanwhile: the rows go, nothing breaks.
    ledger.total = 150
    ledger.serve(model)
    assert model.rowCount() == 150
    assert model.task_at(149) is None  # its page was never loaded: asked for now
    ledger.serve(model)
    assert model.task_at(149).id == 150


def test_stale_and_foreign_replies_are_ignored(qtbot) -> None:
    model, ledger = _tasks_model(qtbot, 300, page_size=100)
    first = ledger.requests.pop()
    model.set_filter("failed")
    assert model.filter == ("failed", None) and model.rowCount() == 0
    model.on_page(ledger.page(first))  # an answer for the old listing
    assert model.rowCount() == 0
    req = ledger.requests.pop()
    assert req.state == "failed" and req.offset == 0
    model.on_page(PageReply(req, TaskPage(3, 0, _tasks(1, 3, TaskState.FAILED))))
    assert model.rowCount() == 3
    failures: list[str] = []
    model.load_failed.connect(failures.append)
    model.refresh()
    model.on_page(PageReply(ledger.requests.pop(), error="The server is not answering."))
    assert failures == ["The server is not answering."] and model.rowCount() == 3


def test_search_resets_and_row_of_finds_tasks(qtbot) -> None:
    model, ledger = _tasks_model(qtbot, 400, page_size=100)
    ledger.serve(model)
    assert model.row_of(42) == 41 and model.row_of(399) is None
    model.set_filter(None, "  square ")
    assert model.filter == (None, "square")
    assert ledger.requests[-1].search == "square"
    model.clear()
    assert model.rowCount() == 0
    asked = len(ledger.requests)
    model.refresh()
    model.task_at(0)
    assert len(ledger.requests) == asked  # cleared: nothing is fetched until enabled again


def test_tasks_model_shows_results_errors_and_durations(qtbot) -> None:
    model = TasksModel()
    model.set_enabled(True)
    req = PageRequest(None, None, 0, TasksModel.PAGE_SIZE, model._generation)
    done = Task(1, "square", (3,), None, TaskState.DONE, 1, 10.0, 10.5, 10.75, "w#1", 9)
    failed = Task(2, "fail", (1.0,), {"x": 1}, TaskState.FAILED, 1, 10.0, 11.0, 12.0, "w#1",
                  None, "Traceback…\nRuntimeError: random failure")
    model.on_page(PageReply(req, TaskPage(2, 0, (done, failed))))
    assert model.index(0, TasksModel.COL_OUTCOME).data() == "9"
    assert model.index(0, TasksModel.COL_DURATION).data() == "250 ms"
    assert model.index(1, TasksModel.COL_OUTCOME).data() == "RuntimeError: random failure"
    assert model.index(1, TasksModel.COL_ARGS).data() == "1.0, x=1"
    assert model.index(1, TasksModel.COL_STATE).data(Qt.ItemDataRole.ForegroundRole) \
        is not None
    assert model.index(1, TasksModel.COL_OUTCOME).data(Qt.ItemDataRole.ToolTipRole) \
        .startswith("Traceback")
    assert model.data(QModelIndex()) is None


# ---------------------------------------------------------------------- events


def test_event_log_model_appends_and_caps(qtbot) -> None:
    model = EventLogModel(max_rows=5)
    QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Fatal)
    model.add_events([Event(i, 1000.0 + i, "worker-joined", f"event {i}") for i in range(3)])
    model.add_note(2000.0, "control", "server started")
    assert model.rowCount() == 4 and model.columnCount() == 3
    assert model.index(3, EventLogModel.COL_MESSAGE).data() == "server started"
    assert model.index(0, EventLogModel.COL_KIND).data() == "worker-joined"
    assert model.index(0, EventLogModel.COL_KIND).data(Qt.ItemDataRole.ForegroundRole) \
        is not None
    model.add_events([Event(i, 3000.0 + i, "requeued", f"late {i}") for i in range(4)])
    assert model.rowCount() == 5
    assert model.row(0)[2] == "server started" and model.row(4)[2] == "late 3"
    model.clear()
    assert model.rowCount() == 0
