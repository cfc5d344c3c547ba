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

import types
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from dso import (
    ErrorCode,
    Provider,
    ProviderContext,
    ProviderError,
    ProviderSettings,
    error_from_http,
)

from ._models import Fundamentals, Quote
from ._parse import (
    PayloadError,
    decode_json,
    excerpt,
    invalid_response,
    parse_cik,
    parse_epoch,
    parse_float,
    parse_int,
    parse_percent,
    parse_text,
    require_list,
    require_mapping,
    send_get,
    where,
    with_detail,
)


DEFAULT_BASE_URL = "https://financialmodelingprep.com"
"""Where FMP lives when the configuration names no ``base_url``."""


class FmpQuotes:
    """The latest quote of a symbol, from FMP's ``/api/v3/quote``.

    FMP's quote sends no currency; ``changesPercentage`` is in percent.

    Args:
        settings: The provider's configuration section.
    """

    def __init__(self, settings: ProviderSettings) -> None:
        self._settings = settings

    @property
    def name(self) -> str:
        """The provider's name, as configured."""
        return self._settings.name

    async def fetch(self, key: str, ctx: ProviderContext) -> Quote:
        """Return the latest quote for symbol *key*.

        Raises:
            ProviderError: ``NOT_FOUND`` for an unknown symbol, or how the
                call failed.
        """
        response, item = await _get_item(ctx, "quote", key, provider=self.name)

        try:
            return _quote_from(item)
        except PayloadError as exc:
            raise invalid_response(response, str(exc), provider=self.name) from exc


class FmpProfile:
    """A company's profile, from FMP's ``/api/v3/profile``.

    Args:
        settings: The provider's configuration section.
    """

    def __init__(self, settings: ProviderSettings) -> None:
        self._settings = settings

    @property
    def name(self) -> str:
        """The provider's name, as configured."""
        return self._settings.name

    async def fetch(self, key: str, ctx: ProviderContext) -> Fundamentals:
        """Return the profile of symbol *key*.

        Raises:
            ProviderError: ``NOT_FOUND`` for an unknown symbol, or how the
                call failed.
        """
        response, item = await _get_item(ctx, "profile", key, provider=self.name)

        try:
            return _fundamentals_from(item)
        except PayloadError as exc:
            raise invalid_response(response, str(exc), provider=self.name) from exc


FACTORIES: Mapping[str, Callable[[ProviderSettings], Provider]] = (
    types.MappingProxyType({"fmp": FmpQuotes, "fmp_profile": FmpProfile})
)
"""Provider factories of this module, by provider type name."""


async def _get_item(
    ctx: ProviderContext, endpoint: str, key: str, *, provider: str
) -> tuple[httpx.Response, Mapping[str, Any]]:
    """Return the one object FMP's list holds for *key*."""
    api_key = ctx.settings.api_key
    if not api_key:
        raise ProviderError(
            ErrorCode.AUTH, "no FMP API key configured", provider=provider
        )

    base_url = (ctx.settings.base_url or DEFAULT_BASE_URL).rstrip("/")
    symbol = urllib.parse.quote(key.upper(), safe="")
    url = f"{base_url}/api/v3/{endpoint}/{symbol}"
    response = await send_get(ctx, url, provider=provider, params={"apikey": api_key})
    body = _read_body(response, api_key, provider)

    try:
        items = [require_mapping(item, "item") for item in require_list(body, "body")]
    except PayloadError as exc:
        raise invalid_response(response, str(exc), provider=provider) from exc

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


def _read_body(response: httpx.Response, api_key: str, provider: str) -> Any:
    if not response.is_success:
        message = _error_message(response)
        error = error_from_http(response, provider=provider)
        raise with_detail(error, excerpt(message, api_key) if message else None)

    body = decode_json(response, provider=provider)
    if isinstance(body, Mapping) and isinstance(body.get("Error Message"), str):
        raise _soft_error(response, body["Error Message"], api_key, provider)

    return body


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


def _error_message(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or None

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
