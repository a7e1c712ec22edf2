"""status, submit, export and the controls on a Redis deployment with no guidist server.

A private redis-server with a password; the commands get its URL from --redis URL or from
GUIDIST_REDIS_URL, and the password never shows in what they print.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from guidist.core.errors import ExitCode
from tests.conftest import REPO
from tests.e2e.conftest import cli_env
from tests.redis_fixtures import RedisServer, needs_redis

pytestmark = needs_redis
PASSWORD = "pw-cli-9d2b61-not-shown"


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A private redis-server (no guidist server anywhere) and its URL with the password."""
    d = tmp_path / "redis"
    d.mkdir()
    server = RedisServer(d, password=PASSWORD).start()
    yield server.url
    server.stop()


def run(*args: str, url: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m guidist ARGS`` with no key, and the Redis URL in the environment if given."""
    env = cli_env(None)
    if url is not None:
        env["GUIDIST_REDIS_URL"] = url
    out = subprocess.run([sys.executable, "-m", "guidist", *args], cwd=REPO, env=env,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL,
                         timeout=timeout)
    assert PASSWORD not in out.stdout + out.stderr
    return out


def test_status_submit_and_export_work_on_redis_alone(redis_url: str, tmp_path: Path) -> None:
    out = run("submit", "--redis", redis_url, "--range", "1..30")  # the URL on the command line
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("queued 30 square task(s), ids 1..30, job square-")
    out = run("submit", "--redis", "--task", "tests.jobs:boom", "--count", "2", "--arg", "5",
              url=redis_url)  # the URL from GUIDIST_REDIS_URL
    assert out.returncode == 0, out.stderr
    status = run("status", "--redis", "--json", url=redis_url)
    assert status.returncode == 0, status.stderr
    got = json.loads(status.stdout)
    assert got["queued"] == 32 and got["done"] == 0 and "127.0.0.1" in got["backend"]
    # A worker straight on Redis runs them; still no server anywhere.
    w = run("worker", "--redis", "--max-tasks", "32", "--give-up-after", "20", url=redis_url)
    assert w.returncode == 0, w.stderr
    got = json.loads(run("status", "--redis", "--json", url=redis_url).stdout)
    assert (got["queued"], got["done"], got["failed"]) == (0, 30, 2)
    text = run("status", url=redis_url)  # no --redis: GUIDIST_REDIS_URL alone names the target
    assert text.returncode == 0 and text.stdout.startswith(
        "0 queued, 0 claimed, 0 running, 30 done")
    out_file = tmp_path / "ledger.csv"
    exp = run("export", "--redis", "-o", str(out_file), url=redis_url)
    assert exp.returncode == 0, exp.stderr
    with out_file.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 32 and sorted(int(r["id"]) for r in rows) == list(range(1, 33))
    failed = run("export", "--redis", "--state", "failed", url=redis_url)
    rows = [json.loads(line) for line in failed.stdout.splitlines()]
    assert sorted(r["args"] for r in rows) == [[5], [5]]
    assert all("ValueError: boom 5" in r["error"] for r in rows)


def test_controls_work_on_redis_alone(redis_url: str) -> None:
    assert run("pause", "--redis", url=redis_url).returncode == 0
    assert run("submit", "--redis", "--range", "1..5", url=redis_url).returncode == 0
    assert "cancelled 2 of 2" in run("cancel", "--redis", "1..2", url=redis_url).stdout
    task = json.loads(run("task", "3", "--json", "--redis", url=redis_url).stdout)
    assert task["state"] == "queued" and task["args"] == [3]
    assert run("task", "99", "--redis", url=redis_url).returncode == ExitCode.NOT_FOUND
    assert json.loads(run("workers", "--json", "--redis", url=redis_url).stdout) == []
    purge = run("purge", "--yes", "--redis", url=redis_url)
    assert purge.returncode == 0 and "cancelled 3 queued" in purge.stdout
    status = json.loads(run("status", "--json", "--redis", url=redis_url).stdout)
    assert status["paused"] is True and status["cancelled"] == 5
    assert run("resume", "--redis", url=redis_url).returncode == 0


def test_a_wrong_redis_password_is_the_wrong_key_code(redis_url: str) -> None:
    wrong = redis_url.replace(PASSWORD, "not-the-password")
    for command in (["status"], ["submit", "--range", "1..2"], ["export"], ["pause"]):
        out = run(*command, "--redis", wrong)
        assert out.returncode == ExitCode.AUTH, (command, out)
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
        assert "not-the-password" not in out.stderr
