"""Quotes from Tiingo's IEX endpoint.

Tiingo answers ``GET /iex/<ticker>`` and ``GET /iex/?tickers=a,b`` with a
list of quote objects and takes the token in an ``Authorization: Token``
header. Its quirks, all handled here:

- the answer is a list even for one ticker, and an unknown ticker gives
  ``[]`` with HTTP 200 rather than a 404;
- a batch leaves unknown tickers out and may reorder the rest;
- after the close ``last`` and the sale timestamp are ``null`` and only
  ``tngoLast`` carries a price;
- the sale timestamp is spelled ``lastSaleTimestamp`` or, in older
  answers, ``lastsaleTimeStamp``;
- the monthly symbol quota arrives as plain text with HTTP 200, and some
  errors as ``{"detail": "..."}``.
"""

from __future__ import annotations

import datetime as dt
import types
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from dso import ErrorCode, Provider, ProviderContext, ProviderError, ProviderSettings

from ._configured import ConfiguredProvider
from ._models import Quote
from ._parse import (
    api_url,
    decode_json,
    derive_change,
    error_with_detail,
    excerpt,
    invalid_response,
    match_by_symbol,
    parse_float,
    parse_int,
    parse_iso_datetime,
    require_api_key,
    require_list,
    require_mapping,
    require_text,
    send_get,
    translate_payload_errors,
    where,
)


DEFAULT_BASE_URL = "https://api.tiingo.com"
"""Where Tiingo lives when the configuration names no ``base_url``."""

_SALE_TIME_FIELDS = ("lastSaleTimestamp", "lastsaleTimeStamp", "timestamp")

# Words of Tiingo's error texts, checked in this order: the monthly quota
# text mentions neither "not found" nor the token.
_MESSAGE_CODES = (
    ("not found", ErrorCode.NOT_FOUND),
    ("limit", ErrorCode.RATE_LIMIT),
    ("allocation", ErrorCode.RATE_LIMIT),
    ("token", ErrorCode.AUTH),
)


class TiingoQuotes(ConfiguredProvider):
    """The latest quote of one ticker or many, from Tiingo IEX.

    After the close the price is Tiingo's own ``tngoLast``; the change is
    derived from the price and the previous close, which Tiingo sends.

    Args:
        settings: The provider's configuration section.
    """

    max_batch_size = 100
    """Tickers per batch call; Tiingo documents no limit, URLs do have one."""

    async def fetch(self, key: str, ctx: ProviderContext) -> Quote:
        """Return the latest quote for ticker *key*.

        Raises:
            ProviderError: ``NOT_FOUND`` for an unknown ticker, or how the
                call failed.
        """
        path = "/iex/" + urllib.parse.quote(key.upper(), safe="")
        response, quotes = await self._get_quotes(ctx, path, params=None)

        found = match_by_symbol([key], quotes, _symbol_of)
        if key in found:
            return found[key]

        if not quotes:
            raise ProviderError(
                ErrorCode.NOT_FOUND,
                f"Tiingo knows no ticker {key!r}",
                provider=self.name,
            )

        raise invalid_response(
            response, "the quote is for another ticker", provider=self.name
        )

    async def fetch_batch(
        self, keys: Sequence[str], ctx: ProviderContext
    ) -> Mapping[str, Quote]:
        """Return the latest quotes for *keys*, by the caller's keys.

        Tickers Tiingo does not know are absent from the result.

        Raises:
            ProviderError: The whole call failed.
        """
        tickers = ",".join(key.upper() for key in keys)
        _, quotes = await self._get_quotes(ctx, "/iex/", params={"tickers": tickers})
        return match_by_symbol(keys, quotes, _symbol_of)

    async def _get_quotes(
        self, ctx: ProviderContext, path: str, params: Mapping[str, str] | None
    ) -> tuple[httpx.Response, list[Quote]]:
        token = require_api_key(ctx, "Tiingo token", provider=self.name)
        response = await send_get(
            ctx,
            api_url(ctx, DEFAULT_BASE_URL, path),
            provider=self.name,
            params=params,
            headers={"Authorization": f"Token {token}"},
        )

        body = self._read_body(response, token)
        with translate_payload_errors(response, provider=self.name):
            quotes = [_quote_from(item) for item in require_list(body, "body")]

        return response, quotes

    def _read_body(self, response: httpx.Response, token: str) -> Any:
        if not response.is_success:
            raise error_with_detail(
                response, provider=self.name, message_of=_detail_of, secret=token
            )

        try:
            body = decode_json(response, provider=self.name)
        except ProviderError as exc:
            # The monthly quota text comes as plain text with HTTP 200.
            raise self._soft_error(response, response.text, token) from exc

        if isinstance(body, Mapping) and "detail" in body:
            raise self._soft_error(response, str(body["detail"]), token)

        return body

    def _soft_error(
        self, response: httpx.Response, message: str, token: str
    ) -> ProviderError:
        code = _code_for_message(message)
        return ProviderError(
            code,
            f"HTTP {response.status_code} from {where(response)}: "
            f"{excerpt(message, token)}",
            provider=self.name,
        )


FACTORIES: Mapping[str, Callable[[ProviderSettings], Provider]] = (
    types.MappingProxyType({"tiingo": TiingoQuotes})
)
"""Provider factories of this module, by provider type name."""


def _quote_from(item: object) -> Quote:
    item = require_mapping(item, "quote")
    symbol = require_text(item.get("ticker"), "ticker")

    # After the close Tiingo nulls "last" and keeps its own estimate.
    price = parse_float(item.get("last"), "last")
    if price is None:
        price = parse_float(item.get("tngoLast"), "tngoLast")

    previous_close = parse_float(item.get("prevClose"), "prevClose")
    change, change_percent = derive_change(price, previous_close)
    return Quote(
        symbol=symbol.upper(),
        price=price,
        open=parse_float(item.get("open"), "open"),
        high=parse_float(item.get("high"), "high"),
        low=parse_float(item.get("low"), "low"),
        previous_close=previous_close,
        change=change,
        change_percent=change_percent,
        volume=parse_int(item.get("volume"), "volume"),
        as_of=_sale_time(item),
    )


def _sale_time(item: Mapping[str, Any]) -> dt.datetime | None:
    for field in _SALE_TIME_FIELDS:
        moment = parse_iso_datetime(item.get(field), field)
        if moment is not None:
            return moment

    return None


def _symbol_of(quote: Quote) -> str:
    return quote.symbol


def _code_for_message(message: str) -> ErrorCode:
    lowered = message.lower()
    for words, code in _MESSAGE_CODES:
        if words in lowered:
            return code

    return ErrorCode.INVALID_RESPONSE


def _detail_of(body: object) -> str | None:
    if isinstance(body, Mapping) and isinstance(body.get("detail"), str):
        return str(body["detail"])

    return None
