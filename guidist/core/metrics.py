"""Prometheus metrics for a running server: ``guidist serve --metrics-port M``.

Every scrape asks for one snapshot, the same cheap call the window makes, so scraping costs the
workers nothing more than a monitor does; nothing is counted twice. What it exposes:

* ``guidist_tasks_total{state}``: tasks per state since the server started (queued and running
  are current counts, the finished states are totals);
* ``guidist_queue_depth``, ``guidist_running``, ``guidist_claimed``, ``guidist_workers``;
* ``guidist_task_runtime_seconds{function}``: a histogram of run times per task function.

No task arguments, results or keys are exposed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from . import histogram
from .protocol import Snapshot, TaskState

log = logging.getLogger(__name__)


class SnapshotCollector:
    """A prometheus_client collector that turns one snapshot into every metric."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        """Called by prometheus_client on every scrape."""
        from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

        try:
            snap = self._snapshot()
        except Exception as exc:  # a scrape must answer even when the broker is unreachable
            log.warning("metrics: no snapshot: %s", exc)
            return
        tasks = GaugeMetricFamily("guidist_tasks_total", "Tasks per state (finished states "
                                  "count since the server started).", labels=["state"])
        for state in TaskState:
            tasks.add_metric([state.value], snap.count(state))
        yield tasks
        yield GaugeMetricFamily("guidist_queue_depth", "Tasks waiting to be claimed.",
                                value=snap.count(TaskState.QUEUED))
        yield GaugeMetricFamily("guidist_running", "Tasks running on a worker.",
                                value=snap.count(TaskState.RUNNING))
        yield GaugeMetricFamily("guidist_claimed", "Tasks claimed by a worker, not started.",
                                value=snap.counts.get("claimed", 0))
        yield GaugeMetricFamily("guidist_workers", "Connected workers.",
                                value=snap.connected_workers)
        runtimes = HistogramMetricFamily("guidist_task_runtime_seconds",
                                         "Run time of finished tasks, per task function.",
                                         labels=["function"])
        for stats in getattr(snap, "functions", ()) or ():
            buckets = [(f"{bound:.6g}", float(n))
                       for bound, n in histogram.cumulative(stats.counts)]
            buckets.append(("+Inf", float(sum(stats.counts))))
            runtimes.add_metric([stats.function], buckets, sum_value=stats.runtime_sum)
        yield runtimes


def serve_metrics(host: str, port: int, snapshot: Callable[[], Snapshot]) -> tuple[Any, int]:
    """Serve /metrics on host:port from a background thread; returns (server, bound port)."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server, int(server.server_address[1])
