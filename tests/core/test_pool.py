"""pool: local worker processes -- launch, stop, kill, respawn, bounded logs, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from guidist.core.client import Client
from guidist.core.pool import LOG_LINES, WorkerPool
from guidist.core.server import ServerProcess
from tests.conftest import REPO, TEST_KEY, wait_for


def test_launch_and_graceful_stop(server: ServerProcess, client: Client,
                                  pool_factory: Callable[..., WorkerPool]) -> None:
    pool = pool_factory(server)
    workers = pool.launch(2, prefix="t")
    assert [w.name for w in workers] == ["t-1", "t-2"]
    assert pool.pids == {w.pid for w in workers}
    wait_for(lambda: sorted(w.name for w in client.workers()) == ["t-1", "t-2"], timeout=15,
             message="both workers to register")
    for w in workers:  # the key travels in the environment, never on the command line
        cmdline = " ".join(psutil.Process(w.pid).cmdline())
        assert TEST_KEY not in cmdline and "--authkey" not in cmdline
    pool.stop_all(timeout=10)
    assert [w.returncode for w in workers] == [0, 0]
    assert pool.workers == [] and pool.pids == set()
    wait_for(lambda: client.workers() == (), timeout=5, message="the workers to unregister")


def test_kill_is_not_respawned_but_a_crash_is(server: ServerProcess, client: Client,
                                              pool_factory: Callable[..., WorkerPool]) -> None:
    pool = pool_factory(server, respawn=True)
    [a, b] = pool.launch(2)
    assert pool.kill(a.pid)
    assert a.returncode == -signal.SIGKILL
    assert not pool.kill(a.pid)  # already dead
    pool.reap()
    assert pool.pids == {b.pid}  # a deliberate kill is not respawned
    os.kill(b.pid, signal.SIGKILL)  # a crash is
    b.process.wait(10)
    exited = pool.reap()
    assert [w.pid for w in exited] == [b.pid]
    assert len(pool.pids) == 1 and b.pid not in pool.pids
    assert pool.workers[0].name.startswith("local-")


def test_worker_output_is_captured_in_a_bounded_log(server: ServerProcess, client: Client,
                                                    pool_factory: Callable[..., WorkerPool]
                                                    ) -> None:
    pool = pool_factory(server)  # workers log at INFO level
    [w] = pool.launch(1)
    wait_for(lambda: any("registered as" in line for line in w.log), timeout=15,
             message="the worker's log")
    assert w.log.maxlen == LOG_LINES


PARENT = textwrap.dedent("""
    import sys, threading
    from guidist.core.pool import WorkerPool
    from guidist.core.server import ServerProcess
    if __name__ == "__main__":
        s = ServerProcess("127.0.0.1", 0, sys.argv[1], lease_timeout=1.0)
        address = s.start()
        pool = WorkerPool(address, sys.argv[1], give_up_after=60.0)
        workers = pool.launch(2)
        print(address[1], s.pid, *[w.pid for w in workers], flush=True)
        threading.Event().wait(120)  # until the test kills this launcher (bounded)
""")


@pytest.mark.parametrize("when", ["connecting", "working"])
def test_nothing_is_orphaned_when_the_launcher_dies(tmp_path: Path, when: str) -> None:
    """The window crashes: its server exits, and its workers leave well before give_up_after,
    whether they were still connecting or already working."""
    script = tmp_path / "launcher.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), TEST_KEY], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        port, *pids = [int(p) for p in parent.stdout.readline().split()]  # type: ignore
        assert len(pids) == 3
        if when == "working":
            c = Client(("127.0.0.1", port), TEST_KEY).connect()
            c.submit_many("square", range(100))
            wait_for(lambda: len(c.workers()) == 2, timeout=15, message="workers to join")
            c.close()
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)

        def alive() -> list[int]:
            out = []
            for pid in pids:
                try:
                    if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                        out.append(pid)
                except psutil.NoSuchProcess:
                    pass
            return out

        wait_for(lambda: not alive(), timeout=15, message="the server and workers to exit")
    finally:
        for pid in pids:
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdout.close()  # type: ignore[union-attr]
