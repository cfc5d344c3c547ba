"""The redis backend on a real redis-server: the cache backend protocol."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import coredis
import pluggy
import pytest
import trio

import dso
import dso_redis
from dso import CacheBackend, CacheEntry
from dso import _hooks as dso_hooks
from dso._memory import MemoryCache
from dso_redis import (
    RedisCache,
    RedisCacheError,
    RedisCacheStatistics,
    _plugin,
    open_redis_cache,
)
from dso_redis._backend import _milliseconds_left
from dso_redis._envelope import pack_entry
from dso_redis.testing import RedisServer


# A guard against a hang, never a timing assertion.
DEADLINE = 10


@attrs.define
class FakeWallClock:
    """A wall clock that moves only when a test says so."""

    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeWallClock:
    return FakeWallClock()


@pytest.fixture
async def cache(
    redis_server: RedisServer, clock: FakeWallClock
) -> AsyncIterator[RedisCache]:
    async with open_redis_cache(settings_for(redis_server.url), clock) as opened:
        yield opened


def settings_for(url: str) -> dso.CacheSettings:
    return dso.CacheSettings(backend="redis", options={"url": url})


def entry(
    payload: bytes = b"value", *, stored_at: float = 1_000.0, lifetime: float = 60.0
) -> CacheEntry:
    return CacheEntry(payload, stored_at, stored_at + lifetime)


async def server_reads(admin: coredis.Redis[bytes]) -> int:
    """Read events the server has processed: one per request that reaches it.

    A request sent in one write (a single command, or a whole pipeline of
    a few kilobytes) is one read on loopback; N requests sent one after
    another are N reads. The INFO that asks counts itself.
    """
    stats = await admin.info("stats")
    return int(stats["total_reads_processed"])


async def round_trips(
    admin: coredis.Redis[bytes], act: Callable[[], Awaitable[Any]]
) -> int:
    """Return how many requests *act* sent to the server."""
    before = await server_reads(admin)
    await act()
    after = await server_reads(admin)
    return after - before - 1


async def command_calls(admin: coredis.Redis[bytes]) -> dict[str, int]:
    """Commands the server ran since the last CONFIG RESETSTAT, by name."""
    stats = await admin.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(fields["calls"])
        for name, fields in stats.items()
        if name not in {"cmdstat_info", "cmdstat_config|resetstat"}
    }


# Async only because its fixture is.
async def test_it_follows_the_cache_backend_protocol(  # noqa: ASYNC124
    cache: RedisCache,
) -> None:
    """A `RedisCache` is a `CacheBackend`, named ``redis``."""
    assert (True, "redis") == (isinstance(cache, CacheBackend), cache.name)


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00", b"\x00\xff" * 3, bytes(range(256)) * 64],
    ids=["empty", "nul", "binary", "16k"],
)
async def test_an_entry_comes_back_byte_for_byte(
    cache: RedisCache, payload: bytes
) -> None:
    """Payload, times and flag come back exactly, empty payloads included."""
    stored = CacheEntry(payload, stored_at=999.123456789, expires_at=2e3, partial=True)
    with trio.fail_after(DEADLINE):
        await cache.set("k", stored)

        found = await cache.get("k")

    assert stored == found


async def test_a_missing_key_is_none(cache: RedisCache) -> None:
    """Reading a key never stored gives ``None``."""
    with trio.fail_after(DEADLINE):
        assert await cache.get("missing") is None


async def test_get_many_returns_only_the_keys_found(cache: RedisCache) -> None:
    """`get_many` maps each stored key to its entry and leaves out the rest."""
    with trio.fail_after(DEADLINE):
        await cache.set_many({"a": entry(b"A"), "b": entry(b"B")})

        found = await cache.get_many(["a", "missing", "b", "a"])

    assert {"a": entry(b"A"), "b": entry(b"B")} == found


async def test_get_many_is_one_mget(
    cache: RedisCache, admin: coredis.Redis[bytes]
) -> None:
    """Reading 500 keys is one request to the server: one MGET, no GET."""
    keys = [f"k{index}" for index in range(500)]
    with trio.fail_after(DEADLINE):
        await cache.set_many({key: entry() for key in keys[::2]})
        await admin.config_resetstat()

        trips = await round_trips(admin, lambda: cache.get_many(keys))
        calls = await command_calls(admin)

    assert (1, {"mget": 1}) == (trips, calls)


async def test_set_many_is_one_pipelined_request(
    cache: RedisCache, admin: coredis.Redis[bytes]
) -> None:
    """Writing 50 entries is one request carrying 50 SETs, no transaction."""
    entries = {f"k{index}": entry() for index in range(50)}
    with trio.fail_after(DEADLINE):
        await cache.get("warm up the connection")
        await admin.config_resetstat()

        trips = await round_trips(admin, lambda: cache.set_many(entries))
        calls = await command_calls(admin)

    assert (1, {"set": 50}) == (trips, calls)


async def test_get_many_of_nothing_asks_redis_nothing(
    cache: RedisCache, admin: coredis.Redis[bytes]
) -> None:
    """Asking for no keys finds none, without a request."""
    with trio.fail_after(DEADLINE):
        await admin.config_resetstat()

        found = await cache.get_many([])
        await cache.set_many({})
        calls = await command_calls(admin)

    assert ({}, {}) == (found, calls)


async def test_set_replaces_the_entry(cache: RedisCache) -> None:
    """Storing under a key again replaces its entry."""
    with trio.fail_after(DEADLINE):
        await cache.set("k", entry(b"old"))
        await cache.set("k", entry(b"new"))

        found = await cache.get("k")

    assert entry(b"new") == found


async def test_delete_removes_the_entry(cache: RedisCache) -> None:
    """A deleted key is a miss."""
    with trio.fail_after(DEADLINE):
        await cache.set("k", entry())

        await cache.delete("k")

        assert await cache.get("k") is None


async def test_redis_expires_the_entry_with_its_stale_window(
    cache: RedisCache, admin: coredis.Redis[bytes], clock: FakeWallClock
) -> None:
    """The key's PX is the time left until ``expires_at``, in milliseconds."""
    clock.now = 1_010.0
    with trio.fail_after(DEADLINE):
        await cache.set("k", entry(stored_at=1_000.0, lifetime=3_600.0005))

        milliseconds = await admin.pttl("k")

    # Rounded up (3_590_001), less what little real time has passed.
    assert 3_580_000 < milliseconds <= 3_590_001


async def test_entries_written_elsewhere_are_read_with_their_times(
    redis_server: RedisServer, clock: FakeWallClock
) -> None:
    """A second cache on the same server, as another process, reads the entry."""
    settings = settings_for(redis_server.url)
    with trio.fail_after(DEADLINE):
        async with open_redis_cache(settings, clock) as first:
            await first.set("k", entry(b"shared", stored_at=990.0))

        async with open_redis_cache(settings, clock) as other:
            found = await other.get("k")

    assert entry(b"shared", stored_at=990.0) == found


async def test_statistics_count_hits_and_misses(cache: RedisCache) -> None:
    """`statistics` counts the keys read with and without a live entry."""
    with trio.fail_after(DEADLINE):
        await cache.set("a", entry())
        await cache.get_many(["a", "b", "c"])
        await cache.get("a")

        statistics = cache.statistics()

    assert RedisCacheStatistics(hits=2, misses=2, undecodable=0) == statistics


async def test_a_cancelled_set_stores_nothing(cache: RedisCache) -> None:
    """A write cancelled before it was sent has not happened."""
    with trio.fail_after(DEADLINE):
        with trio.CancelScope() as scope:
            scope.cancel()
            await cache.set("k", entry())

        found = await cache.get("k")

    assert found is None


async def test_the_envelope_is_what_redis_holds(
    cache: RedisCache, admin: coredis.Redis[bytes]
) -> None:
    """What dso stores is the envelope of the entry, nothing else."""
    stored = entry(b"payload")
    with trio.fail_after(DEADLINE):
        await cache.set("k", stored)

        raw = await admin.get("k")

    assert pack_entry(stored) == raw


# The memory backend is the reference for expiry; the same scenarios must
# end the same way on Redis.


@asynccontextmanager
async def open_backend(
    kind: str, server: RedisServer, clock: FakeWallClock
) -> AsyncIterator[CacheBackend]:
    if kind == "memory":
        yield MemoryCache(clock=clock, max_entries=100)
        return

    async with open_redis_cache(settings_for(server.url), clock) as cache:
        yield cache


BACKENDS = pytest.mark.parametrize("kind", ["memory", "redis"])


@BACKENDS
async def test_an_entry_is_served_until_it_expires(
    kind: str, redis_server: RedisServer, clock: FakeWallClock
) -> None:
    """Just before ``expires_at`` the entry is still returned."""
    with trio.fail_after(DEADLINE):
        async with open_backend(kind, redis_server, clock) as backend:
            await backend.set("k", entry(lifetime=60))
            clock.now += 59.999

            found = (await backend.get("k"), await backend.get_many(["k"]))

    assert (entry(lifetime=60), {"k": entry(lifetime=60)}) == found


@BACKENDS
async def test_an_expired_entry_is_not_returned(
    kind: str, redis_server: RedisServer, clock: FakeWallClock
) -> None:
    """From ``expires_at`` on, an entry is neither read nor batch-read."""
    with trio.fail_after(DEADLINE):
        async with open_backend(kind, redis_server, clock) as backend:
            await backend.set("k", entry(lifetime=60))
            clock.now += 60

            found = (await backend.get("k"), await backend.get_many(["k"]))

    assert (None, {}) == found


@BACKENDS
@pytest.mark.parametrize("lifetime", [0.0, -5.0], ids=repr)
async def test_an_entry_with_no_time_left_is_not_stored(
    kind: str, redis_server: RedisServer, clock: FakeWallClock, lifetime: float
) -> None:
    """No time left to live means "do not store": no error, the old entry goes."""
    with trio.fail_after(DEADLINE):
        async with open_backend(kind, redis_server, clock) as backend:
            await backend.set("k", entry())
            await backend.set("other", entry())

            await backend.set("k", entry(stored_at=clock.now, lifetime=lifetime))
            await backend.set_many(
                {"other": entry(stored_at=clock.now, lifetime=lifetime)}
            )

            found = await backend.get_many(["k", "other"])

    assert {} == found


@BACKENDS
async def test_set_many_stores_the_live_and_drops_the_expired(
    kind: str, redis_server: RedisServer, clock: FakeWallClock
) -> None:
    """In one batch, live entries are stored and expired ones removed."""
    with trio.fail_after(DEADLINE):
        async with open_backend(kind, redis_server, clock) as backend:
            await backend.set("dead", entry(b"old"))
            clock.now += 30

            await backend.set_many(
                {"live": entry(lifetime=40), "dead": entry(lifetime=10)}
            )

            found = await backend.get_many(["live", "dead"])

    assert {"live": entry(lifetime=40)} == found


@BACKENDS
async def test_a_tiny_time_left_is_still_stored(
    kind: str, redis_server: RedisServer, clock: FakeWallClock
) -> None:
    """Less than a millisecond left stores without error (PX is rounded up)."""
    tiny = entry(stored_at=clock.now, lifetime=0.0001)

    with trio.fail_after(DEADLINE):
        async with open_backend(kind, redis_server, clock) as backend:
            await backend.set("k", tiny)

            found = await backend.get("k")

    # Redis may expire the key in the millisecond it is given before the
    # read; what must hold is that it was stored for at least that long.
    assert found in (tiny, None) if kind == "redis" else tiny == found
    assert 1 == _milliseconds_left(tiny, clock.now)


async def test_a_nan_expiry_is_not_stored_nor_an_error(cache: RedisCache) -> None:
    """An expiry that is not a number is never sent to Redis as a PX."""
    with trio.fail_after(DEADLINE):
        await cache.set("k", entry(lifetime=float("nan")))

        found = await cache.get("k")

    assert found is None


async def test_an_absurdly_long_lifetime_is_capped_not_refused(
    cache: RedisCache, admin: coredis.Redis[bytes]
) -> None:
    """A lifetime beyond what PX allows is stored with a capped expiry."""
    with trio.fail_after(DEADLINE):
        await cache.set("k", entry(lifetime=float("inf")))

        found = (await cache.get("k"), await admin.pttl("k") > 0)

    assert (entry(lifetime=float("inf")), True) == found


def test_the_hook_offers_the_redis_backend() -> None:
    """The plugin offers ``redis`` through ``dso_cache_backends``."""
    plugins = pluggy.PluginManager(dso_hooks.PROJECT_NAME)
    plugins.add_hookspecs(dso_hooks)
    plugins.register(_plugin)

    offered = plugins.hook.dso_cache_backends()

    assert [open_redis_cache] == [backends["redis"] for backends in offered]


def test_the_public_names_are_listed_and_sorted() -> None:
    """__all__ lists every public name of dso_redis, sorted."""
    public = {
        name
        for name in vars(dso_redis)
        if not name.startswith("_") and name != "testing"
    }

    assert sorted(public) == dso_redis.__all__


def test_the_statistics_are_frozen() -> None:
    """A statistics snapshot cannot be changed."""
    statistics = RedisCacheStatistics(hits=1, misses=2, undecodable=0)

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        statistics.hits = 5  # type: ignore[misc]


def test_the_backend_error_is_a_dso_error() -> None:
    """Callers can catch the backend's failures as `dso.DsoError`."""
    assert issubclass(RedisCacheError, dso.DsoError)
