"""What the window figures (3, 4, 5-window) share: an offscreen window, waits, a tick recorder.

Import this only from a window figure: it sets ``QT_QPA_PLATFORM=offscreen`` (unless a platform
was chosen) and imports PySide6. Waiting never sleeps blindly and never calls the server from the
GUI thread: a local ``QEventLoop`` runs until a predicate over the window's own state (its last
snapshot, its controller status) holds, so the measured event loop only does what the window
itself does.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from .common import percentile  # noqa: E402

TICK_MS = 10


def application() -> QApplication:
    """The process's QApplication (created once)."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(["guidist-bench"])
    return app  # type: ignore[return-value]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             interval_ms: int = 25) -> Any:
    """Run the Qt event loop until predicate() is truthy (checked every interval_ms)."""
    value = predicate()
    if value:
        return value
    loop = QEventLoop()
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}

    def check() -> None:
        v = predicate()
        if v:
            state["value"] = v
            loop.quit()
        elif time.monotonic() > deadline:
            loop.quit()

    timer = QTimer()
    timer.setInterval(interval_ms)
    timer.timeout.connect(check)
    timer.start()
    loop.exec()
    timer.stop()
    if "value" not in state:
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
    return state["value"]


def run_for(seconds: float) -> None:
    """Run the Qt event loop for a while (for measuring, never for correctness)."""
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def window_args(**overrides: Any) -> argparse.Namespace:
    """Arguments as ``guidist gui`` parses them: loopback, port 0, no journal."""
    values: dict[str, Any] = dict(host="127.0.0.1", port=0, authkey=None, demo=False,
                                  journal=None, no_journal=True, verbose=0)
    values.update(overrides)
    return argparse.Namespace(**values)


@contextlib.contextmanager
def open_window(poll_ms: int | None = None, size: tuple[int, int] = (1400, 900)) -> Iterator[Any]:
    """A real MainWindow, shown offscreen, with a settings file of its own; shut down after."""
    from guidist.gui.app import build_window

    application()
    with tempfile.TemporaryDirectory(prefix="guidist-bench-gui-") as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        window = build_window(window_args(), settings, poll_ms=poll_ms)
        window.confirm = lambda title, text: True  # never a modal question in a benchmark
        window.resize(*size)
        window.show()
        try:
            yield window
        finally:
            window.shutdown()
            window.close()
            window.deleteLater()
            QApplication.processEvents()


def child(window: Any, cls: type, name: str) -> Any:
    """A widget of the window by objectName (fails loudly if the window renamed it)."""
    w = window.findChild(cls, name)
    if w is None:
        raise LookupError(f"no {cls.__name__} named {name!r} in the window")
    return w


def start_server(window: Any, timeout: float = 60) -> tuple[str, int]:
    """Press Start in the server bar; wait until the window's first snapshot arrived."""
    from PySide6.QtWidgets import QPushButton

    child(window, QPushButton, "serverStartButton").click()
    wait_for(lambda: window.controller.status.online and window.last_snapshot is not None,
             timeout, "the embedded server to answer")
    return window.controller.status.address


def attach(window: Any, address: tuple[str, int], key: str, timeout: float = 60) -> None:
    """Monitor a server this window did not start."""
    window.attach_to(address, key)
    wait_for(lambda: window.controller.status.online and window.last_snapshot is not None,
             timeout, "the attached server to answer")


def launch_workers(window: Any, n: int, timeout: float = 60) -> None:
    """Set the worker count, press Launch, wait until the snapshot shows n workers."""
    from PySide6.QtWidgets import QPushButton, QSpinBox

    child(window, QSpinBox, "workerCountSpin").setValue(n)
    child(window, QPushButton, "launchWorkersButton").click()
    wait_for(lambda: window.last_snapshot is not None
             and window.last_snapshot.connected_workers >= n, timeout, f"{n} workers")


class TickRecorder:
    """A 10 ms precise QTimer on the GUI thread; records the gaps between its ticks.

    ``mark(name)`` starts a new phase; gaps are attributed to the phase in which the tick that
    ends them fell.
    """

    def __init__(self, interval_ms: int = TICK_MS) -> None:
        self.interval_ms = interval_ms
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self._last: float | None = None
        self._last_cpu = 0.0
        self.phase = "start"
        self.gaps: dict[str, list[float]] = {}
        #: GUI-thread CPU time spent inside each gap (ms): a long gap with little CPU is
        #: starvation (the GIL held by another thread, or no core free); with CPU ~ the gap,
        #: the GUI thread itself was busy.
        self.cpu: dict[str, list[float]] = {}
        #: Run-queue wait of the GUI thread inside each gap (ms, /proc/thread-self/schedstat):
        #: runnable but no core free. The rest of a gap (gap - cpu - runq) is sleeping: idle
        #: in the event loop or waiting for the GIL.
        self.runq: dict[str, list[float]] = {}
        self._last_runq = 0.0
        #: When each gap ended (perf_counter, s): lines a gap up with a SessionCpu sample.
        self.ends: dict[str, list[float]] = {}

    def start(self) -> None:
        self._last = None
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
        self._last = None

    def mark(self, phase: str) -> None:
        self.phase = phase

    def _tick(self) -> None:
        now = time.perf_counter()
        cpu = time.thread_time()
        runq = _runq_ns() / 1e6
        if self._last is not None:
            self.gaps.setdefault(self.phase, []).append((now - self._last) * 1000.0)
            self.cpu.setdefault(self.phase, []).append((cpu - self._last_cpu) * 1000.0)
            self.runq.setdefault(self.phase, []).append(runq - self._last_runq)
            self.ends.setdefault(self.phase, []).append(now)
        self._last = now
        self._last_cpu = cpu
        self._last_runq = runq

    def stats(self, phase: str | None = None) -> dict[str, Any]:
        """p50/p99/max of the gaps of a phase (all phases when None), and the blocked time."""
        if phase is None:
            gaps = [g for v in self.gaps.values() for g in v]
            cpu = [c for v in self.cpu.values() for c in v]
            runq = [c for v in self.runq.values() for c in v]
        else:
            gaps = list(self.gaps.get(phase, []))
            cpu = list(self.cpu.get(phase, []))
            runq = list(self.runq.get(phase, []))
        return gap_stats(gaps, self.interval_ms, cpu, runq)


_SAMPLER = """
import os, sys, time
import psutil
root, out, period = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
seen, total = {}, 0
with open(out, "w") as f:
    while True:
        try:
            procs = [psutil.Process(root)] + psutil.Process(root).children(recursive=True)
        except psutil.Error:
            break
        for p in procs:
            try:
                tids = os.listdir(f"/proc/{p.pid}/task")
            except OSError:
                continue
            for tid in tids:
                if p.pid == root and int(tid) == root:
                    continue  # the GUI thread: its own CPU is counted by the tick recorder
                try:
                    with open(f"/proc/{p.pid}/task/{tid}/schedstat") as st:
                        ns = int(st.read().split()[0])
                except (OSError, ValueError, IndexError):
                    continue
                key = (p.pid, tid)
                total += ns - seen.get(key, 0)
                seen[key] = ns
        f.write(f"{time.perf_counter()} {total}\\n")
        f.flush()
        time.sleep(period)
"""


class SessionCpu:
    """CPU used by this process tree apart from the GUI thread, sampled by a process of its own.

    In a long gap the GUI thread waited for a core: if the window's own processes (server,
    workers, network process, load generator) had both cores, they were what it waited behind;
    what they did not use went to the machine's other jobs. The sampler runs in a session of its
    own (it is not counted, and with autogroup it does not share the window's group) and reads
    every thread's /proc/.../schedstat every few ms.
    """

    def __init__(self, period_s: float = 0.002) -> None:
        import subprocess
        import sys

        fd, self.path = tempfile.mkstemp(prefix="guidist-bench-cpu-", suffix=".txt")
        os.close(fd)
        self._proc = subprocess.Popen([sys.executable, "-c", _SAMPLER, str(os.getpid()),
                                       self.path, str(period_s)], start_new_session=True)

    def stop(self) -> list[tuple[float, float]]:
        """Stop sampling; the samples as (perf_counter s, CPU ms so far)."""
        self._proc.kill()
        self._proc.wait()
        samples = []
        with open(self.path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    samples.append((float(parts[0]), int(parts[1]) / 1e6))
        os.unlink(self.path)
        return samples


def who_ran(gaps: list[float], ends: list[float], gui_cpu: list[float],
            samples: list[tuple[float, float]], cores: int, over_ms: float = 20.0
            ) -> dict[str, Any]:
    """Of the core time in gaps longer than over_ms: the GUI thread's, the window's other
    processes', and what is left (the machine's other jobs, and idle cores)."""
    import bisect

    if len(samples) < 2:
        return {}
    times = [t for t, _ in samples]

    def cpu_at(t: float) -> float:
        i = bisect.bisect_left(times, t)
        if i <= 0:
            return samples[0][1]
        if i >= len(samples):
            return samples[-1][1]
        (t0, c0), (t1, c1) = samples[i - 1], samples[i]
        return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c1

    span = gui = ours = 0.0
    for g, end, c in zip(gaps, ends, gui_cpu):
        if g > over_ms and samples[0][0] <= end - g / 1000 and end <= samples[-1][0]:
            span += g * cores
            gui += min(c, g)
            ours += cpu_at(end) - cpu_at(end - g / 1000)
    if not span:
        return {}
    return {"long_gaps_core_ms": span, "long_gaps_window_processes_share": ours / span,
            "long_gaps_gui_share": gui / span,
            "long_gaps_rest_share": max(0.0, 1 - (ours + gui) / span)}


def _runq_ns() -> float:
    """Time this thread spent runnable but not running, in ns (0 where not available)."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return float(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0


def gui_slice_ms() -> float | None:
    """This thread's scheduler time slice in ms (/proc/thread-self/sched), None where absent.

    Read from /proc rather than through guidist, so the figure is the same for any tree.
    """
    try:
        with open("/proc/thread-self/sched") as f:
            for line in f:
                if line.startswith("se.slice"):
                    return float(line.split(":")[1]) / 1e6
    except (OSError, IndexError, ValueError):
        pass
    return None


def gap_stats(gaps: list[float], interval_ms: float = TICK_MS,
              cpu: list[float] | None = None,
              runq: list[float] | None = None) -> dict[str, Any]:
    """Summary of tick gaps in ms: percentiles and the time the loop was late beyond a tick."""
    s = sorted(gaps)
    if not s:
        return {"ticks": 0, "p50_ms": None, "p99_ms": None, "max_ms": None,
                "blocked_ms": None, "over_20ms": 0, "over_50ms": 0, "span_s": 0.0}
    span = sum(s) / 1000.0
    blocked = sum(g - interval_ms for g in s if g > interval_ms)
    return {"ticks": len(s), "span_s": span, "p50_ms": percentile(s, 50),
            "p99_ms": percentile(s, 99), "max_ms": s[-1], "blocked_ms": blocked,
            "blocked_share": blocked / (span * 1000.0) if span else None,
            "over_20ms": sum(1 for g in s if g > 20), "over_50ms": sum(1 for g in s if g > 50),
            "worst10_ms": [round(g, 1) for g in s[-10:]], **_cpu_split(gaps, cpu, runq)}


def _cpu_split(gaps: list[float], cpu: list[float] | None,
               runq: list[float] | None = None) -> dict[str, Any]:
    """Of the gaps over 20 ms: GUI-thread CPU, run-queue wait (no core), and the rest."""
    if not cpu or len(cpu) != len(gaps):
        return {}
    runq = runq if runq and len(runq) == len(gaps) else [0.0] * len(gaps)
    long = [(g, c, q) for g, c, q in zip(gaps, cpu, runq) if g > 20]
    late = sum(g for g, _, _ in long)
    busy = sum(min(c, g) for g, c, _ in long)
    queued = sum(min(q, g) for g, _, q in long)
    worst = sorted(zip(gaps, cpu, runq), reverse=True)[:10]
    waits = sorted(runq)
    return {"runq_p99_ms": percentile(waits, 99), "runq_mean_ms": sum(waits) / len(waits),
            "long_gaps_ms": late, "long_gaps_gui_cpu_ms": busy, "long_gaps_runq_ms": queued,
            "long_gaps_gui_cpu_share": busy / late if late else None,
            "long_gaps_runq_share": queued / late if late else None,
            "worst10_gap_cpu_runq_ms": [[round(g, 1), round(c, 1), round(q, 1)]
                                        for g, c, q in worst]}
