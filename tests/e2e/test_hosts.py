"""guidist across separate network hosts: one Linux network namespace per host (tests/netns.py).

Host a, b and c each have their own address on one bridge; every server, worker, script and
window here is a real process on one of them, started with ``ip netns exec``. A partition is a
cable pulled with ``ip link set ... down``: packets vanish, nothing is refused or reset, as when
a switch port or a route dies. These tests need root (CI runs as root) and skip elsewhere.

Every process is told that a peer silent for DEAD_PEER seconds is gone
(GUIDIST_DEAD_PEER_SECONDS), so the dead-connection tests take seconds instead of the default
20 s; the mechanism, TCP keepalive and a user timeout, is the one production uses.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from guidist.core.client import Client
from guidist.core.errors import GuidistError
from guidist.core.protocol import TaskState, WorkerState
from guidist.core.transport import DEAD_PEER_ENV
from guidist.gui.remote_script import worker_script
from tests import netns
from tests.conftest import REPO, wait_for
from tests.e2e.conftest import cli_env, run_cli

PORT = 5000  # each host has its own ports, so the documented default is free on every one
KEY = "hosts-test-key-7d1f0c9e2b"  # strong: the server listens on every interface
DEAD_PEER = 3.0
LEASE = 2.0

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def lab() -> Iterator[netns.Lab]:
    """Hosts a, b and c on one subnet, torn down (processes killed by pid) after the test."""
    reason = netns.unavailable()
    if reason:
        pytest.skip(f"no separate test hosts: {reason}")
    with netns.Lab("a", "b", "c") as made:
        yield made


def env(key: str = KEY) -> dict[str, str]:
    """A guidist process's environment: the key, and the short dead-peer time."""
    out = cli_env(key)
    out[DEAD_PEER_ENV] = str(DEAD_PEER)
    return out


def start(lab: netns.Lab, host: str, argv: list[str], log: Path,
          key: str = KEY) -> subprocess.Popen:
    """Start argv on host with its output in log (read back when a test fails)."""
    out = log.open("w")
    try:
        return lab.popen(host, argv, cwd=REPO, env=env(key), stdout=out,
                         stderr=subprocess.STDOUT, text=True)
    finally:
        out.close()  # the child has its own copy


def guidist(*args: str) -> list[str]:
    """argv of a guidist command with this interpreter."""
    return [sys.executable, "-m", "guidist", *args]


def serve(lab: netns.Lab, host: str, tmp_path: Path, *args: str) -> tuple[str, int]:
    """``guidist serve`` on every interface of host; returns its address once it answers."""
    log = tmp_path / f"serve-{host}.log"
    proc = start(lab, host, guidist("serve", "--host", "0.0.0.0", "--port", str(PORT),
                                    "--no-journal", "--interval", "3600", *args), log)
    address = (lab[host].address, PORT)

    def answers() -> bool:
        assert proc.poll() is None, f"the server exited: {log.read_text()}"
        try:
            with Client(address, KEY, connect_timeout=2) as c:
                c.snapshot()
            return True
        except GuidistError:
            return False

    wait_for(answers, timeout=60, interval=0.2, message=f"the server on {host}")
    return address


def worker(lab: netns.Lab, host: str, address: tuple[str, int], tmp_path: Path,
           *args: str) -> subprocess.Popen:
    """``guidist worker --connect`` on host, named after it."""
    return start(lab, host, guidist("worker", "--connect", f"{address[0]}:{address[1]}",
                                    "--name", f"worker-{host}", *args),
                 tmp_path / f"worker-{host}.log")


def listed_workers(address: tuple[str, int]) -> list[dict[str, Any]]:
    """The server's workers, as ``guidist workers --json`` prints them."""
    done = run_cli("workers", "--connect", f"{address[0]}:{address[1]}", "--json", key=KEY)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def by_address(workers: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {w["address"]: w for w in workers if w["kind"] == kind}


def stdlib_python() -> str:
    """The interpreter this virtual environment was made from: plain python3, no guidist."""
    return getattr(sys, "_base_executable", None) or "python3"


def tail(path: Path) -> str:
    return path.read_text()[-3000:] if path.exists() else "(no log)"


# ---------------------------------------------------------------------- across hosts


def test_workers_on_two_hosts_and_the_stdlib_script_finish_the_tasks(
        lab: netns.Lab, tmp_path: Path) -> None:
    address = serve(lab, "a", tmp_path)
    # guidist's workers take the sleep tasks, so the squares are left for the stdlib script.
    worker(lab, "b", address, tmp_path, "--tasks", "sleep")
    worker(lab, "c", address, tmp_path, "--tasks", "sleep")

    script = tmp_path / "guidist_worker.py"
    script.write_text(worker_script(address[0], address[1], KEY, embed_key=False))
    python3 = stdlib_python()
    isolated = [python3, "-I"]  # no site-packages, no PYTHON* variables, no script dir
    assert lab.run("c", [*isolated, "-c", "import guidist"], cwd=tmp_path,
                   capture_output=True).returncode != 0, "guidist is importable without a venv"
    start(lab, "c", [*isolated, str(script)], tmp_path / "script-c.log")

    b, c = lab["b"].address, lab["c"].address
    wait_for(lambda: len(by_address(listed_workers(address), "guidist")) == 2, timeout=60,
             message="the workers on b and c to register")
    with Client(address, KEY) as client:
        sleeps = client.submit_many("sleep", [(0.05,)] * 40)
        squares = client.submit_many("square", range(1, 51))
        client.wait_idle(timeout=60)
        snap = client.snapshot()
        assert snap.count("done") == 90 and snap.count("failed") == 0
        assert client.get_task(squares[6]).result == "7 * 7 = 49"  # the script's own format
        ran_sleeps = {client.get_task(t).worker for t in sleeps}

    listed = listed_workers(address)
    guidists, classics = by_address(listed, "guidist"), by_address(listed, "classic")
    assert set(guidists) == {b, c}, listed
    assert {w["name"] for w in guidists.values()} == {"worker-b", "worker-c"}
    assert guidists[b]["done"] + guidists[c]["done"] == 40
    assert ran_sleeps == {guidists[b]["id"], guidists[c]["id"]}, "one host did all the work"
    assert set(classics) == {c}, tail(tmp_path / "script-c.log")  # the script's host
    assert classics[c]["done"] == 50


def test_a_weak_key_on_all_interfaces_is_refused(lab: netns.Lab, tmp_path: Path) -> None:
    done = lab.run("a", guidist("serve", "--host", "0.0.0.0", "--port", str(PORT),
                                "--no-journal"),
                   cwd=REPO, env=env("abc"), capture_output=True, text=True)
    assert done.returncode != 0
    assert "Refusing a well-known key on 0.0.0.0" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert lab.connections("a", PORT) == []
    with pytest.raises(GuidistError, match="Nothing is listening"):
        Client((lab["a"].address, PORT), "abc").connect()


# ---------------------------------------------------------------------- partition


def test_a_partitioned_workers_tasks_finish_elsewhere_and_its_late_results_are_ignored(
        lab: netns.Lab, tmp_path: Path) -> None:
    address = serve(lab, "a", tmp_path, "--lease-timeout", str(LEASE))
    worker(lab, "b", address, tmp_path, "--give-up-after", "120")
    worker(lab, "c", address, tmp_path, "--give-up-after", "120")
    b, c = lab["b"].address, lab["c"].address
    wait_for(lambda: len(by_address(listed_workers(address), "guidist")) == 2, timeout=60,
             message="the workers on b and c to register")
    client = Client(address, KEY)
    try:
        ids = client.submit_many("sleep", [(0.25,)] * 40)

        def held_by_b() -> list[int]:
            wid = by_address(listed_workers(address), "guidist")[b]["id"]
            leased = [*client.list_tasks(TaskState.RUNNING, limit=100).tasks,
                      *client.list_tasks(TaskState.CLAIMED, limit=100).tasks]
            return [t.id for t in leased if t.worker == wid]

        # A 0.25 s task is claimed one at a time (about 0.1 s of work per claim).
        wait_for(lambda: len(held_by_b()) >= 1, timeout=30,
                 message="b's worker to hold tasks")
        lab.cut("b")
        held = held_by_b()  # unchanged until b's connections or its lease time out
        assert len(held) >= 1

        # B's tasks run again on c once b's lease expires; every task ends done.
        client.wait_idle(timeout=90)
        snap = client.snapshot()
        assert snap.count("done") == 40 and snap.requeued >= len(held)
        workers = by_address(listed_workers(address), "guidist")
        assert workers[b]["state"] == WorkerState.OFFLINE.value
        assert {client.get_task(t).worker for t in held} == {workers[c]["id"]}

        # The cable comes back: b's worker rejoins and reports what it finished meanwhile;
        # those results are ignored, and no task is done twice.
        lab.restore("b")
        wait_for(lambda: client.snapshot().extra.get("ignored_late", 0) >= len(held),
                 timeout=60, message="b's late results to arrive")

        def b_rejoined() -> bool:
            return any(w["address"] == b and w["state"] != WorkerState.OFFLINE.value
                       for w in listed_workers(address))

        wait_for(b_rejoined, timeout=60, message="b's worker to register again")
        snap = client.snapshot()
        assert snap.count("done") == 40 and snap.count("queued") == snap.leased == 0
        tasks = [client.get_task(t) for t in ids]
        assert all(t.state is TaskState.DONE and t.result == 0.25 for t in tasks)
        assert {t.worker for t in tasks if t.id in held} == {workers[c]["id"]}
        assert sum(w["done"] for w in listed_workers(address)) == 40
    finally:
        client.close()
    assert "registering again" in tail(tmp_path / "worker-b.log")


# ---------------------------------------------------------------------- half-open peers

_WAITING_CLIENT = """
import sys, time
from guidist.core.client import Client
from guidist.core.errors import GuidistError
c = Client((sys.argv[1], int(sys.argv[2])), sys.argv[3]).connect()
print("waiting", flush=True)
start = time.monotonic()
try:
    c.classic_result(timeout=120)  # nothing will come: it blocks in one call on the server
except GuidistError as exc:
    print(f"gave up after {time.monotonic() - start:.1f} s: {exc}", flush=True)
    sys.exit(1)
"""


def test_a_cut_link_under_an_idle_worker_and_a_waiting_client_hangs_neither(
        lab: netns.Lab, tmp_path: Path) -> None:
    address = serve(lab, "a", tmp_path)
    idle = worker(lab, "b", address, tmp_path, "--give-up-after", "4")
    client_log = tmp_path / "client-b.log"
    waiting = start(lab, "b", [sys.executable, "-c", _WAITING_CLIENT, address[0],
                               str(address[1]), KEY], client_log)
    b = lab["b"].address
    wait_for(lambda: b in by_address(listed_workers(address), "guidist"), timeout=60,
             message="the idle worker on b to register")
    wait_for(lambda: "waiting" in client_log.read_text(), timeout=60,
             message="the client on b to wait")
    # The worker's claim connection, its heartbeat's, and the client's.
    wait_for(lambda: lab.connections("a", PORT).count(b) >= 3, timeout=30,
             message="b's connections on the server")

    lab.cut("b")
    cut_at = time.monotonic()
    # Each gets its own deadline: the client DEAD_PEER after the server went silent (its own
    # wait was 120 s), the worker its --give-up-after on top (plus one connect attempt).
    assert waiting.wait(DEAD_PEER + 20) == 1, tail(client_log)
    client_took = time.monotonic() - cut_at
    assert "Lost the connection" in client_log.read_text(), tail(client_log)
    assert idle.wait(DEAD_PEER + 4 + 5 + 20) == 3, tail(tmp_path / "worker-b.log")
    assert "Gave up after 4 s" in tail(tmp_path / "worker-b.log")
    assert client_took < DEAD_PEER + 15, f"the client noticed after {client_took:.1f} s"

    # The server dropped every connection from b, though b never closed one.
    wait_for(lambda: b not in lab.connections("a", PORT), timeout=DEAD_PEER + 20,
             message="the server to drop b's dead connections")
    with Client(address, KEY) as c:
        assert c.snapshot().kind == "guidist"  # and it still serves everyone else


# ---------------------------------------------------------------------- the window


def test_the_window_on_one_host_attaches_to_a_server_on_another(
        lab: netns.Lab, tmp_path: Path) -> None:
    pytest.importorskip("PySide6")
    address = serve(lab, "b", tmp_path)
    worker(lab, "c", address, tmp_path)
    wait_for(lambda: lab["c"].address in by_address(listed_workers(address), "guidist"),
             timeout=60, message="the worker on c to register")
    log = tmp_path / "window-a.log"
    window = start(lab, "a", [sys.executable, str(REPO / "tests" / "fixtures" /
                                                  "window_on_host.py"),
                              f"{address[0]}:{address[1]}", "200",
                              str(tmp_path / "settings.ini")], log)
    wait_for(lambda: "online" in log.read_text() or window.poll() is not None, timeout=60,
             message="the window to attach")
    assert window.poll() is None, tail(log)
    with Client(address, KEY) as client:
        client.submit_many("square", range(200))
    assert window.wait(90) == 0, tail(log)
    shown = json.loads(log.read_text().strip().splitlines()[-1])
    assert shown["online"] and shown["task_rows"] == 200 and shown["plotted_done"] == 200
    assert shown["done_curve_points"] >= 1
    assert any(lab["c"].address in h for h in shown["worker_hosts"]), shown
