"""The live plots: ring buffer, one setData per curve, windows, pause, export."""

from __future__ import annotations

import csv

import numpy as np

from guidist.core.protocol import SERIES_FIELDS
from guidist.gui.plots import LivePlots, SeriesBuffer


def _points(first: int, n: int) -> list[tuple]:
    # t, submitted, done, failed, requeued, queued, running, workers
    return [(t, 10, t % 7, 1, 0, 100 - t % 50, 3, 2) for t in range(first, first + n)]


def test_ring_buffer_keeps_the_newest_points_in_order() -> None:
    buf = SeriesBuffer(capacity=10)
    assert len(buf) == 0 and buf.view().shape == (0, len(SERIES_FIELDS))
    assert buf.extend(_points(1, 4)) == 4
    assert buf.extend(_points(3, 3)) == 1  # seconds already held are ignored
    assert list(buf.column("t")) == [1, 2, 3, 4, 5]
    buf.extend(_points(6, 12))
    assert len(buf) == 10
    assert list(buf.column("t")) == list(range(8, 18))
    assert list(buf.column("t", last=3)) == [15, 16, 17]
    view = buf.view()
    assert view.base is not None  # a view into the preallocated array, not a copy
    buf.clear()
    assert len(buf) == 0 and buf.extend(_points(1, 1)) == 1


def test_plots_draw_the_window_and_follow_pause(qtbot) -> None:
    plots = LivePlots(capacity=1200)
    qtbot.addWidget(plots)
    plots.resize(800, 500)
    plots.show()
    assert plots.throughput_plot.objectName() == "throughputPlot"
    assert plots.queue_plot.objectName() == "queueDepthPlot"
    plots.add_points(_points(1000, 900))
    x, y = plots.curves["done"].getData()
    assert len(x) == 60  # the 1-minute window
    raw = plots.buffer.column("done", 64)
    # Throughput is a 5-second trailing mean by default; gauges are never smoothed.
    assert np.allclose(y, [raw[i - 4:i + 1].mean() for i in range(4, 64)])
    assert np.array_equal(plots.curves["queued"].getData()[1],
                          plots.buffer.column("queued", 60))
    plots.smooth_button.setChecked(False)
    assert np.array_equal(plots.curves["done"].getData()[1], plots.buffer.column("done", 60))
    plots.set_window(600)
    assert plots.window_combo.currentText() == "10 min"
    assert len(plots.curves["queued"].getData()[0]) == 600
    assert "done/s" in plots.rate_label.text()

    # x is seconds before now: the newest point is the middle of the last second.
    assert plots.curves["done"].getData()[0][-1] == -0.5
    plots.pause_button.click()
    assert plots.paused and plots.pause_button.text() == "Resume"
    before = plots.curves["queued"].getData()[1].copy()
    plots.add_points(_points(1900, 5))
    assert np.array_equal(plots.curves["queued"].getData()[1], before)  # frozen while paused
    assert len(plots.buffer) == 905  # but the data kept coming
    plots.set_paused(False)
    assert np.array_equal(plots.curves["queued"].getData()[1],
                          plots.buffer.column("queued", 600))


def test_export_csv_and_png(qtbot, tmp_path) -> None:
    plots = LivePlots()
    qtbot.addWidget(plots)
    plots.resize(600, 400)
    plots.show()
    plots.add_points(_points(50, 30))
    n = plots.export_csv(tmp_path / "series.csv")
    rows = list(csv.reader((tmp_path / "series.csv").open()))
    assert n == 30 and rows[0] == list(SERIES_FIELDS) and rows[1][0] == "50"
    assert plots.export_png(tmp_path / "plots.png")
    assert (tmp_path / "plots.png").stat().st_size > 1000


def test_claimed_tasks_have_their_own_curve_beside_running(qtbot) -> None:
    plots = LivePlots(capacity=100)
    qtbot.addWidget(plots)
    # t, submitted, done, failed, requeued, queued, running, workers, claimed
    plots.add_points([(t, 0, 0, 0, 0, 5, 2, 2, 40 + t) for t in range(1, 11)])
    assert list(plots.curves["claimed"].getData()[1][-3:]) == [48, 49, 50]
    assert list(plots.curves["running"].getData()[1][-3:]) == [2, 2, 2]
    assert "50</b> claimed" in plots.rate_label.text()
    # Points from a server that does not send the claimed field yet read as zero.
    plots.add_points([(11, 0, 0, 0, 0, 5, 2, 2)])
    assert plots.buffer.column("claimed", last=1)[0] == 0
