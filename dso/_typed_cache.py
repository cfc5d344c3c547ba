"""The orchestrator's view of its cache: typed values, TTLs, and outages.

A backend stores bytes under strings. This layer turns namespaced keys into
escaped cache keys, values into bytes through the codec, judges freshness
from the TTL table for the caller's tier, and treats a failing backend like
a failed provider: a read that fails is a miss, a write that fails is
skipped, and the fetch goes on.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs
import trio

from ._cache import CacheBackend, CacheEntry, WallClock
from ._codec import Codec, CodecError
from ._keys import cache_key
from ._namespace import BoundNamespace
from ._ttl import TtlTable


logger = logging.getLogger("dso")

R = TypeVar("R")


@attrs.frozen
class CachedValue:
    """A decoded value read from the cache.

    Attributes:
        value: The value, of the namespace's type.
        age: Seconds since it was stored.
        fresh: Whether it is fresh for the tier that asked.
        expired_for: Seconds since it stopped being fresh (0 if fresh).
    """

    value: Any
    age: float
    fresh: bool
    expired_for: float = 0.0


@attrs.define
class CacheCounters:
    """What the typed cache has seen since the orchestrator opened."""

    hits: int = 0
    stale_hits: int = 0
    misses: int = 0
    writes: int = 0
    errors: int = 0
    undecodable: int = 0
    unencodable: int = 0


class TypedCache:
    """Reads and writes namespaced, typed values through one backend.

    Args:
        backend: Where the bytes live.
        codec: Turns values into bytes and back.
        ttl: Freshness and stale windows by namespace and tier.
        clock: Wall-clock time, advancing with trio's clock.
        prefix: The first part of every cache key.
        timeout: Seconds one backend operation may take.
    """

    def __init__(
        self,
        backend: CacheBackend,
        codec: Codec,
        ttl: TtlTable,
        clock: WallClock,
        prefix: str,
        timeout: float = 2.0,
    ) -> None:
        self.backend = backend
        self.counters = CacheCounters()
        self._codec = codec
        self._ttl = ttl
        self._clock = clock
        self._prefix = prefix
        self._timeout = timeout
        self._in_process = bool(getattr(backend, "in_process", False))

    @property
    def in_process(self) -> bool:
        """Whether the backend keeps its data in this process (never blocks)."""
        return self._in_process

    def check_tier(self, tier: str | None) -> None:
        """Raise `ValueError` unless *tier* is ``None`` or a configured tier."""
        if tier is not None and tier not in self._ttl.tiers:
            known = ", ".join(sorted(self._ttl.tiers)) or "none configured"
            raise ValueError(f"unknown tier {tier!r}; known tiers: {known}")

    def key_for(self, namespace: BoundNamespace, key: str) -> str:
        """Return the backend key of *key* in *namespace*."""
        return cache_key(self._prefix, namespace.name, namespace.version, key)

    async def read(
        self, namespace: BoundNamespace, key: str, tier: str | None
    ) -> CachedValue | None:
        """Return the servable value stored for *key*, or ``None``."""
        backend_key = self.key_for(namespace, key)
        entry = await self._read(lambda: self.backend.get(backend_key), None)
        found: dict[str, CachedValue] = {}
        if entry is not None:
            found = self._servable(
                namespace, {backend_key: entry}, {backend_key: key}, tier
            )

        self._count_reads(found, 1)
        return found.get(key)

    async def read_many(
        self, namespace: BoundNamespace, keys: Sequence[str], tier: str | None
    ) -> dict[str, CachedValue]:
        """Return the servable values stored for *keys*, in one round trip."""
        if not keys:
            return {}

        backend_keys = {self.key_for(namespace, key): key for key in keys}
        nothing: dict[str, CacheEntry] = {}
        entries = await self._read(
            lambda: self.backend.get_many(list(backend_keys)), nothing
        )
        found = self._servable(namespace, entries, backend_keys, tier)
        self._count_reads(found, len(keys))
        return found

    def _servable(
        self,
        namespace: BoundNamespace,
        entries: Mapping[str, CacheEntry],
        backend_keys: Mapping[str, str],
        tier: str | None,
    ) -> dict[str, CachedValue]:
        now = self._clock()
        found = {}
        for backend_key, entry in entries.items():
            key = backend_keys.get(backend_key)
            if key is None or entry.is_expired(now):
                continue

            cached = self._decode(namespace, key, entry, tier, now)
            if cached is not None:
                found[key] = cached

        return found

    async def write(
        self, namespace: BoundNamespace, key: str, value: object, *, partial: bool
    ) -> None:
        """Store *value* for *key*; a value or backend that fails is skipped."""
        await self.write_many(namespace, {key: value}, partial=partial)

    async def write_many(
        self,
        namespace: BoundNamespace,
        values: Mapping[str, object],
        *,
        partial: bool = False,
    ) -> None:
        """Store several values in one round trip."""
        now = self._clock()
        expires_at = now + self._ttl.lifetime_for(namespace.name)
        entries = {}
        for key, value in values.items():
            payload = self._encode(namespace, key, value)
            if payload is not None:
                entry = CacheEntry(payload, now, expires_at, partial)
                entries[self.key_for(namespace, key)] = entry

        if not entries:
            return

        with trio.move_on_after(self._timeout) as scope:
            try:
                await self.backend.set_many(entries)
            except Exception:
                self._backend_failed("write")
                return

        if scope.cancelled_caught:
            self._backend_failed("write in time")
            return

        self.counters.writes += len(entries)

    async def _read(self, operation: Callable[[], Awaitable[R]], missing: R) -> R:
        if self._in_process:
            # A backend in this process answers at once or not at all: no
            # timeout scope to pay for on every read.
            try:
                return await operation()
            except Exception:
                self._backend_failed("read")
                return missing

        with trio.move_on_after(self._timeout) as scope:
            try:
                return await operation()
            except Exception:
                self._backend_failed("read")
                return missing

        if scope.cancelled_caught:
            self._backend_failed("read in time")

        return missing

    def _decode(
        self,
        namespace: BoundNamespace,
        key: str,
        entry: CacheEntry,
        tier: str | None,
        now: float,
    ) -> CachedValue | None:
        try:
            value = self._codec.decode(entry.payload, namespace.value_type)
        except CodecError as exc:
            # A junk or outdated entry is a miss; the next write replaces it.
            self.counters.undecodable += 1
            logger.warning("undecodable cache entry in %s: %s", namespace.name, exc)
            return None

        age = entry.age(now)
        fresh_for = self._ttl.fresh_for(namespace.name, tier, partial=entry.partial)
        return CachedValue(
            value, age, fresh=age < fresh_for, expired_for=max(0.0, age - fresh_for)
        )

    def _encode(
        self, namespace: BoundNamespace, key: str, value: object
    ) -> bytes | None:
        try:
            return self._codec.encode(value, namespace.value_type)
        except CodecError as exc:
            # The caller still gets its value; it just is not cached.
            self.counters.unencodable += 1
            logger.warning(
                "not caching a %s value in %s: %s",
                type(value).__name__,
                namespace.name,
                exc,
            )
            return None

    def _count_reads(self, found: Mapping[str, CachedValue], asked: int) -> None:
        fresh = sum(1 for cached in found.values() if cached.fresh)
        self.counters.hits += fresh
        self.counters.stale_hits += len(found) - fresh
        self.counters.misses += asked - fresh

    def _backend_failed(self, operation: str) -> None:
        self.counters.errors += 1
        # TODO: a backend that keeps failing is still asked every time and
        # logged every time; issue 5 puts a breaker in front of it.
        logger.warning(
            "cache backend %s failed to %s; going on without it",
            self.backend.name,
            operation,
            exc_info=sys.exc_info()[0] is not None,
        )
