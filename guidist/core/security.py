"""Key generation and the rules for which keys may protect which addresses."""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket

from .errors import WeakKey

log = logging.getLogger(__name__)

#: Keys that appear in tutorials and examples: anyone could guess them.
WELL_KNOWN_KEYS = frozenset({b"abc", b"secret", b"password", b"guidist", b"authkey", b"12345678"})
MIN_KEY_BYTES = 8


def generate_key() -> str:
    """A fresh random key, URL-safe so it can be pasted into a shell."""
    return secrets.token_urlsafe(18)


def to_bytes(key: str | bytes | None) -> bytes:
    """Keys travel as text on the command line and as bytes on the wire."""
    if key is None:
        return b""
    return key if isinstance(key, bytes) else key.encode("utf-8")


def is_loopback(host: str) -> bool:
    """True when only this machine can reach host."""
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
        except OSError:
            return False


def key_weakness(key: bytes) -> str | None:
    """Why key is weak ('empty', 'short', 'well-known'), or None when it is fine."""
    if not key:
        return "empty"
    if key.lower() in WELL_KNOWN_KEYS:
        return "well-known"
    if len(key) < MIN_KEY_BYTES:
        return "short"
    return None


def check_key(host: str, key: bytes, insist: bool = False) -> None:
    """Refuse a weak key on an address other machines can reach, unless the user insists."""
    weakness = key_weakness(key)
    if weakness is None:
        return
    if is_loopback(host):
        log.warning("the key is %s; acceptable on loopback only, where no other machine "
                    "can connect", weakness)
        return
    if insist:
        log.warning("serving on %s with a %s key because you insisted: anyone who can reach "
                    "this port and guess the key can run code here", host or "all interfaces",
                    weakness)
        return
    raise WeakKey(
        f"Refusing a {weakness} key on {host or 'all interfaces'}: anyone who guesses it can "
        f"run code on this machine. Leave the key out to get a random one, or use at least "
        f"{MIN_KEY_BYTES} random characters (or pass --insecure if you really mean it).")


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """Parse "HOST:PORT" (or ":PORT", or "PORT") into a (host, port) tuple."""
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host, port = "", text.strip()
    host = host.strip("[]") or default_host
    try:
        number = int(port)
        if not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise ValueError(f"malformed address {text!r}: write it as HOST:PORT, "
                         "e.g. 127.0.0.1:5000") from None
    return host, number
