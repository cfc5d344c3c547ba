"""A Redis that is down, killed, restarted or frozen: prompt errors, recovery."""

from collections.abc import AsyncIterator

import pytest
import trio

import dso
from dso import CacheEntry
from dso_redis import RedisCache, RedisCacheError, open_redis_cache
from dso_redis.testing import RedisServer


# Far longer than a refused connection or the 0.5 s command timeout
# below take to fail: reaching it means a call hung.
DEADLINE = 10

STORED = CacheEntry(b"v", 1_000.0, 1_060.0)


@pytest.fixture
async def cache(redis_server: RedisServer) -> AsyncIterator[RedisCache]:
    settings = dso.CacheSettings(
        backend="redis", timeout=0.5, options={"url": redis_server.url}
    )
    async with open_redis_cache(settings, lambda: 1_000.0) as opened:
        yield opened


async def every_operation_fails(cache: RedisCache) -> list[bool]:
    """Try each operation once; say which raised `RedisCacheError`."""
    operations = [
        lambda: cache.get("k"),
        lambda: cache.get_many(["k", "j"]),
        lambda: cache.set("k", STORED),
        lambda: cache.set_many({"k": STORED, "j": STORED}),
        lambda: cache.delete("k"),
    ]
    failed = []
    for operation in operations:
        try:
            await operation()
        except RedisCacheError:
            failed.append(True)
        else:
            failed.append(False)

    return failed


async def test_a_redis_that_is_down_fails_every_operation_at_once(
    cache: RedisCache, redis_server: RedisServer
) -> None:
    """With nothing listening, each operation raises, none waits for Redis."""
    await redis_server.stop()

    with trio.fail_after(DEADLINE):
        failed = await every_operation_fails(cache)

    assert [True] * 5 == failed


async def test_the_cache_works_once_redis_comes_up(
    cache: RedisCache, redis_server: RedisServer
) -> None:
    """A cache opened while Redis was down works when it starts."""
    await redis_server.stop()
    with trio.fail_after(DEADLINE):
        with pytest.raises(RedisCacheError):
            await cache.get("k")

        await redis_server.start()
        await cache.set("k", STORED)

        found = await cache.get("k")

    assert STORED == found


async def test_a_killed_redis_fails_then_recovers_after_restart(
    cache: RedisCache, redis_server: RedisServer
) -> None:
    """Killed, Redis fails every operation; restarted, it serves again."""
    with trio.fail_after(DEADLINE):
        await cache.set("k", STORED)
        await redis_server.kill()
        failed = await every_operation_fails(cache)

        await redis_server.start()
        emptied = await cache.get("k")
        await cache.set_many({"k": STORED})
        found = await cache.get_many(["k"])

    assert ([True] * 5, None, {"k": STORED}) == (failed, emptied, found)


async def test_the_first_operation_after_a_restart_succeeds(
    cache: RedisCache, redis_server: RedisServer
) -> None:
    """A pooled connection to the old process does not fail the next call."""
    with trio.fail_after(DEADLINE):
        await cache.set("k", STORED)

        await redis_server.restart()
        found = await cache.get("k")

    assert found is None


async def test_a_frozen_redis_times_out_then_recovers(
    cache: RedisCache, redis_server: RedisServer
) -> None:
    """A Redis that does not answer fails after cache.timeout, then recovers."""
    with trio.fail_after(DEADLINE):
        await cache.set("k", STORED)
        redis_server.pause()
        try:
            with pytest.raises(RedisCacheError, match="TimeoutError"):
                await cache.get("k")
        finally:
            redis_server.resume()

        found = await cache.get("k")

    assert STORED == found


async def test_a_frozen_redis_does_not_hang_a_batch_write(
    cache: RedisCache, redis_server: RedisServer
) -> None:
    """A pipelined write to a Redis that does not answer fails, then works again."""
    with trio.fail_after(DEADLINE):
        await cache.get("warm up the connection")
        redis_server.pause()
        try:
            with pytest.raises(RedisCacheError):
                await cache.set_many({"k": STORED, "j": STORED})
        finally:
            redis_server.resume()

        await cache.set_many({"k": STORED})
        found = await cache.get_many(["k"])

    assert {"k": STORED} == found
