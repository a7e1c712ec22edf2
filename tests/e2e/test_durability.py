"""What an acknowledged submit is worth (issue 11 items 2, 3 and 4), with real servers.

A submit returns once it is committed (group commit), its tasks can be claimed only from then
on, a full disk refuses submits instead of dropping them, and one journal file has one server
whatever path names it. The server is killed with SIGKILL; the disk is a small tmpfs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guidist.core.backends.memory.journal import iter_ledger
from guidist.core.client import Client
from guidist.core.errors import JournalInUse, JournalUnavailable
from guidist.core.pool import WorkerPool
from guidist.core.protocol import TaskState
from guidist.core.server import ServerProcess
from tests.conftest import TEST_KEY, mounted_tmpfs, wait_for

Procs = Callable[..., subprocess.Popen]


def crash(srv: ServerProcess) -> None:
    """SIGKILL the server process (no flush, no goodbye), then reap it."""
    assert srv.pid is not None
    os.kill(srv.pid, signal.SIGKILL)
    srv.stop()


def test_acknowledged_submits_survive_a_sigkill_right_after_the_reply(
        server_factory: Callable[..., ServerProcess], tmp_path: Path) -> None:
    srv = server_factory(journal=str(tmp_path / "j.sqlite"))
    assert srv.address is not None
    c = Client(srv.address, TEST_KEY).connect()
    ids = list(c.submit_many("square", range(20_000)))
    ids += list(c.submit_many("square", range(5)))
    crash(srv)  # within microseconds of the reply: far inside the old 0.25 s window
    c.close()
    srv.start()
    c = Client(srv.address, TEST_KEY).connect()
    snap = c.snapshot()
    assert snap.count("queued") == 20_005 and snap.submitted == 20_005
    assert c.get_task(ids[0]).args == (0,) and c.get_task(ids[-1]).args == (4,)
    c.close()


def test_no_worker_runs_a_task_before_its_submit_is_durable(
        server_factory: Callable[..., ServerProcess], pool_factory: Callable[..., WorkerPool],
        tmp_path: Path) -> None:
    """A task with a side effect: once it has run, a restart must know it."""
    marks = tmp_path / "marks"
    marks.mkdir()
    srv = server_factory(journal=str(tmp_path / "j.sqlite"), lease_timeout=30.0)
    assert srv.address is not None
    pool = pool_factory(srv, give_up_after=30.0)
    pool.launch(1)
    c = Client(srv.address, TEST_KEY).connect()
    wait_for(lambda: c.workers(), timeout=15, message="the worker to register")
    ran: set[int] = set()
    for attempt in range(5):  # each round: submit, and crash as soon as one task has run
        c.submit_many("tests.jobs:mark", [(str(marks), attempt * 1000 + i) for i in range(50)])
        wait_for(lambda: any(marks.iterdir()), timeout=15, message="a task to run")
        crash(srv)
        ran |= {int(p.name) for p in marks.iterdir()}
        srv.start()
        c = Client(srv.address, TEST_KEY).connect()
        known = {t.args[1] for t in _every_task(c)}
        assert ran <= known, f"tasks {sorted(ran - known)[:5]} ran but the restart lost them"
        c.cancel(range(1, 100_000))  # only the next round's tasks run
        for p in marks.iterdir():
            p.unlink()
    c.close()


def _every_task(c: Client) -> list:
    out: list = []
    while True:
        page = c.list_tasks(None, offset=len(out), limit=10_000)
        out.extend(page.tasks)
        if not page.tasks or len(out) >= page.total:
            return out


# ---------------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB tmpfs mounted for this test (root only; skipped elsewhere)."""
    with mounted_tmpfs(tmp_path, "6m") as mnt:
        yield mnt


def _fill(disk: Path, leave: int) -> Path:
    """Write a ballast file that leaves about `leave` bytes free on disk."""
    ballast = disk / "ballast"
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    with open(ballast, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return ballast


def test_a_full_disk_refuses_submits_and_loses_nothing_acknowledged(
        procs: Procs, small_disk: Path, tmp_path: Path) -> None:
    journal = small_disk / "j.sqlite"
    serve = procs([sys.executable, "-m", "guidist", "serve", "--port", "0", "--journal",
                   str(journal), "--interval", "0.2"])
    assert serve.stdout is not None
    m = re.match(r"guidist server listening on 127.0.0.1:(\d+)", serve.stdout.readline())
    assert m, "serve did not start"
    address = ("127.0.0.1", int(m.group(1)))
    c = Client(address, TEST_KEY).connect()
    c.submit_many("square", range(10))  # the journal file exists and has its tables
    ballast = _fill(small_disk, leave=256 * 1024)
    acknowledged: list[int] = []
    refused = None
    payload = "x" * 200
    for _ in range(200):  # ~1.1 MB per round: the disk is full long before the end
        try:
            acknowledged += list(c.submit_many("echo", [(payload,)] * 5000))
        except JournalUnavailable as exc:
            refused = exc
            break
    assert refused is not None, "the disk never filled up"
    assert str(journal) in str(refused) and "full" in str(refused)
    assert "nothing was queued" in str(refused)
    # While it lasts, every submit is refused at once and the snapshot says why and where.
    with pytest.raises(JournalUnavailable):
        c.submit("square", 1)
    info = c.snapshot().extra["journal"]
    assert info["path"] == str(journal) and "full" in (info["error"] or "")
    # serve says it on its status lines.
    wait_for(lambda: "full" in serve.stdout.readline(), timeout=10,
             message="serve to report the full journal")
    # Work goes on meanwhile: results wait in memory for the disk.
    pool = WorkerPool(address, TEST_KEY, give_up_after=30.0)
    try:
        pool.launch(1)
        wait_for(lambda: c.snapshot().count("done") == 10 + len(acknowledged), timeout=60,
                 message="the acknowledged tasks to run")
    finally:
        pool.stop_all(timeout=10)
    # Space comes back: the buffered changes are written, and submits are accepted again.
    ballast.unlink()
    wait_for(lambda: c.snapshot().extra["journal"]["error"] is None, timeout=15,
             message="the journal to be writable again")
    late = list(c.submit_many("square", range(3)))
    c.close()
    serve.send_signal(signal.SIGTERM)
    serve.communicate(timeout=30)
    assert serve.returncode == 0
    ledger = {t.id: t for t in iter_ledger(journal)}
    # Every acknowledged task is there and done; nothing of the refused submits is.
    assert all(ledger[i].state is TaskState.DONE for i in acknowledged)
    assert all(ledger[i].state is TaskState.QUEUED for i in late)
    assert len(ledger) == 10 + len(acknowledged) + 3


# ---------------------------------------------------------------------- one file, one server


def test_a_journal_in_use_is_refused_through_any_path_to_the_same_file(
        server_factory: Callable[..., ServerProcess], tmp_path: Path) -> None:
    real = tmp_path / "data" / "j.sqlite"
    server_factory(journal=str(real))
    (tmp_path / "link.sqlite").symlink_to(real)
    os.link(real, tmp_path / "hard.sqlite")
    (tmp_path / "alias").symlink_to(tmp_path / "data")
    for other in (tmp_path / "link.sqlite", tmp_path / "hard.sqlite",
                  tmp_path / "alias" / "j.sqlite", tmp_path / "data" / ".." / "data" / "j.sqlite"):
        second = ServerProcess("127.0.0.1", 0, TEST_KEY, journal=str(other))
        with pytest.raises(JournalInUse, match="in use by another guidist server"):
            second.start()
        assert not second.running
