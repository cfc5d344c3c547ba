"""One run of `batch_fetch`: cache, chunks, per-key fallback, summary."""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import trio

from ._errors import ErrorCode
from ._guarded import GuardedProvider
from ._inflight import InflightCalls, SharedCall
from ._namespace import BoundNamespace
from ._results import (
    CACHE_SOURCE,
    DEADLINE_PASSED,
    Attempt,
    BatchResult,
    BatchSummary,
    FetchResult,
    cache_hits,
    not_found_from_cache,
)
from ._typed_cache import CachedBatch, TypedCache


Fallback = Callable[
    [str, BoundNamespace, Sequence[GuardedProvider], SharedCall[FetchResult[Any]]],
    Awaitable[FetchResult[Any]],
]

Join = Callable[[str], Awaitable[FetchResult[Any]]]
"""Waits for the shared call already fetching a key from the primary."""

CallKey = Callable[[str], tuple[object, ...]]
"""The in-flight key of a one-key call to the primary for a key."""


class BatchRun:
    """The state of one batch while it runs.

    Args:
        space: The namespace of every key.
        primary: The provider the misses go to, in chunks if it batches.
        fallbacks: Tried per key for the keys the primary did not deliver.
        cache: Read once for all keys, written once for all successes.
        fallback: The orchestrator's per-key fallback chain.
        deadline: When the whole batch must be done (trio time).
        inflight: The orchestrator's table of shared calls: the batch
            claims its keys there, and joins calls already running.
        call_key: The table's key for a one-key call to the primary.
        join: Waits for such a call.
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
        inflight: InflightCalls[FetchResult[Any]],
        call_key: CallKey,
        join: Join,
    ) -> None:
        self._space = space
        self._primary = primary
        self._fallbacks = fallbacks
        self._cache = cache
        self._fallback = fallback
        self._deadline = deadline
        self._inflight = inflight
        self._call_key = call_key
        self._join = join
        self._joined: dict[str, FetchResult[Any]] = {}
        self._claims: dict[str, SharedCall[FetchResult[Any]]] = {}
        self._rescues: dict[str, SharedCall[FetchResult[Any]]] = {}

        self._keys: list[str] = []
        self._found = CachedBatch({}, {})
        self._fetched: dict[str, object] = {}
        self._rescued: dict[str, FetchResult[Any]] = {}
        self._attempts: defaultdict[str, list[Attempt]] = defaultdict(list)
        self._provider_calls = 0

    @property
    def found(self) -> CachedBatch:
        """What `read` found in the cache."""
        return self._found

    async def read(self, keys: list[str], tier: str | None) -> None:
        """Read the cache for *keys* (distinct, in order) in one round trip."""
        self._keys = keys
        self._found = await self._cache.read_many(self._space, keys, tier)

    async def fetch(self) -> None:
        """Fetch the misses; cancelling keeps what has arrived."""
        if len(self._found.hits) == len(self._keys):
            return

        is_fresh = self._found.is_fresh
        misses = [key for key in self._keys if not is_fresh(key)]
        if not misses:
            return

        claimed = self._claim(misses)
        self._claims = claimed
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._fetch_from_primary, list(claimed))
                for key in misses:
                    if key not in claimed:
                        nursery.start_soon(self._wait_for_shared_call, key)
        finally:
            self._answer_claims(claimed)

        failed = [key for key in misses if not self._delivered(key)]
        if failed and self._fallbacks:
            await self._fetch_from_fallbacks(failed)

    async def store(self) -> None:
        """Write every value the primary delivered to the cache, at once.

        With the namespace's ``negative_ttl`` set, keys that every
        provider asked answered NOT_FOUND are remembered as such. Keys
        invalidated while the batch ran are left out: their answers
        belong to the state before the invalidation.
        """
        values = {
            key: value
            for key, value in self._fetched.items()
            if not self._superseded(key)
        }
        await self._cache.write_many(self._space, values)

        remember_for = self._space.settings.negative_ttl
        if remember_for:
            unknown = [key for key in self._keys if self._nobody_knows(key)]
            await self._cache.write_not_found(self._space, unknown, remember_for)

    def _superseded(self, key: str) -> bool:
        call = self._claims.get(key) or self._rescues.get(key)
        return call is not None and call.superseded

    def _nobody_knows(self, key: str) -> bool:
        if self._is_fresh_in_cache(key) or self._superseded(key):
            return False

        # A key another call fetched was remembered by that call.
        rescued = self._rescued.get(key)
        attempts = [
            *self._attempts.get(key, ()),
            *(rescued.attempts if rescued is not None else ()),
        ]
        return (
            key not in self._joined
            and bool(attempts)
            and all(attempt.code is ErrorCode.NOT_FOUND for attempt in attempts)
        )

    def result(self, allow_stale: bool, *, timed_out: bool) -> BatchResult[Any]:
        """Return the per-key results and the summary of what was done.

        Args:
            allow_stale: Serve stale values for the keys that failed.
            timed_out: The deadline cut the run short; keys that were not
                tried say so.
        """
        if timed_out:
            for key in self._keys:
                if not self._is_fresh_in_cache(key) and not self._delivered(key):
                    self._attempts[key].append(DEADLINE_PASSED)

        hits = cache_hits(self._space.name, self._found.hits)
        for key in self._found.partial:
            hits[key] = attrs.evolve(hits[key], partial=True)
        if len(hits) == len(self._keys):
            # Every key fresh in the cache: nothing else to look at.
            return BatchResult(hits, self._summary(len(hits), []))

        results = {}
        others = []
        for key in self._keys:
            result = hits.get(key)
            if result is None:
                result = self._result_for(key, allow_stale)
                others.append(result)
            results[key] = result

        return BatchResult(results, self._summary(len(results), others))

    def _claim(self, misses: list[str]) -> dict[str, SharedCall[FetchResult[Any]]]:
        # Keys someone is already fetching from the primary are waited
        # for; the others are claimed, so that requests arriving while the
        # chunk runs wait for it instead of calling the provider again.
        claimed = {}
        for key in misses:
            shared = self._inflight.claim(self._call_key(key), self._deadline)
            if shared is not None:
                claimed[key] = shared

        return claimed

    def _answer_claims(self, claimed: dict[str, SharedCall[FetchResult[Any]]]) -> None:
        for key, shared in claimed.items():
            attempts = tuple(self._attempts.get(key, ()))
            if key in self._fetched:
                source = self._primary.name
                # Waiters get their own copy: the batch's caller may
                # change its value before a waiter runs again.
                shared.publish(
                    FetchResult(
                        key,
                        self._space.name,
                        copy.deepcopy(self._fetched[key]),
                        source=source,
                        age=0.0,
                        sources=(source,),
                        attempts=attempts,
                    )
                )
            elif attempts:
                shared.publish(FetchResult(key, self._space.name, attempts=attempts))
            else:
                # Waiters left without an answer (the batch was cut short)
                # start a call of their own.
                self._inflight.release(self._call_key(key), shared)

            # An answered key stays claimed until `release`, after `store`:
            # an invalidation meanwhile (the fallbacks may take long) then
            # marks it superseded, and neither its value nor a NOT_FOUND
            # is cached over the newer state.

    def release(self) -> None:
        """End the calls this batch claimed; call it once done, even on error."""
        for key, shared in self._claims.items():
            self._inflight.release(self._call_key(key), shared)

    # TODO: keys joined to another batch that is then cut short are
    # fetched one by one (each waiter starts its own call) rather than
    # chunked again, and this batch's summary does not count those calls.
    async def _wait_for_shared_call(self, key: str) -> None:
        result = await self._join(key)
        self._joined[key] = result

    def _delivered(self, key: str) -> bool:
        joined = self._joined.get(key)
        return key in self._fetched or (joined is not None and joined.ok)

    def _is_fresh_in_cache(self, key: str) -> bool:
        return self._found.is_fresh(key)

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
        value, tries = await self._primary.fetch(
            key,
            namespace=self._space.name,
            deadline=self._deadline,
            accepts=self._space.accepts,
        )
        for attempt in tries:
            self._count_call(attempt)
        self._attempts[key].extend(tries)
        if value is not None:
            self._fetched[key] = value

    async def _fetch_chunk(self, chunk: list[str]) -> None:
        found, tries = await self._primary.fetch_batch(
            chunk, namespace=self._space.name, deadline=self._deadline
        )
        for attempt in tries:
            self._count_call(attempt)
        for key in chunk:
            self._attempts[key].extend(tries[:-1])
        attempt = tries[-1]
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
            # The key's claim, when the batch holds one: an invalidation
            # then marks it superseded, and the fallback's answer (a value
            # or a NOT_FOUND) is not cached over the newer state.
            claim = self._claims.get(key)
            if claim is not None:
                result = await self._fallback(key, self._space, self._fallbacks, claim)
            else:
                # A key joined to another call: the batch holds no claim,
                # and the call is watched instead.
                call = self._rescues[key] = SharedCall(self._deadline)
                with self._inflight.watching(self._call_key(key), call):
                    result = await self._fallback(
                        key, self._space, self._fallbacks, call
                    )

            for attempt in result.attempts:
                self._count_call(attempt)

            self._rescued[key] = result

        async with trio.open_nursery() as nursery:
            for key in failed:
                nursery.start_soon(rescue, key)

    def _count_call(self, attempt: Attempt) -> None:
        # Skips by a breaker or a limit called nothing.
        if not attempt.skipped:
            self._provider_calls += 1

    def _result_for(self, key: str, allow_stale: bool) -> FetchResult[Any]:
        # The keys without a fresh value in the cache (see `result`).
        name = self._space.name
        cached = self._found.others.get(key)
        if cached is not None and cached.not_found:
            return not_found_from_cache(key, name, cached.age)

        attempts = tuple(self._attempts.get(key, ()))
        joined = self._joined.get(key)
        if joined is not None:
            attempts += joined.attempts
            if joined.ok:
                return attrs.evolve(joined, attempts=attempts)

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
                partial=cached.partial,
                attempts=attempts,
            )

        return FetchResult(key, name, attempts=attempts)

    def _summary(self, total: int, others: list[FetchResult[Any]]) -> BatchSummary:
        # Of *total* results, all but the *others* are fresh cache hits,
        # counted without a look.
        successful = cached = total - len(others)
        stale = 0
        for result in others:
            if result.source is None:
                continue

            successful += 1
            if result.stale:
                stale += 1
            elif result.cached:
                cached += 1

        return BatchSummary(
            total=total,
            successful=successful,
            failed=total - successful,
            cached=cached,
            fresh=successful - cached - stale,
            stale=stale,
            provider_calls=self._provider_calls,
        )
