"""The orchestrator finds the package through its entry point and fetches."""

import dso
from dso.testing import Fault, ReplayServer
from dso_example import PriceHistory


def daily_config(replay: ReplayServer) -> dso.Config:
    def section(api: str) -> dict[str, str]:
        return {"base_url": replay.base_url(api), "api_key": "SECRET-KEY"}

    return dso.Config.from_dict(
        {
            "providers": {
                "tiingo_daily": section("tiingo_daily"),
                "alpha_vantage_daily": section("alpha_vantage_daily"),
            },
            "namespaces": {
                "daily_prices": {"providers": ["tiingo_daily", "alpha_vantage_daily"]}
            },
        }
    )


async def test_history_from_the_first_provider_is_cached(
    replay: ReplayServer,
) -> None:
    """Tiingo answers first; the second fetch is the same history, from the cache."""
    async with dso.open_orchestrator(daily_config(replay)) as orch:
        first = await orch.fetch_with_fallback("GOOGL", namespace="daily_prices")
        second = await orch.fetch_with_fallback("GOOGL", namespace="daily_prices")

    assert isinstance(first.data, PriceHistory)
    expected = ("tiingo_daily", 2, first.data, "cache")
    assert expected == (
        first.source,
        len(first.data.bars),
        second.data,
        second.source,
    )


async def test_fallback_to_alpha_vantage(replay: ReplayServer) -> None:
    """With Tiingo answering 503, Alpha Vantage's history is returned."""
    replay.inject("tiingo_daily", Fault.status_code(503))

    async with dso.open_orchestrator(daily_config(replay)) as orch:
        result = await orch.fetch_with_fallback("AAPL", namespace="daily_prices")

    # Tiingo is tried three times (a 503 is transient: two retries by
    # default) before the chain moves on.
    assert isinstance(result.data, PriceHistory)
    expected = ("alpha_vantage_daily", "AAPL", 100, [dso.ErrorCode.UNAVAILABLE] * 3)
    assert expected == (
        result.source,
        result.data.symbol,
        len(result.data.bars),
        [attempt.code for attempt in result.errors],
    )
