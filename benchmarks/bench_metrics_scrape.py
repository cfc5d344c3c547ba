"""What one /metrics scrape costs with dso-prometheus, against native metrics.

dso-prometheus builds its metric families from a stats snapshot at scrape
time, so that nothing happens per event. The baseline is the usual
prometheus-client way: the same series held by native Counter and Gauge
objects in a registry, rendered by the same `generate_latest`. Both scrape
the same number of series (20 providers, 5 namespaces, a few failure codes
and skip reasons each). The ratio is dso's scrape time to the baseline's,
measured in the same run; the snapshot itself (taken from a real
orchestrator) is included in dso's time.

There is no target: the figure says what a scrape costs, and that scraping
a few times a minute stays far below a millisecond of work per second.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from importlib import metadata

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

import dso
import dso_prometheus
from dso.testing import FakeProvider


PROVIDERS = 20
NAMESPACES = 5
SCRAPES = 300
REPEATS = 5


def config() -> dso.Config:
    return dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {
                f"ns{n}": {"ttl": {"fresh": 60, "stale": 3600}}
                for n in range(NAMESPACES)
            },
        }
    )


async def traffic(orch: dso.Orchestrator) -> None:
    """Give every provider successes and failures, every namespace hits."""
    names = [f"p{n}" for n in range(PROVIDERS)]
    for n in range(NAMESPACES):
        for key in ("known", "known", "unknown", "down"):
            await orch.fetch_with_fallback(key, names, namespace=f"ns{n}")


def native_registry(stats: dso.Stats) -> CollectorRegistry:
    """The same series as native prometheus-client metrics."""
    registry = CollectorRegistry()
    counters = {
        name: Counter(name, name, ["provider"], registry=registry)
        for name in ("a", "b", "c", "d")
    }
    failures = Counter("f", "f", ["provider", "code"], registry=registry)
    breaker = Gauge("s", "s", ["provider", "state"], registry=registry)
    latency = Gauge("l", "l", ["provider"], registry=registry)
    hits = Counter("h", "h", ["namespace"], registry=registry)
    for name, provider in stats.providers.items():
        for counter in counters.values():
            counter.labels(name).inc(provider.attempts)

        for code, count in provider.failures.items():
            failures.labels(name, code).inc(count)

        for state in dso.BreakerState:
            breaker.labels(name, state.value).set(0)

        for _ in range(3):
            latency.labels(name).set(provider.latency_p50 or 0)

    for name, space in stats.namespaces.items():
        hits.labels(name).inc(space.hits)

    return registry


def series(text: bytes) -> int:
    """Count the samples in a Prometheus text exposition."""
    return sum(1 for line in text.splitlines() if not line.startswith(b"#"))


def best_of(render: Callable[[], object]) -> float:
    timings = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(SCRAPES):
            render()

        timings.append((time.perf_counter() - started) / SCRAPES)

    return min(timings)


async def main() -> None:
    providers = []
    for n in range(PROVIDERS):
        provider = FakeProvider(f"p{n}", {"known": n} if n % 4 == 3 else {})
        if n % 4 == 0:
            provider.script("down", dso.ProviderError(dso.ErrorCode.TIMEOUT, "t"))

        providers.append(provider)

    async with dso.open_orchestrator(config(), providers=providers) as orch:
        await traffic(orch)
        registry = native_registry(orch.stats())
        ours = dso_prometheus.render(orch)
        theirs = generate_latest(registry)
        dso_time = best_of(lambda: dso_prometheus.render(orch))
        native_time = best_of(lambda: generate_latest(registry))

    ratio = dso_time / native_time
    print(
        f"python {platform.python_version()}, prometheus-client "
        f"{metadata.version('prometheus-client')}"
    )
    print(f"series: dso {series(ours.body)}, native {series(theirs)}")
    print(f"{'case':<40}{'per scrape':>14}{'ratio':>8}")
    print(
        f"{'native metrics, generate_latest':<40}{native_time * 1e6:>11.0f} us"
        f"{1.0:>8.2f}"
    )
    print(
        f"{'dso-prometheus (snapshot + families)':<40}{dso_time * 1e6:>11.0f} us"
        f"{ratio:>8.2f}"
    )


if __name__ == "__main__":
    trio.run(main)
