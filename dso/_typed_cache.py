"""The orchestrator's view of its cache: typed values, TTLs, and outages.

A backend stores bytes under strings. This layer turns namespaced keys into
escaped cache keys, values into bytes through the codec, judges freshness
from the TTL table for the caller's tier, and treats a failing backend like
a failed provider: behind a `GuardedBackend`, a read that fails is a miss,
a write that fails is skipped, and the fetch goes on.

It also remembers answers of NOT_FOUND, when a namespace asks for it, as
entries whose payload is a marker no value can encode to: a msgpack
extension type, which the codec never writes and refuses to read.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeAlias

import attrs
import trio

from ._cache import CacheBackend, CacheEntry, WallClock
from ._codec import Codec, CodecError, is_immutable
from ._config import BreakerSettings
from ._guarded_cache import CacheBackendStatistics, CacheListener, GuardedBackend
from ._keys import escape_key_part, key_head
from ._namespace import BoundNamespace
from ._pending_writes import PendingWrites
from ._ttl import TtlTable


logger = logging.getLogger("dso")

WriteMany: TypeAlias = Callable[[Mapping[str, CacheEntry]], Awaitable[None]]
"""A backend's ``set_many``, or the part of it left after a write at once."""

WriteRest: TypeAlias = Callable[[], Awaitable[None]]
"""The part of a write at once left to do by waiting."""

NOT_FOUND_PAYLOAD = b"\xc7\x00\x4e"
"""What a remembered NOT_FOUND stores: an empty msgpack extension of type
78 ("N"), which no value encodes to."""


@attrs.define
class CachedValue:
    """A decoded value read from the cache (treat it as read-only).

    Not frozen: one is made on every hit, and a frozen class's
    constructor costs about twice as much.

    Attributes:
        value: The value, of the namespace's type.
        age: Seconds since it was stored.
        fresh: Whether it is fresh for the tier that asked.
        expired_for: Seconds since it stopped being fresh (0 if fresh).
        not_found: The entry remembers that every provider answered
            NOT_FOUND; *value* is ``None`` and means nothing.
        partial: The value is a merge built from fewer than all providers.
    """

    value: Any
    age: float
    fresh: bool
    expired_for: float = 0.0
    not_found: bool = False
    partial: bool = False


@attrs.define
class CachedBatch:
    """What one read of many keys found in the cache.

    Fresh values, the usual case, are kept as bare pairs: a batch of
    thousands of hits makes nothing more for each on its way to a result.

    Attributes:
        hits: ``(value, age)`` of each key with a fresh value, in the
            order the keys were asked.
        others: The other servable entries: values past their freshness
            and remembered NOT_FOUNDs (which count as fresh).
        partial: The keys among *hits* whose value is a merge built from
            fewer than all providers.
    """

    hits: dict[str, tuple[Any, float]]
    others: dict[str, CachedValue]
    partial: set[str] = attrs.Factory(set)

    def is_fresh(self, key: str) -> bool:
        """Whether *key* needs no provider: a fresh value or a remembered NOT_FOUND."""
        if key in self.hits:
            return True

        cached = self.others.get(key)
        return cached is not None and cached.fresh

    def fresh_count(self) -> int:
        """How many keys need no provider (see `is_fresh`)."""
        others = sum(1 for cached in self.others.values() if cached.fresh)
        return len(self.hits) + others

    def fresh_age(self, key: str) -> float | None:
        """The age of *key*'s entry if it is fresh (see `is_fresh`), else ``None``."""
        hit = self.hits.get(key)
        if hit is not None:
            return hit[1]

        cached = self.others.get(key)
        return cached.age if cached is not None and cached.fresh else None


@attrs.define
class CacheCounters:
    """What the typed cache has seen since the orchestrator opened."""

    hits: int = 0
    stale_hits: int = 0
    misses: int = 0
    not_found_hits: int = 0
    writes: int = 0
    undecodable: int = 0
    unencodable: int = 0


class TypedCache:
    """Reads and writes namespaced, typed values through one backend.

    A backend that guards its own parts (the tiered one: it has a
    ``guards()`` method) is used as it is; any other is put behind a
    `GuardedBackend`.

    Args:
        backend: Where the bytes live.
        codec: Turns values into bytes and back.
        ttl: Freshness and stale windows by namespace and tier.
        clock: Wall-clock time, advancing with trio's clock.
        prefix: The first part of every cache key.
        timeout: Seconds one backend operation may take.
        breaker: When to stop asking a failing backend, and for how long.
        listener: Told of backend failures (telemetry).
    """

    def __init__(
        self,
        backend: CacheBackend,
        codec: Codec,
        ttl: TtlTable,
        clock: WallClock,
        prefix: str,
        timeout: float = 2.0,
        breaker: BreakerSettings | None = None,
        listener: CacheListener | None = None,
    ) -> None:
        self.backend = backend
        self.counters = CacheCounters()
        self._codec = codec
        self._ttl = ttl
        self._clock = clock
        self._prefix = prefix
        self._store, self._guards = _guarded(backend, timeout, breaker)
        self._heads: dict[tuple[str, int], str] = {}
        self._freshness: dict[tuple[str, str | None, bool], float] = {}
        self._listener = listener
        self._pending = PendingWrites()
        self._allow_reads()
        for guard in self._guards.values():
            guard.listener = listener
        self._in_process = bool(getattr(self._store, "in_process", False))
        self._get_nowait: Callable[[str], CacheEntry | None] | None = (
            getattr(self._store, "get_nowait", None)
            if getattr(self._store, "reads_at_once", False)
            else None
        )
        self._set_many_nowait: Callable[[Mapping[str, CacheEntry]], None] | None = (
            getattr(self._store, "set_many_nowait", None)
            if getattr(self._store, "writes_at_once", False)
            else None
        )
        self.reads_at_once = self._get_nowait is not None
        """Whether `read_nowait` may answer; when not, it always raises."""
        # What a tiered backend reads and writes by waiting after doing
        # what it could at once (see `CacheView.read`, `write_nowait`).
        self._get_after_nowait: Callable[[str], Awaitable[CacheEntry | None]]
        self._get_after_nowait = getattr(
            self._store, "get_after_nowait", self._store.get
        )
        self._set_many_after_nowait: WriteMany | None = getattr(
            self._store, "set_many_after_nowait", None
        )

    def statistics(self) -> dict[str, CacheBackendStatistics]:
        """Return each guarded backend's breaker state and failures, by label."""
        return {label: guard.statistics() for label, guard in self._guards.items()}

    def cancel_reads(self) -> None:
        """End the backend reads under way at once, as misses.

        See `GuardedBackend.cancel_reads`; writes go on.
        """
        for guard in self._guards.values():
            guard.cancel_reads()

    def _allow_reads(self) -> None:
        # A tiered backend brings its own guards, which an orchestrator
        # closed before may have left cancelling reads, and one still open
        # may be using: then none of them is taken.
        allowed = []
        try:
            for guard in self._guards.values():
                guard.allow_reads()
                allowed.append(guard)
        except ValueError:
            for guard in allowed:
                guard.cancel_reads()
            raise

    def guard(self, label: str) -> GuardedBackend:
        """Return the guard of the backend *label* names (see `statistics`).

        Raises:
            LookupError: No backend has that label.
        """
        found = self._guards.get(label)
        if found is None:
            known = ", ".join(sorted(self._guards))
            raise LookupError(f"unknown cache backend {label!r}; known: {known}")

        return found

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
        spec, settings = namespace.spec, namespace.settings
        head = self._heads.get((spec.name, settings.version))
        if head is None:
            head = key_head(self._prefix, spec.name, settings.version)
            self._heads[spec.name, settings.version] = head

        if type(key) is str and "%" not in key and ":" not in key:
            return head + key

        return head + escape_key_part(key)

    def view(self, namespace: BoundNamespace, tier: str | None) -> CacheView:
        """Return a reader of *namespace*'s values as *tier* sees them.

        A caller that reads one namespace and tier again and again (the
        orchestrator, once per route) keeps the view rather than ask for it
        on every read.
        """
        return CacheView(self, namespace, tier)

    async def read(
        self, namespace: BoundNamespace, key: str, tier: str | None
    ) -> CachedValue | None:
        """Return the servable value stored for *key*, or ``None``."""
        return await self.view(namespace, tier).read(key)

    def read_nowait(
        self, namespace: BoundNamespace, key: str, tier: str | None
    ) -> CachedValue | None:
        """Return what `read` would, without waiting, or raise `trio.WouldBlock`.

        A backend in this process that offers ``get_nowait`` (memory, and
        a tiered backend's memory L1) answers at once; the caller takes
        the checkpoint.

        Raises:
            trio.WouldBlock: The backend cannot answer without waiting.
        """
        return self.view(namespace, tier).read_nowait(key)

    def _judge(
        self,
        namespace: BoundNamespace,
        key: str,
        entry: CacheEntry | None,
        tier: str | None,
    ) -> CachedValue | None:
        # What a read found, made servable (or not) for the tier, counted.
        cached = None
        if entry is not None:
            now = self._clock()
            if now < entry.expires_at:
                cached = self._kept(namespace, entry, tier, now)
                if cached is None:
                    cached = self._decode(namespace, key, entry, tier, now)

        counters = self.counters
        if cached is None:
            counters.misses += 1
        elif cached.not_found:
            counters.not_found_hits += 1
        elif cached.fresh:
            counters.hits += 1
        else:
            counters.stale_hits += 1
            counters.misses += 1

        return cached

    async def read_many(
        self, namespace: BoundNamespace, keys: Sequence[str], tier: str | None
    ) -> CachedBatch:
        """Return the servable values stored for *keys*, in one round trip."""
        if not keys:
            return CachedBatch({}, {})

        backend_keys = self._backend_keys(namespace, keys)
        entries = await self._store.get_many(backend_keys)
        found = self._servable(namespace, keys, backend_keys, entries, tier)
        self._count_reads(found, len(keys))
        return found

    def _backend_keys(
        self, namespace: BoundNamespace, keys: Sequence[str]
    ) -> list[str]:
        # The backend keys, in the order of *keys*; one look at them all
        # tells whether any needs escaping (the usual answer is no).
        head = self.key_for(namespace, "")
        joined = "".join(keys)
        if "%" in joined or ":" in joined:
            return [head + escape_key_part(key) for key in keys]

        return [head + key for key in keys]

    def _kept(
        self,
        namespace: BoundNamespace,
        entry: CacheEntry,
        tier: str | None,
        now: float,
    ) -> CachedValue | None:
        # The value a memory backend kept decoded, if any: the hit path.
        decoded = entry.decoded
        if decoded is None or entry.partial or decoded[0] is not namespace.value_type:
            return None

        age = now - entry.stored_at
        if age < 0.0:
            age = 0.0

        fresh_for = self._freshness.get((namespace.spec.name, tier, False))
        if fresh_for is None:
            fresh_for = self._fresh_for(namespace.spec.name, tier, False)

        if age < fresh_for:
            return CachedValue(decoded[1], age, True)

        return CachedValue(decoded[1], age, False, age - fresh_for)

    def _servable(
        self,
        namespace: BoundNamespace,
        keys: Sequence[str],
        backend_keys: Sequence[str],
        entries: Mapping[str, CacheEntry],
        tier: str | None,
    ) -> CachedBatch:
        # A batch of a thousand cached keys spends much of its time here:
        # what is the same for every key is looked up once, and a fresh
        # value kept decoded becomes a (value, age) pair and nothing more.
        now = self._clock()
        value_type = namespace.value_type
        fresh_for = self._fresh_for(namespace.name, tier, False)
        entry_at = entries.get
        hits: dict[str, tuple[Any, float]] = {}
        others: dict[str, CachedValue] = {}
        partial: set[str] = set()
        for key, backend_key in zip(keys, backend_keys, strict=True):
            entry = entry_at(backend_key)
            if entry is None or now >= entry.expires_at:
                continue

            age = now - entry.stored_at
            if age < 0.0:
                age = 0.0

            decoded = entry.decoded
            if (
                age < fresh_for
                and decoded is not None
                and decoded[0] is value_type
                and not entry.partial
            ):
                hits[key] = (decoded[1], age)
                continue

            cached = self._decode(namespace, key, entry, tier, now)
            if cached is None:
                continue

            if cached.fresh and not cached.not_found:
                hits[key] = (cached.value, cached.age)
                if cached.partial:
                    partial.add(key)
            else:
                others[key] = cached

        return CachedBatch(hits, others, partial)

    async def write(
        self, namespace: BoundNamespace, key: str, value: object, *, partial: bool
    ) -> None:
        """Store *value* for *key*; a value or backend that fails is skipped."""
        await self.write_many(namespace, {key: value}, partial=partial)

    def write_nowait(
        self, namespace: BoundNamespace, key: str, value: object, *, partial: bool
    ) -> WriteRest | None:
        """Store *value* for *key* at once, as `write` does, or raise.

        Returns:
            What is left to write by waiting (a tiered backend's L2), or
            ``None`` when the write is done.

        Raises:
            trio.WouldBlock: The backend cannot write without waiting;
                nothing was stored.
        """
        write = self._writer_at_once()
        entries = self._entries(namespace, {key: value}, partial)
        return self._put_nowait(write, namespace, entries)

    async def write_many(
        self,
        namespace: BoundNamespace,
        values: Mapping[str, object],
        *,
        partial: bool = False,
    ) -> None:
        """Store several values in one round trip.

        Nothing is stored when the namespace's lifetime (fresh and stale
        windows) is 0.
        """
        await self._put(namespace, self._entries(namespace, values, partial))

    async def write_not_found(
        self, namespace: BoundNamespace, keys: Sequence[str], seconds: float
    ) -> None:
        """Remember for *seconds* that every provider said NOT_FOUND for *keys*."""
        await self._put(namespace, self._not_found_entries(namespace, keys, seconds))

    def write_not_found_nowait(
        self, namespace: BoundNamespace, keys: Sequence[str], seconds: float
    ) -> WriteRest | None:
        """Remember NOT_FOUND at once, as `write_not_found` does, or raise.

        Returns:
            What is left to write by waiting (see `write_nowait`).

        Raises:
            trio.WouldBlock: The backend cannot write without waiting;
                nothing was stored.
        """
        write = self._writer_at_once()
        entries = self._not_found_entries(namespace, keys, seconds)
        return self._put_nowait(write, namespace, entries)

    async def delete(self, namespace: BoundNamespace, key: str) -> None:
        """Remove *key*'s entry from every tier of the backend.

        The writes of *key* under way are waited for first, so that none
        lands after the delete and brings the old value back.

        Raises:
            CacheError: The backend failed to; the entry may still be there.
        """
        backend_key = self.key_for(namespace, key)
        await self._pending.wait_for(backend_key)
        await self._store.delete(backend_key)

    async def wait_writes(self) -> None:
        """Wait until no write is under way (before closing the backend)."""
        await self._pending.wait_all()

    def _entries(
        self, namespace: BoundNamespace, values: Mapping[str, object], partial: bool
    ) -> dict[str, CacheEntry]:
        lifetime = self._ttl.lifetime_for(namespace.name)
        if lifetime <= 0:
            return {}

        now = self._clock()
        entries = {}
        for key, value in values.items():
            payload = self._encode(namespace, key, value)
            if payload is not None:
                entry = CacheEntry(payload, now, now + lifetime, partial)
                if is_immutable(value):
                    # A memory backend keeps it, and its hits skip the codec.
                    decoded = (namespace.value_type, value)
                    entry = attrs.evolve(entry, decoded=decoded)

                entries[self.key_for(namespace, key)] = entry

        return entries

    def _not_found_entries(
        self, namespace: BoundNamespace, keys: Sequence[str], seconds: float
    ) -> dict[str, CacheEntry]:
        if seconds <= 0 or not keys:
            return {}

        now = self._clock()
        entry = CacheEntry(NOT_FOUND_PAYLOAD, now, now + seconds)
        return {self.key_for(namespace, key): entry for key in keys}

    async def _put(
        self, namespace: BoundNamespace, entries: Mapping[str, CacheEntry]
    ) -> None:
        if entries:
            with self._pending.writing(entries):
                await self._store.set_many(entries)

            self._wrote(namespace, len(entries))

    def _writer_at_once(self) -> Callable[[Mapping[str, CacheEntry]], None]:
        # Asked before any value is encoded: a backend that cannot write at
        # once is then written by waiting, and encoding twice would waste.
        write = self._set_many_nowait
        if write is None:
            raise trio.WouldBlock

        return write

    def _put_nowait(
        self,
        write: Callable[[Mapping[str, CacheEntry]], None],
        namespace: BoundNamespace,
        entries: Mapping[str, CacheEntry],
    ) -> WriteRest | None:
        if not entries:
            return None

        write(entries)
        self._wrote(namespace, len(entries))
        rest = self._set_many_after_nowait
        if rest is None:
            return None

        return functools.partial(self._write_rest, rest, entries)

    async def _write_rest(
        self, rest: WriteMany, entries: Mapping[str, CacheEntry]
    ) -> None:
        # Marked as under way only from here: `_chain` awaits this at once,
        # without a checkpoint between, and one never awaited must not
        # keep a delete waiting.
        with self._pending.writing(entries):
            await rest(entries)

    def _wrote(self, namespace: BoundNamespace, entries: int) -> None:
        self.counters.writes += entries
        if self._listener is not None:
            self._listener.cache_written(namespace.name, entries)

    def _decode(
        self,
        namespace: BoundNamespace,
        key: str,
        entry: CacheEntry,
        tier: str | None,
        now: float,
    ) -> CachedValue | None:
        decoded = entry.decoded
        if decoded is not None and decoded[0] is namespace.value_type:
            value = decoded[1]
        elif entry.payload == NOT_FOUND_PAYLOAD:
            return CachedValue(None, entry.age(now), fresh=True, not_found=True)
        else:
            try:
                value = self._codec.decode(entry.payload, namespace.value_type)
            except CodecError as exc:
                # A junk or outdated entry is a miss; the next write replaces it.
                self.counters.undecodable += 1
                logger.warning("undecodable cache entry in %s: %s", namespace.name, exc)
                return None

        age = now - entry.stored_at
        if age < 0.0:
            age = 0.0

        partial = entry.partial
        fresh_for = self._fresh_for(namespace.name, tier, partial)
        if age < fresh_for:
            return CachedValue(value, age, True, partial=partial)

        return CachedValue(value, age, False, age - fresh_for, partial=partial)

    def _fresh_for(self, namespace: str, tier: str | None, partial: bool) -> float:
        # The TTL table never changes: remember its answers (namespaces x
        # tiers x 2, a small set) rather than look them up on every hit.
        known = self._freshness.get((namespace, tier, partial))
        if known is None:
            known = self._ttl.fresh_for(namespace, tier, partial=partial)
            self._freshness[namespace, tier, partial] = known

        return known

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

    def _count_reads(self, found: CachedBatch, asked: int) -> None:
        counters = self.counters
        fresh = len(found.hits)
        not_found = sum(1 for cached in found.others.values() if cached.not_found)
        counters.hits += fresh
        counters.not_found_hits += not_found
        counters.stale_hits += len(found.others) - not_found
        counters.misses += asked - fresh - not_found


def _guarded(
    backend: CacheBackend, timeout: float, breaker: BreakerSettings | None
) -> tuple[CacheBackend, dict[str, GuardedBackend]]:
    guards = getattr(backend, "guards", None)
    if callable(guards):
        return backend, dict(guards())

    guarded = GuardedBackend(
        backend,
        label=backend.name,
        timeout=timeout,
        breaker=BreakerSettings() if breaker is None else breaker,
    )
    return guarded, {backend.name: guarded}


class CacheView:
    """One namespace's cached values as one tier sees them.

    What `TypedCache.read` and `TypedCache.read_nowait` do, with the key's
    head and the freshness resolved once, when the view is made, rather
    than looked up on every read: a memory hit is little more than those
    look-ups. Made by `TypedCache.view`.
    """

    __slots__ = (
        "_cache",
        "_clock",
        "_counters",
        "_fresh_for",
        "_get_nowait",
        "_head",
        "_namespace",
        "_tier",
        "reads_at_once",
    )

    def __init__(
        self, cache: TypedCache, namespace: BoundNamespace, tier: str | None
    ) -> None:
        self._cache = cache
        self._namespace = namespace
        self._tier = tier
        self._head = key_head(cache._prefix, namespace.name, namespace.version)
        self._fresh_for = cache._fresh_for(namespace.name, tier, False)
        self._get_nowait = cache._get_nowait
        self._clock = cache._clock
        self._counters = cache.counters
        self.reads_at_once = self._get_nowait is not None
        """Whether `read_nowait` may answer; when not, it always raises."""

    async def read(self, key: str, *, after_nowait: bool = False) -> CachedValue | None:
        """Return the servable value stored for *key*, or ``None``.

        Args:
            key: The key, unescaped.
            after_nowait: `read_nowait` just raised `trio.WouldBlock` for
                *key*: ask the backend only for what that could not
                answer (a tiered backend's L2, not its L1 again).
        """
        cache = self._cache
        get = cache._get_after_nowait if after_nowait else cache._store.get
        entry = await get(self._key(key))
        if (
            entry is None
            or entry.decoded is not None
            or entry.partial
            or entry.payload == NOT_FOUND_PAYLOAD
        ):
            return cache._judge(self._namespace, key, entry, self._tier)

        # Bytes to decode, from a backend outside the process: Redis's hit
        # path. Anything unusual goes to `_judge`.
        age = self._fresh_age(entry)
        if age is None:
            return cache._judge(self._namespace, key, entry, self._tier)

        try:
            value = cache._codec.decode(entry.payload, self._namespace.value_type)
        except CodecError:
            # Decoded again there, to be counted and logged: junk is rare.
            return cache._judge(self._namespace, key, entry, self._tier)

        self._counters.hits += 1
        return CachedValue(value, age, True)

    def read_nowait(self, key: str) -> CachedValue | None:
        """Return what `read` would, without waiting, or raise `trio.WouldBlock`.

        Raises:
            trio.WouldBlock: The backend cannot answer without waiting.
        """
        get_nowait = self._get_nowait
        if get_nowait is None:
            raise trio.WouldBlock

        entry = get_nowait(self._key(key))
        if entry is None:
            self._counters.misses += 1
            return None

        # A value kept decoded, whole and fresh: the memory hit's path.
        # Anything else goes to `_judge`.
        kept = entry.decoded
        if kept is not None and not entry.partial:
            age = self._fresh_age(entry)
            if age is not None and kept[0] is self._namespace.value_type:
                self._counters.hits += 1
                return CachedValue(kept[1], age, True)

        return self._cache._judge(self._namespace, key, entry, self._tier)

    def _key(self, key: str) -> str:
        # `TypedCache.key_for`, with the head resolved.
        if type(key) is str and "%" not in key and ":" not in key:
            return self._head + key

        return self._head + escape_key_part(key)

    def _fresh_age(self, entry: CacheEntry) -> float | None:
        # The age of an entry still fresh for the tier, else None: the one
        # judgement both hit paths make before `_judge`'s others.
        now = self._clock()
        age = now - entry.stored_at
        if not 0.0 <= age < self._fresh_for or now >= entry.expires_at:
            return None

        return age
