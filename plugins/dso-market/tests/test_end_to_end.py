"""The orchestrator with the market providers over the replay server."""

from pathlib import Path
from typing import Any

import trio

import dso
from dso.testing import Fault, ReplayServer
from dso_market import Fundamentals, NewsArticle, Quote


def market_config(replay: ReplayServer, cache_path: Path) -> dso.Config:
    def section(api: str, **extra: Any) -> dict[str, Any]:
        return {"base_url": replay.base_url(api), "api_key": "SECRET-KEY", **extra}

    return dso.Config.from_dict(
        {
            "cache": {"backend": "sqlite", "path": str(cache_path)},
            "providers": {
                "tiingo": section("tiingo"),
                "yahoo": section("yahoo"),
                "yahoo_summary": section("yahoo"),
                "alpha_vantage_overview": section("alpha_vantage"),
                "newsapi": section("newsapi"),
                "benzinga": section("benzinga"),
            },
            "namespaces": {
                "quotes": {
                    "providers": ["tiingo", "yahoo"],
                    "ttl": {"fresh": 60, "stale": 3600, "tiers": {"realtime": 0}},
                },
                "fundamentals": {
                    "providers": ["alpha_vantage_overview", "yahoo_summary"]
                },
                "news": {"providers": ["newsapi", "benzinga"]},
            },
        }
    )


async def test_stale_quote_survives_a_restart(
    replay: ReplayServer, tmp_path: Path
) -> None:
    """A quote cached by one orchestrator is served stale by the next one."""
    config = market_config(replay, tmp_path / "cache.sqlite3")
    async with dso.open_orchestrator(config) as orch:
        fresh = await orch.fetch_with_fallback("AAPL", namespace="quotes")

    replay.inject("*", Fault.status_code(503))
    async with dso.open_orchestrator(config) as orch:
        stale = await orch.fetch_with_fallback(
            "AAPL", namespace="quotes", tier="realtime", allow_stale=True
        )

    assert isinstance(fresh.data, Quote)
    assert (fresh.data, True, "cache") == (stale.data, stale.stale, stale.source)
    # Each provider is tried three times: a 503 is worth retrying.
    assert [("tiingo", 0), ("tiingo", 1), ("tiingo", 2)] == [
        (a.provider, a.retry) for a in stale.attempts[:3]
    ]
    assert [dso.ErrorCode.UNAVAILABLE] * 6 == [a.code for a in stale.attempts]


async def test_fallback_from_a_failing_primary(
    replay: ReplayServer, tmp_path: Path
) -> None:
    """With Tiingo answering 503, Yahoo's recorded quote is returned."""
    replay.inject("tiingo", Fault.status_code(503))

    async with dso.open_orchestrator(market_config(replay, tmp_path / "c")) as orch:
        result = await orch.fetch_with_fallback("AAPL", namespace="quotes")

    assert ("yahoo", "AAPL") == (result.source, result.data.symbol)
    assert dso.ErrorCode.UNAVAILABLE == result.attempts[0].code
    assert "SECRET-KEY" not in result.attempts[0].message


async def test_portfolio_batch_reports_the_unknown_symbol_per_key(
    replay: ReplayServer, tmp_path: Path
) -> None:
    """One Tiingo call answers the known symbols; the unknown one is NOT_FOUND."""
    config = market_config(replay, tmp_path / "cache.sqlite3")

    async with dso.open_orchestrator(config) as orch:
        result = await orch.batch_fetch(
            ["AAPL", "MSFT", "NONEXIST"], "tiingo", namespace="quotes"
        )

    assert ["AAPL", "MSFT"] == [k for k, r in result.items() if r.ok]
    assert dso.ErrorCode.NOT_FOUND == result["NONEXIST"].attempts[0].code
    assert 1 == result.summary.provider_calls


async def test_fundamentals_merge_and_cache_round_trip(
    replay: ReplayServer, tmp_path: Path
) -> None:
    """A merged profile is cached in SQLite and comes back as the same value."""
    config = market_config(replay, tmp_path / "cache.sqlite3")

    async with dso.open_orchestrator(config) as orch:
        merged = await orch.fetch_with_merge("AAPL", namespace="fundamentals")
    async with dso.open_orchestrator(config) as orch:
        cached = await orch.fetch_with_merge("AAPL", namespace="fundamentals")

    assert isinstance(merged.data, Fundamentals)
    assert ("alpha_vantage_overview", "yahoo_summary") == merged.sources
    assert (merged.data, True) == (cached.data, cached.cached)


async def test_news_merge_is_partial_and_says_who_had_nothing(
    replay: ReplayServer, tmp_path: Path
) -> None:
    """Benzinga's articles arrive; NewsAPI's missing recording is NOT_FOUND."""
    config = market_config(replay, tmp_path / "cache.sqlite3")

    with trio.fail_after(30):
        async with dso.open_orchestrator(config) as orch:
            result = await orch.fetch_with_merge("AAPL", namespace="news")

    assert result.partial
    assert all(isinstance(article, NewsArticle) for article in result.data)
    assert [dso.ErrorCode.NOT_FOUND, None] == [a.code for a in result.attempts]
