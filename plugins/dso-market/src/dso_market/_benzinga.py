"""Benzinga news (api.benzinga.com): the newest articles tagging a ticker.

The token travels as the ``token`` query parameter, as Benzinga wants it,
which is one more reason no URL is ever put in a message. The answer is a
bare JSON array with no envelope and no total; without
``accept: application/json`` Benzinga would answer in XML.

A ``tickers=AAPL`` query returns every article that tags AAPL, among
others, and a page asked for ``tickers=AAPL,MSFT`` also holds articles
that tag only MSFT. This provider keeps only the articles that tag the
requested ticker, so that an answer for a key is about that key whatever
page it was cut from (the replay server serves the page recorded for
``AAPL,MSFT`` to a request for ``AAPL``, which is faithful once filtered).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import html
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

from ._configured import ConfiguredProvider
from ._models import NewsArticle
from ._parse import (
    PayloadError,
    api_url,
    get_json,
    json_or_none,
    page_size_option,
    parse_text,
    require_list,
    require_mapping,
    require_text,
    require_value,
    translate_payload_errors,
    where,
)


DEFAULT_BASE_URL = "https://api.benzinga.com"
"""Where Benzinga lives when the configuration names no ``base_url``."""

DEFAULT_PAGE_SIZE = 20
"""Articles asked for when ``options["page_size"]`` is not set."""

SOURCE = "Benzinga"
"""The publisher named on every article: Benzinga publishes what it serves."""

_MAX_PAGE_SIZE = 100


class BenzingaNews(ConfiguredProvider):
    """The newest Benzinga articles that tag a ticker.

    The key is a ticker (``AAPL``). Options: ``page_size``, the number of
    articles asked for (1 to 100, default 20); fewer may be returned, since
    articles that do not tag the key are dropped.

    Raises:
        ConfigError: The ``page_size`` option is invalid.
    """

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self._page_size = page_size_option(
            settings, default=DEFAULT_PAGE_SIZE, maximum=_MAX_PAGE_SIZE
        )

    async def fetch(self, key: str, ctx: ProviderContext) -> tuple[NewsArticle, ...]:
        """Return the newest articles that tag the ticker *key*.

        Raises:
            ProviderError: NOT_FOUND when no article tags *key*; AUTH,
                RATE_LIMIT, TIMEOUT, UNAVAILABLE or INVALID_RESPONSE
                otherwise.
        """
        ticker = key.strip().upper()
        response, body = await self._get(ticker, ctx)
        if _is_access_denied(body):
            raise classify_error(response, provider=self.name)

        articles = _parse_articles(body, response, self.name)
        tagged = tuple(article for article in articles if ticker in article.symbols)
        if not tagged:
            message = f"no articles tag {ticker} at {where(response)}"
            raise ProviderError(ErrorCode.NOT_FOUND, message, provider=self.name)

        return tagged[: self._page_size]

    async def _get(
        self, ticker: str, ctx: ProviderContext
    ) -> tuple[httpx.Response, Any]:
        params = {
            "tickers": ticker,
            "pageSize": str(self._page_size),
            "displayOutput": "full",
            "sort": "created:desc",
            "token": ctx.settings.api_key or "",
        }
        return await get_json(
            ctx,
            api_url(ctx, DEFAULT_BASE_URL, "/api/v2/news"),
            provider=self.name,
            params=params,
            headers={"accept": "application/json"},
            classify=classify_error,
        )


FACTORIES: Mapping[str, Callable[[ProviderSettings], Provider]] = {
    "benzinga": BenzingaNews,
}
"""The provider classes of this module by provider type name."""


def classify_error(
    response: httpx.Response, *, provider: str | None = None
) -> ProviderError:
    """Return the error that a Benzinga error answer stands for.

    Benzinga refuses a bad token with 401 and a JSON list of messages, such
    as ``["Access denied for user 0 ..."]``. That wording is
    AUTH whatever status comes with it; anything else is judged by the
    status.

    Args:
        response: An answer with an error status or an error body.
        provider: The provider's name, for the error.
    """
    if not _is_access_denied(json_or_none(response)):
        return error_from_http(response, provider=provider)

    message = f"access denied (HTTP {response.status_code}) by {where(response)}"
    return ProviderError(ErrorCode.AUTH, message, provider=provider)


def _is_access_denied(body: object) -> bool:
    return isinstance(body, list) and any(
        isinstance(item, str) and item.startswith("Access denied") for item in body
    )


def _parse_articles(
    body: object, response: httpx.Response, provider: str
) -> tuple[NewsArticle, ...]:
    with translate_payload_errors(response, provider=provider):
        articles = require_list(body, "body")
        return tuple(_parse_article(raw, provider) for raw in articles)


def _parse_article(raw: object, provider: str) -> NewsArticle:
    article = require_mapping(raw, "article")
    return NewsArticle(
        url=require_text(article.get("url"), "url"),
        title=require_text(article.get("title"), "title"),
        published_at=_rfc2822(article.get("created"), "created"),
        source=SOURCE,
        summary=_teaser(article.get("teaser")),
        symbols=_symbols(article.get("stocks")),
        provider=provider,
    )


def _rfc2822(value: object, what: str) -> dt.datetime:
    # Benzinga states -0400 all year round, even under EST. The offset is
    # kept as stated: the model asks for an aware datetime, not a true one.
    text = require_text(value, what)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"{what}: not an RFC 2822 date") from exc

    if moment.tzinfo is None:
        raise PayloadError(f"{what}: the date has no offset")

    return moment


def _teaser(value: object) -> str | None:
    # Teasers carry HTML entities (&#39;) and trailing blank lines, and an
    # automated item's teaser is a single space.
    text = parse_text(value, "teaser")
    if text is None:
        return None

    return html.unescape(text).strip() or None


def _symbols(value: object) -> tuple[str, ...]:
    if value is None:
        return ()

    # Tags may name non-equities, such as "$BTC"; they are kept as tagged.
    stocks = require_list(value, "stocks")
    names = (
        require_value(parse_text(require_mapping(stock, "stock").get("name")), "stock")
        for stock in stocks
    )
    return tuple(dict.fromkeys(name.upper() for name in names))
