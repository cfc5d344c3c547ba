"""Both providers pass dso's conformance kit."""

from typing import Any

import dso_example
from dso.testing import ProviderConformance
from dso_example import AlphaVantageDaily, PriceHistory, TiingoDaily


class DailyKit(ProviderConformance):
    """What both kits share: the recordings and the value type."""

    routes = dso_example.replay_route_files()
    needs_api_key = True
    value_type = PriceHistory

    def key_of(self, value: Any) -> str | None:
        """Return the symbol of a price history."""
        return str(value.symbol)


class TestTiingoDaily(DailyKit):
    factory = TiingoDaily
    replay_provider = "tiingo_daily"
    good_keys = ("GOOGL",)
    missing_key = "BADTICKER"


class TestAlphaVantageDaily(DailyKit):
    factory = AlphaVantageDaily
    replay_provider = "alpha_vantage_daily"
    good_keys = ("IBM", "AAPL")
    # No recording of an unknown symbol exists; the replay server's 404
    # stands in for it.
    missing_key = "NONEXIST"
