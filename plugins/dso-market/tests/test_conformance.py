"""Every market provider passes dso's conformance kit."""

from typing import Any

import dso_market
from dso.testing import ProviderConformance
from dso_market import FilingSummary, Fundamentals, Quote
from dso_market._alpha_vantage import AlphaVantageOverview, AlphaVantageQuotes
from dso_market._benzinga import BenzingaNews
from dso_market._fmp import FmpProfile, FmpQuotes
from dso_market._newsapi import NewsApiHeadlines, NewsApiSearch
from dso_market._sec_edgar import SecEdgarSubmissions
from dso_market._tiingo import TiingoQuotes
from dso_market._yahoo import YahooChartQuotes, YahooQuotes, YahooSummary


ROUTES = dso_market.replay_route_files()


class MarketKit(ProviderConformance):
    """What every market provider's kit shares: the recordings."""

    routes = ROUTES

    def key_of(self, value: Any) -> str | None:
        """Return the symbol a quote or profile is for."""
        return getattr(value, "symbol", None)


class TestTiingo(MarketKit):
    factory = TiingoQuotes
    replay_provider = "tiingo"
    good_keys = ("AAPL",)
    batch_keys = ("MSFT", "AAPL")
    missing_key = "NONEXIST"
    needs_api_key = True
    value_type = Quote


class TestYahoo(MarketKit):
    factory = YahooQuotes
    replay_provider = "yahoo"
    good_keys = ("AAPL",)
    missing_key = "NONEXIST"
    value_type = Quote


class TestYahooChart(MarketKit):
    factory = YahooChartQuotes
    replay_provider = "yahoo"
    good_keys = ("AAPL",)
    missing_key = "SI"
    value_type = Quote


class TestYahooSummary(MarketKit):
    factory = YahooSummary
    replay_provider = "yahoo"
    good_keys = ("AAPL",)
    missing_key = "QQQ,"
    value_type = Fundamentals


class TestAlphaVantage(MarketKit):
    factory = AlphaVantageQuotes
    replay_provider = "alpha_vantage"
    good_keys = ("IBM", "MSFT")
    missing_key = "NONEXIST"
    needs_api_key = True
    value_type = Quote


class TestAlphaVantageOverview(MarketKit):
    factory = AlphaVantageOverview
    replay_provider = "alpha_vantage"
    good_keys = ("IBM", "AAPL")
    missing_key = "NONEXIST"
    needs_api_key = True
    value_type = Fundamentals


class TestFmp(MarketKit):
    factory = FmpQuotes
    replay_provider = "fmp"
    good_keys = ("AAPL",)
    missing_key = "NONEXIST"
    needs_api_key = True
    value_type = Quote


class TestFmpProfile(MarketKit):
    factory = FmpProfile
    replay_provider = "fmp"
    good_keys = ("PM",)
    missing_key = "NONEXIST"
    needs_api_key = True
    value_type = Fundamentals


class TestNewsApi(ProviderConformance):
    factory = NewsApiSearch
    replay_provider = "newsapi"
    routes = ROUTES
    good_keys = ("bitcoin",)
    missing_key = "no-such-topic"


class TestNewsApiHeadlines(ProviderConformance):
    factory = NewsApiHeadlines
    replay_provider = "newsapi"
    routes = ROUTES
    good_keys = ("in",)
    missing_key = "zz"


class TestBenzinga(ProviderConformance):
    factory = BenzingaNews
    replay_provider = "benzinga"
    routes = ROUTES
    good_keys = ("AAPL", "MSFT")
    missing_key = "NONEXIST"


class TestSecEdgar(ProviderConformance):
    factory = SecEdgarSubmissions
    replay_provider = "sec_edgar"
    routes = ROUTES
    good_keys = ("0001835632", "0000350001")
    missing_key = "0000000000"
    options = {"user_agent": "dso conformance kit ops@example.invalid"}  # noqa: RUF012
    value_type = FilingSummary

    def key_of(self, value: Any) -> str | None:
        """Return the CIK a summary is for, padded as the key is."""
        return f"{int(value.cik):010d}" if value.cik else None
