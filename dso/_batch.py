"""One run of `batch_fetch`: cache, chunks, per-key fallback, summary."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import trio

from ._errors import ErrorCode
from ._guarded import GuardedProvider
from ._namespace import BoundNamespace
from ._results import (
    CACHE_SOURCE,
    DEADLINE_PASSED,
    Attempt,
    BatchResult,
    BatchSummary,
    FetchResult,
)
from ._typed_cache import CachedValue, TypedCache


Fallback = Callable[
    [str, BoundNamespace, Sequence[GuardedProvider], float],
    Awaitable[FetchResult[Any]],
]


class BatchRun:
    """The state of one batch while it runs.

    Args:
        space: The namespace of every key.
        primary: The provider the misses go to, in chunks if it batches.
        fallbacks: Tried per key for the keys the primary did not deliver.
        cache: Read once for all keys, written once for all successes.
        fallback: The orchestrator's per-key fallback chain.
        deadline: When the whole batch must be done (trio time).
    """

    def __init__(
        self,
        *,
        space: BoundNamespace,
        primary: GuardedProvider,
        fallbacks: Sequence[GuardedProvider],
        cache: TypedCache,
        fallback: Fallback,
        deadline: float,
    ) -> None:
        self._space = space
        self._primary = primary
        self._fallbacks = fallbacks
        self._cache = cache
        self._fallback = fallback
        self._deadline = deadline

        self._keys: list[str] = []
        self._cached: dict[str, CachedValue] = {}
        self._fetched: dict[str, object] = {}
        self._rescued: dict[str, FetchResult[Any]] = {}
        self._attempts: defaultdict[str, list[Attempt]] = defaultdict(list)
        self._provider_calls = 0

    async def read(self, keys: list[str], tier: str | None) -> None:
        """Read the cache for *keys* (distinct, in order) in one round trip."""
        self._keys = keys
        self._cached = await self._cache.read_many(self._space, keys, tier)

    async def fetch(self) -> None:
        """Fetch the misses; cancelling keeps what has arrived."""
        # TODO: chunks are not de-duplicated against calls already in
        # flight for the same keys (another batch, a fallback); issue 4
        # brings batches into the in-flight table.
        misses = [key for key in self._keys if not self._is_fresh_in_cache(key)]
        if not misses:
            return

        await self._fetch_from_primary(misses)
        failed = [key for key in misses if key not in self._fetched]
        if failed and self._fallbacks:
            await self._fetch_from_fallbacks(failed)

    async def store(self) -> None:
        """Write every value the primary delivered to the cache, at once."""
        await self._cache.write_many(self._space, self._fetched)

    def result(self, allow_stale: bool, *, timed_out: bool) -> BatchResult[Any]:
        """Return the per-key results and the summary of what was done.

        Args:
            allow_stale: Serve stale values for the keys that failed.
            timed_out: The deadline cut the run short; keys that were not
                tried say so.
        """
        if timed_out:
            for key in self._keys:
                if not self._is_fresh_in_cache(key) and key not in self._fetched:
                    self._attempts[key].append(DEADLINE_PASSED)

        results = {key: self._result_for(key, allow_stale) for key in self._keys}
        return BatchResult(results, self._summary(results))

    def _is_fresh_in_cache(self, key: str) -> bool:
        cached = self._cached.get(key)
        return cached is not None and cached.fresh

    async def _fetch_from_primary(self, misses: list[str]) -> None:
        size = self._primary.max_batch_size
        async with trio.open_nursery() as nursery:
            if size is None:
                for key in misses:
                    nursery.start_soon(self._fetch_one, key)
            else:
                for start in range(0, len(misses), size):
                    nursery.start_soon(self._fetch_chunk, misses[start : start + size])

    async def _fetch_one(self, key: str) -> None:
        value, attempt = await self._primary.fetch(
            key,
            namespace=self._space.name,
            deadline=self._deadline,
            accepts=self._space.accepts,
        )
        self._count_call(attempt)
        self._attempts[key].append(attempt)
        if value is not None:
            self._fetched[key] = value

    async def _fetch_chunk(self, chunk: list[str]) -> None:
        found, attempt = await self._primary.fetch_batch(
            chunk, namespace=self._space.name, deadline=self._deadline
        )
        self._count_call(attempt)
        if found is None:
            for key in chunk:
                self._attempts[key].append(attempt)
            return

        # Matched by key, never by position: providers reorder and omit.
        for key in chunk:
            value = found.get(key)
            if value is None:
                failure = attrs.evolve(
                    attempt, code=ErrorCode.NOT_FOUND, message="not in the batch answer"
                )
            elif not self._space.accepts(value):
                message = f"provider returned a {type(value).__name__} for this key"
                failure = attrs.evolve(
                    attempt, code=ErrorCode.INVALID_RESPONSE, message=message
                )
            else:
                self._attempts[key].append(attempt)
                self._fetched[key] = value
                continue

            self._attempts[key].append(failure)

    async def _fetch_from_fallbacks(self, failed: list[str]) -> None:
        async def rescue(key: str) -> None:
            result = await self._fallback(
                key, self._space, self._fallbacks, self._deadline
            )
            for attempt in result.attempts:
                self._count_call(attempt)

            self._rescued[key] = result

        async with trio.open_nursery() as nursery:
            for key in failed:
                nursery.start_soon(rescue, key)

    def _count_call(self, attempt: Attempt) -> None:
        if attempt.code is not ErrorCode.CIRCUIT_OPEN:
            self._provider_calls += 1

    def _result_for(self, key: str, allow_stale: bool) -> FetchResult[Any]:
        name = self._space.name
        cached = self._cached.get(key)
        if cached is not None and cached.fresh:
            return FetchResult(
                key,
                name,
                cached.value,
                source=CACHE_SOURCE,
                cached=True,
                age=cached.age,
            )

        attempts = tuple(self._attempts.get(key, ()))
        if key in self._fetched:
            source = self._primary.name
            return FetchResult(
                key,
                name,
                self._fetched[key],
                source=source,
                age=0.0,
                sources=(source,),
                attempts=attempts,
            )

        rescued = self._rescued.get(key)
        if rescued is not None:
            attempts += rescued.attempts
            if rescued.ok:
                return FetchResult(
                    key,
                    name,
                    rescued.data,
                    source=rescued.source,
                    age=0.0,
                    sources=rescued.sources,
                    attempts=attempts,
                )

        if allow_stale and cached is not None:
            return FetchResult(
                key,
                name,
                cached.value,
                source=CACHE_SOURCE,
                cached=True,
                stale=True,
                age=cached.age,
                attempts=attempts,
            )

        return FetchResult(key, name, attempts=attempts)

    def _summary(self, results: dict[str, FetchResult[Any]]) -> BatchSummary:
        values = results.values()
        successful = sum(1 for result in values if result.ok)
        stale = sum(1 for result in values if result.stale)
        cached = sum(1 for result in values if result.cached and not result.stale)
        return BatchSummary(
            total=len(results),
            successful=successful,
            failed=len(results) - successful,
            cached=cached,
            fresh=successful - cached - stale,
            stale=stale,
            provider_calls=self._provider_calls,
        )
