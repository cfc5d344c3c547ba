"""dso-prometheus: /metrics scraped over HTTP counts the work done."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import dso
import dso_prometheus
from dso.testing import FakeBatchProvider, FakeProvider
from dso_prometheus import _plugin


ALLOWED_LABELS = {"namespace", "provider", "code", "reason", "state"}


def make_config(providers: dict[str, Any] | None = None) -> dso.Config:
    return dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {"quotes": {"ttl": {"fresh": 60, "stale": 3600}}},
            "providers": providers or {},
        }
    )


@pytest.fixture
async def orchestrator() -> AsyncIterator[dso.Orchestrator]:
    """An orchestrator over two fakes, with the exporter plugin registered."""
    good = FakeProvider("good", {"AAPL": 1.0, "MSFT": 2.0})
    down = FakeProvider("down")
    down.fail_all()
    async with dso.open_orchestrator(
        # One attempt per fetch, so that counts follow the traffic.
        make_config({"down": {"retries": {"enabled": False}}}),
        providers=[down, good],
        plugins=[_plugin],
    ) as orch:
        yield orch


async def scripted_traffic(orch: dso.Orchestrator) -> None:
    """Two misses that fall back from `down` to `good`, then two hits, one unknown."""
    for key in ("AAPL", "MSFT", "AAPL", "MSFT", "NOPE"):
        await orch.fetch_with_fallback(key, ["down", "good"], namespace="quotes")


async def scrape(orch: dso.Orchestrator) -> dict[tuple[str, frozenset[str]], float]:
    """Serve the ops app, GET /metrics, and parse it with prometheus' parser."""
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(dso.serve_ops, orch, "127.0.0.1", 0)
            async with httpx.AsyncClient() as client:
                response = await client.get(f"{url}/metrics")

            nursery.cancel_scope.cancel()

    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


async def test_counters_match_the_work_done(orchestrator: dso.Orchestrator) -> None:
    """Hits, misses, attempts, successes and failures by code match the traffic."""
    await scripted_traffic(orchestrator)

    samples = await scrape(orchestrator)

    expected = {
        sample("dso_cache_hits_total", namespace="quotes"): 2.0,
        sample("dso_cache_misses_total", namespace="quotes"): 3.0,
        sample("dso_provider_attempts_total", provider="down"): 3.0,
        sample("dso_provider_failures_total", provider="down", code="unavailable"): 3,
        sample("dso_provider_attempts_total", provider="good"): 3.0,
        sample("dso_provider_successes_total", provider="good"): 2.0,
        sample("dso_provider_failures_total", provider="good", code="not_found"): 1,
    }
    assert expected == {name: samples[name] for name in expected}


async def test_an_open_breaker_is_one_hot(orchestrator: dso.Orchestrator) -> None:
    """A forced-open breaker shows as state="forced_open" 1 and others 0."""
    orchestrator.breaker("down").force_open()

    samples = await scrape(orchestrator)

    states = {
        state: samples[sample("dso_breaker_state", provider="down", state=state)]
        for state in dso_prometheus._collector.BREAKER_STATES
    }
    expected = {state: float(state == "forced_open") for state in states}
    assert expected == states


async def test_skips_are_counted_by_reason(orchestrator: dso.Orchestrator) -> None:
    """A call skipped for an open breaker counts under reason="circuit_open"."""
    orchestrator.breaker("down").force_open()
    await orchestrator.fetch_with_fallback("AAPL", ["down", "good"], namespace="quotes")

    samples = await scrape(orchestrator)

    key = sample("dso_provider_skips_total", provider="down", reason="circuit_open")
    assert 1.0 == samples[key]


async def test_health_status_is_one_hot(orchestrator: dso.Orchestrator) -> None:
    """The health status gauge marks the orchestrator's status and nothing else."""
    expected = orchestrator.health().status.value

    samples = await scrape(orchestrator)

    marked = [
        state
        for state in dso_prometheus._collector.HEALTH_STATES
        if samples[sample("dso_health_status", state=state)] == 1.0
    ]
    assert [expected] == marked


async def test_labels_are_bounded_and_names_prefixed(
    orchestrator: dso.Orchestrator,
) -> None:
    """Every sample is named dso_* and carries only the bounded labels, no key."""
    await scripted_traffic(orchestrator)

    samples = await scrape(orchestrator)

    names = {name for name, _ in samples}
    labels = {label for _, pairs in samples for label, _ in pairs}
    values = {value for _, pairs in samples for _, value in pairs}
    assert all(name.startswith("dso_") for name in names)
    assert labels <= ALLOWED_LABELS
    assert not values & {"AAPL", "MSFT", "NOPE"}


async def test_register_uses_the_given_registry(
    orchestrator: dso.Orchestrator,
) -> None:
    """register() adds the collector to the caller's registry, not a global one."""
    registry = CollectorRegistry()
    await scripted_traffic(orchestrator)

    returned = dso_prometheus.register(orchestrator, registry)
    text = generate_latest(registry).decode()

    assert registry is returned
    assert 'dso_cache_hits_total{namespace="quotes"} 2.0' in text


async def test_a_scrape_from_another_thread_reads_through_trio(
    orchestrator: dso.Orchestrator,
) -> None:
    """A registry scraped in a worker thread still reads the orchestrator."""
    registry = dso_prometheus.register(orchestrator)
    await scripted_traffic(orchestrator)

    with trio.fail_after(10):
        text = await trio.to_thread.run_sync(generate_latest, registry)

    assert b'dso_cache_hits_total{namespace="quotes"} 2.0' in text


async def test_batch_savings_are_counted() -> None:
    """Six keys in chunks of two: three calls made, three saved."""
    provider = FakeBatchProvider(
        "bulk", {f"K{n}": float(n) for n in range(6)}, max_batch_size=2
    )
    async with dso.open_orchestrator(
        make_config(), providers=[provider], plugins=[_plugin]
    ) as orch:
        await orch.batch_fetch([f"K{n}" for n in range(6)], "bulk", namespace="quotes")

        samples = await scrape(orch)

    counted = (
        samples[sample("dso_batch_keys_total")],
        samples[sample("dso_batch_calls_total")],
        samples[sample("dso_batch_calls_saved_total")],
    )
    assert (6.0, 3.0, 3.0) == counted


async def test_dedup_joins_are_counted(orchestrator: dso.Orchestrator) -> None:
    """Three concurrent fetches of one key make one call and two joins."""
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(
                lambda: orchestrator.fetch_with_fallback(
                    "AAPL", ["good"], namespace="quotes"
                )
            )

    samples = await scrape(orchestrator)

    assert 2.0 == samples[sample("dso_dedup_joins_total")]


def test_a_scrape_after_trio_has_finished_keeps_the_other_metrics() -> None:
    """A registry shared with the app still scrapes once dso's run is over."""
    registry = CollectorRegistry()
    Counter("app_requests", "The app's own metric.", registry=registry).inc()

    async def register_and_leave() -> None:
        async with dso.open_orchestrator(make_config(), providers=[]) as orch:
            dso_prometheus.register(orch, registry)

    trio.run(register_and_leave)

    text = generate_latest(registry).decode()

    assert ("app_requests_total 1.0" in text, "dso_" in text) == (True, False)
