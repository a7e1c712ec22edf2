"""The Prometheus endpoint answers from one snapshot of a real broker."""

from __future__ import annotations

import urllib.request

from guidist.core.backends.memory.broker import Broker
from guidist.core.metrics import serve_metrics


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return reply.read().decode()


def test_metrics_show_the_counts_of_the_broker() -> None:
    broker = Broker()
    broker.submit("square", [(i,) for i in range(10)])
    w = broker.register_worker("w", "h", 1)["id"]
    groups = broker.claim(w, 4)
    ids = [i for _f, _kw, group_ids, _a in groups for i in group_ids]
    broker.complete(w, [(i, True, i * i) for i in ids])
    server, port = serve_metrics("127.0.0.1", 0, broker.snapshot)
    try:
        text = _scrape(port)
    finally:
        server.shutdown()
        server.server_close()
    assert 'guidist_tasks_total{state="done"} 4.0' in text
    assert "guidist_queue_depth 6.0" in text
    assert "guidist_workers 1.0" in text
    assert "# TYPE guidist_task_runtime_seconds histogram" in text
