"""Fixtures for the backend suites: one real redis-server per module (``shared_redis``)."""

from tests.redis_fixtures import shared_redis  # noqa: F401  (pytest finds fixtures by name)
