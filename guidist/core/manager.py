"""The manager class and the names it registers: the wire contract of client and server.

The tutorial's names (``get_task_queue``, ``get_result_queue``) and guidist's own
(``get_broker``) are declared here once. Clients use ``QueueManager`` as is; the server
registers the same names with the callables that serve them (``server.ServingManager``).
"""

from __future__ import annotations

from multiprocessing import managers

from .backends.base import exposed_methods

#: Methods of the broker a connected client may call: exactly BrokerBackend's wire calls.
BROKER_EXPOSED: tuple[str, ...] = exposed_methods()
#: The methods of queue.Queue that tutorial scripts use.
QUEUE_EXPOSED = ("get", "get_nowait", "put", "put_nowait", "qsize", "empty", "full")
#: Every registered name and what its proxy exposes.
REGISTERED: dict[str, tuple[str, ...]] = {
    "get_task_queue": QUEUE_EXPOSED,
    "get_result_queue": QUEUE_EXPOSED,
    "get_broker": BROKER_EXPOSED,
}


class QueueManager(managers.BaseManager):
    """The manager class clients connect with; same names as the tutorial's."""


for _name, _exposed in REGISTERED.items():
    QueueManager.register(_name, exposed=_exposed)
