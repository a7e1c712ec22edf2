"""A worker's own CPU and memory, children included (process mode runs tasks in children)."""

from __future__ import annotations

import psutil


class ResourceSampler:
    """CPU % since the previous sample and resident memory, of this process and its children.

    psutil measures CPU between two calls on the same Process object, so children are kept
    across samples; a new child reports from its second sample on.
    """

    def __init__(self, pid: int | None = None) -> None:
        self._me = psutil.Process(pid)
        self._me.cpu_percent(None)  # the first call only starts the interval
        self._children: dict[int, psutil.Process] = {}

    def sample(self) -> tuple[float, int]:
        """(cpu_percent, rss_bytes): 100 % is one core fully busy."""
        cpu = self._me.cpu_percent(None)
        rss = self._me.memory_info().rss
        alive: dict[int, psutil.Process] = {}
        try:
            children = self._me.children(recursive=True)
        except psutil.Error:
            children = []
        for child in children:
            proc = self._children.get(child.pid, child)
            try:
                if child.pid in self._children:
                    cpu += proc.cpu_percent(None)
                else:
                    proc.cpu_percent(None)
                rss += proc.memory_info().rss
            except psutil.Error:
                continue  # it exited between the listing and the reading
            alive[child.pid] = proc
        self._children = alive
        return cpu, rss
