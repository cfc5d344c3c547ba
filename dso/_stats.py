"""The built-in telemetry aggregate behind `Orchestrator.stats`.

Counts since the orchestrator opened, latency histograms, and sliding
windows of recent outcomes for the health alerts. Its memory is bounded
however long the process runs: one record per namespace and provider
(both come from configuration, not from callers), a fixed number of
histogram buckets, codes from a closed set, and windows of one bucket per
second.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs
import trio

from ._errors import ErrorCode
from ._histogram import LatencyHistogram
from ._window import TimeWindow


HEALTHY_CODES = frozenset({ErrorCode.NOT_FOUND, ErrorCode.CANCELLED})
"""Failure codes that say nothing against a provider's health: it did not
know the key, or another provider answered first."""


@attrs.frozen
class NamespaceStats:
    """What one namespace's fetches found in the cache.

    Attributes:
        fetches: Results returned.
        hits: Fresh values served from the cache.
        misses: Lookups that found nothing fresh.
        stale_served: Expired values served (revalidating or as fallback).
        hit_rate: ``hits / (hits + misses)``, or ``None`` before any lookup.
        stale_share: ``stale_served / fetches``, or ``None`` before any.
        recent_lookups: Lookups in the health window.
        recent_hit_rate: The hit rate over the health window.
        recent_stale_share: The stale share over the health window.
    """

    fetches: int
    hits: int
    misses: int
    stale_served: int
    hit_rate: float | None
    stale_share: float | None
    recent_lookups: int
    recent_hit_rate: float | None
    recent_stale_share: float | None


@attrs.frozen
class ProviderStats:
    """What one provider has done.

    Attributes:
        attempts: Calls made (retries included).
        successes: Calls that returned data.
        failures: Failed calls by error code (``"timeout"``...).
        skips: Calls not made, by reason (``"circuit_open"``...).
        retries: Retries scheduled.
        pauses: Pauses the provider asked for (Retry-After).
        latency_p50: Median call duration in seconds, or ``None``.
        latency_p95: 95th percentile, or ``None``.
        latency_p99: 99th percentile, or ``None``.
        recent_attempts: Calls in the health window.
        recent_failure_rate: Share of those that failed for a reason that
            counts against the provider (not NOT_FOUND, not CANCELLED).
        breaker: The breaker's state (``"closed"``...).
        quota_used: The share of its quota spent, or ``None`` without one.
        last_check_ok: How its last `health_check` went, or ``None``.
    """

    attempts: int
    successes: int
    failures: dict[str, int]
    skips: dict[str, int]
    retries: int
    pauses: int
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    recent_attempts: int
    recent_failure_rate: float | None
    breaker: str
    quota_used: float | None = None
    last_check_ok: bool | None = None

    @property
    def failed(self) -> int:
        """All failed calls, whatever their code."""
        return sum(self.failures.values())


@attrs.frozen
class Stats:
    """A snapshot of everything the orchestrator counts.

    Attributes:
        uptime: Seconds since the orchestrator opened.
        namespaces: Per-namespace cache figures, by name.
        providers: Per-provider figures, by name.
        dedup_joins: Requests that joined a call already in flight, each a
            provider call saved.
        batch_keys: Keys that batch calls asked providers for.
        batch_calls: Provider calls the batches made; ``batch_keys -
            batch_calls`` calls were saved by batching.
        cache_errors: Cache backend operations that failed.
        events_dropped: Events not delivered to sinks because they were
            behind (never queued without bound).
        sink_errors: Exceptions raised by sinks.
    """

    uptime: float
    namespaces: dict[str, NamespaceStats]
    providers: dict[str, ProviderStats]
    dedup_joins: int
    batch_keys: int
    batch_calls: int
    cache_errors: int
    events_dropped: int
    sink_errors: int

    @property
    def batch_calls_saved(self) -> int:
        """Provider calls that batching saved (one per key otherwise)."""
        return self.batch_keys - self.batch_calls

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as plain data, ready for JSON."""
        plain = attrs.asdict(self)
        plain["batch_calls_saved"] = self.batch_calls_saved
        return plain


class _NamespaceTally:
    __slots__ = ("fetches", "hits", "misses", "recent", "stale")

    def __init__(self, window: float) -> None:
        self.fetches = 0
        self.hits = 0
        self.misses = 0
        self.stale = 0
        # failed = a miss, slow = a stale value served.
        self.recent = TimeWindow(window)


class _ProviderTally:
    __slots__ = (
        "attempts",
        "failures",
        "latency",
        "pauses",
        "recent",
        "retries",
        "skips",
        "successes",
    )

    def __init__(self, window: float) -> None:
        self.attempts = 0
        self.successes = 0
        self.failures: Counter[str] = Counter()
        self.skips: Counter[str] = Counter()
        self.retries = 0
        self.pauses = 0
        self.latency = LatencyHistogram()
        self.recent = TimeWindow(window)


class StatsAggregator:
    """Keeps the counts behind `Stats`.

    Every method is a few additions: the aggregate is fed on the fetch
    path itself, so that `Orchestrator.stats` is always exact.

    Args:
        window: Seconds the recent rates cover (the health window).
    """

    def __init__(self, window: float = 300.0) -> None:
        self._window = window
        # The run's clock, held directly: read on every cache hit, and
        # trio.current_time() looks the run up each time.
        self._now = trio.lowlevel.current_clock().current_time
        self._started = self._now()
        self._namespaces: dict[str, _NamespaceTally] = {}
        self._providers: dict[str, _ProviderTally] = {}
        self._checks: dict[str, bool] = {}
        self.dedup_joins = 0
        self.batch_keys = 0
        self.batch_calls = 0
        self.cache_errors = 0
        self.events_dropped = 0
        self.sink_errors = 0

    def lookup(self, namespace: str, *, hit: bool) -> None:
        """Count a cache lookup that found a fresh value or not."""
        tally = self._namespace(namespace)
        if hit:
            tally.hits += 1
        else:
            tally.misses += 1

        tally.recent.record(failed=not hit, slow=False, now=self._now())

    def fresh_hit(self, namespace: str) -> None:
        """Count a fetch answered by a fresh cached value: a hit, and a result."""
        tally = self._namespaces.get(namespace) or self._namespace(namespace)
        tally.hits += 1
        tally.fetches += 1
        tally.recent.record_passes(1, self._now())

    def lookups(self, namespace: str, *, hits: int, misses: int) -> None:
        """Count a batch's cache lookups at once."""
        tally = self._namespace(namespace)
        tally.hits += hits
        tally.misses += misses
        tally.recent.record_many(hits + misses, misses, 0, now=self._now())

    def fetched_many(self, namespace: str, *, results: int, stale: int) -> None:
        """Count a batch's results at once, *stale* of them stale."""
        tally = self._namespace(namespace)
        tally.fetches += results
        tally.stale += stale
        if stale:
            tally.recent.record_many(stale, 0, stale, now=self._now())

    def fetched(self, namespace: str, *, stale: bool) -> None:
        """Count a result returned, and whether it was stale."""
        tally = self._namespace(namespace)
        tally.fetches += 1
        if stale:
            tally.stale += 1
            # A zero-call entry: it moves the stale share, not the hit rate.
            tally.recent.record(failed=False, slow=True, now=self._now())

    def attempt(self, provider: str, code: ErrorCode | None, duration: float) -> None:
        """Count a provider call that ended with *code* (``None``: success)."""
        tally = self._provider(provider)
        tally.attempts += 1
        tally.latency.record(duration)
        if code is None:
            tally.successes += 1
        else:
            tally.failures[code.value] += 1

        counts_against = code is not None and code not in HEALTHY_CODES
        tally.recent.record(failed=counts_against, slow=False, now=self._now())

    def skip(self, provider: str, reason: ErrorCode) -> None:
        """Count a provider call not made, and why."""
        self._provider(provider).skips[reason.value] += 1

    def retry(self, provider: str) -> None:
        """Count a retry scheduled."""
        self._provider(provider).retries += 1

    def pause(self, provider: str) -> None:
        """Count a pause the provider asked for."""
        self._provider(provider).pauses += 1

    def batch_chunk(self, keys: int) -> None:
        """Count one batch call asking for *keys* keys."""
        self.batch_keys += keys
        self.batch_calls += 1

    def health_checked(self, provider: str, *, ok: bool) -> None:
        """Remember how *provider*'s last health check went."""
        self._provider(provider)
        self._checks[provider] = ok

    def snapshot(
        self,
        breakers: dict[str, str],
        quotas: dict[str, float | None] | None = None,
    ) -> Stats:
        """Return the counts now.

        Args:
            breakers: Each provider's breaker state; every provider named
                here appears in the snapshot, called or not.
            quotas: Each provider's quota use, where it has a quota.
        """
        now = trio.current_time()
        quotas = quotas or {}
        for name in breakers:
            self._provider(name)

        return Stats(
            uptime=now - self._started,
            namespaces={
                name: _namespace_stats(tally, now)
                for name, tally in sorted(self._namespaces.items())
            },
            providers={
                name: _provider_stats(
                    tally,
                    now,
                    breakers.get(name, "closed"),
                    quotas.get(name),
                    self._checks.get(name),
                )
                for name, tally in sorted(self._providers.items())
            },
            dedup_joins=self.dedup_joins,
            batch_keys=self.batch_keys,
            batch_calls=self.batch_calls,
            cache_errors=self.cache_errors,
            events_dropped=self.events_dropped,
            sink_errors=self.sink_errors,
        )

    def _namespace(self, name: str) -> _NamespaceTally:
        tally = self._namespaces.get(name)
        if tally is None:
            tally = self._namespaces[name] = _NamespaceTally(self._window)

        return tally

    def _provider(self, name: str) -> _ProviderTally:
        tally = self._providers.get(name)
        if tally is None:
            tally = self._providers[name] = _ProviderTally(self._window)

        return tally


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _namespace_stats(tally: _NamespaceTally, now: float) -> NamespaceStats:
    recent = tally.recent.totals(now)
    lookups = recent.calls - recent.slow
    return NamespaceStats(
        fetches=tally.fetches,
        hits=tally.hits,
        misses=tally.misses,
        stale_served=tally.stale,
        hit_rate=_share(tally.hits, tally.hits + tally.misses),
        stale_share=_share(tally.stale, tally.fetches),
        recent_lookups=lookups,
        recent_hit_rate=_share(lookups - recent.failures, lookups),
        recent_stale_share=_share(recent.slow, lookups),
    )


def _provider_stats(
    tally: _ProviderTally,
    now: float,
    breaker: str,
    quota_used: float | None,
    last_check_ok: bool | None,
) -> ProviderStats:
    recent = tally.recent.totals(now)
    return ProviderStats(
        attempts=tally.attempts,
        successes=tally.successes,
        failures=dict(sorted(tally.failures.items())),
        skips=dict(sorted(tally.skips.items())),
        retries=tally.retries,
        pauses=tally.pauses,
        latency_p50=tally.latency.percentile(0.50),
        latency_p95=tally.latency.percentile(0.95),
        latency_p99=tally.latency.percentile(0.99),
        recent_attempts=recent.calls,
        recent_failure_rate=_share(recent.failures, recent.calls),
        breaker=breaker,
        quota_used=quota_used,
        last_check_ok=last_check_ok,
    )
