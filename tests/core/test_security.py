"""security: key rules (weak keys refused off loopback) and HOST:PORT parsing."""

from __future__ import annotations

import logging

import pytest

from guidist.core.errors import WeakKey
from guidist.core.security import (
    MIN_KEY_BYTES,
    check_key,
    generate_key,
    is_loopback,
    key_weakness,
    parse_address,
    to_bytes,
)


def test_generated_keys_are_random_strong_and_shell_safe() -> None:
    keys = {generate_key() for _ in range(50)}
    assert len(keys) == 50
    for k in keys:
        assert key_weakness(k.encode()) is None
        assert all(c.isalnum() or c in "-_" for c in k)


@pytest.mark.parametrize("key, why", [
    (b"", "empty"), (b"abc", "well-known"), (b"ABC", "well-known"), (b"secret", "well-known"),
    (b"12345678", "well-known"), (b"short", "short"), (b"x" * (MIN_KEY_BYTES - 1), "short"),
])
def test_key_weakness(key: bytes, why: str) -> None:
    assert key_weakness(key) == why


def test_strong_key() -> None:
    assert key_weakness(b"x" * MIN_KEY_BYTES) is None


def test_to_bytes() -> None:
    assert to_bytes(None) == b""
    assert to_bytes("ké") == "ké".encode()
    assert to_bytes(b"k") == b"k"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "localhost"])
def test_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "", "10.1.2.3", "192.168.0.1", "::"])
def test_not_loopback(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize("key", [b"", b"abc", b"Zq7x"])
@pytest.mark.parametrize("host", ["0.0.0.0", "", "10.1.2.3"])
def test_weak_key_refused_off_loopback(host: str, key: bytes) -> None:
    with pytest.raises(WeakKey) as info:
        check_key(host, key)
    message = str(info.value)
    assert "Refusing" in message and "--insecure" in message
    if key:
        assert key.decode() not in message  # the key itself is never echoed


@pytest.mark.parametrize("key", [b"", b"abc", b"short"])
def test_weak_key_allowed_on_loopback_with_a_warning(key: bytes,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="guidist.core.security"):
        check_key("127.0.0.1", key)
    assert "loopback" in caplog.text


def test_weak_key_allowed_off_loopback_when_insisted(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="guidist.core.security"):
        check_key("0.0.0.0", b"abc", insist=True)
    assert "insisted" in caplog.text
    assert "abc" not in caplog.text  # the key is never logged


def test_strong_key_anywhere(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_key("0.0.0.0", generate_key().encode())
    assert caplog.text == ""


@pytest.mark.parametrize("text, address", [
    ("127.0.0.1:5000", ("127.0.0.1", 5000)),
    ("example.org:1", ("example.org", 1)),
    (":5000", ("127.0.0.1", 5000)),
    ("5000", ("127.0.0.1", 5000)),
    (" 10.0.0.2:65535 ", ("10.0.0.2", 65535)),
    ("[::1]:5000", ("::1", 5000)),
    ("host:0", ("host", 0)),
])
def test_parse_address(text: str, address: tuple[str, int]) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["", "host:", "host:port", "host:65536", "host:-1", "a:b:c",
                                  "127.0.0.1"])
def test_parse_address_errors(text: str) -> None:
    with pytest.raises(ValueError, match="malformed address .*HOST:PORT"):
        parse_address(text)
