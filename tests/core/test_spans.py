"""Task-stream spans: consecutive runs merge, failures stay apart, volume stays bounded."""

from __future__ import annotations

from guidist.core.spans import Span, SpanRecorder, SpanWindow


def test_fast_runs_of_one_function_merge_into_one_span() -> None:
    rec = SpanRecorder()
    t = 1000.0
    for _ in range(10_000):
        rec.record(0, "square", t, 2e-6, True)
        t += 3e-6
    spans = rec.take()
    assert len(spans) == 1
    span = Span.from_tuple(spans[0])
    assert span.count == 10_000 and span.failed == 0 and span.function == "square"
    assert rec.take() == []


def test_slow_runs_failures_and_slots_stay_apart() -> None:
    rec = SpanRecorder()
    rec.record(0, "sleep", 0.0, 0.2, True)
    rec.record(0, "sleep", 0.5, 0.2, True)  # a gap longer than MERGE_GAP
    rec.record(0, "sleep", 0.7, 0.01, False)  # a failure right after: its own span
    rec.record(1, "sleep", 0.0, 0.2, True)  # another slot
    spans = [Span.from_tuple(s) for s in rec.take()]
    assert len(spans) == 4
    assert sum(s.failed for s in spans) == 1
    assert {s.slot for s in spans} == {0, 1}


def test_pending_spans_are_bounded_whatever_the_rate() -> None:
    rec = SpanRecorder(max_pending=16)
    for i in range(10_000):
        rec.record(0, "f" if i % 2 else "g", float(i), 0.001, True)  # alternating: no merging
    assert len(rec.take()) <= 16 + 1


def test_window_keeps_the_last_minute_and_a_cursor() -> None:
    win = SpanWindow(per_worker=100, horizon=60.0)
    win.add("w1", [(0, "f", 10.0, 11.0, 1, 0)])
    win.add("w2", [(0, "g", 100.0, 101.0, 5, 1)])
    cursor, spans = win.since(0, now=120.0)
    assert [s[1] for s in spans] == ["w2"]  # w1's span ended more than 60 s ago
    win.add("w1", [(0, "f", 119.0, 119.5, 1, 0)] * 500)
    cursor2, spans2 = win.since(cursor, now=120.0)
    assert cursor2 > cursor and len(spans2) == 100  # per-worker bound
