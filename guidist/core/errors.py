"""Typed errors with messages that say what to do; the CLI prints them as one line."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The exit code of every guidist command for each kind of failure (the README lists them).

    One table, so a wrong key is 4 whether ``status``, ``submit`` or a worker met it.
    """

    OK = 0
    FAILED = 1  # the server refused or failed the request; a server could not start
    USAGE = 2  # bad input on the command line (argparse uses 2 as well)
    UNAVAILABLE = 3  # nothing answers at the address, or the connection was lost
    AUTH = 4  # the key (or the Redis password) was rejected
    NOT_FOUND = 5  # no task or worker with that id or name
    UNSUPPORTED = 6  # not possible here: a classic master, no display, the gui extra missing
    TIMEOUT = 7  # what was waited for did not happen in time (guidist wait --timeout)
    STUCK = 8  # a worker left because a task was stuck past its time limit (restart it)
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


class GuidistError(Exception):
    """Base class: str(error) is a complete sentence fit for a person."""

    exit_code: ExitCode = ExitCode.FAILED


class AuthenticationFailed(GuidistError):
    """The server rejected the key (or the key did not match the server's)."""

    exit_code = ExitCode.AUTH


class ServerUnavailable(GuidistError):
    """Nothing answers at the address, or the connection was lost."""

    exit_code = ExitCode.UNAVAILABLE


class PortInUse(GuidistError):
    """The port is already bound by another program."""


class AddressUnavailable(GuidistError):
    """The host is not an address this machine can listen on."""


class WeakKey(GuidistError):
    """An empty, short or well-known key was chosen for a server other machines can reach."""

    exit_code = ExitCode.USAGE


class NotAGuidistServer(GuidistError):
    """The server is a classic tutorial master, so the asked operation is not available."""

    exit_code = ExitCode.UNSUPPORTED


class RemoteError(GuidistError):
    """The server raised while handling the request; the message carries its explanation."""


class JournalInUse(GuidistError):
    """Another running server already writes to this journal file."""


class PayloadTooLarge(GuidistError):
    """A task argument or result is over the size limit (16 MiB by default)."""

    exit_code = ExitCode.USAGE


class NotFound(GuidistError):
    """No task, worker or job has the id or name asked for."""

    exit_code = ExitCode.NOT_FOUND


class JournalUnavailable(GuidistError):
    """The journal cannot be written (disk full, read-only, removed): submits are refused."""


class JournalUnreadable(GuidistError):
    """A journal file is damaged or cannot be opened; the message names the file."""
