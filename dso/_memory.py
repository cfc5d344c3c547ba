"""The ``memory`` cache backend: a bounded LRU map inside the process."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import attrs
import trio

from ._cache import CacheEntry, WallClock
from ._config import CacheSettings
from ._errors import ConfigError


@attrs.frozen
class MemoryCacheStatistics:
    """A snapshot of a `MemoryCache`.

    Attributes:
        entries: Entries held now.
        payload_bytes: Their payloads' total size.
        hits: Reads that found a live entry.
        misses: Reads that found none, or only an expired one.
        evictions: Entries dropped to stay within the bounds.
    """

    entries: int
    payload_bytes: int
    hits: int
    misses: int
    evictions: int


class MemoryCache:
    """Entries in a dict, the least recently used evicted first.

    Reads and writes are O(1). An entry past its ``expires_at`` is dropped
    when it is read. Every async method is a trio checkpoint, like trio's
    own; a cancelled write has not happened. `get_nowait` and
    `set_many_nowait` do without one.

    Args:
        clock: Tells the time entries expire by.
        max_entries: How many entries it holds at most.
        max_bytes: How many payload bytes it holds at most; ``None`` for
            no bound beyond *max_entries*. A larger payload is not stored.

    Raises:
        ValueError: A bound is not positive.
    """

    name = "memory"
    in_process = True
    """It lives in this process: an operation cannot hang on the network."""

    def __init__(
        self, *, clock: WallClock, max_entries: int, max_bytes: int | None = None
    ) -> None:
        _check_bound("max_entries", max_entries)
        if max_bytes is not None:
            _check_bound("max_bytes", max_bytes)

        self._clock = clock
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._payload_bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    def __repr__(self) -> str:
        return (
            f"MemoryCache(max_entries={self._max_entries}, "
            f"max_bytes={self._max_bytes}, entries={len(self._entries)})"
        )

    async def get(self, key: str) -> CacheEntry | None:
        """Return the live entry under *key*, or ``None``."""
        await trio.lowlevel.checkpoint()
        return self.get_nowait(key)

    def get_nowait(self, key: str) -> CacheEntry | None:
        """Return the live entry under *key*, or ``None``, without a checkpoint.

        What `get` does, for a caller that takes its own checkpoint: the
        orchestrator's cache-hit path, which then needs no coroutine down
        here.
        """
        # _lookup, inlined: this is the cache hit's own path.
        entry = self._entries.get(key)
        if entry is None or self._clock() >= entry.expires_at:
            return self._lookup(key, self._clock())

        self._entries.move_to_end(key)
        self._hits += 1
        return entry

    async def get_many(self, keys: Sequence[str]) -> dict[str, CacheEntry]:
        """Return the live entries found under *keys*."""
        await trio.lowlevel.checkpoint()
        now = self._clock()
        held = self._entries
        entry_at = held.get
        touch = held.move_to_end
        found = {}
        # _lookup, inlined: a batch may ask for thousands of keys.
        for key in keys:
            entry = entry_at(key)
            if entry is None:
                continue

            if now >= entry.expires_at:
                self._remove(key)
                continue

            touch(key)
            found[key] = entry

        self._hits += len(found)
        self._misses += len(keys) - len(found)
        return found

    async def set(self, key: str, entry: CacheEntry) -> None:
        """Store *entry* under *key*, evicting the least recently used."""
        await trio.lowlevel.checkpoint()
        self._store(key, entry, self._clock())

    async def set_many(self, entries: Mapping[str, CacheEntry]) -> None:
        """Store several entries, evicting the least recently used."""
        await trio.lowlevel.checkpoint()
        self.set_many_nowait(entries)

    def set_many_nowait(self, entries: Mapping[str, CacheEntry]) -> None:
        """Store several entries at once, without a checkpoint.

        What `set_many` does, for a caller that must have the entries in
        place before anything else runs: the orchestrator writes a fetched
        value this way before its waiters wake, so that the next request
        finds it.
        """
        now = self._clock()
        for key, entry in entries.items():
            self._store(key, entry, now)

    async def delete(self, key: str) -> None:
        """Remove the entry under *key*, if any."""
        await trio.lowlevel.checkpoint()
        self._remove(key)

    def statistics(self) -> MemoryCacheStatistics:
        """Return the cache's size and counters."""
        return MemoryCacheStatistics(
            entries=len(self._entries),
            payload_bytes=self._payload_bytes,
            hits=self._hits,
            misses=self._misses,
            evictions=self._evictions,
        )

    def _lookup(self, key: str, now: float) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.is_expired(now):
            self._remove(key)
            entry = None

        if entry is None:
            self._misses += 1
            return None

        self._entries.move_to_end(key)
        self._hits += 1
        return entry

    def _store(self, key: str, entry: CacheEntry, now: float) -> None:
        self._remove(key)
        if entry.is_expired(now) or not self._fits(entry):
            return

        self._entries[key] = entry
        self._payload_bytes += len(entry.payload)
        self._evict_beyond_bounds()

    def _fits(self, entry: CacheEntry) -> bool:
        return self._max_bytes is None or len(entry.payload) <= self._max_bytes

    def _evict_beyond_bounds(self) -> None:
        while self._over_bounds():
            _, evicted = self._entries.popitem(last=False)
            self._payload_bytes -= len(evicted.payload)
            self._evictions += 1

    def _over_bounds(self) -> bool:
        if len(self._entries) > self._max_entries:
            return True

        return self._max_bytes is not None and self._payload_bytes > self._max_bytes

    def _remove(self, key: str) -> None:
        removed = self._entries.pop(key, None)
        if removed is not None:
            self._payload_bytes -= len(removed.payload)


@asynccontextmanager
async def open_memory_cache(
    settings: CacheSettings, clock: WallClock
) -> AsyncIterator[MemoryCache]:
    """Open a `MemoryCache` bounded as *settings* say.

    ``settings.max_entries`` bounds the entries; the optional
    ``settings.options["max_bytes"]`` bounds their payloads' total size.

    Raises:
        ConfigError: ``cache.options.max_bytes`` is not a positive integer.
    """
    yield MemoryCache(
        clock=clock,
        max_entries=settings.max_entries,
        max_bytes=_max_bytes_option(settings),
    )


def _max_bytes_option(settings: CacheSettings) -> int | None:
    value = settings.options.get("max_bytes")
    if value is None:
        return None

    if type(value) is not int or value <= 0:
        raise ConfigError(
            f"cache.options.max_bytes: expected a positive integer, got {value!r}"
        )

    return value


def _check_bound(name: str, value: int) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be greater than 0, got {value!r}")
