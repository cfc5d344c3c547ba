"""NewsAPI (newsapi.org): articles found by a search query, and top headlines.

The key travels in the ``X-Api-Key`` header, never in the query string.
Every error, whatever its status, comes in one envelope::

    {"status": "error", "code": "apiKeyInvalid", "message": "..."}

where a success says ``"status": "ok"``. The envelope's code refines what
the HTTP status alone would say (see `classify_error`).

NewsAPI tags no tickers: a search for ``AAPL`` is a full-text search, so
the articles' ``symbols`` stay empty rather than being guessed from the
query.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

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
    api_url,
    get_json,
    json_or_none,
    page_size_option,
    parse_iso_datetime,
    parse_text,
    require_list,
    require_mapping,
    require_text,
    require_value,
    translate_payload_errors,
    where,
)


DEFAULT_BASE_URL = "https://newsapi.org"
"""Where NewsAPI lives when the configuration names no ``base_url``."""

DEFAULT_PAGE_SIZE = 20
"""Articles asked for when ``options["page_size"]`` is not set."""

_MAX_PAGE_SIZE = 100

_ENVELOPE_CODES = {
    "apiKeyInvalid": ErrorCode.AUTH,
    # 426 Upgrade Required: a developer plan may not page past result 100.
    # Not RATE_LIMIT: that pauses the whole provider for every caller,
    # while this refuses only requests for results past #100 (other
    # searches still work) and waiting never lifts it. Like Alpha
    # Vantage's "Invalid API call", it is a call the plan cannot answer.
    "maximumResultsReached": ErrorCode.INVALID_RESPONSE,
    "rateLimited": ErrorCode.RATE_LIMIT,
}


class _NewsApiEndpoint(ConfiguredProvider):
    """What both NewsAPI endpoints share: the ``page_size`` option.

    It is checked when the provider is built, so that a bad value is a
    `dso.ConfigError` before any fetch.
    """

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self._page_size = page_size_option(
            settings, default=DEFAULT_PAGE_SIZE, maximum=_MAX_PAGE_SIZE
        )


class NewsApiSearch(_NewsApiEndpoint):
    """Articles that mention a search term, newest first (``/v2/everything``).

    The key is the search query (``bitcoin``, ``AAPL``...). Options:
    ``page_size``, the number of articles asked for (1 to 100, default 20).

    Raises:
        ConfigError: The ``page_size`` option is invalid.
    """

    async def fetch(self, key: str, ctx: ProviderContext) -> tuple[NewsArticle, ...]:
        """Return the newest articles matching *key*.

        Raises:
            ProviderError: NOT_FOUND when nothing matches; AUTH, RATE_LIMIT,
                TIMEOUT, UNAVAILABLE or INVALID_RESPONSE otherwise.
        """
        params = {"q": key, "pageSize": str(self._page_size), "sortBy": "publishedAt"}
        return await _fetch_articles("/v2/everything", params, ctx, self.name)


class NewsApiHeadlines(_NewsApiEndpoint):
    """A country's top headlines (``/v2/top-headlines``).

    The key is a two-letter country code (``us``, ``in``...). Options:
    ``page_size``, the number of articles asked for (1 to 100, default 20).

    Raises:
        ConfigError: The ``page_size`` option is invalid.
    """

    async def fetch(self, key: str, ctx: ProviderContext) -> tuple[NewsArticle, ...]:
        """Return the top headlines of the country *key*.

        Raises:
            ProviderError: NOT_FOUND when the country has none; AUTH,
                RATE_LIMIT, TIMEOUT, UNAVAILABLE or INVALID_RESPONSE
                otherwise.
        """
        params = {"country": key.strip().lower(), "pageSize": str(self._page_size)}
        return await _fetch_articles("/v2/top-headlines", params, ctx, self.name)


FACTORIES: Mapping[str, Callable[[ProviderSettings], Provider]] = {
    "newsapi": NewsApiSearch,
    "newsapi_headlines": NewsApiHeadlines,
}
"""The provider classes of this module by provider type name."""


def classify_error(
    response: httpx.Response, *, provider: str | None = None
) -> ProviderError:
    """Return the error that a NewsAPI error answer stands for.

    The envelope's code wins where it says more than the status does
    (``maximumResultsReached`` comes with 426, which says little). An
    unknown code, or a body that is no envelope at all (a proxy's HTML
    page, the replay server's plain-text 404), is judged by the status.

    Args:
        response: An answer with an error status or an error envelope.
        provider: The provider's name, for the error.
    """
    by_status = error_from_http(response, provider=provider)
    envelope_code = _envelope_code(response)
    if envelope_code is None:
        return by_status

    code = _ENVELOPE_CODES.get(envelope_code, by_status.code)
    message = f"{envelope_code} (HTTP {response.status_code}) from {where(response)}"
    return ProviderError(
        code, message, retry_after=by_status.retry_after, provider=provider
    )


async def _fetch_articles(
    path: str, params: Mapping[str, str], ctx: ProviderContext, provider: str
) -> tuple[NewsArticle, ...]:
    response, body = await get_json(
        ctx,
        api_url(ctx, DEFAULT_BASE_URL, path),
        provider=provider,
        params=params,
        headers={"X-Api-Key": ctx.settings.api_key or ""},
        classify=classify_error,
    )

    if isinstance(body, Mapping) and body.get("status") != "ok":
        raise classify_error(response, provider=provider)

    articles = _parse_articles(body, response, provider)
    if not articles:
        message = f"no articles from {where(response)}"
        raise ProviderError(ErrorCode.NOT_FOUND, message, provider=provider)

    return articles


def _envelope_code(response: httpx.Response) -> str | None:
    body = json_or_none(response)
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def _parse_articles(
    body: object, response: httpx.Response, provider: str
) -> tuple[NewsArticle, ...]:
    with translate_payload_errors(response, provider=provider):
        articles = require_list(
            require_mapping(body, "body").get("articles"), "articles"
        )
        return tuple(_parse_article(raw, provider) for raw in articles)


def _parse_article(raw: object, provider: str) -> NewsArticle:
    article = require_mapping(raw, "article")

    # Only "known" sources have an id (it is null for the others); every
    # source has a name.
    source = article.get("source")
    source_name = require_mapping(source, "source").get("name") if source else None

    return NewsArticle(
        url=require_text(article.get("url"), "url"),
        title=require_text(article.get("title"), "title"),
        published_at=require_value(
            parse_iso_datetime(article.get("publishedAt"), "publishedAt"),
            "publishedAt",
        ),
        source=parse_text(source_name, "source.name"),
        summary=parse_text(article.get("description"), "description"),
        provider=provider,
    )
