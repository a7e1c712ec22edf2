"""True timing: every execution mode measures each task where it runs, not in the worker's
buffer or on the wire."""

from __future__ import annotations

import pytest

from guidist.core.protocol import TaskState

from ..conftest import wait_for

MODES = ["inline", "process", "thread", "async"]


@pytest.mark.parametrize("mode", MODES)
def test_each_task_reports_its_own_runtime(server, client, pool_factory, mode):
    pool = pool_factory(server)
    pool.launch(1, mode=mode, concurrency=2)
    wait_for(lambda: any(w.state.value != "offline" for w in client.workers()),
             message="the worker to register")
    ids = client.submit_many("sleep", [0.2] * 8)
    client.wait_idle(timeout=60)
    tasks = [client.get_task(i) for i in ids]
    assert all(t.state is TaskState.DONE for t in tasks)
    # Claimed in one batch, run one (or two) at a time: before, the n-th task of a batch
    # showed n * 0.2 s. Each ran for 0.2 s, whatever it waited behind the others.
    assert [round(t.runtime, 2) for t in tasks] == pytest.approx([0.2] * 8, abs=0.05)
    assert all(t.submitted <= t.started <= t.finished for t in tasks)
    assert all(t.waited == pytest.approx(t.started - t.submitted) for t in tasks)
    if mode == "inline":
        # One at a time: each started once the one before it had run. No upper bound on the
        # gap: a partial report may fall between two tasks, and its round trip on a loaded
        # machine is the machine's, not the tasks'.
        ordered = sorted(tasks, key=lambda t: t.started)
        assert all(b.started >= a.started + a.runtime - 0.001
                   for a, b in zip(ordered, ordered[1:]))
