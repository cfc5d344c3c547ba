"""Daily prices from Alpha Vantage's ``TIME_SERIES_DAILY``.

``GET /query?function=TIME_SERIES_DAILY&symbol=...&apikey=...`` answers
``{"Meta Data": {...}, "Time Series (Daily)": {"2022-05-20": {"1. open":
"139.0900", ...}}}``: the latest 100 days, newest first, every number a
string. Every answer is HTTP 200, errors included, as a one-key object:

- ``"Note"``: the per-minute call frequency was exceeded (RATE_LIMIT);
- ``"Information"``: the daily limit (RATE_LIMIT), or a demo key or a
  premium endpoint (AUTH);
- ``"Error Message"``: an invalid key (AUTH), or "Invalid API call", which
  Alpha Vantage sends both for a malformed request and for an unknown
  symbol; since the text cannot tell them apart, it is INVALID_RESPONSE,
  so that a broken request does not pass for a healthy provider.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import httpx

from dso import (
    ErrorCode,
    ProviderContext,
    ProviderError,
    ProviderSettings,
    check_response,
)

from ._models import DailyBar, PriceHistory
from ._options import window_option
from ._request import (
    api_url,
    excerpt,
    invalid_response,
    json_or_none,
    require_api_key,
    send_get,
    where,
)


DEFAULT_BASE_URL = "https://www.alphavantage.co"
"""Where Alpha Vantage lives when the configuration names no ``base_url``."""

_SERIES = "Time Series (Daily)"

# Words of an "Information" text that mean a rate limit, checked before
# the words of refused keys: the daily-limit text mentions premium plans.
_RATE_LIMIT_WORDS = ("rate limit", "call frequency", "per day", "per minute")
_AUTH_WORDS = ("demo", "premium", "api key", "apikey")


class AlphaVantageDaily:
    """The daily bars of a symbol over the latest 100 days, from Alpha Vantage.

    Options: ``start_date`` and ``end_date`` (ISO dates); Alpha Vantage
    takes no dates, so the bars outside them are dropped here.

    Args:
        settings: The provider's configuration section.

    Raises:
        ConfigError: An option is invalid.
    """

    def __init__(self, settings: ProviderSettings) -> None:
        self._settings = settings
        self._window = window_option(settings)

    @property
    def name(self) -> str:
        """The provider's name, as configured."""
        return self._settings.name

    async def fetch(self, key: str, ctx: ProviderContext) -> PriceHistory:
        """Return the daily bars of symbol *key*, oldest first.

        Raises:
            ProviderError: NOT_FOUND when no bar lies in the window, or how
                the call failed.
        """
        api_key = require_api_key(ctx, "Alpha Vantage API key", provider=self.name)
        symbol = key.strip().upper()
        params = {
            "function": "TIME_SERIES_DAILY",
            "symbol": symbol,
            "outputsize": "compact",
            "apikey": api_key,
        }
        response = await send_get(
            ctx,
            api_url(ctx, DEFAULT_BASE_URL, "/query"),
            provider=self.name,
            params=params,
        )
        check_response(response, provider=self.name)

        body = self._body(response, api_key)
        bars = tuple(
            bar
            for bar in _bars_from(body, response, self.name)
            if self._window.holds(bar.day)
        )
        if not bars:
            message = f"Alpha Vantage has no bars of {symbol!r} in the window"
            raise ProviderError(ErrorCode.NOT_FOUND, message, provider=self.name)

        return PriceHistory(symbol, bars)

    def _body(self, response: httpx.Response, api_key: str) -> Mapping[str, Any]:
        body = json_or_none(response)
        if not isinstance(body, Mapping):
            raise invalid_response(response, "expected an object", provider=self.name)

        for field, classify in _SOFT_ERRORS:
            message = body.get(field)
            if isinstance(message, str):
                raise ProviderError(
                    classify(message),
                    f"{field} from {where(response)}: {excerpt(message, api_key)}",
                    provider=self.name,
                )

        return body


def _code_for_information(message: str) -> ErrorCode:
    lowered = message.lower()
    if any(words in lowered for words in _RATE_LIMIT_WORDS):
        return ErrorCode.RATE_LIMIT

    if any(words in lowered for words in _AUTH_WORDS):
        return ErrorCode.AUTH

    return ErrorCode.INVALID_RESPONSE


def _code_for_error_message(message: str) -> ErrorCode:
    lowered = message.lower()
    if any(words in lowered for words in ("apikey", "api key")):
        return ErrorCode.AUTH

    return ErrorCode.INVALID_RESPONSE


def _rate_limit(message: str) -> ErrorCode:
    return ErrorCode.RATE_LIMIT


_SOFT_ERRORS = (
    ("Note", _rate_limit),
    ("Information", _code_for_information),
    ("Error Message", _code_for_error_message),
)


def _bars_from(
    body: Mapping[str, Any], response: httpx.Response, provider: str
) -> list[DailyBar]:
    series = body.get(_SERIES)
    if not isinstance(series, Mapping):
        raise invalid_response(response, f"no {_SERIES!r}", provider=provider)

    try:
        bars = [_bar_from(day, fields) for day, fields in series.items()]
    except (KeyError, TypeError, ValueError) as exc:
        raise invalid_response(response, f"a bar: {exc}", provider=provider) from exc

    return sorted(bars, key=lambda bar: bar.day)


def _bar_from(day: str, fields: Mapping[str, str]) -> DailyBar:
    return DailyBar(
        day=dt.date.fromisoformat(day),
        open=float(fields["1. open"]),
        high=float(fields["2. high"]),
        low=float(fields["3. low"]),
        close=float(fields["4. close"]),
        volume=int(fields["5. volume"]),
    )
