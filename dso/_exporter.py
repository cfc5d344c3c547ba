"""Metrics exporters: how ``dso serve`` renders metrics it does not know.

Exporter plugins (dso-prometheus...) offer a `MetricsExporter` through the
``dso_metrics_exporters`` hook. It reads a `StatsSource` (an orchestrator)
when asked, so that exporting costs nothing between scrapes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

import attrs
import trio

from ._health import Health
from ._stats import Stats


_T = TypeVar("_T")


class StatsSource(Protocol):
    """Anything that reports stats and health, as `Orchestrator` does."""

    def stats(self) -> Stats:
        """Return the counts now."""
        ...

    def health(self) -> Health:
        """Return the verdict now."""
        ...


@attrs.frozen
class Exposition:
    """Rendered metrics, ready for an HTTP response.

    Attributes:
        content_type: The media type, with its version and charset.
        body: The metrics in that format.
    """

    content_type: str
    body: bytes


MetricsExporter = Callable[[StatsSource], Exposition]
"""Renders a source's metrics in one format (``prometheus``...)."""


class ThreadSafeSource:
    """Reads a source from any thread, by asking its trio thread.

    `Orchestrator.stats` runs on trio's clock and so only in the trio
    thread; exporters whose collectors run in threads of their own (an
    OpenTelemetry periodic reader, prometheus-client's HTTP server) read
    through this instead. Build it in the trio thread.

    Args:
        source: The orchestrator to read.
    """

    def __init__(self, source: StatsSource) -> None:
        self._source = source
        self._token = trio.lowlevel.current_trio_token()

    def stats(self) -> Stats:
        """Return the source's stats, from whatever thread."""
        return self._in_trio(self._source.stats)

    def health(self) -> Health:
        """Return the source's health, from whatever thread."""
        return self._in_trio(self._source.health)

    def _in_trio(self, read: Callable[[], _T]) -> _T:
        if _current_token() is self._token:
            return read()

        return trio.from_thread.run_sync(read, trio_token=self._token)


def _current_token() -> trio.lowlevel.TrioToken | None:
    try:
        return trio.lowlevel.current_trio_token()
    except RuntimeError:
        return None
