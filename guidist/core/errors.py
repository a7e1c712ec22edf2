"""Typed errors with messages that say what to do; the CLI prints them as one line."""

from __future__ import annotations


class GuidistError(Exception):
    """Base class: str(error) is a complete sentence fit for a person."""


class AuthenticationFailed(GuidistError):
    """The server rejected the key (or the key did not match the server's)."""


class ServerUnavailable(GuidistError):
    """Nothing answers at the address, or the connection was lost."""


class PortInUse(GuidistError):
    """The port is already bound by another program."""


class AddressUnavailable(GuidistError):
    """The host is not an address this machine can listen on."""


class WeakKey(GuidistError):
    """An empty, short or well-known key was chosen for a server other machines can reach."""


class NotAGuidistServer(GuidistError):
    """The server is a classic tutorial master, so the asked operation is not available."""


class RemoteError(GuidistError):
    """The server raised while handling the request; the message carries its explanation."""


class JournalInUse(GuidistError):
    """Another running server already writes to this journal file."""


class PayloadTooLarge(GuidistError):
    """A task argument or result is over the size limit (16 MiB by default)."""


class JournalUnavailable(GuidistError):
    """The journal cannot be written (disk full, read-only, removed): submits are refused."""


class JournalUnreadable(GuidistError):
    """A journal file is damaged or cannot be opened; the message names the file."""
