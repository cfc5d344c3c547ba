"""Daily prices from Tiingo's end-of-day endpoint.

``GET /tiingo/daily/<ticker>/prices?startDate=...&endDate=...`` answers a
list of bars, with the token in an ``Authorization: Token`` header.
Without ``startDate`` Tiingo answers the latest bar only. Its quirks:

- an unknown ticker is a 404 with ``{"detail": "Error: Ticker ... not
  found"}`` (NOT_FOUND);
- the free plan's monthly symbol quota arrives as *plain text* with HTTP
  200 (RATE_LIMIT), and the hourly allocation as a 429 with a
  ``{"detail": ...}`` body;
- dates look like ``2015-01-02T00:00:00.000Z``; raw and split-adjusted
  prices sit side by side, and the raw ones are used.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Mapping
from typing import Any

import httpx

from dso import (
    ErrorCode,
    ProviderContext,
    ProviderError,
    ProviderSettings,
    error_from_http,
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


DEFAULT_BASE_URL = "https://api.tiingo.com"
"""Where Tiingo lives when the configuration names no ``base_url``."""

# Words of Tiingo's texts, checked in this order: the quota notice says
# neither "not found" nor "token".
_MESSAGE_CODES = (
    ("not found", ErrorCode.NOT_FOUND),
    ("limit", ErrorCode.RATE_LIMIT),
    ("allocation", ErrorCode.RATE_LIMIT),
    ("token", ErrorCode.AUTH),
)


class TiingoDaily:
    """The daily bars of a ticker, from Tiingo.

    Options: ``start_date`` and ``end_date`` (ISO dates), sent as Tiingo's
    ``startDate`` and ``endDate``.

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
        """Return the daily bars of ticker *key*, oldest first.

        Raises:
            ProviderError: NOT_FOUND for an unknown ticker or no bars in
                the window, or how the call failed.
        """
        token = require_api_key(ctx, "Tiingo token", provider=self.name)
        ticker = key.strip().upper()
        path = f"/tiingo/daily/{urllib.parse.quote(ticker, safe='')}/prices"
        response = await send_get(
            ctx,
            api_url(ctx, DEFAULT_BASE_URL, path),
            provider=self.name,
            params=self._params(),
            headers={"Authorization": f"Token {token}"},
        )

        bars = _bars_from(self._body(response, token), response, self.name)
        if not bars:
            message = f"Tiingo has no bars of {ticker!r} in the window"
            raise ProviderError(ErrorCode.NOT_FOUND, message, provider=self.name)

        return PriceHistory(ticker, bars)

    def _params(self) -> dict[str, str]:
        params = {"resampleFreq": "daily", "format": "json"}
        if self._window.start is not None:
            params["startDate"] = self._window.start.isoformat()

        if self._window.end is not None:
            params["endDate"] = self._window.end.isoformat()

        return params

    def _body(self, response: httpx.Response, token: str) -> Any:
        body = json_or_none(response)
        if not response.is_success:
            raise self._failure(response, _detail_of(body), token)

        # The monthly quota notice is plain text, with HTTP 200.
        detail = response.text if body is None else _detail_of(body)
        if detail is not None:
            message = f"HTTP 200 from {where(response)}: {excerpt(detail, token)}"
            raise ProviderError(_code_for(detail), message, provider=self.name)

        return body

    def _failure(
        self, response: httpx.Response, detail: str | None, token: str
    ) -> ProviderError:
        error = error_from_http(response, provider=self.name)
        if detail is None:
            return error

        return ProviderError(
            error.code,
            f"{error.message}: {excerpt(detail, token)}",
            retry_after=error.retry_after,
            provider=self.name,
        )


def _detail_of(body: object) -> str | None:
    if isinstance(body, Mapping) and isinstance(body.get("detail"), str):
        return str(body["detail"])

    return None


def _code_for(message: str) -> ErrorCode:
    lowered = message.lower()
    for words, code in _MESSAGE_CODES:
        if words in lowered:
            return code

    return ErrorCode.INVALID_RESPONSE


def _bars_from(
    body: Any, response: httpx.Response, provider: str
) -> tuple[DailyBar, ...]:
    if not isinstance(body, list):
        raise invalid_response(response, "expected a list of bars", provider=provider)

    try:
        bars = [_bar_from(item) for item in body]
    except (KeyError, TypeError, ValueError) as exc:
        raise invalid_response(response, f"a bar: {exc}", provider=provider) from exc

    return tuple(sorted(bars, key=lambda bar: bar.day))


def _bar_from(item: Mapping[str, Any]) -> DailyBar:
    return DailyBar(
        day=dt.datetime.fromisoformat(item["date"]).date(),
        open=_number(item, "open"),
        high=_number(item, "high"),
        low=_number(item, "low"),
        close=_number(item, "close"),
        volume=int(_number(item, "volume")),
    )


def _number(item: Mapping[str, Any], field: str) -> float:
    value = item[field]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field}: expected a number")

    return float(value)
