"""Reproducible performance runs for guidist (issue 4).

Each figure is one command run from the repository root::

    python -m benchmarks.throughput   # figure 1: tasks/s against the tutorial design and Pool
    python -m benchmarks.latency      # figure 2: submit -> result stored, one worker
    python -m benchmarks.scale        # figure 5 (core): a million queued tasks
    python -m benchmarks.run_all      # every figure, one after the other
    python -m benchmarks.profile_core # py-spy on the server and a worker under full load

``--quick`` runs a small version of each (CI); no benchmark ever fails on a number, only on a
crash. Results are printed as tables and saved to ``benchmarks/results/<name>.json``.
"""
