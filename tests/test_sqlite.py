import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pluggy
import pytest
import trio

from dso import _builtin_backends, _hooks
from dso._cache import CacheBackend, CacheEntry
from dso._codec import Codec
from dso._config import CacheSettings
from dso._errors import ConfigError
from dso._sqlite import SqliteCache, SqliteCacheStatistics, open_sqlite_cache


# A guard against a hang (two processes' locks), never a timing assertion.
DEADLINE = 30


@attrs.define
class FakeWallClock:
    """A wall clock that moves only when a test says so."""

    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


def entry(
    payload: bytes = b"value", *, stored_at: float = 1_000.0, lifetime: float = 60.0
) -> CacheEntry:
    return CacheEntry(
        payload=payload, stored_at=stored_at, expires_at=stored_at + lifetime
    )


@pytest.fixture
def clock() -> FakeWallClock:
    return FakeWallClock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "cache.sqlite3"


@asynccontextmanager
async def open_cache(
    path: Path, clock: FakeWallClock, *, max_entries: int = 10_000
) -> AsyncIterator[SqliteCache]:
    settings = CacheSettings(backend="sqlite", path=str(path), max_entries=max_entries)
    async with open_sqlite_cache(settings, clock) as cache:
        yield cache


def count_rows(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        (count,) = connection.execute("SELECT count(*) FROM dso_cache").fetchone()
    connection.close()
    return int(count)


async def test_it_follows_the_cache_backend_protocol(
    path: Path, clock: FakeWallClock
) -> None:
    """A `SqliteCache` is a `CacheBackend`, named ``sqlite``."""
    async with open_cache(path, clock) as cache:
        assert (True, "sqlite") == (isinstance(cache, CacheBackend), cache.name)


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00", b"\x00\xff" * 3, bytes(range(256)) * 64],
    ids=["empty", "nul", "binary", "16k"],
)
async def test_an_entry_comes_back_byte_for_byte(
    path: Path, clock: FakeWallClock, payload: bytes
) -> None:
    """Payload, times and flag come back exactly, empty payloads included."""
    stored = CacheEntry(
        payload=payload, stored_at=999.123456789, expires_at=2_000.5, partial=True
    )
    async with open_cache(path, clock) as cache:
        await cache.set("k", stored)

        found = await cache.get("k")

    assert stored == found


@pytest.mark.parametrize("value", [0, "", [], {}, False, 0.0, None], ids=repr)
async def test_falsy_values_survive_the_codec_and_the_cache(
    path: Path, clock: FakeWallClock, value: object
) -> None:
    """A falsy value is a hit with that value, not a miss."""
    codec = Codec()
    async with open_cache(path, clock) as cache:
        await cache.set("k", entry(codec.encode(value, object)))

        found = await cache.get("k")

    assert found is not None
    decoded = codec.decode(found.payload, object)
    assert (value, type(value)) == (decoded, type(decoded))


async def test_a_missing_key_is_none(path: Path, clock: FakeWallClock) -> None:
    """Reading a key never stored gives ``None``."""
    async with open_cache(path, clock) as cache:
        assert await cache.get("missing") is None


async def test_get_many_reads_more_keys_than_one_select_takes(
    path: Path, clock: FakeWallClock
) -> None:
    """`get_many` finds every stored key among thousands, and only those."""
    stored = {f"k{index}": entry(str(index).encode()) for index in range(0, 3000, 2)}
    async with open_cache(path, clock) as cache:
        await cache.set_many(stored)

        found = await cache.get_many([f"k{index}" for index in range(3000)])

    assert stored == found


async def test_get_many_of_nothing_is_empty(path: Path, clock: FakeWallClock) -> None:
    """Asking for no keys finds none."""
    async with open_cache(path, clock) as cache:
        assert {} == await cache.get_many([])


async def test_set_replaces_the_entry(path: Path, clock: FakeWallClock) -> None:
    """Storing under a key again replaces its entry."""
    async with open_cache(path, clock) as cache:
        await cache.set("k", entry(b"old"))
        await cache.set("k", entry(b"new"))

        found = await cache.get("k")

    assert entry(b"new") == found


async def test_delete_removes_the_entry(path: Path, clock: FakeWallClock) -> None:
    """A deleted key is a miss."""
    async with open_cache(path, clock) as cache:
        await cache.set("k", entry())

        await cache.delete("k")

        assert await cache.get("k") is None


async def test_entries_outlive_the_cache_that_stored_them(
    path: Path, clock: FakeWallClock
) -> None:
    """A cache opened later on the same file reads what an earlier one stored."""
    async with open_cache(path, clock) as first:
        await first.set("k", entry(b"kept"))

    async with open_cache(path, clock) as second:
        found = await second.get("k")

    assert entry(b"kept") == found


async def test_two_open_caches_on_one_file_see_each_others_writes(
    path: Path, clock: FakeWallClock
) -> None:
    """A second connection, as another process would have, reads a write at once."""
    with trio.fail_after(DEADLINE):
        async with open_cache(path, clock) as first, open_cache(path, clock) as other:
            await first.set("k", entry(b"shared"))

            found = await other.get("k")

    assert entry(b"shared") == found


async def test_two_caches_can_write_at_once(path: Path, clock: FakeWallClock) -> None:
    """Two connections writing the same file concurrently both succeed."""

    async def write(cache: SqliteCache, prefix: str) -> None:
        for index in range(100):
            await cache.set(f"{prefix}{index}", entry(f"{prefix}{index}".encode()))

    with trio.fail_after(DEADLINE):
        async with open_cache(path, clock) as first, open_cache(path, clock) as other:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(write, first, "a")
                nursery.start_soon(write, other, "b")

            found = await first.get_many([f"{p}{i}" for p in "ab" for i in range(100)])

    assert 200 == len(found)


async def test_an_expired_entry_is_not_returned(
    path: Path, clock: FakeWallClock
) -> None:
    """From ``expires_at`` on, an entry is neither read nor batch-read."""
    async with open_cache(path, clock) as cache:
        await cache.set("k", entry(lifetime=60))
        clock.now += 60

        found = (await cache.get("k"), await cache.get_many(["k"]))

    assert (None, {}) == found


async def test_an_entry_is_served_until_it_expires(
    path: Path, clock: FakeWallClock
) -> None:
    """Just before ``expires_at`` the entry is still returned."""
    async with open_cache(path, clock) as cache:
        await cache.set("k", entry(lifetime=60))
        clock.now += 59.999

        found = await cache.get("k")

    assert entry(lifetime=60) == found


async def test_expired_rows_are_purged_on_open(
    path: Path, clock: FakeWallClock
) -> None:
    """Opening the cache deletes the rows that have expired."""
    async with open_cache(path, clock) as cache:
        await cache.set_many({"old": entry(lifetime=10), "new": entry(lifetime=100)})
    clock.now += 50

    async with open_cache(path, clock):
        rows = count_rows(path)

    assert 1 == rows


async def test_an_already_expired_entry_is_not_stored(
    path: Path, clock: FakeWallClock
) -> None:
    """Storing an expired entry removes what was there and writes nothing."""
    async with open_cache(path, clock) as cache:
        await cache.set("k", entry())
        clock.now += 120

        await cache.set("k", entry(lifetime=60))

        rows = count_rows(path)

    assert 0 == rows


async def test_the_oldest_entries_go_beyond_max_entries(
    path: Path, clock: FakeWallClock
) -> None:
    """Past ``max_entries``, a purge drops the entries stored longest ago."""
    async with open_cache(path, clock, max_entries=3) as cache:
        for index in range(5):
            await cache.set(f"k{index}", entry(stored_at=990.0 + index))

        found = await cache.get_many([f"k{index}" for index in range(5)])
        statistics = cache.statistics()

    assert (["k2", "k3", "k4"], 2) == (sorted(found), statistics.evictions)


async def test_statistics_count_hits_and_misses(
    path: Path, clock: FakeWallClock
) -> None:
    """`statistics` counts the keys read with and without a live entry."""
    async with open_cache(path, clock) as cache:
        await cache.set("a", entry())
        await cache.get_many(["a", "b", "c"])

        statistics = cache.statistics()

    assert SqliteCacheStatistics(hits=1, misses=2, evictions=0) == statistics


async def test_a_cancelled_set_stores_nothing(path: Path, clock: FakeWallClock) -> None:
    """A write cancelled before its thread started has not happened."""
    async with open_cache(path, clock) as cache:
        with trio.CancelScope() as scope:
            scope.cancel()
            await cache.set("k", entry())

        found = await cache.get("k")

    assert found is None


async def test_missing_parent_directories_are_created(
    tmp_path: Path, clock: FakeWallClock
) -> None:
    """The database file may live in directories that do not exist yet."""
    path = tmp_path / "a" / "b" / "cache.sqlite3"

    async with open_cache(path, clock) as cache:
        await cache.set("k", entry())

    assert path.is_file()


async def test_without_a_path_opening_is_a_config_error(clock: FakeWallClock) -> None:
    """The sqlite backend names the missing ``cache.path`` setting."""
    settings = CacheSettings(backend="sqlite", path=None)

    with pytest.raises(ConfigError, match=r"cache\.path"):
        async with open_sqlite_cache(settings, clock):
            pass


@pytest.mark.parametrize("busy_timeout", [0, -1, "5", True], ids=repr)
async def test_a_bad_busy_timeout_option_is_a_config_error(
    path: Path, clock: FakeWallClock, busy_timeout: object
) -> None:
    """An invalid ``cache.options.busy_timeout`` names itself in the error."""
    settings = CacheSettings(path=str(path), options={"busy_timeout": busy_timeout})

    with pytest.raises(ConfigError, match=r"cache\.options\.busy_timeout"):
        async with open_sqlite_cache(settings, clock):
            pass


async def test_the_connection_is_closed_on_exit(
    path: Path, clock: FakeWallClock
) -> None:
    """After its context, the cache can no longer be used."""
    async with open_cache(path, clock) as cache:
        pass

    with pytest.raises(sqlite3.ProgrammingError):
        await cache.get("k")


def test_the_hook_offers_the_sqlite_backend() -> None:
    """The built-in plugin offers ``sqlite`` through ``dso_cache_backends``."""
    plugins = pluggy.PluginManager(_hooks.PROJECT_NAME)
    plugins.add_hookspecs(_hooks)
    plugins.register(_builtin_backends)

    offered = plugins.hook.dso_cache_backends()

    assert [open_sqlite_cache] == [backends["sqlite"] for backends in offered]
