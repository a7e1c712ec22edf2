"""What a remote machine needs to join: the ``guidist worker`` command and a stdlib-only script.

Qt-free, so the texts are tested (and the script is run against a real server) without a window.
"""

from __future__ import annotations

import ipaddress
import json
import shlex

from ..core.urls import REDIS_URL_ENV as REDIS_ENV
from ..core.urls import redact_url

KEY_ENV = "GUIDIST_AUTHKEY"

_SCRIPT = '''\
#!/usr/bin/env python3
"""A guidist worker that needs nothing but Python 3.

It has the shape of the classic task_worker.py. Copy it to any machine that
can reach {host}:{port} and run:  python3 {filename}

It takes integers from the server's task queue and puts back "n * n = n*n"
strings, so it runs the "square (classic)" tasks queued from the window or
with `guidist submit`. Anyone holding the key can run code on the server and
on its workers: keep this file private.
"""

import os
import queue
import sys
import time
from multiprocessing.managers import BaseManager

SERVER = os.environ.get("GUIDIST_SERVER", {host_literal})
PORT = int(os.environ.get("GUIDIST_PORT", "{port}"))
AUTHKEY = os.environ.get("{key_env}", {key_literal}).encode("utf-8")


class QueueManager(BaseManager):
    pass


# Only the names: the queues live on the server.
QueueManager.register("get_task_queue")
QueueManager.register("get_result_queue")


def main():
    if not AUTHKEY:
        sys.exit("set {key_env} to the server's key")
    print("Connect to server %s:%d..." % (SERVER, PORT))
    m = QueueManager(address=(SERVER, PORT), authkey=AUTHKEY)
    m.connect()
    task = m.get_task_queue()
    result = m.get_result_queue()
    done = 0
    started = time.time()
    while True:
        try:
            n = task.get(timeout=1)
        except queue.Empty:
            continue  # nothing queued right now: ask again
        except (EOFError, OSError) as exc:
            sys.exit("lost the server after %d tasks: %s" % (done, exc))
        result.put("%d * %d = %d" % (n, n, n * n))
        done += 1
        if done % 1000 == 0:
            print("%d tasks done (%.0f/s)" % (done, done / (time.time() - started)))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
'''


def worker_command(host: str, port: int, key: str, shell_key: bool = True) -> str:
    """The one line to paste on a machine with guidist installed."""
    target = f"{host}:{port}"
    if shell_key:
        return f"{KEY_ENV}={shlex.quote(key)} guidist worker --connect {target}"
    return f"guidist worker --connect {target}"


def redis_worker_command(url: str, shown: bool = False, mode: str = "inline",
                         concurrency: int | None = None) -> str:
    """The line that starts a worker straight on a Redis deployment; with shown=True the URL
    has no credentials (for the screen), else it is complete (for the clipboard)."""
    if shown:
        url = redact_url(url)
    line = f"{REDIS_ENV}={shlex.quote(url)} guidist worker --redis"
    if mode and mode != "inline":
        line += f" --mode {mode}"
        if concurrency:
            line += f" --concurrency {int(concurrency)}"
    return line


def worker_script(host: str, port: int, key: str, embed_key: bool = True,
                  filename: str = "guidist_worker.py") -> str:
    """The stdlib-only worker script, ready to save; without the key it reads GUIDIST_AUTHKEY."""
    return _SCRIPT.format(host=host, port=int(port), key_env=KEY_ENV, filename=filename,
                          host_literal=_literal(host),
                          key_literal=_literal(key) if embed_key else '""')


def _literal(text: str) -> str:
    """A double-quoted Python string literal (JSON's escapes are valid Python)."""
    return json.dumps(text)


def is_loopback_literal(host: str) -> bool:
    """True for "localhost" and loopback IP literals; never resolves a name (so it never
    blocks the GUI thread on DNS). Other names count as reachable from elsewhere."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def loopback_warning(bind_host: str) -> str | None:
    """A sentence saying other machines cannot connect, or None when they can."""
    if bind_host in ("", "0.0.0.0", "::"):
        return None
    if is_loopback_literal(bind_host):
        return (f"The server listens on {bind_host} only, so other machines cannot connect. "
                "Stop it, tick \u201cAllow remote workers\u201d and start it again.")
    return None
