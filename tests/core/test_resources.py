"""A worker's resource sample: its own CPU and memory plus its children's."""

from __future__ import annotations

import subprocess
import sys
import time

from guidist.core.resources import ResourceSampler


def test_a_busy_process_and_its_child_show_cpu_and_memory() -> None:
    sampler = ResourceSampler()
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        sampler.sample()  # starts the child's interval
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            sum(i * i for i in range(20_000))  # keep this process busy too
        cpu, rss = sampler.sample()
        assert cpu > 20.0  # the spinning child alone is near 100 % of a core
        assert rss > 10 * 2**20
    finally:
        child.kill()
        child.wait(5)
