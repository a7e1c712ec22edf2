"""guidist: a desktop monitor and controller for a multiprocessing.managers task queue.

From Python::

    import guidist
    client = guidist.connect("127.0.0.1:5000")        # key from $GUIDIST_AUTHKEY
    client.submit(math.factorial, 20).result()        # a concurrent.futures.Future
    with guidist.Executor("127.0.0.1:5000") as ex:    # a concurrent.futures.Executor
        results = list(ex.map(f, xs, chunksize=100))
"""

from .core.cfexecutor import Executor
from .core.client import Client, connect
from .core.errors import GuidistError
from .core.futures import TaskFailed, TaskFuture

__version__ = "0.1.0"

__all__ = ["Client", "Executor", "GuidistError", "TaskFailed", "TaskFuture", "connect"]
