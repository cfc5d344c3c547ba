"""What a cache backend stores, and the protocol every backend follows."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

import attrs

from ._config import CacheSettings


WallClock = Callable[[], float]
"""Returns the current time in seconds since the epoch.

The orchestrator's clock derives it from trio's clock (see `trio_wall_clock`),
so entries age under trio's ``MockClock`` in tests while stored times still
mean the same in every process that shares a cache.
"""


@attrs.frozen
class CacheEntry:
    """One stored value with its timing.

    Freshness is not stored: it depends on who asks (a tier may want
    fresher data than another), so the orchestrator judges it from
    ``stored_at`` and the TTL table when it reads.

    Attributes:
        payload: The value, encoded by the codec.
        stored_at: When the value was stored (seconds since the epoch).
        expires_at: After this, the entry may not be served even as stale,
            and a backend may drop it.
        partial: The value is a merge built from fewer than all providers;
            it stays fresh for a shorter time.
        decoded: ``(value_type, value)``: what *payload* decodes to, when
            the writer knows the value is immutable. A backend that keeps
            entries as objects in the process keeps it, and then a hit
            skips the codec; any other backend ignores it. Not part of
            equality.
    """

    payload: bytes
    stored_at: float
    expires_at: float
    partial: bool = False
    decoded: tuple[Any, object] | None = attrs.field(default=None, eq=False, repr=False)

    def age(self, now: float) -> float:
        """Return the entry's age in seconds at *now* (never negative)."""
        return max(0.0, now - self.stored_at)

    def is_expired(self, now: float) -> bool:
        """Tell whether the entry may no longer be served at all."""
        return now >= self.expires_at


@runtime_checkable
class CacheBackend(Protocol):
    """Where entries are kept: memory, a SQLite file, Redis.

    Keys arrive already built and escaped (``prefix:namespace:version:key``).
    A backend may drop an entry whose ``expires_at`` has passed, and may
    evict entries to stay within its bounds; it must never return an entry
    for a different key. A backend that fails raises; the orchestrator
    then goes on without it. A backend that keeps its data in the process
    may say so with a class attribute ``in_process = True``: its reads and
    writes then run without a timeout (its deletes keep theirs).

    Such a backend may also offer ``get_nowait(key)`` and
    ``set_many_nowait(entries)``: `get` and `set_many` without the
    checkpoint, done at once. The orchestrator's cache-hit path then reads
    through the first and takes one checkpoint of its own, and a fetched
    value is written through the second before the callers waiting for it
    wake, so that the next request finds it. Either may raise
    `trio.WouldBlock` when it cannot do its work without waiting (having
    done none of it): `get` or `set_many` is then awaited instead. The
    built-in tiered backend, which is not itself in the process, offers a
    ``get_nowait`` that answers from its memory L1 and raises for what
    only L2 may hold. A backend whose ``get_nowait`` raises so may offer
    ``async get_after_nowait(key)``, read next instead of `get`, for what
    the first could not answer: the tiered backend's reads L2 alone, so
    that L1 counts the miss once. Likewise a backend whose
    ``set_many_nowait`` writes only part at once (the tiered backend: L1)
    offers ``async set_many_after_nowait(entries)`` for the rest (L2),
    written after the callers have their answer.
    """

    @property
    def name(self) -> str:
        """The backend's name, as in configuration and results."""
        ...

    async def get(self, key: str) -> CacheEntry | None:
        """Return the entry under *key*, or ``None``."""
        ...

    async def get_many(self, keys: Sequence[str]) -> dict[str, CacheEntry]:
        """Return the entries found under *keys*, in one round trip."""
        ...

    async def set(self, key: str, entry: CacheEntry) -> None:
        """Store *entry* under *key*, replacing what was there."""
        ...

    async def set_many(self, entries: Mapping[str, CacheEntry]) -> None:
        """Store several entries in one round trip."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the entry under *key*, if any."""
        ...


CacheBackendFactory = Callable[
    [CacheSettings, WallClock], AbstractAsyncContextManager[CacheBackend]
]
"""Opens a backend for the given settings; closing the context closes it.

Plugins return these by name from the ``dso_cache_backends`` hook.
"""
