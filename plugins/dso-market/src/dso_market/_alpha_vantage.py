"""Quotes and company overviews from Alpha Vantage.

Every call is ``GET /query?function=...&symbol=...&apikey=...`` and every
answer is HTTP 200, errors included, as a one-key object:

- ``"Note"``: the per-minute call frequency was exceeded (RATE_LIMIT);
- ``"Information"``: the daily limit (RATE_LIMIT), or a demo key or a
  premium endpoint (AUTH);
- ``"Error Message"``: a missing or invalid key (AUTH), or "Invalid API
  call", which Alpha Vantage sends both for a malformed request and for
  some unknown symbols, naming the function and not the symbol. Since the
  text cannot tell the two apart, it is INVALID_RESPONSE rather than
  NOT_FOUND: calling it NOT_FOUND would hide a broken request behind a
  healthy-looking provider. Unknown symbols on the two functions used here
  come back empty instead (``{"Global Quote": {}}`` and ``{}``), which is
  NOT_FOUND.

Values are all strings, ``"None"`` or ``"-"`` when missing; quote keys are
numbered (``"05. price"``) and the change percent has a ``%`` suffix.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from dso import ErrorCode, Provider, ProviderContext, ProviderError, ProviderSettings

from ._configured import ConfiguredProvider
from ._models import Fundamentals, Quote
from ._parse import (
    api_url,
    excerpt,
    get_json,
    invalid_response,
    parse_cik,
    parse_float,
    parse_fraction_as_percent,
    parse_int,
    parse_percent,
    parse_text,
    require_api_key,
    require_mapping,
    require_text,
    translate_payload_errors,
    where,
)


DEFAULT_BASE_URL = "https://www.alphavantage.co"
"""Where Alpha Vantage lives when the configuration names no ``base_url``."""

# Words of an "Information" text that mean a rate limit, checked before
# the AUTH words: the daily-limit text also mentions the premium plans.
_RATE_LIMIT_WORDS = (
    "rate limit",
    "call frequency",
    "call volume",
    "per day",
    "per minute",
)
_AUTH_WORDS = ("demo", "premium", "api key", "apikey")


class AlphaVantageQuotes(ConfiguredProvider):
    """The latest quote of a symbol, from ``function=GLOBAL_QUOTE``.

    Alpha Vantage sends the trading day but not the time of the price, so
    ``as_of`` is ``None``, and it sends no currency.

    Args:
        settings: The provider's configuration section.
    """

    async def fetch(self, key: str, ctx: ProviderContext) -> Quote:
        """Return the latest quote for symbol *key*.

        Raises:
            ProviderError: ``NOT_FOUND`` for an unknown symbol, or how the
                call failed (see the module's notes for the soft errors).
        """
        response, body = await _query(ctx, "GLOBAL_QUOTE", key, provider=self.name)

        with translate_payload_errors(response, provider=self.name):
            fields = _unnumbered(
                require_mapping(body.get("Global Quote"), "Global Quote")
            )
            if not fields:
                raise _not_found(key, self.name)

            return _quote_from(fields)


class AlphaVantageOverview(ConfiguredProvider):
    """A company's profile and headline figures, from ``function=OVERVIEW``.

    The CIK is zero-padded to ten digits and the dividend yield, a
    fraction in Alpha Vantage's answer, is turned into percent.

    Args:
        settings: The provider's configuration section.
    """

    async def fetch(self, key: str, ctx: ProviderContext) -> Fundamentals:
        """Return the overview of symbol *key*.

        Raises:
            ProviderError: ``NOT_FOUND`` for an unknown symbol (an empty
                object), or how the call failed.
        """
        response, body = await _query(ctx, "OVERVIEW", key, provider=self.name)
        if not body:
            raise _not_found(key, self.name)

        with translate_payload_errors(response, provider=self.name):
            return _fundamentals_from(body)


FACTORIES: Mapping[str, Callable[[ProviderSettings], Provider]] = (
    types.MappingProxyType(
        {
            "alpha_vantage": AlphaVantageQuotes,
            "alpha_vantage_overview": AlphaVantageOverview,
        }
    )
)
"""Provider factories of this module, by provider type name."""


async def _query(
    ctx: ProviderContext, function: str, symbol: str, *, provider: str
) -> tuple[httpx.Response, Mapping[str, Any]]:
    api_key = require_api_key(ctx, "Alpha Vantage API key", provider=provider)
    params = {"function": function, "symbol": symbol.upper(), "apikey": api_key}
    response, body = await get_json(
        ctx, api_url(ctx, DEFAULT_BASE_URL, "/query"), provider=provider, params=params
    )

    if not isinstance(body, Mapping):
        raise invalid_response(response, "expected an object", provider=provider)

    soft_error = _soft_error(response, body, api_key, provider)
    if soft_error is not None:
        raise soft_error

    return response, body


def _soft_error(
    response: httpx.Response, body: Mapping[str, Any], api_key: str, provider: str
) -> ProviderError | None:
    for field, classify in _SOFT_ERRORS:
        message = body.get(field)
        if isinstance(message, str):
            return ProviderError(
                classify(message),
                f"{field} from {where(response)}: {excerpt(message, api_key)}",
                provider=provider,
            )

    return None


def _code_for_information(message: str) -> ErrorCode:
    lowered = message.lower()
    if any(words in lowered for words in _RATE_LIMIT_WORDS):
        return ErrorCode.RATE_LIMIT

    if any(words in lowered for words in _AUTH_WORDS):
        return ErrorCode.AUTH

    return ErrorCode.INVALID_RESPONSE


def _code_for_error_message(message: str) -> ErrorCode:
    # A missing or invalid key is also an "Error Message" ("the parameter
    # apikey is invalid or missing"); everything else is "Invalid API call".
    lowered = message.lower()
    if any(words in lowered for words in ("apikey", "api key")):
        return ErrorCode.AUTH

    return ErrorCode.INVALID_RESPONSE


_SOFT_ERRORS: tuple[tuple[str, Callable[[str], ErrorCode]], ...] = (
    ("Note", lambda _: ErrorCode.RATE_LIMIT),
    ("Information", _code_for_information),
    ("Error Message", _code_for_error_message),
)


def _unnumbered(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Return quote fields by name, without the ``"05. "`` numbering."""
    return {name.partition(". ")[2] or name: value for name, value in fields.items()}


def _quote_from(fields: Mapping[str, Any]) -> Quote:
    return Quote(
        symbol=require_text(fields.get("symbol"), "symbol").upper(),
        price=parse_float(fields.get("price"), "price"),
        open=parse_float(fields.get("open"), "open"),
        high=parse_float(fields.get("high"), "high"),
        low=parse_float(fields.get("low"), "low"),
        previous_close=parse_float(fields.get("previous close"), "previous close"),
        change=parse_float(fields.get("change"), "change"),
        change_percent=parse_percent(fields.get("change percent"), "change percent"),
        volume=parse_int(fields.get("volume"), "volume"),
    )


def _fundamentals_from(body: Mapping[str, Any]) -> Fundamentals:
    symbol = require_text(body.get("Symbol"), "Symbol")

    def text(field: str) -> str | None:
        return parse_text(body.get(field), field)

    def number(field: str) -> float | None:
        return parse_float(body.get(field), field)

    return Fundamentals(
        symbol=symbol.upper(),
        name=text("Name"),
        exchange=text("Exchange"),
        currency=text("Currency"),
        country=text("Country"),
        sector=text("Sector"),
        industry=text("Industry"),
        description=text("Description"),
        market_cap=number("MarketCapitalization"),
        pe_ratio=number("PERatio"),
        eps=number("EPS"),
        dividend_yield=parse_fraction_as_percent(
            body.get("DividendYield"), "DividendYield"
        ),
        beta=number("Beta"),
        shares_outstanding=parse_int(
            body.get("SharesOutstanding"), "SharesOutstanding"
        ),
        employees=parse_int(body.get("FullTimeEmployees"), "FullTimeEmployees"),
        cik=parse_cik(body.get("CIK")),
    )


def _not_found(key: str, provider: str) -> ProviderError:
    return ProviderError(
        ErrorCode.NOT_FOUND, f"Alpha Vantage has no data for {key!r}", provider=provider
    )
