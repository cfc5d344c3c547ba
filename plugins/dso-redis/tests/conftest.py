"""Fixtures: a real redis-server per test, and clients to look inside it.

Every test gets its own server on a free loopback port, with persistence
off, stopped after the test; ``redis_server.restart()`` stops it and
starts it again, empty, on the same port. Without the ``redis-server``
program the tests that need it are skipped, except under CI (``CI`` set),
where it must be installed and its absence is a failure.
"""

import os
from collections.abc import AsyncIterator
from pathlib import Path

import coredis
import pytest

from dso_redis.testing import RedisServer, find_redis_server, open_redis_server


# A guard against a hang, never a timing assertion: Redis on loopback
# answers in microseconds, and a failure must surface in well under this.
DEADLINE = 10

PASSWORD = "hunter2-rEd1s"  # the ``dso`` user's on `protected_server`


def require_redis_server() -> None:
    """Skip (locally) or fail (under CI) when redis-server is not installed."""
    if find_redis_server() is not None:
        return

    if os.environ.get("CI"):
        pytest.fail("redis-server is not installed; CI installs it in .ci/run")

    pytest.skip("redis-server is not installed (apt-get install redis-server)")


@pytest.fixture
def redis_server_program() -> str:
    """The path of redis-server; the test is skipped (or fails in CI) without it."""
    require_redis_server()
    program = find_redis_server()
    assert program is not None
    return program


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A fresh redis-server on a free loopback port, stopped after the test."""
    require_redis_server()
    async with open_redis_server(tmp_path) as server:
        yield server


@pytest.fixture
async def protected_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A redis-server that admits only the user ``dso``, with `PASSWORD`."""
    require_redis_server()
    arguments = ["--user", "default", "off", "--user", "dso", "on", f">{PASSWORD}"]
    arguments += ["~*", "&*", "+@all"]
    async with open_redis_server(tmp_path, arguments=arguments) as server:
        yield server


@pytest.fixture
def protected_url(protected_server: RedisServer) -> str:
    """The URL of `protected_server`, with the user ``dso`` and its password."""
    return f"redis://dso:{PASSWORD}@127.0.0.1:{protected_server.port}/0"


@pytest.fixture
async def admin(redis_server: RedisServer) -> AsyncIterator[coredis.Redis[bytes]]:
    """A plain coredis client on `redis_server`, to look at what dso stored."""
    async with coredis.Redis(port=redis_server.port, stream_timeout=DEADLINE) as client:
        yield client
