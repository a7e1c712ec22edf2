"""The Functions view, the Task stream and the metrics preference, in a real window."""

from __future__ import annotations

import socket
import urllib.request

from PySide6.QtWidgets import QDockWidget

from guidist.core.client import Client
from guidist.gui.main_window import MainWindow

from .conftest import WAIT_MS, launch_workers, start_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tasks_show_in_the_stream_and_the_functions_view_and_metrics_are_served(
        qtbot, window: MainWindow) -> None:
    win = window
    port = _free_port()
    win.session_prefs.metrics_port = port
    start_server(qtbot, win)
    launch_workers(qtbot, win, 1)
    win.findChild(QDockWidget, "workersDock").raise_()  # the Functions tab is behind it
    with Client(win.controller.status.address, win.controller.key) as c:
        c.submit_many("sleep", [0.05] * 6)
        c.submit_many("tests.jobs:boom", [1])
    stream = win.stream_panel.model
    qtbot.waitUntil(lambda: sum(b.count for b in stream.bars()) >= 7, timeout=WAIT_MS)
    assert any(b.failed for b in stream.bars())
    functions = win.functions_panel
    # A tab behind the workers is filled only once raised (nobody sees it meanwhile).
    qtbot.waitUntil(lambda: len(win.last_snapshot.functions) == 2, timeout=WAIT_MS)
    assert not functions.on_screen
    assert functions.table.rowCount() == 0
    win.findChild(QDockWidget, "functionsDock").raise_()
    qtbot.waitUntil(lambda: functions.table.rowCount() == 2, timeout=WAIT_MS)
    names = {functions.table.item(r, 0).text() for r in range(2)}
    assert names == {"sleep", "tests.jobs:boom"}
    assert functions.selected_function() in names  # its histogram is drawn
    host = win.controller.status.address[0]
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    assert 'guidist_tasks_total{state="done"} 6.0' in text


def test_the_function_column_fits_its_header_and_names_in_a_narrow_table(qtbot) -> None:
    from types import SimpleNamespace

    from guidist.core.histogram import add_many, empty_counts
    from guidist.core.protocol import FunctionStats
    from guidist.gui.panels.insight import FunctionsPanel

    counts = empty_counts()
    add_many(counts, [0.5, 12.0, 7200.0])
    names = ("square", "tests.jobs:slow_square", "io_wait")
    stats = tuple(FunctionStats(name, done=12_345_678, failed=1_234_567, counts=tuple(counts),
                                runtime_sum=98_765.4, runtime_max=7200.0) for name in names)
    panel = FunctionsPanel()
    qtbot.addWidget(panel)
    panel.resize(560, 300)  # a dock's worth at 1440x900, the histogram beside the table
    panel.show()
    qtbot.waitExposed(panel)
    panel.set_snapshot(SimpleNamespace(functions=stats))  # the one field the panel reads
    table = panel.table
    header = table.horizontalHeader()

    def fits(column: int) -> bool:  # Qt's own measure of the header and of the cells
        need = max(header.sectionSizeHint(column), table.sizeHintForColumn(column))
        return header.sectionSize(column) >= need

    qtbot.waitUntil(lambda: all(fits(c) for c in range(table.columnCount())), timeout=5_000)
    assert table.item(1, 0).text() == "tests.jobs:slow_square"
