"""The ``tiered`` cache backend: a fast L1 in front of a shared L2.

Typically memory in this process over SQLite or Redis shared by many.
Reads try L1 first and ask L2 only for what L1 lacks, all of those in one
round trip; an L2 hit is copied into L1 for at most ``l1_ttl`` seconds,
so that a value changed through L2 by another process shows here soon.
Writes and deletes go to both tiers.

An L2 read may be overtaken: while it is on its way, another task may write
a newer value for the key or delete it. Copying what the read found into L1
would then undo that for up to ``l1_ttl``. So a read copies no key that a
write or delete is busy with, nor one that a write or delete ended with
after the read began. A delete empties L2 before L1, so that a read which
begins while it runs finds L1 still holding the key, or L2 without it.

Each tier sits behind its own breaker and timeout (see `GuardedBackend`):
while L2 is down, L1 goes on serving what it holds.
"""

from __future__ import annotations

from collections.abc import (
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import (
    AbstractAsyncContextManager,
    asynccontextmanager,
    contextmanager,
    suppress,
)

import attrs
import trio

from ._cache import CacheBackend, CacheEntry, WallClock
from ._config import CacheSettings
from ._errors import CacheError
from ._guarded_cache import GuardedBackend


_MAX_STAMPED = 10_000
"""Keys stamped at most while L2 reads are out; then all are forgotten."""

OpenTier = Callable[[CacheSettings, str], AbstractAsyncContextManager[CacheBackend]]
"""Opens the backend a tier's settings name; the second argument is the
tier's path in the configuration (``cache.l2``), for error messages."""


class TieredCache:
    """Two guarded backends used as one.

    Its reads and writes never raise (each tier's guard turns failures
    into misses and skipped writes); `delete` raises `CacheError` when
    either tier failed to delete, after trying both.

    Args:
        l1: The first tier, asked first.
        l2: The second tier, asked for L1's misses.
        clock: Tells the time L1 copies expire by.
        l1_ttl: Seconds an entry stays in L1 at most; 0 keeps L1 empty.
    """

    name = "tiered"

    def __init__(
        self,
        l1: GuardedBackend,
        l2: GuardedBackend,
        *,
        clock: WallClock,
        l1_ttl: float,
    ) -> None:
        self.l1 = l1
        self.l2 = l2
        self._clock = clock
        self._l1_ttl = l1_ttl
        self.reads_at_once = l1.reads_at_once
        """Whether `get_nowait` may answer, from L1."""
        self.writes_at_once = l1.writes_at_once
        """Whether `set_many_nowait` may write L1 at once."""
        # What overtakes a read (see the module's docstring): the keys
        # being written or deleted, and those whose write or delete ended
        # while L2 reads were out, stamped with a count of such endings.
        # The stamps are forgotten when no read is out, or past a bound,
        # when reads begun before copy nothing.
        self._busy: dict[str, int] = {}
        self._stamp = 0
        self._stamped: dict[str, int] = {}
        self._forgot_at = 0
        self._l2_reads = 0

    def __repr__(self) -> str:
        return f"TieredCache(l1={self.l1!r}, l2={self.l2!r}, l1_ttl={self._l1_ttl})"

    def guards(self) -> dict[str, GuardedBackend]:
        """Return each tier's guard by label; they need no guard around them."""
        return {self.l1.label: self.l1, self.l2.label: self.l2}

    async def get(self, key: str) -> CacheEntry | None:
        """Return the entry under *key* from L1, else from L2 (filling L1)."""
        entry = await self.l1.get(key)
        if entry is not None:
            return entry

        return await self._get_from_l2(key)

    async def get_after_nowait(self, key: str) -> CacheEntry | None:
        """Return what `get` would, for a key `get_nowait` just missed in L1.

        L1 is not asked again, so that its statistics and breaker count
        the miss once. An L1 that cannot answer at once at all is.
        """
        # An L1 that reads at once but raised WouldBlock of its own accord
        # (a third party's may) is skipped too: what it holds, L2 holds.
        if not self.l1.reads_at_once:
            return await self.get(key)

        return await self._get_from_l2(key)

    async def _get_from_l2(self, key: str) -> CacheEntry | None:
        with self._reading_l2() as began:
            entry = await self.l2.get(key)
            if entry is not None:
                await self._fill_l1({key: entry}, began)

        return entry

    def get_nowait(self, key: str) -> CacheEntry | None:
        """Return L1's entry under *key*, without waiting.

        Raises:
            trio.WouldBlock: L1 holds none (or cannot answer at once):
                only L2 may, and asking it takes a round trip.
        """
        entry = self.l1.get_nowait(key)
        if entry is None:
            raise trio.WouldBlock

        return entry

    async def get_many(self, keys: Sequence[str]) -> dict[str, CacheEntry]:
        """Return the entries under *keys*: L1's, then L2's for the rest."""
        found = await self.l1.get_many(keys)
        missing = [key for key in keys if key not in found]
        if not missing:
            return found

        with self._reading_l2() as began:
            from_l2 = await self.l2.get_many(missing)
            if from_l2:
                await self._fill_l1(from_l2, began)

        found.update(from_l2)
        return found

    async def set(self, key: str, entry: CacheEntry) -> None:
        """Store *entry* in both tiers."""
        await self.set_many({key: entry})

    async def set_many(self, entries: Mapping[str, CacheEntry]) -> None:
        """Store the entries in both tiers, L1 first."""
        with self._busy_with(entries):
            copies = self._l1_copies(entries)
            if copies and not self._l1_at_once(copies):
                await self.l1.set_many(copies)

            await self.l2.set_many(entries)

    def set_many_nowait(self, entries: Mapping[str, CacheEntry]) -> None:
        """Store the entries in L1 at once; `set_many_after_nowait` does L2.

        Raises:
            trio.WouldBlock: L1 cannot write without waiting; nothing was
                stored.
        """
        copies = self._l1_copies(entries)
        if copies:
            self.l1.set_many_nowait(copies)
        elif not self.l1.writes_at_once:
            raise trio.WouldBlock

        self._ended(entries)

    async def set_many_after_nowait(self, entries: Mapping[str, CacheEntry]) -> None:
        """Store in L2 the entries `set_many_nowait` stored in L1."""
        # TODO: between the two halves the keys are not marked busy, since
        # this half might never be awaited: an L2 read that begins then,
        # after L1 evicted the new copy, may copy the old value back.
        with self._busy_with(entries):
            await self.l2.set_many(entries)

    async def delete(self, key: str) -> None:
        """Remove *key* from both tiers.

        Raises:
            CacheError: A tier failed to delete it (the other was still
                asked to).
        """
        failures = []
        with self._busy_with((key,)):
            for tier in (self.l2, self.l1):
                try:
                    await tier.delete(key)
                except CacheError as exc:
                    failures.append(exc)

        if failures:
            raise failures[0]

    @contextmanager
    def _reading_l2(self) -> Iterator[int]:
        # Around an L2 read and its copy into L1: gives the stamp it began at.
        self._l2_reads += 1
        try:
            yield self._stamp
        finally:
            self._l2_reads -= 1
            if not self._l2_reads:
                self._stamped.clear()

    async def _fill_l1(self, found: Mapping[str, CacheEntry], began: int) -> None:
        # Copies into L1 what an L2 read found, unless overtaken.
        copies = self._l1_copies(
            {
                key: entry
                for key, entry in found.items()
                if not self._overtaken(key, began)
            }
        )
        # At once where L1 can: nothing can overtake the copy between the
        # check above and the write.
        if not copies or self._l1_at_once(copies):
            return

        # Shielded, so that a reader cancelled here leaves no copy that it
        # should have undone; L1's own timeout bounds it.
        with trio.CancelScope(shield=True):
            filling = self._stamp
            await self.l1.set_many(copies)
            # Overtaken while writing: the copy may now hide a newer value
            # or a delete, so it goes (a miss costs less than an old value).
            for key in copies:
                if self._overtaken(key, filling):
                    with suppress(CacheError):
                        await self.l1.delete(key)

    def _l1_at_once(self, copies: Mapping[str, CacheEntry]) -> bool:
        # Whether L1 took the copies at once; if not, it stored none.
        if not self.l1.writes_at_once:
            return False

        try:
            self.l1.set_many_nowait(copies)
        except trio.WouldBlock:
            return False

        return True

    def _overtaken(self, key: str, since: int) -> bool:
        return (
            since < self._forgot_at
            or key in self._busy
            or self._stamped.get(key, since) > since
        )

    @contextmanager
    def _busy_with(self, keys: Iterable[str]) -> Iterator[None]:
        # Around a write or delete of *keys*.
        held = list(keys)
        busy = self._busy
        for key in held:
            busy[key] = busy.get(key, 0) + 1
        try:
            yield
        finally:
            for key in held:
                busy[key] -= 1
                if not busy[key]:
                    del busy[key]

            self._ended(held)

    def _ended(self, keys: Iterable[str]) -> None:
        # A write or delete of *keys* has ended (see the docstring).
        self._stamp += 1
        if not self._l2_reads:
            return

        if len(self._stamped) >= _MAX_STAMPED:
            self._stamped.clear()
            self._forgot_at = self._stamp

        for key in keys:
            self._stamped[key] = self._stamp

    def _l1_copies(self, entries: Mapping[str, CacheEntry]) -> dict[str, CacheEntry]:
        if self._l1_ttl <= 0:
            return {}

        # An L1 copy never outlives the entry itself, nor l1_ttl.
        until = self._clock() + self._l1_ttl
        return {
            key: entry
            if entry.expires_at <= until
            else attrs.evolve(entry, expires_at=until)
            for key, entry in entries.items()
        }


def guard(settings: CacheSettings, backend: CacheBackend, label: str) -> GuardedBackend:
    """Put *backend* behind the timeout and breaker its *settings* name."""
    return GuardedBackend(
        backend, label=label, timeout=settings.timeout, breaker=settings.breaker
    )


@asynccontextmanager
async def open_tiered_cache(
    settings: CacheSettings, clock: WallClock, open_tier: OpenTier
) -> AsyncIterator[TieredCache]:
    """Open both tiers *settings* describe, and close them on exit.

    Args:
        settings: Settings with ``backend = "tiered"`` and both tiers.
        clock: Wall-clock time, advancing with trio's clock.
        open_tier: Opens one tier's backend by its settings (the
            orchestrator looks the name up among every backend factory,
            plugins' included).

    Raises:
        ConfigError: A tier's settings are missing or invalid.
    """
    l1_settings, l2_settings = settings.l1, settings.l2
    if l1_settings is None or l2_settings is None:
        # CacheSettings refuses this already; a hand-made object may not.
        raise ValueError("a tiered cache needs both l1 and l2 settings")

    async with (
        open_tier(l1_settings, "cache.l1") as l1,
        open_tier(l2_settings, "cache.l2") as l2,
    ):
        yield TieredCache(
            guard(l1_settings, l1, f"l1:{l1.name}"),
            guard(l2_settings, l2, f"l2:{l2.name}"),
            clock=clock,
            l1_ttl=settings.l1_ttl,
        )
