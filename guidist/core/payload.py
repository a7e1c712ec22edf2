"""Pickling batches once on the sending side, so their size can be checked for free.

A batch travels as one pickled ``bytes`` blob inside the proxy call: pickling a bytes object is
a copy, so the sender pays for pickling once (as before) and learns the size before anything
goes on the wire. Items over the limit are refused with a clear error instead of exhausting the
server's memory; the server also drops connections whose messages exceed a hard backstop.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from .errors import PayloadTooLarge

MAX_PAYLOAD = 16 * 2**20  # bytes: the largest task argument or result accepted by default
PROTOCOL = pickle.HIGHEST_PROTOCOL


def backstop(max_payload: int = MAX_PAYLOAD) -> int:
    """Largest message the server reads at all: room for a batch of items near the limit."""
    return 4 * max_payload + 2**20


def pack(obj: Any) -> bytes:
    """Pickle obj (raises like pickle.dumps for unpicklable contents)."""
    return pickle.dumps(obj, protocol=PROTOCOL)


def unpack(obj: Any) -> Any:
    """The inverse of pack; anything not bytes was sent unpacked and is returned as is."""
    return pickle.loads(obj) if type(obj) is bytes else obj


def unpack_submission(function: Any, args_list: Any, kwargs: Any,
                      max_payload: int = MAX_PAYLOAD) -> tuple[list[tuple], int]:
    """Check a submit call's arguments (either backend): returns its list of arg tuples and
    their pickled size in bytes.

    The size limit is enforced here too, not only by the bundled client: a batch within the
    limit cannot hold an argument over it, and a batch over it is refused whole (the client
    splits its batches below the limit), so a foreign client cannot make the server hold a
    task no worker may report on.
    """
    if not isinstance(function, str) or not function:
        raise ValueError("a task needs a function name such as 'square' or 'pkg.mod:func'")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ValueError("kwargs must be a dict")
    if type(args_list) is bytes:  # clients send batches pre-pickled: the size is known
        size = len(args_list)
        _check_batch_size(size, max_payload)
        args_list = pickle.loads(args_list)
    else:  # sent unpacked (a classic put, an in-process caller): measure it
        if not isinstance(args_list, list):
            args_list = list(args_list)
        size = len(pack(args_list))
        _check_batch_size(size, max_payload)
    if kwargs:
        _check_batch_size(size + len(pack(kwargs)), max_payload)
    if not isinstance(args_list, list):
        args_list = list(args_list)
    if not all(type(a) is tuple for a in args_list):
        args_list = [a if type(a) is tuple else tuple(a) if isinstance(a, list) else (a,)
                     for a in args_list]
    return args_list, size


def _check_batch_size(size: int, max_payload: int) -> None:
    if size > max_payload:
        raise PayloadTooLarge(
            f"A submit of {mib(size)} is over the server's {mib(max_payload)} limit: send "
            f"batches of at most {mib(max_payload)}, each argument below it (pass a file path "
            "or URL instead of the data). Nothing of this batch was queued.")


def mib(n: int) -> str:
    """Bytes as MiB for messages."""
    return f"{n / 2**20:.1f} MiB"


def split_by_size(items: list, limit: int,
                  describe: Callable[[int, int], str]) -> list[tuple[list, bytes]]:
    """Pack items into (chunk, blob) pairs, each blob at most limit bytes, in order; raises
    PayloadTooLarge for a single item over the limit, with describe(index, size) as the message.

    Pickles the whole list once and halves only what is too big, so the common case (all of
    it fits) costs one pickle.
    """
    blob = pack(items)
    if len(blob) <= limit:
        return [(items, blob)]
    if len(items) == 1:
        raise PayloadTooLarge(describe(0, len(blob)))
    half = len(items) // 2
    left = split_by_size(items[:half], limit, describe)
    right = split_by_size(items[half:], limit, lambda i, n: describe(i + half, n))
    return left + right


def pack_batches(items: list, limit: int, describe: Callable[[int, int], str]) -> list[bytes]:
    """Pack items into blobs of at most limit bytes; raises PayloadTooLarge for a single item
    over the limit, with describe(index, size) as the message."""
    return [blob for _chunk, blob in split_by_size(items, limit, describe)]
