"""Numbers that agree: header, tiles, status bar and table once settled; Detach clears them;
retries are counted; what is listed when the server holds only the newest finished tasks."""

from __future__ import annotations

import re

from guidist.core.protocol import TaskState
from guidist.gui.main_window import MainWindow

from .conftest import WAIT_MS, launch_workers, start_server


def _enqueue(win: MainWindow, preset: str, count: int, value: str = "") -> None:
    panel = win.submit_panel
    panel.set_preset(preset)
    panel.set_mode("fixed")
    panel.count_spin.setValue(count)
    panel.value_edit.setText(value)
    panel.enqueue_button.click()


def _numbers(text: str) -> list[int]:
    return [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", re.sub(r"<[^>]+>", "",
                                                                              text))]


def _loaded_states(win: MainWindow) -> list[str]:
    model = win.tasks_panel.model
    return [t.state.value for r in range(model.total) if (t := model.task_at(r)) is not None]


def test_the_views_agree_once_the_tasks_are_done(qtbot, window: MainWindow) -> None:
    win = window
    start_server(qtbot, win)
    launch_workers(qtbot, win, 2)
    _enqueue(win, "sleep", 120, "0.01")
    qtbot.waitUntil(lambda: win.last_snapshot is not None
                    and win.last_snapshot.count("done") == 120, timeout=WAIT_MS)
    snap = win.last_snapshot
    tiles = {k: win.totals_panel.values[k].text() for k in ("queued", "running", "done")}
    assert tiles == {"queued": "0", "running": "0", "done": "120"}
    # The Live header says the same as the tiles (it used the last one-second point).
    header = win.plots.rate_label.text()
    assert "<b style='color:" in header
    assert re.search(r">0</b> queued", header) and re.search(r">0</b> running", header)
    assert win.counts_label.text().startswith("0 queued · 0 claimed · 0 running · 120 done")
    assert win.workers_label.text() == "2 workers" and snap.connected_workers == 2
    # The table settles too: no stale "running" rows once everything is done.
    qtbot.waitUntil(lambda: win.tasks_panel.model.total == 120
                    and len(_loaded_states(win)) == 120
                    and set(_loaded_states(win)) == {"done"}, timeout=WAIT_MS)
    assert win.tasks_panel.count_label.text() == "120 tasks"


def test_detach_clears_every_number(qtbot, window: MainWindow, server_factory) -> None:
    from ..conftest import TEST_KEY

    srv = server_factory()
    host, port = srv.address
    win = window
    from guidist.core.client import Client

    with Client(srv.address, TEST_KEY) as c:
        c.submit_many("square", [(i,) for i in range(10)])
    win.attach_to((host, port), TEST_KEY)
    qtbot.waitUntil(lambda: win.controller.status.online and win.last_snapshot is not None,
                    timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "10</b> queued" in win.plots.rate_label.text()
                    or win.totals_panel.values["queued"].text() == "10", timeout=WAIT_MS)
    win.stop_server()  # Detach
    qtbot.waitUntil(lambda: win.controller.status.mode.value == "none", timeout=WAIT_MS)
    assert win.totals_panel.values["queued"].text() == "–"
    assert "10" not in win.plots.rate_label.text() and "No server" in win.plots.rate_label.text()
    assert win.counts_label.text() == "no server"


def test_a_retry_is_counted_and_logged_once(qtbot, window: MainWindow) -> None:
    win = window
    start_server(qtbot, win)
    launch_workers(qtbot, win, 1)
    _enqueue(win, "fail", 1, "1.0")  # fails every time
    qtbot.waitUntil(lambda: win.last_snapshot is not None
                    and win.last_snapshot.count("failed") == 1, timeout=WAIT_MS)
    win.tasks_panel.state_combo.setCurrentIndex(win.tasks_panel.state_combo.findData("failed"))
    qtbot.waitUntil(lambda: win.tasks_panel.model.task_at(0) is not None, timeout=WAIT_MS)
    win.tasks_panel.select_row(0)
    log = win.event_dock.model
    before = len(log.rows())
    win.tasks_panel.retry_button.click()
    qtbot.waitUntil(lambda: win.last_snapshot.requeued == 1
                    and win.last_snapshot.count("failed") == 1
                    and win.last_snapshot.count("queued") == 0
                    and win.last_snapshot.count("running") == 0, timeout=WAIT_MS)
    assert win.totals_panel.values["requeued"].text() == "1"
    # The task's attempts went on counting (they went back to 1).
    qtbot.waitUntil(lambda: win.tasks_panel.model.task_at(0) is not None
                    and win.tasks_panel.model.task_at(0).attempts == 2, timeout=WAIT_MS)
    retry_lines = [m for _, _, m in log.rows()[before:] if "again" in m or "retry" in m]
    assert retry_lines == ["1 task(s) queued again for retry"], retry_lines


def test_the_count_says_when_the_server_lists_only_the_newest(qtbot, window: MainWindow) -> None:
    """136,019 tasks became "20,028 tasks" without a word: the server keeps the newest 20,000
    successes in memory. The count now says what is listed and where the rest are."""
    win = window
    start_server(qtbot, win)
    launch_workers(qtbot, win, 2)
    _enqueue(win, "square", 20_300, "3")
    qtbot.waitUntil(lambda: win.last_snapshot is not None
                    and win.last_snapshot.count("done") == 20_300, timeout=WAIT_MS)
    label = win.tasks_panel.count_label
    qtbot.waitUntil(lambda: "not held in memory" in label.text(), timeout=WAIT_MS)
    listed, missing = _numbers(label.text())[:2]
    assert listed == win.tasks_panel.model.total and listed + missing == 20_300
    assert label.text() == f"{listed:,} tasks listed · {missing:,} older finished not held " \
        "in memory"
    assert "counts 20,300" in label.toolTip() and "journal" in label.toolTip()
    win.tasks_panel.state_combo.setCurrentIndex(win.tasks_panel.state_combo.findData("done"))
    qtbot.waitUntil(lambda: label.text().startswith(f"{listed:,} done tasks listed"),
                    timeout=WAIT_MS)
    assert TaskState.DONE.value in label.text()
