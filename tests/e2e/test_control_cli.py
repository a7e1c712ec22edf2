"""The window's controls as commands, against a live server: real ``python -m guidist`` runs.

pause/resume, cancel, retry, purge, task, workers (and workers stop), GUIDIST_CONNECT in place
of --connect, -v/-q on either side of the command, and one exit code per kind of failure.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from guidist.core.client import Client
from guidist.core.errors import ExitCode
from guidist.core.pool import WorkerPool
from guidist.core.protocol import TaskState, WorkerState
from guidist.core.server import ServerProcess
from tests.conftest import REPO, TEST_KEY, wait_for
from tests.e2e.conftest import cli_env, connect_arg, free_port, output_of, script_argv

Procs = Callable[..., subprocess.Popen]


def run(*args: str, key: str | None = TEST_KEY, env: dict[str, str] | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess:
    """``python -m guidist ARGS`` with the key (and any extra variables) in the environment."""
    return subprocess.run([sys.executable, "-m", "guidist", *args], cwd=REPO,
                          env={**cli_env(key), **(env or {})}, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def ok(out: subprocess.CompletedProcess) -> str:
    """The stdout of a run that must have succeeded without a word on stderr."""
    assert out.returncode == 0, out
    assert "Traceback" not in out.stderr
    return out.stdout


def one_line_failure(out: subprocess.CompletedProcess, code: int) -> str:
    """The single stderr line of a run that must have failed with this exit code."""
    assert out.returncode == code, out
    assert "Traceback" not in out.stderr + out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert ": error: " in lines[0]
    return lines[0]


@pytest.fixture
def where(server: ServerProcess) -> str:
    assert server.address is not None
    return connect_arg(server.address)


# ---------------------------------------------------------------------- pause and resume


def test_pause_stops_dispatch_and_resume_restarts_it(server: ServerProcess, where: str,
                                                     client: Client,
                                                     pool_factory: Callable[..., WorkerPool]
                                                     ) -> None:
    pool = pool_factory(server)
    pool.launch(1)
    wait_for(lambda: client.snapshot().connected_workers == 1, message="the worker")
    out = ok(run("pause", "--connect", where))
    assert out.startswith(f"paused {where}")
    assert client.snapshot().paused
    since = client.snapshot().time
    ids = client.submit_many("square", range(20))
    # Something that must not happen can only be watched for: wait until the server has heard
    # from the live worker (claims that wait about a second, heartbeats) 1.5 s after the
    # submit, a window in which an unpaused server would have handed the tasks out.
    wait_for(lambda: any(w.last_seen > since + 1.5 for w in client.snapshot().workers),
             timeout=30, message="the worker asking for work while paused")
    snap = client.snapshot()
    assert snap.count("queued") == 20 and snap.count("done") == 0
    assert ok(run("resume", "--connect", where)).startswith(f"resumed {where}")
    wait_for(lambda: client.snapshot().count("done") == 20, timeout=30, message="20 done")
    assert all(client.get_task(i).state is TaskState.DONE for i in ids)


# ---------------------------------------------------------------------- cancel, retry, purge


def test_cancel_ids_and_ranges(where: str, client: Client) -> None:
    client.pause()
    client.submit_many("square", range(10))
    out = ok(run("cancel", "2", "4..6", "--connect", where))
    assert out.strip() == "cancelled 4 of 4 task(s)"
    assert [client.get_task(i).state for i in (1, 2, 4, 5, 6, 7)] == [
        TaskState.QUEUED, TaskState.CANCELLED, TaskState.CANCELLED, TaskState.CANCELLED,
        TaskState.CANCELLED, TaskState.QUEUED]
    out = ok(run("cancel", "2", "99", "--connect", where))  # already cancelled, unknown
    assert "cancelled 0 of 2" in out and "only queued tasks" in out
    line = one_line_failure(run("cancel", "--connect", where), ExitCode.USAGE)
    assert "pass the ids" in line
    line = one_line_failure(run("cancel", "x7", "--connect", where), ExitCode.USAGE)
    assert "'x7' is not a task id" in line
    assert client.snapshot().count("cancelled") == 4


def test_retry_all_failed_and_by_id(server: ServerProcess, where: str, client: Client,
                                    pool_factory: Callable[..., WorkerPool]) -> None:
    client.submit_many("tests.jobs:boom", range(3))
    client.submit_many("square", range(2))
    pool = pool_factory(server)
    pool.launch(1)
    wait_for(lambda: client.snapshot().count("failed") == 3, message="3 failures")
    client.pause()  # keep the retried tasks queued so the test can see them
    out = ok(run("retry", "1", "--connect", where))
    assert out.strip() == "queued 1 of 1 task(s) again"
    assert client.get_task(1).state is TaskState.QUEUED
    out = ok(run("retry", "--all-failed", "--connect", where))
    assert out.strip() == "queued 2 failed or dead task(s) again"
    snap = client.snapshot()
    assert snap.count("queued") == 3 and snap.count("failed") == 0
    line = one_line_failure(run("retry", "4", "--all-failed", "--connect", where),
                            ExitCode.USAGE)
    assert "not both" in line


def test_purge_needs_yes_without_a_terminal(where: str, client: Client) -> None:
    client.pause()
    client.submit_many("square", range(30))
    line = one_line_failure(run("purge", "--connect", where), ExitCode.USAGE)
    assert "--yes" in line
    assert client.snapshot().count("queued") == 30
    out = ok(run("purge", "--yes", "--connect", where))
    assert out.strip() == f"cancelled 30 queued task(s) on {where}"
    snap = client.snapshot()
    assert snap.count("queued") == 0 and snap.count("cancelled") == 30


def _pty_run(args: list[str], answer: str | None = None,
             until: Callable[[str], bool] | None = None,
             timeout: float = 30) -> tuple[subprocess.Popen, str]:
    """Run guidist on a pseudo-terminal; type answer after a [y/N] question, read the output."""
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "guidist", *args], cwd=REPO, env=cli_env(),
                         stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    seen = ""
    answered = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if until is not None and until(seen):
                break
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096).decode(errors="replace")
                except OSError:  # EIO: the child closed the terminal (it exited)
                    break
                if not chunk:
                    break
                seen += chunk
            if answer is not None and not answered and "[y/N]" in seen:
                os.write(master, answer.encode() + b"\n")
                answered = True
            if until is None and p.poll() is not None and not ready:
                break
        else:
            pytest.fail(f"timed out; the terminal showed {seen!r}")
    finally:
        if until is not None and p.poll() is None:
            p.send_signal(signal.SIGINT)
        p.wait(15)
        os.close(master)
    return p, seen


def test_purge_asks_on_a_terminal(where: str, client: Client) -> None:
    client.pause()
    client.submit_many("square", range(7))
    p, screen = _pty_run(["purge", "--connect", where], answer="n")
    assert p.returncode == ExitCode.FAILED and "Cancel all 7 queued task(s)" in screen
    assert "nothing purged" in screen and client.snapshot().count("queued") == 7
    p, screen = _pty_run(["purge", "--connect", where], answer="y")
    assert p.returncode == 0, screen
    assert "cancelled 7 queued task(s)" in screen
    assert client.snapshot().count("queued") == 0


# ---------------------------------------------------------------------- task and workers


def test_task_in_full_as_text_and_json(server: ServerProcess, where: str, client: Client,
                                       pool_factory: Callable[..., WorkerPool]) -> None:
    ok_id = client.submit("tests.jobs:slow_square", 6, seconds=0.0).id
    bad_id = client.submit("tests.jobs:boom", 3).id
    pool = pool_factory(server)
    pool.launch(1)
    client.wait_idle(30)
    got = json.loads(ok(run("task", str(ok_id), "--json", "--connect", where)))
    assert got["id"] == ok_id and got["state"] == "done" and got["result"] == 36
    assert got["function"] == "tests.jobs:slow_square" and got["args"] == [6]
    assert got["kwargs"] == {"seconds": 0.0} and got["attempts"] == 1
    assert got["worker"] and got["finished"] >= got["started"] >= got["submitted"] > 0
    text = ok(run("task", str(bad_id), "--connect", where))
    assert text.startswith(f"task {bad_id}: failed\n")
    assert "call       tests.jobs:boom(3)" in text
    assert "ValueError: boom 3" in text  # the traceback, in full
    line = one_line_failure(run("task", "12345", "--connect", where), ExitCode.NOT_FOUND)
    assert "no task 12345" in line


def test_workers_json_and_stop(server: ServerProcess, where: str, client: Client,
                               procs: Procs) -> None:
    w = procs([sys.executable, "-m", "guidist", "worker", "--connect", where, "--name",
               "cli-stop-me", "--mode", "thread", "--concurrency", "3", "--heartbeat", "0.2"])
    wait_for(lambda: client.snapshot().connected_workers == 1, message="the worker")
    client.submit_many("square", range(5))
    wait_for(lambda: client.snapshot().count("done") == 5, message="5 done")
    rows = json.loads(ok(run("workers", "--json", "--connect", where)))
    assert len(rows) == 1
    row = rows[0]
    for field in ("id", "name", "host", "pid", "state", "mode", "concurrency", "running",
                  "claimed", "done", "failed", "last_heartbeat_s", "current_task", "joined",
                  "last_seen"):
        assert field in row, field
    assert row["name"] == "cli-stop-me" and row["pid"] == w.pid
    assert row["mode"] == "thread" and row["concurrency"] == 3 and row["done"] == 5
    assert row["state"] in ("idle", "busy") and 0 <= row["last_heartbeat_s"] < 10
    table = ok(run("workers", "--connect", where)).splitlines()
    assert table[0].split() == ["NAME", "HOST", "PID", "STATE", "MODE", "RUNNING", "CLAIMED",
                                "DONE", "FAILED", "CPU", "MEMORY", "TASK", "HEARTBEAT"]
    assert table[1].startswith("cli-stop-me") and "thread x3" in table[1]
    line = one_line_failure(run("workers", "stop", "nobody", "--connect", where),
                            ExitCode.NOT_FOUND)
    assert "nobody" in line and "cli-stop-me" in line
    assert w.poll() is None  # an unknown name stops no one
    out = ok(run("workers", "--connect", where, "stop", "cli-stop-me"))
    assert out.startswith("asked 1 worker(s) to stop")
    text = output_of(w, timeout=30)
    assert w.returncode == 0, text
    wait_for(lambda: all(x.state is WorkerState.OFFLINE for x in client.workers()),
             timeout=10, message="the worker gone")


# ---------------------------------------------------------------------- conventions


def test_guidist_connect_replaces_connect(where: str, client: Client) -> None:
    env = {"GUIDIST_CONNECT": where}
    assert ok(run("submit", "--range", "1..4", env=env)).startswith("queued 4 square")
    assert json.loads(ok(run("status", "--json", env=env)))["queued"] == 4
    assert ok(run("pause", env=env)).startswith("paused")
    assert json.loads(ok(run("task", "2", "--json", env=env)))["args"] == [2]
    rows = [json.loads(line) for line in ok(run("export", env=env)).splitlines()]
    assert sorted(r["id"] for r in rows) == [1, 2, 3, 4]
    # --connect on the command line wins over the environment
    other = {"GUIDIST_CONNECT": f"127.0.0.1:{free_port()}"}
    assert json.loads(ok(run("status", "--json", "--connect", where, env=other)))["queued"] == 4
    line = one_line_failure(run("status", env={"GUIDIST_CONNECT": "nonsense"}), ExitCode.USAGE)
    assert "GUIDIST_CONNECT: malformed address" in line
    line = one_line_failure(run("status"), ExitCode.USAGE)
    assert "--connect HOST:PORT (or set GUIDIST_CONNECT)" in line and "--redis" in line


def test_verbose_and_quiet_before_and_after_the_command(where: str, client: Client) -> None:
    for args in (["-v", "-v", "status", "--connect", where],
                 ["status", "-vv", "--connect", where],
                 ["-v", "status", "--connect", where, "-v"]):
        out = run(*args)
        assert ok(out).startswith("0 queued")
        assert "DEBUG" in out.stderr, args  # -v twice, wherever: debug logging
    for args in (["-q", "worker", "--connect", where, "--max-tasks", "0"],
                 ["worker", "--connect", where, "--max-tasks", "0", "-q"]):
        out = run(*args)
        assert out.returncode == 0, out
        assert "INFO" not in out.stderr, args  # a worker logs at INFO unless quieted
    loud = run("worker", "--connect", where, "--max-tasks", "0")
    assert "INFO" in loud.stderr


def test_version_and_help() -> None:
    from guidist import __version__

    assert ok(run("--version", key=None)).strip() == f"guidist {__version__}"
    top = ok(run("--help", key=None))
    for command in ("gui", "serve", "worker", "submit", "status", "export", "prune", "pause",
                    "resume", "cancel", "retry", "purge", "task", "workers"):
        assert f"    {command} " in top, command
    assert "exit codes" in top
    worker = ok(run("worker", "--help", key=None))
    assert "(default: 10000)" in worker and "example" in worker and "--path DIR" in worker
    assert "(default: None)" not in worker and "(default: False)" not in worker


def _tutorial_master(procs: Procs) -> str:
    # No worker ever answers it: it must outlive the tutorial's 10 s wait for a result, which
    # the commands run before it is used can take on a loaded machine. procs stops it.
    master = procs(script_argv("tutorial_master.py", "1", "300"))
    assert master.stdout is not None
    port = int(master.stdout.readline().split()[1])
    return f"127.0.0.1:{port}"


def test_one_exit_code_per_failure_across_commands(where: str, procs: Procs) -> None:
    """A wrong key is 4, no server is 3, a classic master's missing feature is 6: everywhere."""
    nobody = f"127.0.0.1:{free_port()}"
    classic = _tutorial_master(procs)
    commands = [["status"], ["submit", "--range", "1..2"], ["pause"], ["resume"],
                ["cancel", "1"], ["retry", "--all-failed"], ["purge", "--yes"], ["task", "1"],
                ["workers"], ["export"]]
    for command in commands:
        line = one_line_failure(run(*command, "--connect", where, key="wrong-key-0123456789"),
                                ExitCode.AUTH)
        assert "rejected the key" in line and "wrong-key" not in line, command
        line = one_line_failure(run(*command, "--connect", nobody), ExitCode.UNAVAILABLE)
        assert "Nothing is listening" in line, command
    w = run("worker", "--connect", where, "--give-up-after", "1", key="wrong-key-0123456789")
    assert w.returncode == ExitCode.AUTH, w
    w = run("worker", "--connect", nobody, "--give-up-after", "0.5")
    assert w.returncode == ExitCode.UNAVAILABLE, w
    for command in (["pause"], ["task", "1"], ["workers"], ["cancel", "1"]):
        line = one_line_failure(run(*command, "--connect", classic, key="abc"),
                                ExitCode.UNSUPPORTED)
        assert "classic tutorial master" in line, command
