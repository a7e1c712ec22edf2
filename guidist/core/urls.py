"""Redis URLs: recognising, resolving from the environment, and hiding their passwords."""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit, urlunsplit

#: Environment variable holding the Redis URL (and its password), so it stays out of ``ps``.
REDIS_URL_ENV = "GUIDIST_REDIS_URL"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def is_redis_url(text: str | None) -> bool:
    """True for redis://, rediss:// and unix:// URLs."""
    return bool(text) and str(text).lower().startswith(REDIS_SCHEMES)


def redact_url(url: str) -> str:
    """The URL without user name and password, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "redis://<unparsable URL>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def resolve_url(url: str | None) -> str:
    """The URL given, else $GUIDIST_REDIS_URL; raises ValueError when neither is a Redis URL."""
    url = url or os.environ.get(REDIS_URL_ENV)
    if not url:
        raise ValueError(f"no Redis URL: pass redis://HOST:PORT/DB or set {REDIS_URL_ENV}")
    if not is_redis_url(url):
        raise ValueError(f"{redact_url(url)!r} is not a Redis URL: write redis://HOST:PORT/DB "
                         "(redis://:PASSWORD@HOST:PORT/DB with a password)")
    return url


def scrub_secrets(text: str, url: str | None) -> str:
    """text without the password (and user name) of url, for anything shown or logged."""
    if not url:
        return text
    try:
        parts = urlsplit(url)
        secrets_ = [x for x in (parts.password, parts.username) if x]
    except ValueError:
        return text.replace(url, "<redis URL>")
    text = text.replace(url, redact_url(url))
    for secret in secrets_:
        for form in {secret, unquote(secret)}:
            if len(form) >= 3:
                text = text.replace(form, "***")
    return text
