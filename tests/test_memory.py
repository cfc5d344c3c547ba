import attrs
import pluggy
import pytest
import trio
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from trio.testing import MockClock

from dso import _builtin_backends, _hooks
from dso._cache import CacheBackend, CacheEntry
from dso._clock import trio_wall_clock
from dso._codec import Codec
from dso._config import CacheSettings
from dso._errors import ConfigError
from dso._memory import MemoryCache, MemoryCacheStatistics, open_memory_cache


@attrs.define
class FakeWallClock:
    """A wall clock that moves only when a test says so."""

    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


def entry(payload: bytes = b"value", *, lifetime: float = 60.0) -> CacheEntry:
    return CacheEntry(payload=payload, stored_at=1_000.0, expires_at=1_000 + lifetime)


@pytest.fixture
def clock() -> FakeWallClock:
    return FakeWallClock()


@pytest.fixture
def cache(clock: FakeWallClock) -> MemoryCache:
    return MemoryCache(clock=clock, max_entries=100)


def test_it_follows_the_cache_backend_protocol(cache: MemoryCache) -> None:
    """A `MemoryCache` is a `CacheBackend`, named ``memory``."""
    assert (True, "memory") == (isinstance(cache, CacheBackend), cache.name)


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00", b"\x00\xff" * 3, bytes(range(256))],
    ids=["empty", "nul", "binary", "all-bytes"],
)
async def test_an_entry_comes_back_byte_for_byte(
    cache: MemoryCache, payload: bytes
) -> None:
    """What is stored is what is read, empty payloads included."""
    stored = CacheEntry(payload=payload, stored_at=0.0, expires_at=2_000.0)
    await cache.set("k", stored)

    found = await cache.get("k")

    assert stored == found


async def test_the_partial_flag_is_kept(cache: MemoryCache) -> None:
    """An entry marked partial is read back partial."""
    stored = attrs.evolve(entry(), partial=True)
    await cache.set("k", stored)

    found = await cache.get("k")

    assert stored == found


@pytest.mark.parametrize("value", [0, "", [], {}, False, 0.0, None], ids=repr)
async def test_falsy_values_survive_the_codec_and_the_cache(
    cache: MemoryCache, value: object
) -> None:
    """A falsy value is a hit with that value, not a miss."""
    codec = Codec()
    await cache.set("k", entry(codec.encode(value, object)))

    found = await cache.get("k")

    assert found is not None
    decoded = codec.decode(found.payload, object)
    assert (value, type(value)) == (decoded, type(decoded))


async def test_a_missing_key_is_none(cache: MemoryCache) -> None:
    """Reading a key never stored gives ``None``."""
    assert await cache.get("missing") is None


async def test_get_many_returns_only_the_keys_found(cache: MemoryCache) -> None:
    """`get_many` maps each stored key to its entry and leaves out the rest."""
    await cache.set_many({"a": entry(b"A"), "b": entry(b"B")})

    found = await cache.get_many(["a", "missing", "b"])

    assert {"a": entry(b"A"), "b": entry(b"B")} == found


async def test_set_replaces_the_entry(cache: MemoryCache) -> None:
    """Storing under a key again replaces its entry."""
    await cache.set("k", entry(b"old"))
    await cache.set("k", entry(b"new"))

    found = await cache.get("k")

    assert entry(b"new") == found


async def test_delete_removes_the_entry(cache: MemoryCache) -> None:
    """A deleted key is a miss."""
    await cache.set("k", entry())

    await cache.delete("k")

    assert await cache.get("k") is None


async def test_an_expired_entry_is_dropped_when_read(
    cache: MemoryCache, clock: FakeWallClock
) -> None:
    """Past ``expires_at`` an entry is neither returned nor kept."""
    await cache.set("k", entry(lifetime=60))
    clock.now += 60

    found = await cache.get("k")

    assert (None, 0) == (found, cache.statistics().entries)


async def test_an_entry_is_served_until_it_expires(
    cache: MemoryCache, clock: FakeWallClock
) -> None:
    """Just before ``expires_at`` the entry is still returned."""
    await cache.set("k", entry(lifetime=60))
    clock.now += 59.999

    found = await cache.get_many(["k"])

    assert {"k": entry(lifetime=60)} == found


async def test_an_already_expired_entry_is_not_stored(
    cache: MemoryCache, clock: FakeWallClock
) -> None:
    """Storing an expired entry removes what was there and keeps nothing."""
    await cache.set("k", entry())
    clock.now += 120

    await cache.set("k", entry(lifetime=60))

    assert 0 == cache.statistics().entries


async def test_entries_age_with_trios_clock(autojump_clock: MockClock) -> None:
    """With `trio_wall_clock`, entries expire as trio's clock moves on."""
    clock = trio_wall_clock()
    cache = MemoryCache(clock=clock, max_entries=10)
    now = clock()
    await cache.set("k", CacheEntry(b"v", stored_at=now, expires_at=now + 60))

    with trio.fail_after(120):
        await trio.sleep(61)

    assert await cache.get("k") is None


async def test_the_least_recently_used_entry_is_evicted(clock: FakeWallClock) -> None:
    """Beyond ``max_entries``, the entry read or written longest ago goes."""
    cache = MemoryCache(clock=clock, max_entries=2)
    await cache.set("a", entry(b"A"))
    await cache.set("b", entry(b"B"))
    await cache.get("a")

    await cache.set("c", entry(b"C"))

    assert {"a", "c"} == set(await cache.get_many(["a", "b", "c"]))


async def test_payload_bytes_are_bounded_by_max_bytes(clock: FakeWallClock) -> None:
    """Beyond ``max_bytes`` of payloads, the least recently used go."""
    cache = MemoryCache(clock=clock, max_entries=100, max_bytes=10)
    await cache.set("a", entry(b"12345"))
    await cache.set("b", entry(b"12345"))

    await cache.set("c", entry(b"1"))

    assert {"b", "c"} == set(await cache.get_many(["a", "b", "c"]))


async def test_a_payload_larger_than_max_bytes_is_not_stored(
    clock: FakeWallClock,
) -> None:
    """A payload that alone exceeds ``max_bytes`` evicts nothing and is dropped."""
    cache = MemoryCache(clock=clock, max_entries=100, max_bytes=10)
    await cache.set("a", entry(b"small"))

    await cache.set("b", entry(b"far too large"))

    assert {"a"} == set(await cache.get_many(["a", "b"]))


async def test_statistics_count_hits_misses_and_evictions(
    clock: FakeWallClock,
) -> None:
    """`statistics` reports the entries, their bytes and the counters."""
    cache = MemoryCache(clock=clock, max_entries=1)
    await cache.set("a", entry(b"AA"))
    await cache.set("b", entry(b"BBB"))
    await cache.get("a")
    await cache.get("b")

    statistics = cache.statistics()

    expected = MemoryCacheStatistics(
        entries=1, payload_bytes=3, hits=1, misses=1, evictions=1
    )
    assert expected == statistics


async def test_a_cancelled_set_stores_nothing(cache: MemoryCache) -> None:
    """A write cancelled before it ran has not happened."""
    with trio.CancelScope() as scope:
        scope.cancel()
        await cache.set("k", entry())

    assert await cache.get("k") is None


@pytest.mark.parametrize("bound", ["max_entries", "max_bytes"])
def test_bounds_must_be_positive(clock: FakeWallClock, bound: str) -> None:
    """A cache that could hold nothing is a mistake."""
    bounds = {"max_entries": 10, "max_bytes": 10, bound: 0}

    with pytest.raises(ValueError, match=bound):
        MemoryCache(clock=clock, **bounds)


async def test_the_factory_bounds_the_cache_as_configured(
    clock: FakeWallClock,
) -> None:
    """`open_memory_cache` uses ``max_entries`` and ``options.max_bytes``."""
    settings = CacheSettings(max_entries=1, options={"max_bytes": 4})

    async with open_memory_cache(settings, clock) as cache:
        await cache.set("a", entry(b"A"))
        await cache.set("b", entry(b"B"))
        await cache.set("c", entry(b"large"))

        assert {"b"} == set(await cache.get_many(["a", "b", "c"]))


@pytest.mark.parametrize("max_bytes", [0, -1, "10", 1.5, True], ids=repr)
async def test_a_bad_max_bytes_option_is_a_config_error(
    clock: FakeWallClock, max_bytes: object
) -> None:
    """An invalid ``cache.options.max_bytes`` names itself in the error."""
    settings = CacheSettings(options={"max_bytes": max_bytes})

    with pytest.raises(ConfigError, match=r"cache\.options\.max_bytes"):
        async with open_memory_cache(settings, clock):
            pass


def test_the_hook_offers_the_memory_backend() -> None:
    """The built-in plugin offers ``memory`` through ``dso_cache_backends``."""
    plugins = pluggy.PluginManager(_hooks.PROJECT_NAME)
    plugins.add_hookspecs(_hooks)
    plugins.register(_builtin_backends)

    offered = plugins.hook.dso_cache_backends()

    assert [open_memory_cache] == [backends["memory"] for backends in offered]


class LruModel:
    """The memory backend's behaviour, written the slow and obvious way."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.entries: list[tuple[str, CacheEntry]] = []  # oldest use first

    def lookup(self, key: str, now: float) -> CacheEntry | None:
        found = self._pop(key)
        if found is None or found.expires_at <= now:
            return None

        self.entries.append((key, found))
        return found

    def store(self, key: str, entry: CacheEntry, now: float) -> None:
        self._pop(key)
        if entry.expires_at <= now or len(entry.payload) > self.max_bytes:
            return

        self.entries.append((key, entry))
        while len(self.entries) > self.max_entries or self.size() > self.max_bytes:
            self.entries.pop(0)

    def size(self) -> int:
        return sum(len(entry.payload) for _, entry in self.entries)

    def _pop(self, key: str) -> CacheEntry | None:
        for index, (held, entry) in enumerate(self.entries):
            if held == key:
                del self.entries[index]
                return entry

        return None


_model_keys = st.sampled_from("abcdef")


class MemoryCacheMachine(RuleBasedStateMachine):
    """Any sequence of operations leaves the cache and the model in step."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeWallClock()
        self.cache = MemoryCache(clock=self.clock, max_entries=4, max_bytes=12)
        self.model = LruModel(max_entries=4, max_bytes=12)

    @rule(key=_model_keys, size=st.integers(0, 14), lifetime=st.integers(1, 10))
    def set(self, key: str, size: int, lifetime: int) -> None:
        stored = CacheEntry(b"x" * size, self.clock.now, self.clock.now + lifetime)
        trio.run(self.cache.set, key, stored)
        self.model.store(key, stored, self.clock.now)

    @rule(key=_model_keys)
    def get(self, key: str) -> None:
        expected = self.model.lookup(key, self.clock.now)

        actual = trio.run(self.cache.get, key)

        assert expected == actual

    @rule(key=_model_keys, size=st.integers(0, 14), lifetime=st.integers(1, 10))
    def set_many_nowait(self, key: str, size: int, lifetime: int) -> None:
        stored = CacheEntry(b"y" * size, self.clock.now, self.clock.now + lifetime)
        self.cache.set_many_nowait({key: stored})
        self.model.store(key, stored, self.clock.now)

    @rule(key=_model_keys)
    def get_nowait(self, key: str) -> None:
        expected = self.model.lookup(key, self.clock.now)

        actual = self.cache.get_nowait(key)

        assert expected == actual

    @rule(keys=st.lists(_model_keys, max_size=4))
    def get_many(self, keys: list[str]) -> None:
        expected = {}
        for key in keys:
            found = self.model.lookup(key, self.clock.now)
            if found is not None:
                expected[key] = found

        actual = trio.run(self.cache.get_many, keys)

        assert expected == actual

    @rule(key=_model_keys)
    def delete(self, key: str) -> None:
        trio.run(self.cache.delete, key)
        self.model._pop(key)

    @rule(seconds=st.integers(0, 5))
    def advance(self, seconds: int) -> None:
        self.clock.now += seconds

    @invariant()
    def bounds_hold(self) -> None:
        statistics = self.cache.statistics()
        assert statistics.entries <= 4
        assert statistics.payload_bytes <= 12
        assert statistics.payload_bytes == sum(
            len(entry.payload) for entry in self.cache._entries.values()
        )


TestMemoryCacheAgainstModel = MemoryCacheMachine.TestCase
