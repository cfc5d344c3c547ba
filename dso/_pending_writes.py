"""The cache writes under way, by key, for deletes and closing to wait on.

A value is written to a backend outside the process after its callers have
their answer (see `_chain`). An invalidation that deleted the key while
such a write was still on its way would be undone when the write landed:
the old value back, for a whole TTL. So a delete first waits for the
writes of its key that are under way, and closing the orchestrator waits
for all of them before it closes the backends. A write to a backend outside
the process is bounded by the cache's timeout, and so is every wait; one
in the process answers promptly, by the backend protocol's contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import attrs
import trio


@attrs.define(eq=False)
class _Writes:
    # Writes that began together, until one waits on them (`sealed`):
    # writes that begin after that form a new group, so that a delete
    # waits only for those under way when it began.
    count: int = 0
    sealed: bool = False
    # Made only when someone waits: a batch marks thousands of keys.
    done: trio.Event | None = None


class PendingWrites:
    """Counts the writes under way for each key, and for all keys."""

    def __init__(self) -> None:
        self._groups: dict[str | None, list[_Writes]] = {}

    @contextmanager
    def writing(self, keys: Iterable[str]) -> Iterator[None]:
        """Mark *keys* as being written until the block ends."""
        held = [(key, self._enter(key)) for key in (None, *keys)]
        try:
            yield
        finally:
            for key, writes in held:
                self._leave(key, writes)

    async def wait_for(self, key: str) -> None:
        """Wait until the writes of *key* under way now have ended.

        Writes that begin meanwhile are not waited for: a steady stream of
        them cannot hold the caller back.
        """
        groups = self._groups.get(key)
        if groups:
            groups[-1].sealed = True
            for writes in list(groups):
                await _ended(writes)

    async def wait_all(self) -> None:
        """Wait until no write is under way, those begun meanwhile included.

        For closing, when new writes can come only from calls ending.
        """
        while groups := self._groups.get(None):
            await _ended(groups[-1])

    def _enter(self, key: str | None) -> _Writes:
        groups = self._groups.setdefault(key, [])
        if not groups or groups[-1].sealed:
            groups.append(_Writes())

        writes = groups[-1]
        writes.count += 1
        return writes

    def _leave(self, key: str | None, writes: _Writes) -> None:
        writes.count -= 1
        if writes.count:
            return

        if writes.done is not None:
            writes.done.set()

        groups = self._groups[key]
        groups.remove(writes)
        if not groups:
            del self._groups[key]


async def _ended(writes: _Writes) -> None:
    if not writes.count:
        return

    if writes.done is None:
        writes.done = trio.Event()
    await writes.done.wait()
