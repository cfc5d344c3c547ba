"""Quotes and company profiles from Financial Modeling Prep's v3 API.

``GET /api/v3/quote/<sym>?apikey=K`` and ``GET /api/v3/profile/<sym>``
answer with a list, even for one symbol, and with an empty list for an
unknown one (NOT_FOUND). A refused key is an HTTP 200 whose body is an
object, ``{"Error Message" : "Invalid API KEY. ..."}`` (AUTH); the same
envelope carries FMP's "Limit Reach" notice (RATE_LIMIT). The profile
sends some numbers as strings (``"fullTimeEmployees": "69600"``).

FMP stopped offering v3 to new users in 2025 in favour of ``/stable/``;
the recordings, and so these providers, are v3.
"""

from __future__ import annotations

import functools
import types
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from dso import ErrorCode, Provider, ProviderContext, ProviderError, ProviderSettings

from ._configured import ConfiguredProvider
from ._models import Fundamentals, Quote
from ._parse import (
    api_url,
    error_with_detail,
    excerpt,
    get_json,
    invalid_response,
    parse_cik,
    parse_epoch,
    parse_float,
    parse_int,
    parse_percent,
    parse_text,
    require_api_key,
    require_list,
    require_mapping,
    translate_payload_errors,
    where,
)


DEFAULT_BASE_URL = "https://financialmodelingprep.com"
"""Where FMP lives when the configuration names no ``base_url``."""


class FmpQuotes(ConfiguredProvider):
    """The latest quote of a symbol, from FMP's ``/api/v3/quote``.

    FMP's quote sends no currency; ``changesPercentage`` is in percent.

    Args:
        settings: The provider's configuration section.
    """

    async def fetch(self, key: str, ctx: ProviderContext) -> Quote:
        """Return the latest quote for symbol *key*.

        Raises:
            ProviderError: ``NOT_FOUND`` for an unknown symbol, or how the
                call failed.
        """
        response, item = await _get_item(ctx, "quote", key, provider=self.name)

        with translate_payload_errors(response, provider=self.name):
            return _quote_from(item)


class FmpProfile(ConfiguredProvider):
    """A company's profile, from FMP's ``/api/v3/profile``.

    Args:
        settings: The provider's configuration section.
    """

    async def fetch(self, key: str, ctx: ProviderContext) -> Fundamentals:
        """Return the profile of symbol *key*.

        Raises:
            ProviderError: ``NOT_FOUND`` for an unknown symbol, or how the
                call failed.
        """
        response, item = await _get_item(ctx, "profile", key, provider=self.name)

        with translate_payload_errors(response, provider=self.name):
            return _fundamentals_from(item)


FACTORIES: Mapping[str, Callable[[ProviderSettings], Provider]] = (
    types.MappingProxyType({"fmp": FmpQuotes, "fmp_profile": FmpProfile})
)
"""Provider factories of this module, by provider type name."""


async def _get_item(
    ctx: ProviderContext, endpoint: str, key: str, *, provider: str
) -> tuple[httpx.Response, Mapping[str, Any]]:
    """Return the one object FMP's list holds for *key*."""
    api_key = require_api_key(ctx, "FMP API key", provider=provider)
    symbol = urllib.parse.quote(key.upper(), safe="")
    url = api_url(ctx, DEFAULT_BASE_URL, f"/api/v3/{endpoint}/{symbol}")
    classify = functools.partial(
        error_with_detail, message_of=_error_message, secret=api_key
    )
    response, body = await get_json(
        ctx, url, provider=provider, params={"apikey": api_key}, classify=classify
    )

    message = _error_message(body)
    if message is not None:
        raise _soft_error(response, message, api_key, provider)

    with translate_payload_errors(response, provider=provider):
        items = [require_mapping(item, "item") for item in require_list(body, "body")]

    for item in items:
        if str(item.get("symbol", "")).upper() == key.upper():
            return response, item

    if not items:
        raise ProviderError(
            ErrorCode.NOT_FOUND, f"FMP has no data for {key!r}", provider=provider
        )

    raise invalid_response(
        response, "the answer is for another symbol", provider=provider
    )


def _soft_error(
    response: httpx.Response, message: str, api_key: str, provider: str
) -> ProviderError:
    lowered = message.lower()
    code = ErrorCode.INVALID_RESPONSE
    if "api key" in lowered or "apikey" in lowered:
        code = ErrorCode.AUTH
    elif "limit" in lowered:
        code = ErrorCode.RATE_LIMIT

    return ProviderError(
        code,
        f"Error Message from {where(response)}: {excerpt(message, api_key)}",
        provider=provider,
    )


def _error_message(body: object) -> str | None:
    # FMP's envelope for refusals, whether sent with an error status or 200.
    if isinstance(body, Mapping) and isinstance(body.get("Error Message"), str):
        return str(body["Error Message"])

    return None


def _quote_from(item: Mapping[str, Any]) -> Quote:
    return Quote(
        symbol=str(item["symbol"]).upper(),
        price=parse_float(item.get("price"), "price"),
        open=parse_float(item.get("open"), "open"),
        high=parse_float(item.get("dayHigh"), "dayHigh"),
        low=parse_float(item.get("dayLow"), "dayLow"),
        previous_close=parse_float(item.get("previousClose"), "previousClose"),
        change=parse_float(item.get("change"), "change"),
        change_percent=parse_percent(
            item.get("changesPercentage"), "changesPercentage"
        ),
        volume=parse_int(item.get("volume"), "volume"),
        as_of=parse_epoch(item.get("timestamp"), "timestamp"),
    )


def _fundamentals_from(item: Mapping[str, Any]) -> Fundamentals:
    def text(field: str) -> str | None:
        return parse_text(item.get(field), field)

    return Fundamentals(
        symbol=str(item["symbol"]).upper(),
        name=text("companyName"),
        exchange=text("exchangeShortName"),
        currency=text("currency"),
        country=text("country"),
        sector=text("sector"),
        industry=text("industry"),
        description=text("description"),
        market_cap=parse_float(item.get("mktCap"), "mktCap"),
        beta=parse_float(item.get("beta"), "beta"),
        employees=parse_int(item.get("fullTimeEmployees"), "fullTimeEmployees"),
        cik=parse_cik(item.get("cik"), "cik"),
    )
