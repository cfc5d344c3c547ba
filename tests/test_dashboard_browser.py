"""The dashboard, rendered by real headless Chromium against a running server."""

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import pytest
import trio

import dso
from dso.testing import FakeProvider


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--dump-dom",
    "--virtual-time-budget=5000",
]


@pytest.fixture
def chromium() -> str:
    """Chromium's path; a skip where it is missing, a failure under CI.

    A plain fixture: a skip raised inside a trio test loses its reason.
    """
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path

    reason = "chromium is not installed (apt-get install chromium; .ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(reason)

    pytest.skip(reason)


class Cells(HTMLParser):
    """Collects the text of every <td data-field> under a keyed <tr>."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str], str] = {}
        self._row: str | None = None
        self._field: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "tr":
            self._row = named.get("data-provider") or named.get("data-namespace")
        elif tag == "td":
            self._field = named.get("data-field")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._field = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._field is not None:
            key = (self._row, self._field)
            self.cells[key] = self.cells.get(key, "") + data.strip()


@pytest.fixture
async def orchestrator() -> AsyncIterator[dso.Orchestrator]:
    """Scripted traffic: quotes hit 3 times in 4, the `down` breaker forced open."""
    good = FakeProvider("good", {"AAPL": 1.0})
    down = FakeProvider("down")
    config = dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {"quotes": {"ttl": {"fresh": 60, "stale": 3600}}},
        }
    )
    async with dso.open_orchestrator(config, providers=[good, down]) as orch:
        for _ in range(4):
            await orch.fetch_with_fallback("AAPL", ["good"], namespace="quotes")

        orch.breaker("down").force_open()
        yield orch


async def test_dashboard_shows_breaker_state_and_hit_rate(
    orchestrator: dso.Orchestrator, chromium: str
) -> None:
    """Chromium renders the forced-open breaker and the 75% hit rate."""
    with trio.fail_after(120), tempfile.TemporaryDirectory() as profile:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(dso.serve_ops, orchestrator, "127.0.0.1", 0)
            rendered = await trio.run_process(
                [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"{url}/"],
                capture_stdout=True,
                capture_stderr=True,
            )
            nursery.cancel_scope.cancel()

    cells = Cells()
    cells.feed(rendered.stdout.decode())
    shown = (
        cells.cells[("down", "breaker")],
        cells.cells[("good", "breaker")],
        cells.cells[("quotes", "hit_rate")],
    )
    assert ("forced_open", "closed", "75.0%") == shown
