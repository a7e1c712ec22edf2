"""Drawing in slices: the pacer's order and turns, steady labels, curves not set again."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QLabel

from guidist.gui.pacing import Pacer
from guidist.gui.plots import LivePlots
from guidist.gui.widgets import SteadyLabel

from .test_plots import _points


def test_pacer_runs_steps_in_order_one_per_turn_with_timers_in_between(qtbot) -> None:
    pacer = Pacer()
    ran: list[str] = []
    ticks: list[float] = []
    # A timer due all the time: it must get turns between the steps, as a person's key
    # repeat or an animation would.
    tick = QTimer()
    tick.setTimerType(Qt.TimerType.PreciseTimer)
    tick.setInterval(0)
    tick.timeout.connect(lambda: ticks.append(time.perf_counter()))

    def step(name: str) -> None:
        ran.append(name)
        ran.append(f"ticks:{len(ticks)}")

    tick.start()
    pacer.add([lambda: step("a"), lambda: step("b")])
    pacer.add([lambda: step("c")])
    assert ran == [] and pacer.pending() == 3  # nothing runs inside add()
    qtbot.waitUntil(lambda: pacer.pending() == 0, timeout=5000)
    tick.stop()
    assert ran[0::2] == ["a", "b", "c"]
    seen = [int(x.split(":")[1]) for x in ran[1::2]]
    assert seen[0] < seen[1] < seen[2], f"no timer ran between the steps: {seen}"


def test_pacer_clear_drops_queued_steps_and_flush_runs_them(qtbot) -> None:
    pacer = Pacer()
    ran: list[int] = []
    pacer.add([lambda: ran.append(1), lambda: ran.append(2)])
    pacer.clear()
    qtbot.wait(20)  # the cleared steps would have run within ~2 ms
    assert ran == [] and pacer.pending() == 0
    pacer.add([lambda: ran.append(3), lambda: ran.append(4)])
    pacer.flush()
    assert ran == [3, 4] and pacer.pending() == 0


def test_steady_label_keeps_its_height_when_the_text_shrinks(qtbot) -> None:
    label = SteadyLabel()
    label.setWordWrap(True)
    qtbot.addWidget(label)
    long_text = "1,234,567 done/s · 0.0 failed/s · 12,345,678 queued · 2 workers"
    label.setText(long_text)
    tall = label.heightForWidth(120)
    label.setText("1 done/s")
    assert QLabel.heightForWidth(label, 120) < tall  # what a plain QLabel would now say
    assert label.heightForWidth(120) == tall
    wide = label.heightForWidth(2000)  # another width: its own height
    assert wide < tall


def test_unchanged_curves_are_not_set_again(qtbot) -> None:
    plots = LivePlots(capacity=1200)
    qtbot.addWidget(plots)
    plots.resize(800, 500)
    plots.show()
    plots.add_points(_points(1000, 120))
    calls: dict[str, int] = {}
    for name, curve in plots.curves.items():
        original = curve.setData

        def counting(*args, _name=name, _original=original, **kwargs):
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args, **kwargs)

        curve.setData = counting
    plots.redraw()  # nothing new: every curve is the picture it was
    assert calls == {}
    # One more second: the window moves, so the moving curves are set again; a full window
    # of a constant gauge (2 workers) is the same picture and is not.
    for step in plots.draw_steps() if plots.add_points(_points(1120, 1), draw=False) else ():
        step()
    assert calls.get("done") == 1 and calls.get("queued") == 1
    assert "workers" not in calls
    assert plots.curves["workers"].getData()[1][-1] == 2


def test_pacer_far_behind_catches_up_at_once(qtbot) -> None:
    pacer = Pacer(max_pending=3)
    ran: list[int] = []
    pacer.add([lambda i=i: ran.append(i) for i in range(4)])
    assert ran == []
    pacer.add([lambda: ran.append(4)])  # 4 waiting > 3: they run first, in order
    assert ran == [0, 1, 2, 3] and pacer.pending() == 1
    qtbot.waitUntil(lambda: ran == [0, 1, 2, 3, 4], timeout=5000)
