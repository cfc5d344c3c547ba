"""Telemetry: the one place every step of a fetch reports to.

Each report updates the built-in aggregate (`StatsAggregator`) at once,
and, only when sinks are installed, becomes a typed event that a
background task hands to the sinks in a worker thread. A sink that is
slow, blocks or raises therefore never slows or breaks a fetch: events it
cannot keep up with are dropped and counted, its exceptions are counted
and logged once.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import trio

from ._breaker import BreakerTransition
from ._cache import WallClock
from ._config import TelemetrySettings
from ._errors import ErrorCode
from ._events import (
    AttemptFailed,
    AttemptSkipped,
    AttemptStarted,
    AttemptSucceeded,
    BatchChunkFetched,
    BreakerTransitioned,
    CacheFailed,
    CacheHit,
    CacheMiss,
    CacheWritten,
    DedupJoined,
    Event,
    FetchFinished,
    MergeFinished,
    ProviderPaused,
    RetryScheduled,
    StaleServed,
)
from ._results import CACHE_SOURCE, BatchResult
from ._stats import StatsAggregator


if TYPE_CHECKING:
    from ._typed_cache import CachedBatch


logger = logging.getLogger("dso")

Sink = Callable[[Event], object]
"""Receives events one by one, in a worker thread."""

_BATCH = 512
"""Events handed to the worker thread at a time."""


class Telemetry:
    """Counts every step and passes it on to the sinks as an event.

    Args:
        stats: The aggregate behind `Orchestrator.stats`.
        clock: Wall-clock time for the events' timestamps.
        settings: Key handling and the sinks' buffer size.
        sinks: Where events go besides the aggregate.

    Raises:
        TypeError: A sink is an async function.
    """

    def __init__(
        self,
        stats: StatsAggregator,
        clock: WallClock,
        settings: TelemetrySettings | None = None,
        sinks: Sequence[Sink] = (),
    ) -> None:
        settings = settings or TelemetrySettings()
        for sink in sinks:
            _check_sync(sink)

        self.stats = stats
        self._clock = clock
        self._sinks = list(sinks)
        self._key_mode = settings.keys
        self._salt = settings.key_salt.encode()
        self._send, self._receive = trio.open_memory_channel[Event](settings.buffer)
        self._failed_sinks: set[int] = set()

    @property
    def has_sinks(self) -> bool:
        """Whether any sink receives events."""
        return bool(self._sinks)

    def shown_key(self, key: str | None) -> str | None:
        """Return *key* as events show it: plain, hashed or left out."""
        if key is None or self._key_mode == "plain":
            return key

        if self._key_mode == "omit":
            return None

        digest = hashlib.blake2b(key.encode(), digest_size=12, key=self._salt)
        return digest.hexdigest()

    def cache_hit(self, namespace: str, key: str, age: float) -> None:
        """Report a fresh value served from the cache."""
        self.stats.lookup(namespace, hit=True)
        if self._sinks:
            self._event(CacheHit, namespace=namespace, key=key, age=age)

    def cache_miss(self, namespace: str, key: str) -> None:
        """Report a lookup that found nothing fresh."""
        self.stats.lookup(namespace, hit=False)
        if self._sinks:
            self._event(CacheMiss, namespace=namespace, key=key)

    def stale_served(
        self, namespace: str, key: str, age: float, *, revalidating: bool
    ) -> None:
        """Report an expired value served."""
        if self._sinks:
            self._event(
                StaleServed,
                namespace=namespace,
                key=key,
                age=age,
                revalidating=revalidating,
            )

    def cache_written(self, namespace: str, keys: int) -> None:
        """Report values stored."""
        if self._sinks:
            self._event(CacheWritten, namespace=namespace, keys=keys)

    def cache_failed(self, backend: str, operation: str) -> None:
        """Report a cache backend failure."""
        self.stats.cache_errors += 1
        if self._sinks:
            self._event(CacheFailed, backend=backend, operation=operation)

    def attempt_started(self, namespace: str, provider: str, key: str | None) -> None:
        """Report a provider call beginning."""
        if self._sinks:
            self._event(AttemptStarted, namespace=namespace, provider=provider, key=key)

    def attempt_ended(
        self,
        namespace: str,
        provider: str,
        key: str | None,
        code: ErrorCode | None,
        duration: float,
    ) -> None:
        """Report a provider call ending, with its code (``None``: success)."""
        self.stats.attempt(provider, code, duration)
        if not self._sinks:
            return

        where = {"namespace": namespace, "provider": provider, "key": key}
        if code is None:
            self._event(AttemptSucceeded, **where, duration=duration)
        else:
            self._event(AttemptFailed, **where, code=code, duration=duration)

    def attempt_skipped(
        self, namespace: str, provider: str, key: str | None, reason: ErrorCode
    ) -> None:
        """Report a provider not called, and why."""
        self.stats.skip(provider, reason)
        if self._sinks:
            self._event(
                AttemptSkipped,
                namespace=namespace,
                provider=provider,
                key=key,
                reason=reason,
            )

    def retry_scheduled(
        self,
        namespace: str | None,
        provider: str,
        key: str | None,
        retry: int,
        delay: float,
        code: ErrorCode,
    ) -> None:
        """Report a retry to come."""
        self.stats.retry(provider)
        if self._sinks:
            self._event(
                RetryScheduled,
                namespace=namespace,
                provider=provider,
                key=key,
                retry=retry,
                delay=delay,
                code=code,
            )

    def provider_paused(self, provider: str, seconds: float) -> None:
        """Report a provider paused at its own request."""
        self.stats.pause(provider)
        logger.warning(
            "provider %s asked for a pause; not calling it for %.0f s",
            provider,
            seconds,
            extra={"dso_provider": provider, "dso_pause": seconds},
        )
        if self._sinks:
            self._event(ProviderPaused, provider=provider, seconds=seconds)

    def breaker_transitioned(self, transition: BreakerTransition) -> None:
        """Report a breaker's change of state."""
        if self._sinks:
            self._event(
                BreakerTransitioned,
                provider=transition.name,
                old=transition.old,
                new=transition.new,
                reason=transition.reason,
            )

    def dedup_joined(self, namespace: str, key: str) -> None:
        """Report a request joining a call in flight."""
        self.stats.dedup_joins += 1
        if self._sinks:
            self._event(DedupJoined, namespace=namespace, key=key)

    def batch_chunk_fetched(
        self,
        namespace: str,
        provider: str,
        keys: int,
        found: int,
        duration: float,
        code: ErrorCode | None,
    ) -> None:
        """Report one batch call's outcome."""
        self.stats.batch_chunk(keys)
        if self._sinks:
            self._event(
                BatchChunkFetched,
                namespace=namespace,
                provider=provider,
                keys=keys,
                found=found,
                duration=duration,
                code=code,
            )

    def merge_finished(
        self, namespace: str, key: str, succeeded: int, asked: int, *, ok: bool
    ) -> None:
        """Report a merge's outcome."""
        if self._sinks:
            self._event(
                MergeFinished,
                namespace=namespace,
                key=key,
                succeeded=succeeded,
                asked=asked,
                ok=ok,
            )

    def fresh_hit_served(
        self,
        strategy: str,
        namespace: str,
        key: str,
        age: float,
        duration: float = 0.0,
    ) -> None:
        """Report a fetch answered by a fresh cached value.

        What `cache_hit` and `fetch_finished` report, in one step: the
        hit path's. A hit from a backend in this process takes no time
        beyond one checkpoint, and measuring that would cost it as much
        again: its *duration* is left at 0. A backend outside the process
        reports its round trip.
        """
        self.stats.fresh_hit(namespace)
        if logger.isEnabledFor(logging.DEBUG):
            self._log_fetch(
                logging.DEBUG,
                strategy,
                namespace,
                key,
                CACHE_SOURCE,
                True,
                False,
                duration,
            )

        if self._sinks:
            self._event(CacheHit, namespace=namespace, key=key, age=age)
            self._event(
                FetchFinished,
                namespace=namespace,
                key=key,
                strategy=strategy,
                source=CACHE_SOURCE,
                ok=True,
                stale=False,
                duration=duration,
            )

    def fetch_finished(
        self,
        strategy: str,
        namespace: str,
        key: str,
        source: str | None,
        *,
        ok: bool,
        stale: bool,
        duration: float,
    ) -> None:
        """Report a result returned to a caller, with one log line.

        The line is at INFO, except for fresh cache hits, which are at
        DEBUG: they are most fetches, and say little.
        """
        self.stats.fetched(namespace, stale=stale)
        level = logging.DEBUG if source == CACHE_SOURCE and not stale else logging.INFO
        if logger.isEnabledFor(level):
            self._log_fetch(
                level, strategy, namespace, key, source, ok, stale, duration
            )

        if self._sinks:
            self._event(
                FetchFinished,
                namespace=namespace,
                key=key,
                strategy=strategy,
                source=source,
                ok=ok,
                stale=stale,
                duration=duration,
            )

    def batch_looked_up(
        self, namespace: str, keys: Sequence[str], found: CachedBatch
    ) -> None:
        """Report a batch's cache read: a hit or a miss for each key."""
        hits = found.fresh_count()
        self.stats.lookups(namespace, hits=hits, misses=len(keys) - hits)
        if not self._sinks:
            return

        for key in keys:
            age = found.fresh_age(key)
            if age is not None:
                self._event(CacheHit, namespace=namespace, key=key, age=age)
            else:
                self._event(CacheMiss, namespace=namespace, key=key)

    def batch_finished(
        self,
        namespace: str,
        provider: str,
        result: BatchResult[Any],
        duration: float,
    ) -> None:
        """Report a batch's results, one per key, with one log line in all."""
        summary = result.summary
        self.stats.fetched_many(namespace, results=summary.total, stale=summary.stale)
        if self._sinks:
            for key, answer in result.results.items():
                self._event(
                    FetchFinished,
                    namespace=namespace,
                    key=key,
                    strategy="batch",
                    source=answer.source,
                    ok=answer.ok,
                    stale=answer.stale,
                    duration=duration,
                )

        logger.info(
            "batch %s from %s: %d of %d keys (%d cached, %d stale) in %.3f s",
            namespace,
            provider,
            summary.successful,
            summary.total,
            summary.cached,
            summary.stale,
            duration,
            extra={
                "dso_strategy": "batch",
                "dso_namespace": namespace,
                "dso_source": provider,
                "dso_keys": summary.total,
                "dso_successful": summary.successful,
                "dso_duration": duration,
            },
        )

    def _log_fetch(
        self,
        level: int,
        strategy: str,
        namespace: str,
        key: str,
        source: str | None,
        ok: bool,
        stale: bool,
        duration: float,
    ) -> None:
        shown = self.shown_key(key)
        outcome = "stale from" if stale else "from" if ok else "nothing from"
        logger.log(
            level,
            "%s %s/%s: %s %s in %.3f s",
            strategy,
            namespace,
            shown if shown is not None else "(key omitted)",
            outcome,
            source or "any provider",
            duration,
            extra={
                "dso_strategy": strategy,
                "dso_namespace": namespace,
                "dso_key": shown,
                "dso_source": source,
                "dso_ok": ok,
                "dso_stale": stale,
                "dso_duration": duration,
            },
        )

    async def deliver(self) -> None:
        """Hand events to the sinks until cancelled; run it in a nursery."""
        async with self._receive:
            async for event in self._receive:
                batch = [event, *self._ready(_BATCH - 1)]
                # A sink may block: it runs in a thread, and at shutdown
                # the thread is abandoned rather than waited for.
                errors = await trio.to_thread.run_sync(
                    self._deliver_batch, batch, abandon_on_cancel=True
                )
                self.stats.sink_errors += errors

    def _ready(self, most: int) -> list[Event]:
        ready: list[Event] = []
        while len(ready) < most:
            try:
                ready.append(self._receive.receive_nowait())
            except trio.WouldBlock:
                break

        return ready

    def _event(
        self,
        kind: type[Event],
        *,
        key: str | None = None,
        **fields: Any,
    ) -> None:
        # Stamps the time and shows the key as configured; callers check
        # for sinks first, so that nothing is built when nobody listens.
        self._emit(kind(at=self._clock(), key=self.shown_key(key), **fields))

    def _emit(self, event: Event) -> None:
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.stats.events_dropped += 1
        except trio.ClosedResourceError:
            pass

    def _deliver_batch(self, batch: list[Event]) -> int:
        errors = 0
        for sink in self._sinks:
            for event in batch:
                try:
                    sink(event)
                # Not only Exception: in a worker thread, a sink's SystemExit
                # or KeyboardInterrupt is a bug of the sink's, not a signal,
                # and must not end the orchestrator's delivery task. No trio
                # Cancelled can arise in this thread.
                except BaseException:  # noqa: ASYNC103
                    errors += 1
                    self._log_first_failure(sink)

        return errors

    def _log_first_failure(self, sink: Sink) -> None:
        if id(sink) in self._failed_sinks:
            return

        self._failed_sinks.add(id(sink))
        logger.warning(
            "telemetry sink %r failed; its failures are counted, not logged again",
            getattr(sink, "__qualname__", sink),
            exc_info=True,
        )


def _check_sync(sink: Sink) -> None:
    # A worker thread calls sinks: an async one would only make coroutines
    # that nobody awaits, and its events would vanish without a word.
    call = type(sink).__call__
    if inspect.iscoroutinefunction(sink) or inspect.iscoroutinefunction(call):
        name = getattr(sink, "__qualname__", repr(sink))
        raise TypeError(
            f"telemetry sink {name} is async; sinks run in a worker thread "
            "and must be plain functions"
        )
