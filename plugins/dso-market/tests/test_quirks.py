"""Every recorded soft error and empty answer, through the orchestrator.

Each row is a quirk from the recordings' SOURCES.md, replayed over loopback
and fetched the way an application would. None may crash, none may be
cached as data, none is retried (they are not transient), and only the
rate-limit ones pause their provider. After-hours nulls are data with
fields missing, and are cached as such.
"""

from typing import Any

import pytest
import trio
import trio.testing

import dso
from dso.testing import ReplayServer
from dso_market import Quote


KEY = "SECRET-KEY-123"
USER_AGENT = "dso-tests admin@example.invalid"

QUIRKS = [
    # Alpha Vantage answers everything with HTTP 200.
    ("alpha_vantage", "quotes", "TSLA", KEY, dso.ErrorCode.RATE_LIMIT),
    ("alpha_vantage", "quotes", "NVDA", "demo", dso.ErrorCode.AUTH),
    ("alpha_vantage", "quotes", "PREMIUM-ONLY", KEY, dso.ErrorCode.AUTH),
    ("alpha_vantage", "quotes", "INVALID-CALL", KEY, dso.ErrorCode.INVALID_RESPONSE),
    ("alpha_vantage_overview", "fundamentals", "TSLA", KEY, dso.ErrorCode.RATE_LIMIT),
    # FMP's bad key is an HTTP 200 object instead of the usual list.
    ("fmp", "quotes", "AAPL", "test_key", dso.ErrorCode.AUTH),
    ("fmp_profile", "fundamentals", "PM", "test_key", dso.ErrorCode.AUTH),
    # Tiingo: plain-text quota with 200, empty list with 200, two 404 shapes.
    ("tiingo", "quotes", "QUOTA-SPENT", KEY, dso.ErrorCode.RATE_LIMIT),
    ("tiingo", "quotes", "NONEXIST", KEY, dso.ErrorCode.NOT_FOUND),
    ("tiingo", "quotes", "DAILY-404", KEY, dso.ErrorCode.NOT_FOUND),
    ("tiingo", "quotes", "META-404", KEY, dso.ErrorCode.NOT_FOUND),
    # Yahoo: empty result with 200, error envelopes, a text/plain 429.
    ("yahoo", "quotes", "NONEXIST", KEY, dso.ErrorCode.NOT_FOUND),
    ("yahoo", "quotes", "CRUMB-401", KEY, dso.ErrorCode.AUTH),
    ("yahoo", "quotes", "COOKIE-401", KEY, dso.ErrorCode.AUTH),
    ("yahoo", "quotes", "EDGE-429", KEY, dso.ErrorCode.RATE_LIMIT),
    ("yahoo_chart", "quotes", "SI", KEY, dso.ErrorCode.NOT_FOUND),
    ("yahoo_summary", "fundamentals", "QQQ,", KEY, dso.ErrorCode.NOT_FOUND),
    # NewsAPI's error envelope with 401.
    ("newsapi", "news", "keyword", KEY, dso.ErrorCode.AUTH),
    # SEC EDGAR: an S3 XML error for a JSON URL.
    ("sec_edgar", "filings", "0", KEY, dso.ErrorCode.NOT_FOUND),
]


# Provider types served under another API's recordings.
API_OF = {
    "alpha_vantage_overview": "alpha_vantage",
    "fmp_profile": "fmp",
    "yahoo_chart": "yahoo",
    "yahoo_summary": "yahoo",
}


def config_for(replay: ReplayServer, kind: str, api_key: str) -> dso.Config:
    api = API_OF.get(kind, kind)
    return dso.Config.from_dict(
        {
            "providers": {
                kind: {
                    "base_url": replay.base_url(api),
                    "api_key": api_key,
                    "options": {"user_agent": USER_AGENT},
                }
            }
        }
    )


@pytest.mark.parametrize(
    ("kind", "namespace", "key", "api_key", "code"),
    [pytest.param(*quirk, id=f"{quirk[0]}-{quirk[2]}") for quirk in QUIRKS],
)
async def test_a_recorded_quirk_is_classified_and_never_cached(
    replay: ReplayServer,
    autojump_clock: trio.testing.MockClock,
    kind: str,
    namespace: str,
    key: str,
    api_key: str,
    code: dso.ErrorCode,
) -> None:
    """The quirk gets its code, is tried once, and the next fetch finds no data."""
    config = config_for(replay, kind, api_key)

    with trio.fail_after(600):
        async with dso.open_orchestrator(config) as orch:
            first = await orch.fetch_with_fallback(key, [kind], namespace=namespace)
            requests = len(replay.requests)
            again = await orch.fetch_with_fallback(key, [kind], namespace=namespace)
            paused_for = orch.limits(kind).statistics().paused_for

    expected: tuple[Any, ...] = ([code], None, 1, None, False)
    actual = (
        [attempt.code for attempt in first.attempts],
        first.data,
        requests,
        again.data,
        again.cached,
    )
    assert expected == actual
    assert (code is dso.ErrorCode.RATE_LIMIT) == (paused_for > 0)


async def test_after_hours_nulls_are_quotes_without_those_fields(
    replay: ReplayServer, autojump_clock: trio.testing.MockClock
) -> None:
    """Tiingo's after-close batch, nine fields null, gives quotes that are cached."""
    config = config_for(replay, "tiingo", KEY)

    with trio.fail_after(600):
        async with dso.open_orchestrator(config) as orch:
            fetched = await orch.batch_fetch(
                ["MSFT", "AAPL"], "tiingo", namespace="quotes"
            )
            again = await orch.batch_fetch(
                ["MSFT", "AAPL"], "tiingo", namespace="quotes"
            )

    prices = {key: item.data.price for key, item in fetched.items()}
    assert {"MSFT": 499.7, "AAPL": 319.97} == prices
    assert all(isinstance(item.data, Quote) for item in fetched.values())
    assert (2, 1) == (again.summary.cached, len(replay.requests))
