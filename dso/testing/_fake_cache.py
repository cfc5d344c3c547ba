"""A scripted cache backend, for testing how code copes with cache outages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import trio

from .._cache import CacheEntry, WallClock
from .._memory import MemoryCache


class FakeCacheBackend:
    """A memory backend that records its calls and fails on demand.

    While `down`, every operation raises `ConnectionError`; while
    `hanging`, every operation waits until its caller's timeout. It does
    not claim to live in the process, so the orchestrator bounds its
    operations with the cache timeout, as it would a network backend's.

    Args:
        clock: Tells the time entries expire by.
        name: The backend's name.
        max_entries: How many entries it holds at most.

    Attributes:
        calls: ``(operation, keys)`` for every call, in order.
        down: Make every operation raise.
        hanging: Make every operation hang.
    """

    def __init__(
        self, clock: WallClock, *, name: str = "fake", max_entries: int = 1000
    ) -> None:
        self.name = name
        self.entries = MemoryCache(clock=clock, max_entries=max_entries)
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.down = False
        self.hanging = False

    async def get(self, key: str) -> CacheEntry | None:
        """Return the live entry under *key*, or ``None``."""
        await self._enter("get", [key])
        return await self.entries.get(key)

    async def get_many(self, keys: Sequence[str]) -> dict[str, CacheEntry]:
        """Return the live entries found under *keys*."""
        await self._enter("get_many", keys)
        return await self.entries.get_many(keys)

    async def set(self, key: str, entry: CacheEntry) -> None:
        """Store *entry* under *key*."""
        await self._enter("set", [key])
        await self.entries.set(key, entry)

    async def set_many(self, entries: Mapping[str, CacheEntry]) -> None:
        """Store several entries."""
        await self._enter("set_many", list(entries))
        await self.entries.set_many(entries)

    async def delete(self, key: str) -> None:
        """Remove the entry under *key*."""
        await self._enter("delete", [key])
        await self.entries.delete(key)

    def operations(self) -> list[str]:
        """Return the names of the operations called, in order."""
        return [operation for operation, _ in self.calls]

    async def _enter(self, operation: str, keys: Sequence[str]) -> None:
        self.calls.append((operation, tuple(keys)))
        if self.hanging:
            await trio.sleep_forever()

        if self.down:
            raise ConnectionError(f"{self.name}: scripted outage")

        await trio.lowlevel.checkpoint()
