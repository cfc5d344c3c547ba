"""A Prometheus collector over `dso.Stats`.

Nothing happens per event: each scrape takes one stats snapshot and one
health verdict and turns them into metric families. Labels are only
``namespace``, ``provider``, ``code``, ``reason`` and ``state``, all from
configuration or closed sets, never keys.

Latency is exported as three gauges (p50, p95, p99) of the aggregate's
bounded histogram, not as a Prometheus histogram: that would need
buckets fed per event, which the stats snapshot deliberately does not
keep, and a summary would need the sum of durations, which it does not
keep either. The percentiles cover every call since the orchestrator
opened.
"""

from __future__ import annotations

from collections.abc import Iterator

import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

import dso


BREAKER_STATES = tuple(state.value for state in dso.BreakerState)
"""Every breaker state, one sample each per provider (one-hot)."""

HEALTH_STATES = tuple(status.value for status in dso.HealthStatus)
"""Every health status, one sample each (one-hot)."""

_PERCENTILES = (("p50", "latency_p50"), ("p95", "latency_p95"), ("p99", "latency_p99"))


class DsoCollector(Collector):
    """Yields dso's metrics from a source's stats when scraped.

    Args:
        source: The orchestrator (or any `dso.StatsSource`). Scrapes from
            another thread than the orchestrator's (prometheus-client's
            own HTTP server) need a `dso.ThreadSafeSource` around it;
            `register` puts one there.
    """

    def __init__(self, source: dso.StatsSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        """Return the metric families of one snapshot."""
        try:
            stats = self._source.stats()
            health = self._source.health()
        except trio.RunFinishedError:
            # The orchestrator's trio run is over. The registry may be the
            # application's, with metrics of its own: they must still scrape.
            return

        yield from _namespace_metrics(stats)
        yield from _provider_metrics(stats)
        yield from _total_metrics(stats)
        yield from _health_metrics(health)


def register(
    source: dso.StatsSource, registry: CollectorRegistry | None = None
) -> CollectorRegistry:
    """Register a `DsoCollector` for *source*; return the registry.

    Call it in the orchestrator's trio thread: the collector reads the
    source through a `dso.ThreadSafeSource`, so any thread may scrape.

    Args:
        source: The orchestrator to export.
        registry: Where to register; a fresh registry when omitted (never
            prometheus-client's global one).
    """
    registry = CollectorRegistry() if registry is None else registry
    registry.register(DsoCollector(dso.ThreadSafeSource(source)))
    return registry


def render(source: dso.StatsSource) -> dso.Exposition:
    """Return *source*'s metrics in Prometheus' text format."""
    registry = CollectorRegistry()
    registry.register(DsoCollector(source))
    return dso.Exposition(CONTENT_TYPE_LATEST, generate_latest(registry))


def _namespace_metrics(stats: dso.Stats) -> Iterator[Metric]:
    spaces = stats.namespaces.items()
    counters = (
        ("dso_cache_hits", "Fresh values served from the cache.", "hits"),
        ("dso_cache_misses", "Cache lookups that found nothing fresh.", "misses"),
        ("dso_stale_served", "Expired values served.", "stale_served"),
        ("dso_fetches", "Results returned.", "fetches"),
    )
    for name, documentation, field in counters:
        counter = CounterMetricFamily(name, documentation, labels=["namespace"])
        for space, figures in spaces:
            counter.add_metric([space], getattr(figures, field))

        yield counter

    ratios = (
        ("dso_cache_hit_ratio", "Hit rate since start.", "hit_rate"),
        (
            "dso_cache_recent_hit_ratio",
            "Hit rate over the health window.",
            "recent_hit_rate",
        ),
        (
            "dso_cache_recent_stale_ratio",
            "Share of stale values over the health window.",
            "recent_stale_share",
        ),
    )
    for name, documentation, field in ratios:
        gauge = GaugeMetricFamily(name, documentation, labels=["namespace"])
        for space, figures in spaces:
            value = getattr(figures, field)
            if value is not None:
                gauge.add_metric([space], value)

        yield gauge


def _provider_metrics(stats: dso.Stats) -> Iterator[Metric]:
    providers = stats.providers.items()
    counters = (
        ("dso_provider_attempts", "Provider calls made.", "attempts"),
        ("dso_provider_successes", "Provider calls that returned data.", "successes"),
        ("dso_provider_retries", "Retries scheduled.", "retries"),
        ("dso_provider_pauses", "Pauses providers asked for.", "pauses"),
    )
    for name, documentation, field in counters:
        counter = CounterMetricFamily(name, documentation, labels=["provider"])
        for provider, figures in providers:
            counter.add_metric([provider], getattr(figures, field))

        yield counter

    failures = CounterMetricFamily(
        "dso_provider_failures", "Failed provider calls.", labels=["provider", "code"]
    )
    skips = CounterMetricFamily(
        "dso_provider_skips", "Provider calls not made.", labels=["provider", "reason"]
    )
    for provider, figures in providers:
        for code, count in figures.failures.items():
            failures.add_metric([provider, code], count)

        for reason, count in figures.skips.items():
            skips.add_metric([provider, reason], count)

    yield failures
    yield skips
    yield from _provider_gauges(stats)


def _provider_gauges(stats: dso.Stats) -> Iterator[Metric]:
    providers = stats.providers.items()
    for suffix, field in _PERCENTILES:
        latency = GaugeMetricFamily(
            f"dso_provider_latency_{suffix}_seconds",
            f"The {suffix} of provider call durations since start.",
            labels=["provider"],
        )
        for provider, figures in providers:
            value = getattr(figures, field)
            if value is not None:
                latency.add_metric([provider], value)

        yield latency

    breaker = GaugeMetricFamily(
        "dso_breaker_state",
        "1 for the state each provider's breaker is in, 0 for the others.",
        labels=["provider", "state"],
    )
    failure_rate = GaugeMetricFamily(
        "dso_provider_recent_failure_ratio",
        "Share of calls that failed over the health window.",
        labels=["provider"],
    )
    quota = GaugeMetricFamily(
        "dso_provider_quota_used_ratio",
        "Share of the provider's quota spent.",
        labels=["provider"],
    )
    for provider, figures in providers:
        for state in BREAKER_STATES:
            breaker.add_metric([provider, state], float(state == figures.breaker))

        if figures.recent_failure_rate is not None:
            failure_rate.add_metric([provider], figures.recent_failure_rate)

        if figures.quota_used is not None:
            quota.add_metric([provider], figures.quota_used)

    yield breaker
    yield failure_rate
    yield quota


def _total_metrics(stats: dso.Stats) -> Iterator[Metric]:
    totals = (
        (
            "dso_dedup_joins",
            "Requests that joined a call in flight.",
            stats.dedup_joins,
        ),
        ("dso_batch_keys", "Keys batch calls asked for.", stats.batch_keys),
        ("dso_batch_calls", "Batch calls made.", stats.batch_calls),
        (
            "dso_batch_calls_saved",
            "Provider calls batching saved.",
            stats.batch_calls_saved,
        ),
        (
            "dso_cache_errors",
            "Cache backend operations that failed.",
            stats.cache_errors,
        ),
        ("dso_events_dropped", "Events sinks were too slow for.", stats.events_dropped),
        ("dso_sink_errors", "Exceptions raised by sinks.", stats.sink_errors),
    )
    for name, documentation, value in totals:
        yield CounterMetricFamily(name, documentation, value=value)

    yield GaugeMetricFamily(
        "dso_uptime_seconds",
        "Seconds since the orchestrator opened.",
        value=stats.uptime,
    )


def _health_metrics(health: dso.Health) -> Iterator[Metric]:
    status = GaugeMetricFamily(
        "dso_health_status",
        "1 for the overall health status, 0 for the others.",
        labels=["state"],
    )
    for state in HEALTH_STATES:
        status.add_metric([state], float(state == health.status.value))

    yield status
    yield GaugeMetricFamily(
        "dso_health_alerts", "Active alerts.", value=len(health.alerts)
    )
