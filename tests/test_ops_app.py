"""The operator's endpoints: /health, /stats, /metrics and the dashboard."""

import json
import math
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

import dso
from dso.testing import FakeProvider


def make_config() -> dso.Config:
    return dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {"quotes": {"ttl": {"fresh": 60, "stale": 3600}}},
        }
    )


@pytest.fixture
async def orchestrator() -> AsyncIterator[dso.Orchestrator]:
    """An orchestrator over one fake provider that knows AAPL."""
    provider = FakeProvider("good", {"AAPL": 1.0})
    async with dso.open_orchestrator(make_config(), providers=[provider]) as orch:
        yield orch


@pytest.fixture
async def client(orchestrator: dso.Orchestrator) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the ops app served on loopback by serve_ops."""
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(dso.serve_ops, orchestrator, "127.0.0.1", 0)
            async with httpx.AsyncClient(base_url=url) as client:
                yield client

            nursery.cancel_scope.cancel()


async def test_health_is_json_with_200_while_not_failing(
    client: httpx.AsyncClient,
) -> None:
    """/health answers the verdict as JSON, with 200 while it is not failing."""
    response = await client.get("/health")

    assert (200, "ok") == (response.status_code, response.json()["status"])


async def test_health_answers_503_while_failing(
    orchestrator: dso.Orchestrator, client: httpx.AsyncClient
) -> None:
    """/health answers 503 once every provider is failing."""
    orchestrator.breaker("good").force_open()

    response = await client.get("/health")

    assert (503, "failing") == (response.status_code, response.json()["status"])
    assert ["breaker_open"] == [alert["rule"] for alert in response.json()["alerts"]]


async def test_stats_is_the_snapshot_as_json(
    orchestrator: dso.Orchestrator, client: httpx.AsyncClient
) -> None:
    """/stats answers Stats.to_dict() as JSON, counting the work done."""
    for _ in range(2):
        await orchestrator.fetch_with_fallback("AAPL", ["good"], namespace="quotes")

    stats = (await client.get("/stats")).json()

    assert (1, 1) == (
        stats["namespaces"]["quotes"]["hits"],
        stats["providers"]["good"]["successes"],
    )


async def test_metrics_without_an_exporter_says_what_to_install(
    client: httpx.AsyncClient,
) -> None:
    """Without dso-prometheus, /metrics is a 404 that names the plugin."""
    response = await client.get("/metrics")

    assert 404 == response.status_code
    assert "dso-prometheus" in response.text


async def test_head_answers_headers_without_a_body(
    client: httpx.AsyncClient,
) -> None:
    """HEAD /stats has the GET's content type and length, and no body."""
    got = await client.get("/stats")
    head = await client.head("/stats")

    assert (200, b"") == (head.status_code, head.content)
    assert got.headers["content-type"] == head.headers["content-type"]


async def test_unknown_paths_and_methods_are_refused(
    client: httpx.AsyncClient,
) -> None:
    """An unknown path is a 404 and a POST a 405, each with a message."""
    missing = await client.get("/nope")
    posted = await client.post("/health")

    assert (404, 405) == (missing.status_code, posted.status_code)
    assert "only GET and HEAD" in posted.text


async def test_a_refused_method_is_told_which_are_allowed(
    client: httpx.AsyncClient,
) -> None:
    """A 405 carries the Allow header that RFC 9110 requires of it."""
    response = await client.delete("/stats")

    assert (405, "GET, HEAD") == (response.status_code, response.headers.get("allow"))


async def test_dashboard_is_self_contained(client: httpx.AsyncClient) -> None:
    """The dashboard loads nothing from outside, and says so in its CSP."""
    response = await client.get("/")

    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "http://" not in response.text
    assert "https://" not in response.text


async def test_a_metrics_exporter_from_a_plugin_serves_metrics(
    orchestrator: dso.Orchestrator,
) -> None:
    """ops_app takes the `prometheus` exporter a plugin offers for /metrics."""

    class Plugin:
        @dso.hookimpl
        def dso_metrics_exporters(self) -> dict[str, dso.MetricsExporter]:
            return {"prometheus": lambda source: dso.Exposition("text/plain", b"m 1")}

    async with dso.open_orchestrator(make_config(), plugins=[Plugin()]) as orch:
        app = dso.ops_app(orch)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/metrics")

    assert (200, "m 1") == (response.status_code, response.text)


def test_dashboard_data_cannot_end_its_script() -> None:
    """A name with </script> in it is escaped inside the page's JSON."""
    page = dso._dashboard.render_dashboard({"x": "</script><b>"}, {}, 2.0)

    data = page.split('type="application/json">')[1].split("</script>")[0]
    assert {"x": "</script><b>"} == json.loads(data)["stats"]


# Async only because its orchestrator fixture is a trio one.
async def test_refresh_interval_must_be_positive(  # noqa: ASYNC124
    orchestrator: dso.Orchestrator,
) -> None:
    """A refresh interval of zero is refused, naming the parameter."""
    with pytest.raises(ValueError, match="refresh_every"):
        dso.ops_app(orchestrator, refresh_every=0)


@pytest.mark.parametrize("seconds", [0.01, math.nan, math.inf])
async def test_refresh_interval_must_be_a_sane_number(  # noqa: ASYNC124
    orchestrator: dso.Orchestrator, seconds: float
) -> None:
    """A refresh of NaN, infinity or under 0.1 s is refused up front."""
    with pytest.raises(ValueError, match="refresh_every"):
        dso.ops_app(orchestrator, refresh_every=seconds)
