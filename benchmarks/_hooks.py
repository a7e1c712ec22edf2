"""Tweaks applied inside a spawned guidist server process, without editing the core.

``ServerProcess.start()`` launches the module-level ``guidist.core.server._server_main`` with the
spawn context, which pickles the target by reference. Replacing that attribute in the parent for
the duration of ``start()`` makes the child import and run ``server_main`` below instead; it
applies the tweak named in ``config.extra`` and then calls the real entry point. Used to try a
proposed core fix (for instance a GC setting) end to end before anyone changes the core.

Tweaks (``extra={"bench_gc": ...}``):

* ``default``                   nothing changed
* ``threshold:G0[,G1[,G2]]``    gc.set_threshold(G0, G1, G2)
* ``disable``                   gc.disable() (an upper bound, not a fix: cycles would leak)
* ``freeze``                    gc.freeze() before serving (startup objects never rescanned)

``extra={"bench_gc_stats": path}`` also counts the collections of each generation and the time
they take (gc.callbacks), and writes them as JSON to path every 0.2 s and when the server stops,
so a benchmark can difference two readings around a measurement window.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from guidist.core import server as _server

_ORIGINAL = _server._server_main


def apply_gc(tweak: str | None) -> None:
    """Apply one GC tweak in this process."""
    if not tweak or tweak == "default":
        return
    if tweak == "disable":
        gc.disable()
    elif tweak == "freeze":
        gc.collect()
        gc.freeze()
    elif tweak.startswith("threshold:"):
        values = [int(v) for v in tweak.split(":", 1)[1].split(",")]
        gc.set_threshold(*values)
    else:
        raise ValueError(f"unknown GC tweak {tweak!r}")


class GcStats:
    """Collections per generation, time spent in them, and objects examined (gc.callbacks)."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.max_ms = [0.0, 0.0, 0.0]
        self.collected = [0, 0, 0]
        self._t0 = 0.0
        self.started = time.perf_counter()

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
            return
        g = info["generation"]
        dt = time.perf_counter() - self._t0
        self.count[g] += 1
        self.seconds[g] += dt
        self.max_ms[g] = max(self.max_ms[g], dt * 1e3)
        self.collected[g] += info.get("collected", 0)

    def as_dict(self) -> dict[str, Any]:
        """Totals since start, with the wall time they cover."""
        wall = time.perf_counter() - self.started
        return {"wall_s": wall, "collections": self.count, "seconds": self.seconds,
                "max_ms": self.max_ms, "collected": self.collected,
                "percent_of_wall": [100 * s / wall for s in self.seconds],
                "threshold": gc.get_threshold()}


def server_main(config: Any, ready: Any, control: Any) -> None:
    """The spawned server's entry point with the benchmark's tweaks applied first."""
    apply_gc(config.extra.get("bench_gc"))
    stats_path = config.extra.get("bench_gc_stats")
    stats = GcStats() if stats_path else None
    done = threading.Event()
    if stats is not None:
        gc.callbacks.append(stats)
        threading.Thread(target=_write_loop, args=(stats, stats_path, done), daemon=True,
                         name="bench-gc-stats").start()
    try:
        _ORIGINAL(config, ready, control)
    finally:
        done.set()
        if stats is not None:
            gc.callbacks.remove(stats)
            _write(stats, stats_path)


def _write(stats: GcStats, path: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(stats.as_dict(), f)
    os.replace(tmp, path)  # readers never see half a file


def _write_loop(stats: GcStats, path: str, done: threading.Event) -> None:
    while not done.wait(0.2):
        _write(stats, path)


@contextlib.contextmanager
def tweaked_server_entry() -> Iterator[None]:
    """While active, ServerProcess.start() spawns ``server_main`` above."""
    _server._server_main = server_main
    try:
        yield
    finally:
        _server._server_main = _ORIGINAL
