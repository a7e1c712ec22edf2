"""The live plots: ring buffer, one setData per curve, windows, pause, export."""

from __future__ import annotations

import csv

import numpy as np

from guidist.core.protocol import SERIES_FIELDS
from guidist.gui.plots import LivePlots, SeriesBuffer, _SiAxis, smooth
from guidist.gui.style import fmt_si


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
    raw = plots.buffer.column("done", 63)
    # Throughput is smoothed by default (over the 3 s before the window too); gauges never.
    assert np.allclose(y, smooth(raw)[3:])
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
    with (tmp_path / "series.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert n == 30 and rows[0] == list(SERIES_FIELDS) and rows[1][0] == "50"
    assert plots.export_png(tmp_path / "plots.png")
    assert (tmp_path / "plots.png").stat().st_size > 1000


def test_smoothing_keeps_a_short_burst_a_short_peak() -> None:
    """A burst under a second was drawn as a 5-second plateau by the old trailing mean."""
    y = np.zeros(30)
    y[12] = 900.0  # 900 tasks reported in one second, nothing around it
    s = smooth(y)
    assert int(np.argmax(s)) == 12  # where it happened, not seconds later
    assert abs(s.sum() - 900.0) < 1e-6  # no task invented or lost
    assert s[12] > 1.5 * s[11] and s[12] > 1.5 * s[13]  # a peak, not a plateau
    assert s[14] < 0.2 * s[12] and s[10] < 0.2 * s[12]  # mostly gone 2 s either side
    assert s[15] < 0.02 * s[12] and s[9] < 0.02 * s[12]  # and all but gone at 3 s
    assert np.all(s[:8] == 0) and np.all(s[17:] == 0)
    flat = smooth(np.full(10, 7.0))
    assert np.allclose(flat, 7.0)  # a steady rate stays that rate, even at the ends


def test_axes_use_si_prefixes_at_high_rates(qtbot) -> None:
    assert [fmt_si(v) for v in (0, 5, 950, 1000, 1500, 100_000, 250_000, 2_500_000)] == \
        ["0", "5", "950", "1k", "1.5k", "100k", "250k", "2.5M"]
    axis = _SiAxis("left")
    assert axis.tickStrings([0, 50_000, 100_000, 150_000], 1.0, 50_000) == \
        ["0", "50k", "100k", "150k"]
    plots = LivePlots()
    qtbot.addWidget(plots)
    plots.resize(600, 400)
    plots.show()
    plots.add_points([(t, 0, 120_000 + t % 3, 0, 0, 900_000, 4, 2) for t in range(10, 40)])
    left = plots.throughput_plot.getPlotItem().getAxis("left")
    assert isinstance(left, _SiAxis) and left.width() <= 48
    # The legend of the filled queue curve shows a line, not pyqtgraph's fill triangle.
    legend = plots.queue_plot.getPlotItem().legend
    samples = [sample.item for sample, _ in legend.items]
    assert all(getattr(item, "opts", {}).get("fillLevel") is None for item in samples)


def test_header_counts_come_from_the_snapshot(qtbot) -> None:
    """The header once used the last one-second point and lagged the tiles."""
    from guidist.core.protocol import Snapshot

    plots = LivePlots()
    qtbot.addWidget(plots)
    plots.add_points(_points(100, 20))  # its last point says 100 - 119 % 50 = 81 queued
    snap = Snapshot(time=0.0, counts={"queued": 672_991, "running": 4}, submitted=0,
                    requeued=0, paused=False, throughput=0.0)
    plots.show_live(snap)
    assert "672,991" in plots.rate_label.text() and ">81<" not in plots.rate_label.text()
    plots.show_live(None)
    assert "No server" in plots.rate_label.text() and "672,991" not in plots.rate_label.text()


def test_plots_context_menu_offers_export(qtbot) -> None:
    plots = LivePlots()
    qtbot.addWidget(plots)
    menu = plots.context_menu()
    texts = [a.text() for a in menu.actions() if a.text()]
    assert texts[:2] == ["Export plots as PNG…", "Export series as CSV (last hour)…"]
    with qtbot.waitSignal(plots.export_png_requested, timeout=1000):
        menu.actions()[0].trigger()
    pause = next(a for a in menu.actions() if a.text() == "Pause")
    pause.trigger()
    assert plots.paused
def test_claimed_tasks_have_their_own_curve_beside_running(qtbot) -> None:
    plots = LivePlots(capacity=100)
    qtbot.addWidget(plots)
    # t, submitted, done, failed, requeued, queued, running, workers, claimed
    plots.add_points([(t, 0, 0, 0, 0, 5, 2, 2, 40 + t) for t in range(1, 11)])
    assert list(plots.curves["claimed"].getData()[1][-3:]) == [48, 49, 50]
    assert list(plots.curves["running"].getData()[1][-3:]) == [2, 2, 2]
    from guidist.core.protocol import Snapshot

    plots.show_live(Snapshot(time=0.0, counts={"claimed": 50, "running": 2}, submitted=0,
                             requeued=0, paused=False, throughput=0.0))
    assert "50</b> claimed" in plots.rate_label.text()
    # Points from a server that does not send the claimed field yet read as zero.
    plots.add_points([(11, 0, 0, 0, 0, 5, 2, 2)])
    assert plots.buffer.column("claimed", last=1)[0] == 0
