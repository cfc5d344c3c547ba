"""The core's three-strategy suite against Redis, and memory over Redis."""

from typing import Any

import pytest

from dso.testing import CacheBackendSuite
from dso_redis.testing import RedisServer


def url_of(server: RedisServer) -> str:
    return f"redis://127.0.0.1:{server.port}/0"


class TestRedis(CacheBackendSuite):
    @pytest.fixture
    def cache_settings(self, redis_server: RedisServer) -> dict[str, Any]:
        return {"backend": "redis", "options": {"url": url_of(redis_server)}}


class TestMemoryOverRedis(CacheBackendSuite):
    @pytest.fixture
    def cache_settings(self, redis_server: RedisServer) -> dict[str, Any]:
        return {
            "backend": "tiered",
            "l1": {"backend": "memory"},
            "l2": {"backend": "redis", "options": {"url": url_of(redis_server)}},
        }
