"""Failures a person can see: folded into Event log lines, a banner with the fix for a burst."""

from __future__ import annotations

from guidist.core.protocol import Task, TaskState
from guidist.gui.failures import (
    BURST,
    SAMPLE,
    FailureDigest,
    NewFailures,
    error_line,
    fix_for,
)
from guidist.gui.main_window import MainWindow

from .conftest import WAIT_MS, launch_workers, start_server

_IMPORT_ERROR = ("TaskNotFound: cannot import 'mytasks' for task 'mytasks:f': "
                 "No module named 'othermod'")


def _failed(tid: int, error: str, finished: float, function: str = "mytasks:f") -> Task:
    return Task(tid, function, (tid,), None, TaskState.FAILED, 1, finished - 1, finished - 0.5,
                finished, "w", None, error)


def test_error_line_and_the_fixes_we_know() -> None:
    tb = "Traceback (most recent call last):\n  File ...\nValueError: boom\n\n"
    assert error_line(tb) == "ValueError: boom"
    assert error_line("") == "(no error text)"
    assert fix_for(_IMPORT_ERROR) == ("Workers cannot import othermod: start them in the folder "
                                      "that holds it, or pass --path.")
    no_function = fix_for("TaskNotFound: 'mytasks' has no attribute 'g'")
    assert no_function is not None and "mytasks has no function g" in no_function
    assert fix_for("ValueError: boom") is None


def test_new_failures_are_picked_once() -> None:
    cursor = NewFailures()
    page = [_failed(i, "E", 100.0 + i) for i in (5, 4, 3)]  # newest first, as listed
    new, more = cursor.pick(page)
    assert [t.id for t in new] == [3, 4, 5] and not more
    assert cursor.pick(page) == ([], False)
    page2 = [_failed(7, "E", 108.0), _failed(6, "E", 107.0)] + page[:1]
    assert [t.id for t in cursor.pick(page2)[0]] == [6, 7]
    # A retried task that fails again is new again (same id, later finish).
    assert [t.id for t in cursor.pick([_failed(5, "E", 120.0)] + page2[:2])[0]] == [5]
    full = [_failed(1000 + i, "E", 200.0 + i) for i in range(SAMPLE, 0, -1)]
    assert cursor.pick(full)[1]  # a page of nothing but new ones: there may be more


def test_digest_folds_identical_errors_and_raises_one_burst() -> None:
    digest = FailureDigest()
    lines, burst = digest.add([_failed(i, _IMPORT_ERROR, 50.0 + i / 100) for i in range(5)],
                              now=51.0)
    assert len(lines) == 1 and burst is None
    assert lines[0].text() == f"5 × mytasks:f failed: {_IMPORT_ERROR}"
    lines, burst = digest.add([_failed(i, _IMPORT_ERROR, 51.0) for i in range(5, 200)],
                              now=51.5)
    assert lines[0].text().startswith("200 × mytasks:f failed: TaskNotFound:")
    assert burst is not None and burst.count == 200
    assert "Workers cannot import othermod" in burst.text()
    # The same burst is announced once; a different error gets its own line.
    lines, burst = digest.add([_failed(300, "KeyError: 'x'", 52.0)], now=52.0)
    assert burst is None and lines[0].text() == "1 × mytasks:f failed: KeyError: 'x'"
    assert len(digest.lines) == 2


def test_deliberate_failures_are_labelled_and_never_a_banner() -> None:
    digest = FailureDigest()
    digest.deliberate = frozenset({"fail"})
    tasks = [_failed(i, "RuntimeError: random failure", 10.0, "fail") for i in range(BURST * 2)]
    lines, burst = digest.add(tasks, now=10.0)
    assert burst is None and "deliberate" in lines[0].text()


def test_an_unimportable_module_shows_in_the_event_log_and_a_banner(
        qtbot, window: MainWindow) -> None:
    """Every task fails within a second: the window says so, once per kind of error, and how
    to fix it, without filtering, selecting or scrolling."""
    win = window
    start_server(qtbot, win)
    launch_workers(qtbot, win, 1)
    panel = win.submit_panel
    panel.set_preset("custom")
    panel.function_edit.setText("guidist_no_such_module_x:f")
    panel.set_mode("fixed")
    panel.value_edit.setText("1")
    panel.count_spin.setValue(200)
    panel.enqueue_button.click()
    qtbot.waitUntil(lambda: win.last_snapshot is not None
                    and win.last_snapshot.count("failed") == 200, timeout=WAIT_MS)
    log = win.event_dock.model

    def failure_lines() -> list[str]:
        return [m for _, kind, m in log.rows() if kind == "failed"]

    qtbot.waitUntil(lambda: any(m.startswith("200 × guidist_no_such_module_x:f failed")
                                for m in failure_lines()), timeout=WAIT_MS)
    lines = failure_lines()
    assert len(lines) == 1, lines  # 200 failures, one line that counts them
    assert "No module named 'guidist_no_such_module_x'" in lines[0]
    qtbot.waitUntil(lambda: "Workers cannot import guidist_no_such_module_x" in win.banner.text,
                    timeout=WAIT_MS)
    assert "--path" in win.banner.text and win.banner.action_button.isVisible()
    win.banner.action_button.click()  # "Show failed tasks"
    assert win.tasks_panel.state_combo.currentData() == "failed"
    assert not win.banner.isVisible()
