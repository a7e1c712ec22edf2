"""The peers benchmark still runs: real peer workers on a real redis-server, all stopped after."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap

import psutil
import pytest

from benchmarks.common import ROOT
from benchmarks.peers import stop_tree
from tests.conftest import wait_for
from tests.redis_fixtures import redis_available

needs_peers = pytest.mark.skipif(
    not redis_available() or any(importlib.util.find_spec(m) is None
                                 for m in ("huey", "celery")),
    reason="needs redis-server and the bench extra (pip install -e '.[bench]')")


def test_stop_tree_stops_a_worker_and_what_it_forked() -> None:
    """A prefork-style worker (a parent and the child it spawned) is gone, both, by pid."""
    code = textwrap.dedent("""
        import signal, subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
        signal.pause()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    parent = psutil.Process(proc.pid)
    children = wait_for(lambda: parent.children(recursive=True), timeout=30)
    stop_tree(proc, grace=5)
    assert proc.poll() is not None
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)


@needs_peers
@pytest.mark.timeout(300)
def test_quick_peers_run_measures_huey_and_celery_and_leaves_nothing() -> None:
    """A quick round of huey and both celery variants: a figure for each, no error, no leftover."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.peers", "--quick", "--no-save",
                          "--only", "huey,celery", "--budget", "4"],
                         cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {cells[0]: cells for cells in (re.split(r"\s{2,}", line)
                                          for line in out.stdout.splitlines())}
    for name in ("huey", "celery", "celery, chunks(1000)"):
        assert name in rows, out.stdout[-3000:]
        tasks_per_s = rows[name][2]  # the median column: "—" when the run failed
        assert float(tasks_per_s.replace(",", "")) > 0, rows[name]
    assert "not measured" not in out.stdout
    assert "leftover" not in out.stderr
