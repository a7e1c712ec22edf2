"""Where a command connects: a guidist server (--connect) or a Redis deployment (--redis).

Every connecting command takes the same three options and reads the same environment
variables, so a shell that exported them once can drop the options from every command:
GUIDIST_CONNECT (HOST:PORT), GUIDIST_AUTHKEY (the server's key) and GUIDIST_REDIS_URL (the
Redis URL, password included, which then never shows in a process list).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from ..core.client import Client
from ..core.connection import describe_address
from ..core.security import parse_address
from ..core.urls import REDIS_URL_ENV, redact_url, resolve_url
from .failures import CliError

KEY_ENV = "GUIDIST_AUTHKEY"
CONNECT_ENV = "GUIDIST_CONNECT"
REDIS_ENV = REDIS_URL_ENV  # the Redis URL (and password) stays out of process lists

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """A guidist server's address, or a Redis URL (exactly one of the two is set)."""

    address: tuple[str, int] | None = None
    redis_url: str | None = None

    def describe(self) -> str:
        """For messages: host:port, or the Redis URL without its password."""
        if self.redis_url is not None:
            return redact_url(self.redis_url)
        assert self.address is not None
        return describe_address(self.address)


def add_connection_options(p: argparse.ArgumentParser) -> None:
    """--connect, --redis and --authkey, with the environment variables they fall back to."""
    g = p.add_argument_group("connection")
    g.add_argument("--connect", metavar="HOST:PORT",
                   help=f"the guidist server (default: ${CONNECT_ENV})")
    g.add_argument("--redis", nargs="?", const="", metavar="URL",
                   help=f"a Redis deployment instead, no server needed (URL default: "
                        f"${REDIS_ENV})")
    add_key_option(g)


def bare_redis_flags(argv: list[str]) -> list[str]:
    """``--redis`` followed by something that is not a URL means the URL from the environment.

    argparse would take the next word as the URL whatever it is, so ``guidist cancel --redis
    1..2`` read "1..2" as a Redis URL; a word with neither ":" nor "/" is left where it is.
    """
    out = list(argv)
    for i, token in enumerate(out[:-1]):
        if token == "--":
            break
        following = out[i + 1]
        if token == "--redis" and not following.startswith("-") and not (
                ":" in following or "/" in following):
            out[i] = "--redis="
    return out


def add_key_option(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--authkey, which falls back to $GUIDIST_AUTHKEY."""
    p.add_argument("--authkey", metavar="KEY", help=f"the server's key (default: ${KEY_ENV})")


def key_from(args: argparse.Namespace, required: bool) -> str | None:
    """--authkey, else $GUIDIST_AUTHKEY; CliError when required and neither is there."""
    key = args.authkey if getattr(args, "authkey", None) is not None else os.environ.get(KEY_ENV)
    if key is None and required:
        raise CliError(f"no key: pass --authkey KEY or set {KEY_ENV} (the server printed it)")
    return key


def parse_connect(text: str, source: str = "") -> tuple[str, int]:
    """HOST:PORT with a real port; CliError naming where the text came from."""
    prefix = f"{source}: " if source else ""
    try:
        host, port = parse_address(text)
    except ValueError as exc:
        raise CliError(prefix + str(exc)) from None
    if port == 0:
        raise CliError(f"{prefix}{text!r} has no port: write HOST:PORT, e.g. 127.0.0.1:5000")
    return host, port


def redis_url(value: str | None) -> str:
    """A Redis URL from the option, else from $GUIDIST_REDIS_URL; CliError if there is none."""
    try:
        return resolve_url(value or None)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def explicit_target(args: argparse.Namespace) -> bool:
    """True when --connect or --redis is on the command line (not only in the environment)."""
    return bool(getattr(args, "connect", None)) or getattr(args, "redis", None) is not None


def target_from(args: argparse.Namespace,
                env: Mapping[str, str] | None = None) -> Target | None:
    """Where to connect: the command line first, then $GUIDIST_CONNECT, then $GUIDIST_REDIS_URL.

    None when none of them says; the server's address wins over the Redis URL in the
    environment because a machine that runs ``serve --backend redis`` may have both set.
    """
    env = os.environ if env is None else env
    connect, redis = getattr(args, "connect", None), getattr(args, "redis", None)
    if connect and redis is not None:
        raise CliError("pass --connect HOST:PORT or --redis URL, not both")
    if redis is not None:
        return Target(redis_url=redis_url(redis or env.get(REDIS_ENV)))
    if connect:
        return Target(address=parse_connect(connect))
    if env.get(CONNECT_ENV):
        return Target(address=parse_connect(env[CONNECT_ENV], CONNECT_ENV))
    if env.get(REDIS_ENV):
        return Target(redis_url=redis_url(env[REDIS_ENV]))
    return None


def require_target(args: argparse.Namespace) -> Target:
    """target_from, or a CliError that says how to name a server."""
    target = target_from(args)
    if target is None:
        raise CliError(f"no server: pass --connect HOST:PORT (or set {CONNECT_ENV}), or "
                       f"--redis URL for a Redis deployment (or set {REDIS_ENV})")
    return target


def open_client(args: argparse.Namespace) -> Client:
    """A connected Client for the command's target (a Redis client for a Redis URL)."""
    target = require_target(args)
    log.debug("connecting to %s", target.describe())  # -vv: which server a command chose
    if target.redis_url is not None:
        return Client.redis(target.redis_url).connect()
    assert target.address is not None
    return Client(target.address, key_from(args, required=True) or "").connect()


def close_client(client: Client) -> None:
    """Close a client for good (a Redis one also stops its listener thread)."""
    client.shutdown()


@contextmanager
def connected(args: argparse.Namespace) -> Iterator[Client]:
    """open_client for the length of a with block."""
    client = open_client(args)
    try:
        yield client
    finally:
        close_client(client)
