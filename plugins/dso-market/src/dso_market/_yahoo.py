"""Quotes and company profiles from Yahoo Finance's unofficial JSON API.

Three endpoints, three providers:

- ``yahoo``: v7 ``/v7/finance/quote?symbols=A,B``, batch-capable. Unknown
  symbols are silently dropped from ``result``; a result with none of the
  requested symbols is NOT_FOUND. ``regularMarketChangePercent`` is
  already in percent here.
- ``yahoo_chart``: v8 ``/v8/finance/chart/<sym>``; the quote is read from
  the chart's ``meta`` and the last daily bar.
- ``yahoo_summary``: v10 ``/v10/finance/quoteSummary/<sym>?modules=price``
  with ``formatted=false``, which gives plain numbers (and fractions where
  v7 gives percent).

Errors come in an envelope, ``{"<name>": {"result": null, "error":
{"code", "description"}}}``: 401 "Invalid Crumb" or "Invalid Cookie"
(AUTH), 404 "Not Found" (NOT_FOUND). A 429 comes as the plain text "Edge:
Too Many Requests" (RATE_LIMIT).

Since 2023 the v7 and v10 endpoints want Yahoo's session cookie and crumb.
These providers do not perform that handshake; against the live service
v7 and v10 answer 401, reported as AUTH. The v8 chart needs neither.
"""

from __future__ import annotations

import datetime as dt
import functools
import types
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from dso import ErrorCode, Provider, ProviderContext, ProviderError, ProviderSettings

from ._configured import ConfiguredProvider
from ._models import Fundamentals, Quote
from ._parse import (
    PayloadError,
    api_url,
    derive_change,
    error_with_detail,
    excerpt,
    get_json,
    match_by_symbol,
    parse_epoch,
    parse_float,
    parse_int,
    parse_percent,
    parse_text,
    require_list,
    require_mapping,
    require_text,
    translate_payload_errors,
)


DEFAULT_BASE_URL = "https://query2.finance.yahoo.com"
"""Where Yahoo Finance lives when the configuration names no ``base_url``."""


class YahooQuotes(ConfiguredProvider):
    """The latest quotes of one symbol or many, from Yahoo's v7 quote API.

    Args:
        settings: The provider's configuration section.
    """

    max_batch_size = 50
    """Symbols per call; Yahoo's own pages ask for a few dozen at a time."""

    async def fetch(self, key: str, ctx: ProviderContext) -> Quote:
        """Return the latest quote for symbol *key*.

        Raises:
            ProviderError: ``NOT_FOUND`` when Yahoo's result leaves the
                symbol out, or how the call failed.
        """
        found = await self.fetch_batch([key], ctx)
        if key not in found:
            raise ProviderError(
                ErrorCode.NOT_FOUND,
                f"Yahoo knows no symbol {key!r}",
                provider=self.name,
            )

        return found[key]

    async def fetch_batch(
        self, keys: Sequence[str], ctx: ProviderContext
    ) -> Mapping[str, Quote]:
        """Return the latest quotes for *keys*, by the caller's keys.

        Symbols Yahoo does not know are absent from the result.

        Raises:
            ProviderError: The whole call failed.
        """
        symbols = ",".join(key.upper() for key in keys)
        response, body = await _get_json(
            ctx, "/v7/finance/quote", {"symbols": symbols}, provider=self.name
        )

        with translate_payload_errors(response, provider=self.name):
            quotes = [_quote_from_v7(item) for item in _result(body, "quoteResponse")]

        return match_by_symbol(keys, quotes, _symbol_of)


class YahooChartQuotes(ConfiguredProvider):
    """The latest quote of a symbol, from the meta data of Yahoo's v8 chart.

    The price, day range, volume and time come from the chart's ``meta``;
    the open comes from the last daily bar, and only when that bar is the
    session the price belongs to (a chart of an old window still describes
    today in its ``meta``). The previous close is taken from ``meta``'s
    ``previousClose`` alone: ``chartPreviousClose`` is the close before the
    chart's window, which is not the previous session's for every window.

    Args:
        settings: The provider's configuration section.
    """

    async def fetch(self, key: str, ctx: ProviderContext) -> Quote:
        """Return the latest quote for symbol *key*.

        Raises:
            ProviderError: ``NOT_FOUND`` for a symbol without data, or how
                the call failed.
        """
        path = "/v8/finance/chart/" + _path_symbol(key)
        params = {"interval": "1d", "range": "1d"}
        response, body = await _get_json(ctx, path, params, provider=self.name)

        with translate_payload_errors(response, provider=self.name):
            results = _result(body, "chart")
            if not results:
                raise _not_found(key, self.name)

            return _quote_from_chart(results[-1])


class YahooSummary(ConfiguredProvider):
    """A company's name, listing and market value, from Yahoo's v10 API.

    Only the ``price`` module is asked for; its fractions (with
    ``formatted=false``) would become percent, but none of the fields read
    from it is a percentage.

    Args:
        settings: The provider's configuration section.
    """

    async def fetch(self, key: str, ctx: ProviderContext) -> Fundamentals:
        """Return the profile of symbol *key*.

        Raises:
            ProviderError: ``NOT_FOUND`` for an unknown symbol, or how the
                call failed.
        """
        path = "/v10/finance/quoteSummary/" + _path_symbol(key)
        params = {"modules": "price", "formatted": "false"}
        response, body = await _get_json(ctx, path, params, provider=self.name)

        with translate_payload_errors(response, provider=self.name):
            results = _result(body, "quoteSummary")
            if not results:
                raise _not_found(key, self.name)

            summary = require_mapping(results[0], "quoteSummary.result[0]")
            return _fundamentals_from(summary)


FACTORIES: Mapping[str, Callable[[ProviderSettings], Provider]] = (
    types.MappingProxyType(
        {
            "yahoo": YahooQuotes,
            "yahoo_chart": YahooChartQuotes,
            "yahoo_summary": YahooSummary,
        }
    )
)
"""Provider factories of this module, by provider type name."""


async def _get_json(
    ctx: ProviderContext, path: str, params: Mapping[str, str], *, provider: str
) -> tuple[httpx.Response, Any]:
    # Yahoo's errors come in envelopes, except its 429, which is plain text
    # ("Edge: Too Many Requests") and so quoted as it is.
    classify = functools.partial(error_with_detail, message_of=_envelope_description)
    response, body = await get_json(
        ctx,
        api_url(ctx, DEFAULT_BASE_URL, path),
        provider=provider,
        params=params,
        classify=classify,
    )

    _raise_for_envelope_error(response, body, provider)
    return response, body


def _raise_for_envelope_error(
    response: httpx.Response, body: object, provider: str
) -> None:
    description = _envelope_error(body)
    if description is None:
        return

    # An error inside an HTTP 200; Yahoo's 404 envelopes say "Not Found".
    code = ErrorCode.INVALID_RESPONSE
    if description[0] == "Not Found":
        code = ErrorCode.NOT_FOUND

    message = f"Yahoo answered with an error: {excerpt(description[1], None)}"
    raise ProviderError(code, message, provider=provider)


def _envelope_error(body: object) -> tuple[str, str] | None:
    if not isinstance(body, Mapping) or len(body) != 1:
        return None

    envelope = next(iter(body.values()))
    if not isinstance(envelope, Mapping):
        return None

    error = envelope.get("error")
    if not isinstance(error, Mapping):
        return None

    return str(error.get("code", "")), str(error.get("description", ""))


def _envelope_description(body: object) -> str | None:
    error = _envelope_error(body)
    if error is None:
        return None

    return error[1]


def _result(body: object, envelope_name: str) -> list[Any]:
    envelope = require_mapping(
        require_mapping(body, "body").get(envelope_name), envelope_name
    )
    result = envelope.get("result")
    if result is None:
        return []

    return require_list(result, f"{envelope_name}.result")


def _quote_from_v7(item: object) -> Quote:
    item = require_mapping(item, "quoteResponse.result[]")
    return Quote(
        symbol=_required_symbol(item),
        price=parse_float(item.get("regularMarketPrice"), "regularMarketPrice"),
        open=parse_float(item.get("regularMarketOpen"), "regularMarketOpen"),
        high=parse_float(item.get("regularMarketDayHigh"), "regularMarketDayHigh"),
        low=parse_float(item.get("regularMarketDayLow"), "regularMarketDayLow"),
        previous_close=parse_float(
            item.get("regularMarketPreviousClose"), "regularMarketPreviousClose"
        ),
        change=parse_float(item.get("regularMarketChange"), "regularMarketChange"),
        change_percent=parse_percent(
            item.get("regularMarketChangePercent"), "regularMarketChangePercent"
        ),
        volume=parse_int(item.get("regularMarketVolume"), "regularMarketVolume"),
        currency=parse_text(item.get("currency"), "currency"),
        as_of=parse_epoch(item.get("regularMarketTime"), "regularMarketTime"),
    )


def _quote_from_chart(result: object) -> Quote:
    result = require_mapping(result, "chart.result[]")
    meta = require_mapping(result.get("meta"), "chart.result[].meta")
    as_of = parse_epoch(meta.get("regularMarketTime"), "regularMarketTime")
    bar = _last_bar(result, meta, as_of)

    price = parse_float(meta.get("regularMarketPrice"), "regularMarketPrice")
    previous_close = parse_float(meta.get("previousClose"), "previousClose")
    change, change_percent = derive_change(price, previous_close)
    high = parse_float(meta.get("regularMarketDayHigh"), "regularMarketDayHigh")
    low = parse_float(meta.get("regularMarketDayLow"), "regularMarketDayLow")
    volume = parse_int(meta.get("regularMarketVolume"), "regularMarketVolume")
    return Quote(
        symbol=_required_symbol(meta),
        price=price,
        open=bar.get("open"),
        high=high if high is not None else bar.get("high"),
        low=low if low is not None else bar.get("low"),
        previous_close=previous_close,
        change=change,
        change_percent=change_percent,
        volume=volume if volume is not None else _bar_volume(bar),
        currency=parse_text(meta.get("currency"), "currency"),
        as_of=as_of,
    )


def _last_bar(
    result: Mapping[str, Any], meta: Mapping[str, Any], as_of: dt.datetime | None
) -> dict[str, float | None]:
    """Return the last daily bar, or nothing if it is another session's."""
    times = require_list(result.get("timestamp", []), "timestamp")
    indicators = require_mapping(result.get("indicators", {}), "indicators")
    quotes = require_list(indicators.get("quote", []), "indicators.quote")
    if not times or not quotes or as_of is None:
        return {}

    offset = dt.timedelta(seconds=parse_int(meta.get("gmtoffset"), "gmtoffset") or 0)
    opened_at = parse_epoch(times[-1], "timestamp[]")
    if opened_at is None or (opened_at + offset).date() != (as_of + offset).date():
        return {}

    columns = require_mapping(quotes[0], "indicators.quote[0]")
    return {
        name: parse_float(_last(columns.get(name), name, len(times)), name)
        for name in ("open", "high", "low", "volume")
    }


def _last(column: object, name: str, length: int) -> object:
    values = require_list(column, f"indicators.quote[0].{name}")
    if len(values) != length:
        raise PayloadError(f"indicators.quote[0].{name}: not one value per bar")

    return values[-1]


def _bar_volume(bar: Mapping[str, float | None]) -> int | None:
    return parse_int(bar.get("volume"), "volume")


def _fundamentals_from(summary: Mapping[str, Any]) -> Fundamentals:
    price = require_mapping(summary.get("price"), "quoteSummary.result[0].price")
    name = parse_text(price.get("longName"), "longName")
    if name is None:
        name = parse_text(price.get("shortName"), "shortName")

    return Fundamentals(
        symbol=_required_symbol(price),
        name=name,
        exchange=parse_text(price.get("exchangeName"), "exchangeName"),
        currency=parse_text(price.get("currency"), "currency"),
        market_cap=parse_float(price.get("marketCap"), "marketCap"),
    )


def _required_symbol(item: Mapping[str, Any]) -> str:
    return require_text(item.get("symbol"), "symbol").upper()


def _symbol_of(quote: Quote) -> str:
    return quote.symbol


def _path_symbol(key: str) -> str:
    # Symbols such as "^GSPC" and "EURUSD=X" are one path segment: a "/"
    # or "?" in a key must not reach beyond it.
    return urllib.parse.quote(key.upper(), safe=",=")


def _not_found(key: str, provider: str) -> ProviderError:
    return ProviderError(
        ErrorCode.NOT_FOUND, f"Yahoo has no data for {key!r}", provider=provider
    )
