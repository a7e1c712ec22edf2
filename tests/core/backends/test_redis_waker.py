"""The Redis broker's wake-ups: a long poll never sleeps through a message published while
its listener was still subscribing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.redis_fixtures import RedisServer, needs_redis

pytestmark = needs_redis


@pytest.fixture
def raw(shared_redis: RedisServer | None) -> Iterator[Any]:
    import redis

    assert shared_redis is not None
    r = redis.Redis.from_url(shared_redis.url)
    yield r
    r.close()


def test_the_first_wait_returns_once_subscribed_and_later_ones_hear_messages(raw: Any) -> None:
    from guidist.core.backends.redis.broker import _Waker

    waker = _Waker(raw, f"waker-test-{time.monotonic_ns()}")
    try:
        seen = waker.generation
        started = time.monotonic()
        waker.wait(seen, 10.0)  # returns when subscribed, so the caller tries again first
        assert time.monotonic() - started < 10.0 and waker._subscribed.is_set()
        seen = waker.generation
        got: list[float] = []
        t = threading.Thread(target=lambda: (waker.wait(seen, 10.0), got.append(1.0)))
        t.start()
        wait_for(lambda: raw.publish(waker._channel, "q") >= 1, timeout=5,
                 message="the listener to hear the channel")
        t.join(10)
        assert got and waker.generation > seen
    finally:
        waker.close()
