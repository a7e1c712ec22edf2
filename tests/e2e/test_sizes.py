"""Big payloads never wedge anything (issue 11 items 1 and 11), with real processes.

Batches are sized by bytes as well as by count (claims, reports, control calls), a message
over the server's cap gets one clear error and then its connection is closed, a result that
alone is over the limit fails its task, and the server enforces the argument limit itself.
Servers run with a 1 MiB limit (so a 5 MiB message cap), which keeps the data small.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guidist.core.client import Client
from guidist.core.errors import PayloadTooLarge
from guidist.core.payload import pack
from guidist.core.pool import WorkerPool
from guidist.core.protocol import TaskState
from guidist.core.server import ServerProcess
from tests.conftest import TEST_KEY, wait_for
from tests.redis_fixtures import RedisServer, needs_redis

LIMIT = 1 << 20
ARG = 200 * 1024  # 5 per MiB: the old report chunks of 64 were 12.5 MiB, over the 5 MiB cap

Procs = Callable[..., subprocess.Popen]


@pytest.fixture
def srv(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(max_payload=LIMIT, lease_timeout=30.0)


@pytest.fixture
def cli(srv: ServerProcess) -> Iterator[Client]:
    assert srv.address is not None
    c = Client(srv.address, TEST_KEY, max_payload=LIMIT).connect()
    yield c
    c.close()


def payloads(n: int) -> list[tuple[str]]:
    """n distinct arguments of ARG bytes (distinct: pickle would share one repeated object)."""
    return [(f"{i:08d}".ljust(ARG, "x"),) for i in range(n)]


def in_thread(fn: Callable[[], object], seconds: float) -> object:
    """Run fn in a thread; fail the test if it has not returned within seconds."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        pytest.fail(f"the call hung for more than {seconds:.0f} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


def test_results_well_under_the_limit_never_wedge_a_worker(
        srv: ServerProcess, cli: Client, pool_factory: Callable[..., WorkerPool]) -> None:
    ids = cli.submit_many("echo", payloads(150))
    pool_factory(srv, give_up_after=30.0).launch(1)
    wait_for(lambda: cli.snapshot().count("done") == 150, timeout=90,
             message="all 150 tasks of 200 KiB to finish")
    assert cli.snapshot().count("running") == 0
    assert all(len(cli.get_task(i).result) == ARG for i in (ids[0], ids[75], ids[-1]))


def test_a_claim_is_bounded_by_bytes(srv: ServerProcess, cli: Client) -> None:
    cli.submit_many("echo", payloads(30))
    wid = cli.call("register_worker", "probe", "here", 1)["id"]
    groups = cli.call("claim", wid, 1000)
    n = sum(len(g[2]) for g in groups)
    assert 1 <= n <= LIMIT // ARG + 1
    assert len(pack(groups)) < 2 * LIMIT
    cli.call("unregister_worker", wid)


def test_a_single_result_over_the_limit_fails_its_task_and_the_rest_go_on(
        srv: ServerProcess, cli: Client, pool_factory: Callable[..., WorkerPool]) -> None:
    big = cli.submit("tests.jobs:big_result", 2 * LIMIT).id
    small = cli.submit_many("tests.jobs:big_result", [(ARG,)] * 20)
    pool_factory(srv, give_up_after=30.0).launch(1)
    wait_for(lambda: (lambda s: s.count("done") + s.count("failed") == 21)(cli.snapshot()),
             timeout=60, message="the tasks to finish")
    t = cli.get_task(big)
    assert t.state is TaskState.FAILED and "PayloadTooLarge" in t.error and "2.0 MiB" in t.error
    assert all(cli.get_task(i).state is TaskState.DONE for i in small)


def test_an_oversized_message_gets_one_error_then_the_connection_is_closed(
        srv: ServerProcess, cli: Client) -> None:
    """The public API with a list no cap allows, sent raw (the client chunks its own)."""
    cli.snapshot()
    ids = list(range(1, 2_000_001))  # ~18 MB pickled, over the 5 MiB cap
    with pytest.raises(PayloadTooLarge, match="refused a message of .* this connection is closed"):
        in_thread(lambda: cli.call("cancel", ids), 30)
    # The connection was closed, and a fresh one is opened for the next call.
    assert cli.snapshot().count("queued") == 0
    assert cli.submit_many("square", [(3,)])[0] > 0


def test_cancel_with_millions_of_ids_returns(srv: ServerProcess, cli: Client) -> None:
    first = cli.submit_many("square", range(10))
    n = in_thread(lambda: cli.cancel(range(1, 3_000_001)), 60)
    assert n == 10 and cli.get_task(first[0]).state is TaskState.CANCELLED


def test_the_server_enforces_the_argument_limit_itself(srv: ServerProcess, cli: Client) -> None:
    """A client that skips the check (a foreign one, or this one called raw) is refused."""
    cli.snapshot()
    broker = cli.connection._broker
    with pytest.raises(PayloadTooLarge, match="over the server's 1.0 MiB limit"):
        broker.submit("echo", pack([("x" * (2 * LIMIT),)]), None)
    with pytest.raises(PayloadTooLarge):
        broker.submit("echo", [("x" * (2 * LIMIT),)], None)  # unpickled by the manager
    assert cli.snapshot().count("queued") == 0 and cli.snapshot().submitted == 0


# ---------------------------------------------------------------------- Redis direct workers


@needs_redis
def test_redis_direct_workers_claim_and_report_by_bytes(
        procs: Procs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "redis"
    d.mkdir()
    redis = RedisServer(d).start()
    try:
        url = redis.url
        c = Client.redis(url, max_payload=LIMIT).connect()
        ids = c.submit_many("echo", payloads(60))
        broker = c.connection.broker
        wid = broker.register_worker("probe", "here", 1)["id"]
        groups = broker.claim(wid, 1000)
        assert 1 <= sum(len(g[2]) for g in groups) <= LIMIT // ARG + 1
        broker.unregister_worker(wid)
        monkeypatch.setenv("GUIDIST_REDIS_URL", url)
        worker = procs([sys.executable, "-m", "guidist", "worker", "--redis",
                        "--give-up-after", "20"], key=None)
        wait_for(lambda: c.snapshot().count("done") == 60, timeout=90,
                 message="the direct worker to finish 60 tasks of 200 KiB")
        assert len(c.get_task(ids[-1]).result) == ARG
        worker.terminate()
        worker.wait(15)
        c.shutdown()
    finally:
        redis.stop()
