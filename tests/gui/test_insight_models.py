"""The task-stream, functions and worker-resource models, without a view."""

from __future__ import annotations

from guidist.core.protocol import FunctionStats, WorkerInfo
from guidist.core.runstats import FunctionTable, RunStats
from guidist.gui.models import WorkersModel, sparkline
from guidist.gui.stream import FAILED_COLOR, FunctionRows, TaskStream


def span(seq: int, worker: str, slot: int, function: str, start: float, end: float,
         count: int = 1, failed: int = 0) -> tuple:
    return (seq, worker, slot, function, start, end, count, failed)


def test_one_lane_per_worker_slot_and_failures_are_red() -> None:
    stream = TaskStream()
    stream.add([span(1, "w1", 0, "f", 100.0, 101.0), span(2, "w1", 1, "g", 100.0, 100.5),
                span(3, "w2", 0, "f", 100.2, 100.3, failed=1)], {"w1": "alpha", "w2": "beta"})
    assert stream.lane_labels() == ["alpha #0", "alpha #1", "beta"]
    bars = stream.bars()
    assert [b.lane for b in bars] == [0, 1, 2]
    assert stream.color_of(bars[0]) != stream.color_of(bars[1])  # by function
    assert stream.color_of(bars[2]) == FAILED_COLOR
    assert ("failed", FAILED_COLOR) in stream.legend()


def test_hovering_finds_the_bar_and_says_what_ran() -> None:
    stream = TaskStream()
    stream.add([span(1, "w1", 0, "tests.jobs:boom", 10.0, 10.5, count=20, failed=0)],
               {"w1": "alpha"})
    bar = stream.bar_at(10.2, 0.1)
    assert bar is not None
    assert bar.describe() == "tests.jobs:boom: 20 runs in 500.0 ms\non alpha"
    assert stream.bar_at(11.0, 0.0) is None and stream.bar_at(10.2, 0.6) is None


def test_the_stream_is_bounded_and_forgets_what_is_older_than_a_minute() -> None:
    stream = TaskStream(max_bars=100)
    stream.add(span(i, "w", 0, "f", float(i), i + 0.5) for i in range(1000))
    assert len(stream.bars()) == 100
    stream.prune(now=1000.0 + 30)
    assert all(b.end >= 970.0 for b in stream.bars())
    stream.clear()
    assert stream.bars() == [] and stream.lane_labels() == []


def test_functions_rows_and_the_histogram_of_one() -> None:
    stats = RunStats()
    stats.add_batch("sleep", [(i, True, None, float(i), 0.1) for i in range(40)])
    stats.add_batch("boom", [(99, False, "ValueError: x", 1.0, 0.002)])
    table = FunctionTable()
    table.merge(stats.report()["functions"])  # type: ignore[index]
    rows = FunctionRows()
    rows.update(table.stats())
    cells = {r[0]: r for r in rows.rows()}
    assert cells["sleep"][1:3] == ("40", "0") and cells["sleep"][3] == "100.0 ms"
    assert cells["boom"][1:3] == ("0", "1")
    lows, highs, counts = rows.histogram("sleep")
    assert sum(counts) == 40 and len(lows) == len(highs) == len(counts) == 1
    assert lows[0] < -1.0 <= highs[0]  # the bucket that holds 0.1 s (log10 = -1)
    assert rows.histogram("unknown") == ([], [], [])
    rows.update([FunctionStats("classic")])  # counted, never timed
    assert rows.histogram("classic") == ([], [], []) and rows.rows()[0][3] == "–"


def test_workers_model_shows_cpu_with_a_trend_and_memory(qapp: object) -> None:
    model = WorkersModel()
    for seen, cpu in enumerate([10.0, 50.0, 100.0], start=1):
        model.set_workers([WorkerInfo("w1", "alpha", "h", 1, last_seen=float(seen),
                                      cpu_percent=cpu, rss_bytes=64 * 2**20)], (), 10.0)
    model.set_workers([WorkerInfo("w1", "alpha", "h", 1, last_seen=3.0, cpu_percent=100.0,
                                  rss_bytes=64 * 2**20)], (), 10.0)  # a poll, no heartbeat
    cpu = model.data(model.index(0, WorkersModel.COL_CPU))
    assert cpu == f"100 % {sparkline([10.0, 50.0, 100.0])}"
    assert model.data(model.index(0, WorkersModel.COL_MEMORY)) == "64 MiB"
    model.set_workers([WorkerInfo("w2", "classic", "h", 2, kind="classic")], (), 10.0)
    assert model.data(model.index(0, WorkersModel.COL_CPU)) == ""


def test_crowded_lanes_are_labelled_once_per_worker() -> None:
    stream = TaskStream()
    stream.add([span(i, "w1", i, "io", 0.0, 1.0) for i in range(32)] + [
        span(99, "w2", 0, "f", 0.0, 1.0)], {"w1": "threads", "w2": "inline"})
    labels = stream.lane_labels(room=10)
    assert labels[16] == "threads (32 slots)"  # once, in the middle of its lanes
    assert labels[:16] == [""] * 16 and labels[17:32] == [""] * 15
    assert labels[32] == "inline"
    assert stream.lane_labels()[5] == "threads #5"
