"""What stopping the embedded server (or quitting) really does to unfinished tasks, in words.

Stop and Quit used to say that queued tasks are lost, but with the default journal they come
back at the next start, and with Redis they never leave Redis. The question now says which.
Qt-free, so each case is tested without a window.
"""

from __future__ import annotations

from dataclasses import dataclass

from .style import plural


@dataclass(frozen=True)
class Keeping:
    """Where the embedded server keeps its state: a journal file, Redis, or nowhere."""

    journal: str | None = None
    redis: str | None = None  # the Redis URL without credentials


def unfinished_fate(queued: int, running: int, keeping: Keeping) -> str:
    """A sentence or two: how many tasks are unfinished and what becomes of them."""
    counts = f"{plural(queued, 'task')} queued and {running:,} running."
    local = ("Local workers finish the task at hand and hand the rest back; "
             if running else "")
    if keeping.redis:
        return (f"{counts} {local}They stay in Redis at {keeping.redis}: a server or "
                "workers using it later carry on with them.")
    if keeping.journal:
        return (f"{counts} {local}They are kept in the journal ({keeping.journal}): the next "
                "server started with it queues them again, running ones included.")
    return (f"{counts} This server keeps no journal, so they are lost when it stops "
            "(Preferences → Keep a journal keeps them next time).")


def stop_question(queued: int, running: int, keeping: Keeping) -> str:
    """The Stop server confirmation."""
    return f"{unfinished_fate(queued, running, keeping)} Stop the server and its local workers?"


def quit_question(queued: int, running: int, keeping: Keeping) -> str:
    """The Quit confirmation."""
    return (f"{unfinished_fate(queued, running, keeping)} Quitting stops the server and the "
            "local workers. Quit anyway?")
