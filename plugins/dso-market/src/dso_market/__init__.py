"""Market data for dso: quotes, fundamentals, news and SEC filings.

Installing this distribution makes its providers, namespaces and recorded
responses available to dso through the ``dso`` entry point.
"""

from __future__ import annotations

from pathlib import Path

from ._models import Filing, FilingSummary, Fundamentals, NewsArticle, Quote


__all__ = [
    "Filing",
    "FilingSummary",
    "Fundamentals",
    "NewsArticle",
    "Quote",
    "replay_route_files",
]


def replay_route_files() -> list[Path]:
    """Return the route files that map the providers' recorded responses.

    `dso.testing.open_replay_server` serves them from the fixtures folder.
    """
    return sorted((Path(__file__).parent / "routes").glob("*.toml"))
