"""``guidist submit --job``, ``jobs``, ``wait``, ``results`` and ``cancel/retry --job`` against
a live server, with real worker processes."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from collections.abc import Callable

from guidist.core.client import Client
from guidist.core.errors import ExitCode
from tests.conftest import REPO, TEST_KEY, wait_for
from tests.e2e.conftest import cli_env, connect_arg, worker_argv

Procs = Callable[..., subprocess.Popen]


def run(where: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m guidist ARGS --connect WHERE`` (key in the environment), stdin closed.

    Output is decoded without newline translation, so a bar redrawn with "\r" shows as such.
    """
    out = subprocess.run([sys.executable, "-m", "guidist", *args, "--connect", where],
                         cwd=REPO, env=cli_env(TEST_KEY), capture_output=True,
                         stdin=subprocess.DEVNULL, timeout=timeout)
    out.stdout, out.stderr = out.stdout.decode(), out.stderr.decode()
    return out


def _worker(procs: Procs, server, client: Client) -> None:
    procs(worker_argv(server.address, "--name", "jobs-w"))
    wait_for(lambda: any(w.state.value != "offline" for w in client.workers()),
             message="the worker to register")


def test_a_named_job_from_submit_to_results(server, client, procs: Procs, tmp_path):
    where = connect_arg(server.address)
    out = run(where, "submit", "--range", "1..50", "--job", "nightly")
    assert out.returncode == 0, out.stderr
    m = re.fullmatch(r"queued 50 square task\(s\), ids 1\.\.50, job nightly \(id (\d+)\)",
                     out.stdout.strip())
    assert m, out.stdout
    jid = int(m.group(1))
    # a second submission under the same name joins the job
    out = run(where, "submit", "--task", "echo", "--count", "3", "--arg", "'x'", "--job",
              "nightly")
    assert f"job nightly (id {jid})" in out.stdout
    listed = json.loads(run(where, "jobs", "--json").stdout)
    nightly = next(j for j in listed if j["name"] == "nightly")
    assert {"id", "name", "function", "total", "queued", "running", "done", "failed", "dead",
            "cancelled", "eta_s"} <= set(nightly)
    assert (nightly["id"], nightly["total"], nightly["queued"]) == (jid, 53, 53)
    assert nightly["function"] == "square,echo"
    table = run(where, "jobs").stdout.splitlines()
    assert table[0].split()[:4] == ["ID", "NAME", "FUNCTION", "STATE"]
    assert any(line.split()[:2] == [str(jid), "nightly"] for line in table[1:])

    _worker(procs, server, client)
    out = run(where, "wait", "nightly", "--timeout", "60", "--interval", "0.2")
    assert out.returncode == 0, out
    assert out.stdout.strip().splitlines()[-1] == \
        f"job nightly (id {jid}) done: 53 done of 53"
    assert "[" in out.stdout and "53/53 done" in out.stdout  # a progress line, not a bar
    assert "\r" not in out.stdout  # not a terminal: no bar redrawn in place

    out = run(where, "results", str(jid))  # by id, as JSON lines, in submission order
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["id"] for r in rows] == list(range(1, 54))
    assert [r["result"] for r in rows[:3]] == [1, 4, 9] and rows[-1]["result"] == "x"
    assert all(r["state"] == "done" and r["runtime"] is not None for r in rows)
    path = tmp_path / "nightly.csv"
    out = run(where, "results", "nightly", "-o", str(path))
    assert out.returncode == 0 and "wrote 53 result(s)" in out.stderr
    got = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [json.loads(r["result"]) for r in got[:2]] == [1, 4] and len(got) == 53


def test_wait_fails_for_a_failing_job_and_on_timeout(server, client, procs: Procs):
    where = connect_arg(server.address)
    run(where, "submit", "--task", "tests.jobs:boom", "--count", "2", "--job", "bad")
    run(where, "submit", "--range", "1..3", "--job", "slow")
    out = run(where, "wait", "slow", "--timeout", "0.5")  # no worker yet: times out
    assert out.returncode == ExitCode.TIMEOUT, out
    assert "3 task(s) of job slow still to run after 0.5 s" in out.stderr
    _worker(procs, server, client)
    out = run(where, "wait", "bad", "--timeout", "60")
    assert out.returncode == ExitCode.FAILED, out
    assert "failed: 0 done, 2 failed of 2" in out.stdout
    assert run(where, "wait", "slow", "--timeout", "60").returncode == 0
    out = run(where, "wait", "nosuchjob")
    assert out.returncode == ExitCode.NOT_FOUND and "no job 'nosuchjob'" in out.stderr
    assert "Traceback" not in out.stderr


def test_wait_draws_a_bar_when_asked(server, client):
    where = connect_arg(server.address)
    run(where, "submit", "--range", "1..2", "--job", "bar")
    client.cancel_job("bar")
    out = run(where, "wait", "bar", "--progress")
    assert out.returncode == ExitCode.FAILED  # cancelled tasks are not done
    assert out.stdout.startswith("\r[xxxx") and "2 cancelled" in out.stdout


def test_cancel_and_retry_a_job(server, client, procs: Procs):
    where = connect_arg(server.address)
    run(where, "submit", "--range", "1..4", "--job", "later")
    run(where, "submit", "--task", "tests.jobs:boom", "--count", "2", "--job", "flaky")
    out = run(where, "cancel", "--job", "later")
    assert out.returncode == 0 and out.stdout.startswith("cancelled 4 queued task(s) of job "
                                                         "later")
    assert client.job("later").cancelled == 4
    _worker(procs, server, client)
    wait_for(lambda: client.job("flaky").failed == 2, message="the failures")
    out = run(where, "retry", "--job", "flaky")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("queued 2 failed or dead task(s) of job flaky")
    wait_for(lambda: client.job("flaky").failed == 2 and client.job("flaky").queued == 0,
             message="the retried tasks to fail again")
    assert run(where, "cancel", "1", "--job", "later").returncode == ExitCode.USAGE
    assert run(where, "retry", "--job", "nope").returncode == ExitCode.NOT_FOUND
