"""The job commands' pure parts: the progress display, the wait loop, the tables."""

from __future__ import annotations

import io

from guidist.commands.jobs import fmt_eta, job_table, progress_line, summary_line, wait_for_job
from guidist.core.protocol import Job


def job(done: int, queued: int, failed: int = 0, now: float = 110.0) -> Job:
    return Job(7, "nightly", ("square",), queued=queued, done=done, failed=failed,
               submitted=90.0, started=100.0, last_finished=now, time=now)


def test_progress_and_summary_lines() -> None:
    line = progress_line(job(25, 75), 80)
    assert line.startswith("[" + "#" * 10 + "." * 30 + "]")
    assert "25/100 done | 2/s | ETA 30 s" in line  # 25 in 10 s: 2.5/s, 75 left
    bad = progress_line(job(50, 0, failed=50), 80)
    bar = bad[1:bad.index("]")]
    assert set(bar) == {"#", "x"} and abs(bar.count("#") - bar.count("x")) <= 1
    assert "50 failed" in bad
    assert summary_line(job(50, 0, failed=50)) == \
        "job nightly (id 7) failed: 50 done, 50 failed of 100"
    assert [fmt_eta(x) for x in (None, 5, 65, 7300)] == ["-", "5 s", "1 min 05 s", "2 h 01 min"]
    rows = job_table([job(25, 75)])
    assert rows[0].split() == ["ID", "NAME", "FUNCTION", "STATE", "DONE/TOTAL", "FAILED",
                               "RATE/S", "ETA"]
    assert rows[1].split() == ["7", "nightly", "square", "running", "25/100", "0", "2.5", "30",
                               "s"]


def test_wait_loop_prints_a_line_every_few_seconds_off_a_terminal() -> None:
    now = [0.0]
    states = iter([job(0, 10)] * 30 + [job(10, 0)])
    out = io.StringIO()
    got, late = wait_for_job(lambda: next(states), None, out, tty=False, every=5.0, poll=0.5,
                             clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert not late and got.done == 10
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # at 0, 5, 10 s and the last one, not one per poll
    assert lines[-1].startswith("[" + "#" * 40 + "]")


def test_wait_loop_redraws_on_a_terminal_and_times_out() -> None:
    now = [0.0]
    out = io.StringIO()
    got, late = wait_for_job(lambda: job(1, 9), 2.0, out, tty=True, poll=0.5,
                             clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert late and got.remaining == 9
    text = out.getvalue()
    assert text.count("\r") == 5 and text.endswith("\n") and text.count("\n") == 1
