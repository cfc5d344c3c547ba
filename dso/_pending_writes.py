"""The cache writes under way, by key, for deletes and closing to wait on.

A value is written to a backend outside the process after its callers have
their answer (see `_chain`). An invalidation that deleted the key while
such a write was still on its way would be undone when the write landed:
the old value back, for a whole TTL. So a delete first waits for the
writes of its key that are under way, and closing the orchestrator waits
for all of them before it closes the backends. Each write is bounded by
the cache's timeout, and so is every wait.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import attrs
import trio


@attrs.define
class _Writes:
    count: int = 0
    # Made only when someone waits: a batch marks thousands of keys.
    done: trio.Event | None = None


class PendingWrites:
    """Counts the writes under way for each key, and for all keys."""

    def __init__(self) -> None:
        self._by_key: dict[str | None, _Writes] = {}

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
        """Wait until the writes of *key* under way now have ended."""
        await self._wait(key)

    async def wait_all(self) -> None:
        """Wait until no write is under way."""
        await self._wait(None)

    async def _wait(self, key: str | None) -> None:
        writes = self._by_key.get(key)
        if writes is None:
            return

        if writes.done is None:
            writes.done = trio.Event()
        await writes.done.wait()

    def _enter(self, key: str | None) -> _Writes:
        writes = self._by_key.get(key)
        if writes is None:
            writes = self._by_key[key] = _Writes()

        writes.count += 1
        return writes

    def _leave(self, key: str | None, writes: _Writes) -> None:
        writes.count -= 1
        if writes.count:
            return

        if writes.done is not None:
            writes.done.set()
        del self._by_key[key]
