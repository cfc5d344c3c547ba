"""The two providers against the recorded answers of their APIs."""

import datetime as dt
from typing import Any

import httpx
import pytest

from dso import ConfigError, ErrorCode, ProviderContext, ProviderError, ProviderSettings
from dso.testing import ReplayServer
from dso_example import AlphaVantageDaily, DailyBar, PriceHistory, TiingoDaily


KEY = "SECRET-KEY-123"


def context(
    replay: ReplayServer, http: httpx.AsyncClient, api: str, **options: Any
) -> tuple[ProviderSettings, ProviderContext]:
    settings = ProviderSettings(
        name=api, base_url=replay.base_url(api), api_key=KEY, options=options
    )
    return settings, ProviderContext(http, settings, "daily_prices")


async def test_tiingo_bars_are_the_raw_prices_by_day(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """Tiingo's two recorded GOOGL bars become two raw bars, oldest first."""
    settings, ctx = context(replay, http, "tiingo_daily")

    history = await TiingoDaily(settings).fetch("googl", ctx)

    expected = PriceHistory(
        "GOOGL",
        (
            DailyBar(dt.date(2015, 1, 2), 532.6, 535.8, 527.88, 529.55, 1327870),
            DailyBar(dt.date(2015, 1, 5), 527.15, 527.9899, 517.75, 519.46, 2059119),
        ),
    )
    assert expected == history


async def test_tiingo_asks_for_the_configured_window(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """``start_date`` and ``end_date`` become Tiingo's query parameters."""
    settings, ctx = context(
        replay, http, "tiingo_daily", start_date="2015-01-01", end_date="2015-01-05"
    )

    await TiingoDaily(settings).fetch("GOOGL", ctx)

    query = replay.requests[-1].query
    expected = ("2015-01-01", "2015-01-05", "daily")
    assert expected == (query["startDate"], query["endDate"], query["resampleFreq"])


@pytest.mark.parametrize(
    ("ticker", "expected"),
    [
        # A 404 with {"detail": "Error: Ticker 'BADTICKER' not found"}.
        pytest.param("BADTICKER", ErrorCode.NOT_FOUND, id="unknown-404"),
        # The monthly quota notice: plain text with HTTP 200.
        pytest.param("QUOTA-SPENT", ErrorCode.RATE_LIMIT, id="quota-text-200"),
    ],
)
async def test_tiingo_error_answers_are_classified(
    replay: ReplayServer, http: httpx.AsyncClient, ticker: str, expected: ErrorCode
) -> None:
    """Each recorded Tiingo error answer gets the code it means."""
    settings, ctx = context(replay, http, "tiingo_daily")

    with pytest.raises(ProviderError) as caught:
        await TiingoDaily(settings).fetch(ticker, ctx)

    assert expected == caught.value.code


async def test_tiingo_quotes_what_it_said(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """Tiingo's own words about an unknown ticker reach the message."""
    settings, ctx = context(replay, http, "tiingo_daily")

    with pytest.raises(ProviderError) as caught:
        await TiingoDaily(settings).fetch("BADTICKER", ctx)

    assert "Ticker 'BADTICKER' not found" in caught.value.message


async def test_alpha_vantage_bars_come_oldest_first(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """Alpha Vantage's newest-first series of strings becomes bars, oldest first."""
    settings, ctx = context(replay, http, "alpha_vantage_daily")

    history = await AlphaVantageDaily(settings).fetch("IBM", ctx)

    expected = PriceHistory(
        "IBM",
        (
            DailyBar(dt.date(2020, 5, 7), 122.98, 123.26, 120.85, 121.23, 4412047),
            DailyBar(dt.date(2020, 5, 8), 122.67, 122.8, 121.06, 121.79, 2538547),
        ),
    )
    assert expected == history


async def test_alpha_vantage_keeps_the_window_only(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """Alpha Vantage takes no dates, so bars outside the window are dropped."""
    settings, ctx = context(
        replay,
        http,
        "alpha_vantage_daily",
        start_date="2022-05-16",
        end_date="2022-05-18",
    )

    history = await AlphaVantageDaily(settings).fetch("AAPL", ctx)

    expected = [dt.date(2022, 5, 16), dt.date(2022, 5, 17), dt.date(2022, 5, 18)]
    assert expected == [bar.day for bar in history.bars]


async def test_alpha_vantage_compact_answer_has_a_hundred_bars(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """Without a window the whole compact answer is kept."""
    settings, ctx = context(replay, http, "alpha_vantage_daily")

    history = await AlphaVantageDaily(settings).fetch("AAPL", ctx)

    expected = (100, dt.date(2021, 12, 29), dt.date(2022, 5, 20))
    assert expected == (len(history.bars), history.bars[0].day, history.bars[-1].day)


@pytest.mark.parametrize(
    ("symbol", "api_key", "expected"),
    [
        # {"Note": "... 5 calls per minute ..."} with HTTP 200.
        pytest.param("TSLA", KEY, ErrorCode.RATE_LIMIT, id="note"),
        # {"Information": "The **demo** API key is for demo purposes only..."}.
        pytest.param("MSFT", "demo", ErrorCode.AUTH, id="information-demo"),
        # {"Error Message": "Invalid API call..."}: cannot tell a bad symbol.
        pytest.param("INVALID-CALL", KEY, ErrorCode.INVALID_RESPONSE, id="error"),
    ],
)
async def test_alpha_vantage_soft_errors_are_errors(
    replay: ReplayServer,
    http: httpx.AsyncClient,
    symbol: str,
    api_key: str,
    expected: ErrorCode,
) -> None:
    """Each recorded error sent with HTTP 200 is an error with its code."""
    settings = ProviderSettings(
        name="av", base_url=replay.base_url("alpha_vantage_daily"), api_key=api_key
    )
    ctx = ProviderContext(http, settings, "daily_prices")

    with pytest.raises(ProviderError) as caught:
        await AlphaVantageDaily(settings).fetch(symbol, ctx)

    assert expected == caught.value.code


async def test_window_with_no_bars_is_not_found(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """A window the answer has no bars in is NOT_FOUND, not an empty history."""
    settings, ctx = context(
        replay, http, "alpha_vantage_daily", start_date="2030-01-01"
    )

    with pytest.raises(ProviderError) as caught:
        await AlphaVantageDaily(settings).fetch("IBM", ctx)

    assert ErrorCode.NOT_FOUND == caught.value.code


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param(
            {"start_date": "last week"},
            "providers.daily.options.start_date: expected an ISO date such as "
            "2015-01-02, got 'last week'",
            id="not-a-date",
        ),
        pytest.param(
            {"start_date": "2015-01-05", "end_date": "2015-01-01"},
            "providers.daily.options.end_date: 2015-01-01 is before start_date "
            "2015-01-05",
            id="empty-window",
        ),
    ],
)
@pytest.mark.parametrize("provider", [TiingoDaily, AlphaVantageDaily])
def test_bad_window_is_a_config_error(
    provider: Any, options: dict[str, str], expected: str
) -> None:
    """A bad date option fails when the provider is built, naming the option."""
    settings = ProviderSettings(name="daily", options=options)

    with pytest.raises(ConfigError) as caught:
        provider(settings)

    assert expected == str(caught.value)
