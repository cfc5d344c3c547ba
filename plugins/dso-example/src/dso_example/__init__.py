"""Daily price history for dso, from Tiingo and Alpha Vantage.

Installing this distribution gives dso, through the ``dso`` entry point,
the provider types ``tiingo_daily`` and ``alpha_vantage_daily``, the
``daily_prices`` namespace of `PriceHistory` values, and the recordings
``dso replay`` serves for them.
"""

from __future__ import annotations

from pathlib import Path

from ._alpha_vantage import AlphaVantageDaily
from ._models import DailyBar, PriceHistory
from ._tiingo import TiingoDaily


__all__ = [
    "AlphaVantageDaily",
    "DailyBar",
    "PriceHistory",
    "TiingoDaily",
    "replay_route_files",
]


def replay_route_files() -> list[Path]:
    """Return the route files that map the providers' recorded responses.

    Their files are relative to the recordings folder (see
    `dso.testing.find_fixtures_dir`).
    """
    return sorted((Path(__file__).parent / "routes").glob("*.toml"))
