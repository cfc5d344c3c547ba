"""Observable instruments over `dso.Stats`.

Each instrument's callback reads the source when a reader collects, so
nothing happens per event. Attributes are only ``namespace``,
``provider``, ``code``, ``reason`` and ``state``; never keys.

Counters are observable counters (monotonic totals since the
orchestrator opened); ratios, breaker states and latency percentiles are
observable gauges. Latency is three gauges (p50, p95, p99) for the same
reason as in dso-prometheus: the snapshot keeps percentiles of a bounded
histogram, not per-event buckets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import trio
from opentelemetry.metrics import CallbackOptions, Instrument, Meter, Observation

import dso


Read = Callable[[dso.Stats, dso.Health], Iterable[Observation]]


def instrument(source: dso.StatsSource, meter: Meter) -> list[Instrument]:
    """Create dso's observable instruments on *meter*, reading *source*.

    Call it in the orchestrator's trio thread: the callbacks read the
    source through a `dso.ThreadSafeSource`, so a periodic reader's
    thread may collect.

    Args:
        source: The orchestrator to observe.
        meter: Where to create the instruments.

    Returns:
        The instruments created, one per metric.
    """
    safe = dso.ThreadSafeSource(source)
    created: list[Instrument] = []
    for name, unit, description, read in _COUNTERS:
        created.append(
            meter.create_observable_counter(
                name, [_callback(safe, read)], unit=unit, description=description
            )
        )

    for name, unit, description, read in _GAUGES:
        created.append(
            meter.create_observable_gauge(
                name, [_callback(safe, read)], unit=unit, description=description
            )
        )

    return created


def _callback(
    source: dso.StatsSource, read: Read
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    # One snapshot per instrument and collection: the API gives no callback
    # shared by several instruments, and a snapshot is cheap.
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        try:
            return list(read(source.stats(), source.health()))
        except trio.RunFinishedError:
            # The orchestrator's trio run is over, and the API cannot take
            # an instrument back: there is nothing left to observe.
            return []

    return observe


def _per_namespace(field: str) -> Read:
    def read(stats: dso.Stats, health: dso.Health) -> Iterable[Observation]:
        for name, space in stats.namespaces.items():
            value = getattr(space, field)
            if value is not None:
                yield Observation(value, {"namespace": name})

    return read


def _per_provider(field: str) -> Read:
    def read(stats: dso.Stats, health: dso.Health) -> Iterable[Observation]:
        for name, provider in stats.providers.items():
            value = getattr(provider, field)
            if value is not None:
                yield Observation(value, {"provider": name})

    return read


def _per_provider_and(field: str, label: str) -> Read:
    def read(stats: dso.Stats, health: dso.Health) -> Iterable[Observation]:
        for name, provider in stats.providers.items():
            counts: dict[str, int] = getattr(provider, field)
            for value, count in counts.items():
                yield Observation(count, {"provider": name, label: value})

    return read


def _total(field: str) -> Read:
    def read(stats: dso.Stats, health: dso.Health) -> Iterable[Observation]:
        yield Observation(getattr(stats, field))

    return read


def _breaker_states(stats: dso.Stats, health: dso.Health) -> Iterable[Observation]:
    for name, provider in stats.providers.items():
        for state in dso.BreakerState:
            attributes = {"provider": name, "state": state.value}
            yield Observation(int(state.value == provider.breaker), attributes)


def _health_states(stats: dso.Stats, health: dso.Health) -> Iterable[Observation]:
    for status in dso.HealthStatus:
        yield Observation(int(status is health.status), {"state": status.value})


def _alerts(stats: dso.Stats, health: dso.Health) -> Iterable[Observation]:
    yield Observation(len(health.alerts))


_COUNTERS: tuple[tuple[str, str, str, Read], ...] = (
    (
        "dso.cache.hits",
        "1",
        "Fresh values served from the cache.",
        _per_namespace("hits"),
    ),
    (
        "dso.cache.misses",
        "1",
        "Lookups that found nothing fresh.",
        _per_namespace("misses"),
    ),
    (
        "dso.cache.stale_served",
        "1",
        "Expired values served.",
        _per_namespace("stale_served"),
    ),
    ("dso.fetches", "1", "Results returned.", _per_namespace("fetches")),
    ("dso.provider.attempts", "1", "Provider calls made.", _per_provider("attempts")),
    (
        "dso.provider.successes",
        "1",
        "Calls that returned data.",
        _per_provider("successes"),
    ),
    (
        "dso.provider.failures",
        "1",
        "Failed calls.",
        _per_provider_and("failures", "code"),
    ),
    (
        "dso.provider.skips",
        "1",
        "Calls not made.",
        _per_provider_and("skips", "reason"),
    ),
    ("dso.provider.retries", "1", "Retries scheduled.", _per_provider("retries")),
    (
        "dso.provider.pauses",
        "1",
        "Pauses providers asked for.",
        _per_provider("pauses"),
    ),
    (
        "dso.dedup.joins",
        "1",
        "Requests that joined a call in flight.",
        _total("dedup_joins"),
    ),
    ("dso.batch.keys", "1", "Keys batch calls asked for.", _total("batch_keys")),
    ("dso.batch.calls", "1", "Batch calls made.", _total("batch_calls")),
    (
        "dso.batch.calls_saved",
        "1",
        "Calls batching saved.",
        _total("batch_calls_saved"),
    ),
    ("dso.cache.errors", "1", "Cache operations that failed.", _total("cache_errors")),
    (
        "dso.events.dropped",
        "1",
        "Events sinks were too slow for.",
        _total("events_dropped"),
    ),
    ("dso.sink.errors", "1", "Exceptions raised by sinks.", _total("sink_errors")),
)

_GAUGES: tuple[tuple[str, str, str, Read], ...] = (
    ("dso.cache.hit_ratio", "1", "Hit rate since start.", _per_namespace("hit_rate")),
    (
        "dso.cache.recent_hit_ratio",
        "1",
        "Hit rate over the health window.",
        _per_namespace("recent_hit_rate"),
    ),
    (
        "dso.cache.recent_stale_ratio",
        "1",
        "Share of stale values over the health window.",
        _per_namespace("recent_stale_share"),
    ),
    (
        "dso.provider.recent_failure_ratio",
        "1",
        "Share of calls that failed over the health window.",
        _per_provider("recent_failure_rate"),
    ),
    (
        "dso.provider.latency.p50",
        "s",
        "Median call duration.",
        _per_provider("latency_p50"),
    ),
    (
        "dso.provider.latency.p95",
        "s",
        "95th percentile call duration.",
        _per_provider("latency_p95"),
    ),
    (
        "dso.provider.latency.p99",
        "s",
        "99th percentile call duration.",
        _per_provider("latency_p99"),
    ),
    (
        "dso.provider.quota_used",
        "1",
        "Share of the quota spent.",
        _per_provider("quota_used"),
    ),
    (
        "dso.breaker.state",
        "1",
        "1 for each breaker's state, 0 for the others.",
        _breaker_states,
    ),
    (
        "dso.health.status",
        "1",
        "1 for the health status, 0 for the others.",
        _health_states,
    ),
    ("dso.health.alerts", "1", "Active alerts.", _alerts),
)
