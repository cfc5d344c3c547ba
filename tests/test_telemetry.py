"""Telemetry: the stats aggregate, events to sinks, health, and redaction."""

import gc
import logging
import math
import os
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

import dso
from dso._histogram import LatencyHistogram
from dso._stats import StatsAggregator
from dso.testing import Delay, FakeProvider


class FakeBatch(FakeProvider):
    """A fake provider that also answers batches, one call per chunk."""

    max_batch_size = 10

    async def fetch_batch(
        self, keys: Sequence[str], ctx: dso.ProviderContext
    ) -> dict[str, object]:
        """Answer the keys it knows."""
        return {key: self.data[key] for key in keys if key in self.data}


class Checked(FakeProvider):
    """A fake provider with a health check that fails on demand."""

    healthy = True

    async def health_check(self, ctx: dso.ProviderContext) -> None:
        """Raise UNAVAILABLE unless healthy."""
        if not self.healthy:
            raise dso.ProviderError(dso.ErrorCode.UNAVAILABLE, "unwell")


@asynccontextmanager
async def orchestrator(
    *providers: FakeProvider, sinks: Sequence[dso.Sink] = (), **settings: Any
) -> AsyncIterator[dso.Orchestrator]:
    config = dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {"quotes": {"ttl": {"fresh": 60, "stale": 3600}}},
            "providers": {
                provider.name: {"timeout": 10, "breaker": {"threshold": 3}}
                for provider in providers
            },
            **settings,
        }
    )
    with trio.fail_after(3600):
        async with dso.open_orchestrator(
            config, providers=providers, sinks=sinks
        ) as orch:
            yield orch


async def fetch(orch: dso.Orchestrator, key: str, *names: str) -> Any:
    return await orch.fetch_with_fallback(key, list(names), namespace="quotes")


async def test_stats_count_hits_misses_and_provider_outcomes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """stats() counts lookups, attempts by outcome and fallbacks."""
    broken = FakeProvider("broken")
    broken.fail_all()
    good = FakeProvider("good", {"A": 1, "B": 2})

    async with orchestrator(broken, good) as orch:
        for key in ["A", "B", "A", "A", "C"]:
            await fetch(orch, key, "broken", "good")
        stats = orch.stats()

    quotes = stats.namespaces["quotes"]
    assert (5, 2, 3, 0.4) == (
        quotes.fetches,
        quotes.hits,
        quotes.misses,
        quotes.hit_rate,
    )
    assert (3, 0, {"unavailable": 3}) == (
        stats.providers["broken"].attempts,
        stats.providers["broken"].successes,
        stats.providers["broken"].failures,
    )
    assert (3, 2, {"not_found": 1}) == (
        stats.providers["good"].attempts,
        stats.providers["good"].successes,
        stats.providers["good"].failures,
    )
    assert "open" == stats.providers["broken"].breaker


async def test_stats_report_latency_percentiles(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Latency percentiles come from the calls' durations on trio's clock."""
    provider = FakeProvider("p")
    for index in range(100):
        provider.script(f"K{index}", Delay(1.0 if index < 90 else 5.0, index))

    async with orchestrator(provider) as orch:
        for index in range(100):
            await fetch(orch, f"K{index}", "p")
        stats = orch.stats().providers["p"]

    assert 1.0 <= (stats.latency_p50 or 0.0) <= 1.2
    assert 5.0 <= (stats.latency_p99 or 0.0) <= 6.0


async def test_stats_count_dedup_joins_and_batch_savings(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Joins of calls in flight and keys per batch call are counted."""
    provider = FakeBatch("p", {f"K{index}": index for index in range(25)}, delay=1)

    async with orchestrator(provider) as orch:
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(fetch, orch, "K0", "p")
        await orch.batch_fetch(
            [f"K{index}" for index in range(1, 25)], "p", namespace="quotes"
        )
        stats = orch.stats()

    assert (4, 24, 3, 21) == (
        stats.dedup_joins,
        stats.batch_keys,
        stats.batch_calls,
        stats.batch_calls_saved,
    )


async def test_sinks_receive_typed_events_in_order() -> None:
    """A sink sees a miss, the attempt, and the finished fetch, then a hit."""
    received: list[dso.Event] = []
    provider = FakeProvider("p", {"A": 1})

    async with orchestrator(provider, sinks=[received.append]) as orch:
        await fetch(orch, "A", "p")
        await fetch(orch, "A", "p")
        await wait_for_events(received, 7)

    kinds = [type(event).__name__ for event in received]
    # The value goes to its caller before the cache write ends, so those
    # two may come in either order.
    assert ["CacheMiss", "AttemptStarted", "AttemptSucceeded"] == kinds[:3]
    assert {"CacheWritten", "FetchFinished"} == set(kinds[3:5])
    assert ["CacheHit", "FetchFinished"] == kinds[5:]
    assert {"A", None} == {event.key for event in received}


@pytest.mark.parametrize(("mode", "shown"), [("hash", "hashed"), ("omit", None)])
async def test_keys_can_be_hashed_or_left_out_of_events(
    mode: str, shown: str | None
) -> None:
    """With telemetry.keys = hash or omit, no event carries the key itself."""
    received: list[dso.Event] = []
    provider = FakeProvider("p", {"secret-person@example.com": 1})
    telemetry = {"keys": mode, "key_salt": "s"}

    async with orchestrator(
        provider, sinks=[received.append], telemetry=telemetry
    ) as orch:
        await fetch(orch, "secret-person@example.com", "p")
        await wait_for_events(received, 5)

    keys = {event.key for event in received if not isinstance(event, dso.CacheWritten)}
    if shown is None:
        assert {None} == keys
    else:
        assert 1 == len(keys)
        assert "secret-person@example.com" not in keys
        assert None not in keys


async def test_a_failing_sink_is_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sink that raises breaks no fetch, is logged once and counted."""

    def broken(event: dso.Event) -> None:
        raise RuntimeError("sink down")

    received: list[dso.Event] = []
    provider = FakeProvider("p", {"A": 1, "B": 2})

    async with orchestrator(provider, sinks=[broken, received.append]) as orch:
        first = await fetch(orch, "A", "p")
        second = await fetch(orch, "B", "p")
        await wait_for_events(received, 10)
        stats = orch.stats()

    logged = [r for r in caplog.records if "telemetry sink" in r.getMessage()]
    assert (1, 2) == (first.data, second.data)
    assert (10, 1) == (stats.sink_errors, len(logged))


async def test_a_blocked_sink_drops_events_instead_of_queueing_them() -> None:
    """A sink stuck in its thread costs events, counted, not the fetch."""
    release = threading.Event()
    received: list[dso.Event] = []

    def stuck(event: dso.Event) -> None:
        release.wait(10)
        received.append(event)

    provider = FakeProvider("p", {f"K{index}": index for index in range(50)})
    telemetry = {"buffer": 5}

    async with orchestrator(provider, sinks=[stuck], telemetry=telemetry) as orch:
        with trio.fail_after(5):
            for index in range(50):
                await fetch(orch, f"K{index}", "p")
        stats = orch.stats()
        release.set()

    # 50 fetches make 250 events: the stuck sink holds the first few, the
    # buffer 5 more, and the rest are dropped.
    assert 230 <= stats.events_dropped < 250


async def test_health_alerts_on_an_open_breaker_and_failure_rate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A provider that keeps failing opens its breaker and fails the health."""
    broken = FakeProvider("broken")
    broken.fail_all()
    health_settings = {"min_samples": 3}

    async with orchestrator(broken, health=health_settings) as orch:
        for index in range(5):
            await fetch(orch, f"K{index}", "broken")
        health = orch.health()

    rules = sorted({(alert.rule, alert.subject) for alert in health.alerts})
    assert dso.HealthStatus.FAILING == health.status
    assert dso.HealthStatus.FAILING == health.providers["broken"].status
    assert [
        ("breaker_open", "broken"),
        ("failure_rate", "broken"),
        ("hit_rate", "quotes"),
    ] == rules
    assert "failing" == health.to_dict()["status"]


async def test_health_is_ok_when_things_go_well(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Mostly hits and good calls: no alert, status ok."""
    provider = FakeProvider("p", {"A": 1})

    async with orchestrator(provider, health={"min_samples": 5}) as orch:
        for _ in range(10):
            await fetch(orch, "A", "p")
        health = orch.health()

    assert (dso.HealthStatus.OK, ()) == (health.status, health.alerts)


async def test_provider_health_checks_show_in_health(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A failed health_check makes its provider failing until it passes."""
    checked = Checked("c", {"A": 1})
    plain = FakeProvider("plain", {"A": 1})

    async with orchestrator(checked, plain) as orch:
        checked.healthy = False
        failed = await orch.check_providers()
        unwell = orch.health().providers["c"].status
        checked.healthy = True
        passed = await orch.check_providers()
        well = orch.health().providers["c"].status

    assert ({"c": False}, {"c": True}) == (failed, passed)
    assert (dso.HealthStatus.FAILING, dso.HealthStatus.OK) == (unwell, well)


async def test_health_checks_run_on_an_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With health.check_every, checks run in the background."""
    checked = Checked("c", {"A": 1})
    checked.healthy = False

    async with orchestrator(checked, health={"check_every": 30}) as orch:
        await trio.sleep(31)
        first = orch.stats().providers["c"].last_check_ok
        checked.healthy = True
        await trio.sleep(30)
        second = orch.stats().providers["c"].last_check_ok

    assert (False, True) == (first, second)


def stats_with(**changes: Any) -> dso.Stats:
    space = dso.NamespaceStats(
        fetches=100,
        hits=90,
        misses=10,
        stale_served=0,
        hit_rate=0.9,
        stale_share=0.0,
        recent_lookups=100,
        recent_hit_rate=0.9,
        recent_stale_share=0.0,
    )
    provider = dso.ProviderStats(
        attempts=100,
        successes=100,
        failures={},
        skips={},
        retries=0,
        pauses=0,
        latency_p50=0.1,
        latency_p95=0.2,
        latency_p99=0.3,
        recent_attempts=100,
        recent_failure_rate=0.0,
        breaker="closed",
    )
    space = attrs.evolve(space, **changes.pop("space", {}))
    provider = attrs.evolve(provider, **changes.pop("provider", {}))
    return dso.Stats(
        uptime=1.0,
        namespaces={"quotes": space},
        providers={"p": provider},
        dedup_joins=0,
        batch_keys=0,
        batch_calls=0,
        cache_errors=0,
        events_dropped=0,
        sink_errors=0,
    )


@pytest.mark.parametrize(
    ("changes", "rule", "status"),
    [
        ({"space": {"recent_hit_rate": 0.49}}, "hit_rate", "degraded"),
        ({"space": {"recent_stale_share": 0.06}}, "stale_share", "degraded"),
        ({"provider": {"recent_failure_rate": 0.11}}, "failure_rate", "degraded"),
        ({"provider": {"quota_used": 0.81}}, "quota", "degraded"),
        ({"provider": {"breaker": "open"}}, "breaker_open", "failing"),
        ({"provider": {"last_check_ok": False}}, "health_check", "failing"),
    ],
)
def test_each_threshold_raises_its_alert(
    changes: dict[str, Any], rule: str, status: str
) -> None:
    """Crossing one default threshold raises exactly its alert."""
    health = dso._health.judge(stats_with(**changes), dso.HealthSettings())

    assert [rule] == [alert.rule for alert in health.alerts]
    assert status == health.status.value


@pytest.mark.parametrize(
    "changes",
    [
        {"space": {"recent_hit_rate": 0.5}},
        {"space": {"recent_stale_share": 0.05}},
        {"provider": {"recent_failure_rate": 0.1}},
        {"provider": {"quota_used": 0.8}},
        {"provider": {"breaker": "half_open"}},
        {"space": {"recent_hit_rate": 0.0, "recent_lookups": 19}},
    ],
)
def test_values_at_a_threshold_or_with_few_samples_raise_no_alert(
    changes: dict[str, Any],
) -> None:
    """Thresholds are strict, and rates need min_samples before they count."""
    health = dso._health.judge(stats_with(**changes), dso.HealthSettings())

    assert () == health.alerts


def test_thresholds_are_configurable() -> None:
    """A stricter hit-rate threshold alerts where the default would not."""
    settings = dso.Config.from_dict({"health": {"min_hit_rate": 0.95}}).health

    health = dso._health.judge(stats_with(), settings)

    assert ["hit_rate"] == [alert.rule for alert in health.alerts]


@given(st.lists(st.floats(min_value=0, max_value=3000), min_size=1, max_size=300))
def test_histogram_percentiles_are_close_above_the_true_value(
    durations: list[float],
) -> None:
    """A percentile is never below the true one and at most 20 % above it."""
    histogram = LatencyHistogram()
    for duration in durations:
        histogram.record(duration)

    ordered = sorted(durations)
    for fraction in (0.5, 0.95, 0.99):
        true = ordered[max(1, math.ceil(fraction * len(ordered))) - 1]
        reported = histogram.percentile(fraction)
        assert reported is not None
        assert true * 0.999 <= reported <= max(true * 1.2, 1e-4) + 1e-9


async def test_a_million_events_keep_the_aggregate_flat(  # noqa: ASYNC124
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Memory stays flat however many events the aggregate has counted."""
    stats = StatsAggregator(window=300)
    codes = [None, dso.ErrorCode.TIMEOUT, dso.ErrorCode.NOT_FOUND]

    def feed(count: int) -> None:
        for index in range(count):
            # A millisecond apart: the windows turn over many times.
            autojump_clock.jump(0.001)
            stats.attempt("p", codes[index % 3], (index % 1000) / 1000)
            stats.lookup("quotes", hit=index % 2 == 0)
            stats.fetched("quotes", stale=index % 50 == 0)

    feed(400_000)  # past the 300 s window, so its buckets are all there
    gc.collect()
    objects, resident = len(gc.get_objects()), resident_bytes()
    feed(600_000)
    gc.collect()

    # Containers kept would show in the first figure, numbers kept (a
    # list of samples) in the second: a million floats take 32 MB.
    assert len(gc.get_objects()) - objects < 50
    assert resident_bytes() - resident < 8 * 1024 * 1024
    assert 1_000_000 == stats.snapshot({"p": "closed"}).providers["p"].attempts


def resident_bytes() -> int:
    """Return this process's resident memory, from /proc."""
    statm = Path("/proc/self/statm")
    if not statm.exists():
        pytest.skip("needs /proc/self/statm (Linux) to read resident memory")

    return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_no_secret_reaches_the_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """API keys in URLs, Redis passwords and tokens are redacted in dso's logs."""
    caplog.set_level(logging.DEBUG)

    async def handler(request: httpx.Request) -> httpx.Response:  # noqa: ASYNC124
        logging.getLogger("dso").warning(
            "calling %s with Authorization: Bearer tok-123 via redis://u:pw-456@h/0",
            request.url,
        )
        return httpx.Response(200, json={"ok": True})

    class Calling(FakeProvider):
        async def fetch(self, key: str, ctx: dso.ProviderContext) -> object:
            response = await ctx.http.get(
                "https://api.example.com/q", params={"apikey": "key-789", "s": key}
            )
            return response.json()

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        config = dso.Config.from_dict({"plugins": {"autoload": False}})
        async with dso.open_orchestrator(
            config,
            providers=[Calling("p")],
            namespaces=[dso.Namespace("quotes")],
            http=http,
        ) as orch:
            result = await orch.fetch_with_fallback("A", ["p"], namespace="quotes")

    text = "\n".join(record.getMessage() for record in caplog.records)
    assert {"ok": True} == result.data
    assert "api.example.com" in text
    for secret in ("tok-123", "pw-456", "key-789"):
        assert secret not in text


async def wait_for_events(received: list[dso.Event], count: int) -> None:
    """Wait until the sinks' worker thread has delivered *count* events.

    Tests that wait on the worker thread run on the real clock: the
    autojump clock would jump past their deadlines while the thread works.
    """
    with trio.fail_after(10):
        # The list fills in a worker thread, which cannot set a trio.Event
        # without a token; polling is simplest.
        while len(received) < count:  # noqa: ASYNC110
            await trio.sleep(0.01)


async def test_plugins_receive_events_through_the_dso_event_hook() -> None:
    """A plugin implementing dso_event is a sink."""
    received: list[dso.Event] = []

    class Plugin:
        @dso.hookimpl
        def dso_event(self, event: dso.Event) -> None:
            received.append(event)

    config = dso.Config.from_dict({"plugins": {"autoload": False}})
    async with dso.open_orchestrator(
        config,
        providers=[FakeProvider("p", {"A": 1})],
        namespaces=[dso.Namespace("quotes")],
        plugins=[Plugin()],
    ) as orch:
        await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
        await wait_for_events(received, 5)

    assert 1 == sum(isinstance(event, dso.FetchFinished) for event in received)


async def test_quota_use_shows_in_stats_and_alerts_past_its_threshold(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Quota use is a fraction in stats(), and over 80 % it raises an alert."""
    provider = FakeProvider("p", {f"K{index}": index for index in range(10)})
    settings = {"providers": {"p": {"quota": "10/day"}}}

    async with orchestrator(provider, **settings) as orch:
        for index in range(9):
            await fetch(orch, f"K{index}", "p")
        used = orch.stats().providers["p"].quota_used
        rules = [alert.rule for alert in orch.health().alerts]

    assert 0.9 == used
    assert "quota" in rules


class SinkCrash(BaseException):
    """Not an Exception: what a careless sink might raise."""


@pytest.mark.parametrize("error", [SinkCrash, SystemExit, KeyboardInterrupt])
async def test_a_sink_raising_a_base_exception_breaks_no_fetch(
    error: type[BaseException],
) -> None:
    """A sink raising a BaseException is counted; the orchestrator goes on."""

    def broken(event: dso.Event) -> None:
        raise error("sink gone")

    received: list[dso.Event] = []
    provider = FakeProvider("p", {"A": 1, "B": 2})

    async with orchestrator(provider, sinks=[broken, received.append]) as orch:
        first = await fetch(orch, "A", "p")
        await wait_for_events(received, 5)
        second = await fetch(orch, "B", "p")
        await wait_for_events(received, 10)
        stats = orch.stats()

    assert (1, 2, 10) == (first.data, second.data, stats.sink_errors)


@pytest.mark.parametrize("name", ["dso.ops", "dso.redis"])
async def test_dso_child_loggers_are_redacted_too(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    """Child loggers such as the ops server's and Redis's hide secrets too."""
    logging.getLogger(name)

    async with orchestrator(FakeProvider("p", {"A": 1})):
        logging.getLogger(name).warning("lost redis://u:pw-456@h/0 on %s", name)

    text = "\n".join(record.getMessage() for record in caplog.records)
    assert f"lost redis://u:***@h/0 on {name}" == text


async def test_a_failed_background_refresh_logs_no_hidden_key(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """With keys omitted, a refresh that fails logs without the key."""
    calls = 0

    def first_only(values: Sequence[tuple[str, object]]) -> object:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RuntimeError("merge broke")

        return values[0][1]

    provider = FakeProvider("p", {"alice@example.com": 1})
    telemetry = {"keys": "omit"}

    async with orchestrator(provider, telemetry=telemetry) as orch:
        await orch.fetch_with_merge(
            "alice@example.com", ["p"], namespace="quotes", merge=first_only
        )
        await trio.sleep(61)
        await orch.fetch_with_merge(
            "alice@example.com",
            ["p"],
            namespace="quotes",
            merge=first_only,
            revalidate_within=600,
        )
        await trio.testing.wait_all_tasks_blocked()

    refreshes = [r for r in caplog.records if "refresh" in r.getMessage()]
    assert (2, 1) == (calls, len(refreshes))
    assert "alice" not in refreshes[0].getMessage()


async def test_an_async_sink_is_refused_at_open() -> None:
    """An async sink, which a worker thread would never run, is a TypeError."""

    async def async_sink(event: dso.Event) -> None:
        """Would never be awaited."""

    with pytest.raises(TypeError) as info:
        async with orchestrator(FakeProvider("p"), sinks=[async_sink]):
            pass

    assert "async_sink" in str(info.value)


async def test_batches_count_their_lookups_and_results(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A batch counts a lookup and a result per key, as single fetches do."""
    provider = FakeBatch("p", {f"K{index}": index for index in range(6)})
    keys = [f"K{index}" for index in range(8)]

    async with orchestrator(provider) as orch:
        await orch.batch_fetch(keys[:4], "p", namespace="quotes")
        await orch.batch_fetch(keys, "p", namespace="quotes")
        quotes = orch.stats().namespaces["quotes"]

    assert (12, 4, 8) == (quotes.fetches, quotes.hits, quotes.misses)


async def test_sinks_hear_batch_hits_and_each_key_finished() -> None:
    """Cache hits of a batch and every key's result reach the sinks."""
    received: list[dso.Event] = []
    provider = FakeBatch("p", {"A": 1, "B": 2})

    async with orchestrator(provider, sinks=[received.append]) as orch:
        await orch.batch_fetch(["A"], "p", namespace="quotes")
        await orch.batch_fetch(["A", "B"], "p", namespace="quotes")
        await wait_for_events(received, 11)

    hits = [event.key for event in received if isinstance(event, dso.CacheHit)]
    finished = [
        (event.key, event.strategy)
        for event in received
        if isinstance(event, dso.FetchFinished)
    ]
    assert ["A"] == hits
    assert [("A", "batch"), ("A", "batch"), ("B", "batch")] == finished


async def test_merges_report_their_outcome() -> None:
    """A merge of two providers, one down, is a partial MergeFinished."""
    received: list[dso.Event] = []
    down = FakeProvider("down")
    down.fail_all()
    good = FakeProvider("good", {"A": 1})
    no_retries = {"retries": {"enabled": False}}
    providers = {"providers": {"down": no_retries, "good": no_retries}}

    async with orchestrator(down, good, sinks=[received.append], **providers) as orch:
        await orch.fetch_with_merge(
            "A",
            ["down", "good"],
            namespace="quotes",
            merge=lambda successes: successes[0][1],
        )
        with trio.fail_after(10):
            while not any(isinstance(e, dso.MergeFinished) for e in received):  # noqa: ASYNC110
                await trio.sleep(0.01)

    merges = [event for event in received if isinstance(event, dso.MergeFinished)]
    assert [(1, 2, True, True)] == [
        (event.succeeded, event.asked, event.ok, event.partial) for event in merges
    ]
