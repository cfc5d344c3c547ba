"""dso-otel: observable instruments report the work done to a reader."""

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import dso
import dso_otel
from dso.testing import FakeProvider


Points = dict[tuple[str, frozenset[tuple[str, Any]]], float]


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
    """An orchestrator over a failing and a good fake provider."""
    good = FakeProvider("good", {"AAPL": 1.0, "MSFT": 2.0})
    down = FakeProvider("down")
    down.fail_all()
    # One attempt per fetch, so that counts follow the traffic.
    config = make_config({"down": {"retries": {"enabled": False}}})
    async with dso.open_orchestrator(config, providers=[down, good]) as orch:
        yield orch


@pytest.fixture
def reader() -> InMemoryMetricReader:
    """The SDK's in-memory reader, collecting on demand."""
    return InMemoryMetricReader()


def points(reader: InMemoryMetricReader) -> Points:
    """Collect once; return every data point by name and attributes."""
    data = reader.get_metrics_data()
    assert data is not None
    return {
        (metric.name, frozenset(point.attributes.items())): point.value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    }


def meter_for(reader: InMemoryMetricReader) -> Any:
    return MeterProvider(metric_readers=[reader]).get_meter("dso-test")


def point(name: str, **attributes: str) -> tuple[str, frozenset[tuple[str, Any]]]:
    return name, frozenset(attributes.items())


async def test_counters_match_the_work_done(
    orchestrator: dso.Orchestrator, reader: InMemoryMetricReader
) -> None:
    """Hits, misses, attempts and failures by code match the scripted traffic."""
    dso_otel.instrument(orchestrator, meter_for(reader))
    for key in ("AAPL", "MSFT", "AAPL", "NOPE"):
        await orchestrator.fetch_with_fallback(
            key, ["down", "good"], namespace="quotes"
        )

    collected = points(reader)

    expected = {
        point("dso.cache.hits", namespace="quotes"): 1,
        point("dso.cache.misses", namespace="quotes"): 3,
        point("dso.provider.attempts", provider="down"): 3,
        point("dso.provider.failures", provider="down", code="unavailable"): 3,
        point("dso.provider.successes", provider="good"): 2,
        point("dso.provider.failures", provider="good", code="not_found"): 1,
    }
    assert expected == {name: collected[name] for name in expected}


# Async only because its orchestrator fixture is a trio one.
async def test_breaker_state_and_health_are_one_hot(  # noqa: ASYNC124
    orchestrator: dso.Orchestrator, reader: InMemoryMetricReader
) -> None:
    """A forced-open breaker and the resulting health show as 1, the rest as 0."""
    dso_otel.instrument(orchestrator, meter_for(reader))
    orchestrator.breaker("down").force_open()

    collected = points(reader)

    breaker = {
        state.value: collected[
            point("dso.breaker.state", provider="down", state=state.value)
        ]
        for state in dso.BreakerState
    }
    health = {
        status.value: collected[point("dso.health.status", state=status.value)]
        for status in dso.HealthStatus
    }
    assert {state: int(state == "forced_open") for state in breaker} == breaker
    assert {"ok": 0, "degraded": 1, "failing": 0} == health


async def test_a_collection_in_another_thread_reads_through_trio(
    orchestrator: dso.Orchestrator, reader: InMemoryMetricReader
) -> None:
    """A reader collecting in a worker thread, as a periodic reader does, works."""
    dso_otel.instrument(orchestrator, meter_for(reader))
    await orchestrator.fetch_with_fallback("AAPL", ["good"], namespace="quotes")

    with trio.fail_after(10):
        collected = await trio.to_thread.run_sync(points, reader)

    assert 1 == collected[point("dso.provider.successes", provider="good")]


async def test_attributes_are_bounded(
    orchestrator: dso.Orchestrator, reader: InMemoryMetricReader
) -> None:
    """Every point carries only the bounded attributes, never a key."""
    dso_otel.instrument(orchestrator, meter_for(reader))
    await orchestrator.fetch_with_fallback("AAPL", ["down", "good"], namespace="quotes")

    collected = points(reader)

    names = {name for name, _ in collected}
    attributes = {label for _, pairs in collected for label, _ in pairs}
    assert all(name.startswith("dso.") for name in names)
    assert attributes <= {"namespace", "provider", "code", "reason", "state"}
    assert "AAPL" not in {value for _, pairs in collected for _, value in pairs}


def test_a_collection_after_trio_has_finished_reports_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Collecting once the orchestrator's trio run is over fails no callback."""
    reader = InMemoryMetricReader()

    async def observe_and_leave() -> None:
        config = make_config()
        async with dso.open_orchestrator(config, providers=[]) as orch:
            dso_otel.instrument(orch, meter_for(reader))

    trio.run(observe_and_leave)

    data = reader.get_metrics_data()

    failures = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert (None, []) == (data, failures)
