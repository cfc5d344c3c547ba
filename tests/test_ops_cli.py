"""dso serve, dso health and dso stats, and the batch progress bar."""

import http.server
import queue
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio
from rich.console import Console
from rich.progress import Progress

import dso
from dso._cli import main
from dso._progress import BatchProgress
from dso.testing import FakeProvider


def make_config() -> dso.Config:
    return dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {"quotes": {"ttl": {"fresh": 60, "stale": 3600}}},
        }
    )


Setup = Callable[[dso.Orchestrator], Awaitable[None]]


@contextmanager
def served(setup: Setup) -> Iterator[str]:
    """Serve an orchestrator prepared by *setup* from a trio run in a thread."""
    started: queue.Queue[tuple[str, trio.lowlevel.TrioToken, trio.CancelScope]]
    started = queue.Queue()

    async def serve() -> None:
        provider = FakeProvider("good", {"AAPL": 1.0})
        async with (
            dso.open_orchestrator(make_config(), providers=[provider]) as orch,
            trio.open_nursery() as nursery,
        ):
            await setup(orch)
            url = await nursery.start(dso.serve_ops, orch, "127.0.0.1", 0)
            token = trio.lowlevel.current_trio_token()
            started.put((url, token, nursery.cancel_scope))

    thread = threading.Thread(target=trio.run, args=(serve,))
    thread.start()
    url, token, scope = started.get(timeout=20)
    try:
        yield url
    finally:
        trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join(20)


async def four_lookups(orch: dso.Orchestrator) -> None:
    """One miss, then three hits: a hit rate of 75%."""
    for _ in range(4):
        await orch.fetch_with_fallback("AAPL", ["good"], namespace="quotes")


# A setup step like `four_lookups`, which needs to await.
async def open_breaker(orch: dso.Orchestrator) -> None:  # noqa: ASYNC124
    """Force the only provider's breaker open: the orchestrator is failing."""
    orch.breaker("good").force_open()


def test_health_of_a_failing_server_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Dso health --url exits 1 while failing and shows the alert."""
    with served(open_breaker) as url:
        status = main(["health", "--url", url])

    output = capsys.readouterr().out
    assert 1 == status
    assert "health: failing" in output
    assert "the breaker of good is open" in output


def test_health_of_a_healthy_server_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Dso health --url exits 0 while ok."""
    with served(four_lookups) as url:
        status = main(["health", "--url", url])

    assert 0 == status
    assert "health: ok" in capsys.readouterr().out


def test_stats_of_a_server_shows_the_hit_rate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Dso stats --url shows the namespace's hit rate."""
    with served(four_lookups) as url:
        status = main(["stats", "--url", url])

    output = capsys.readouterr().out
    assert 0 == status
    assert "75.0%" in output


def test_health_of_an_unreachable_server_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Dso health --url of nothing exits 2, naming the URL."""
    status = main(["health", "--url", "http://127.0.0.1:9"])

    assert 2 == status
    assert "--url http://127.0.0.1:9" in capsys.readouterr().out


def test_health_of_an_unreachable_server_keeps_its_secrets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A password or token in --url never shows in the error."""
    url = "http://ops:hunter2@127.0.0.1:9/?token=tok-42"

    status = main(["health", "--url", url])

    shown = capsys.readouterr().out
    assert (2, False, False) == (status, "hunter2" in shown, "tok-42" in shown)


def test_health_of_a_malformed_url_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A --url that is no URL exits 2 with a message, not a traceback."""
    status = main(["health", "--url", "http://[::1"])

    assert (2, "dso: --url http://[::1: not a URL\n") == (
        status,
        capsys.readouterr().out,
    )


@pytest.mark.parametrize("what", ["health", "stats"])
def test_a_server_that_is_not_dso_serve_is_named(
    what: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSON without what a view reads exits 2 saying it is not dso serve's."""
    with json_server(b'{"status": 1}') as url:
        status = main([what, "--url", url])

    expected = f"dso: --url {url}: /{what} is not dso serve's answer"
    assert (2, True) == (status, capsys.readouterr().out.startswith(expected))


@contextmanager
def json_server(body: bytes) -> Iterator[str]:
    """Serve *body* as JSON on every path, from a thread, on loopback."""

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(20)
        server.server_close()


@pytest.mark.parametrize("refresh", ["nan", "inf", "0", "fast"])
def test_serve_refuses_a_senseless_refresh(
    refresh: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The serve command takes only a finite --refresh of at least 0.1 s."""
    with pytest.raises(SystemExit) as info:
        main(["serve", "--refresh", refresh])

    assert (2, True) == (info.value.code, "--refresh" in capsys.readouterr().err)


def test_health_url_may_carry_a_path_and_a_query() -> None:
    """--url keeps its path prefix and query: the view goes after the path."""
    with served(four_lookups) as url:
        status = main(["health", "--url", f"{url}/?probe=1"])

    assert 0 == status


def test_health_from_a_config_runs_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Dso health --check opens an orchestrator from the config and judges it."""
    config = tmp_path / "dso.toml"
    config.write_text('[cache]\nbackend = "memory"\n')

    status = main(["health", "--check", "--config", str(config)])

    assert 0 == status
    assert "health: ok" in capsys.readouterr().out


def test_demo_traffic_needs_demo_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Dso serve --demo-traffic without a [demo] table exits 2 and says why."""
    config = tmp_path / "dso.toml"
    config.write_text('[cache]\nbackend = "memory"\n')

    status = main(["serve", "--demo-traffic", "--port", "0", "-c", str(config)])

    assert 2 == status
    assert "[demo] table" in capsys.readouterr().out


def test_batch_progress_counts_each_key_once() -> None:
    """Chunks count all their keys, single keys once, other namespaces never."""
    with Progress(console=Console(quiet=True), disable=True) as progress:
        bar = BatchProgress(progress, "quotes", 10)
        events = [
            dso.BatchChunkFetched(
                at=1.0, namespace="quotes", keys=4, found=4, duration=0.1
            ),
            dso.CacheHit(at=1.0, namespace="quotes", key="A", age=3.0),
            dso.AttemptFailed(
                at=1.0,
                namespace="quotes",
                key="B",
                code=dso.ErrorCode.TIMEOUT,
                duration=0.1,
            ),
            dso.AttemptSucceeded(at=1.0, namespace="quotes", key="B", duration=0.1),
            dso.CacheHit(at=1.0, namespace="news", key="C", age=3.0),
        ]
        for event in events:
            bar(event)

        counted = bar.done
        bar.finish()

    assert (6, 10) == (counted, bar.done)
