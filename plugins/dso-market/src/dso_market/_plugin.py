"""The hook implementations dso finds through the ``dso`` entry point."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import dso

from . import _alpha_vantage, _benzinga, _fmp, _newsapi, _sec_edgar, _tiingo, _yahoo
from ._models import FilingSummary, Fundamentals, NewsArticle, Quote
from ._summaries import (
    summarize_filings,
    summarize_fundamentals,
    summarize_news,
    summarize_quote,
)


_MODULES = (_alpha_vantage, _benzinga, _fmp, _newsapi, _sec_edgar, _tiingo, _yahoo)

NEWS_LIMIT = 50
"""Articles kept by the default news merge."""


@dso.hookimpl
def dso_provider_factories() -> Mapping[str, dso.ProviderFactory]:
    """Return every market provider, by type name."""
    return {
        name: factory
        for module in _MODULES
        for name, factory in module.FACTORIES.items()
    }


@dso.hookimpl
def dso_namespaces() -> Sequence[dso.Namespace]:
    """Return the market namespaces and how their values merge."""
    return [
        dso.Namespace(
            "quotes",
            Quote,
            merge=dso.FieldPriority(),
            description="latest prices",
            summarize=summarize_quote,
        ),
        dso.Namespace(
            "fundamentals",
            Fundamentals,
            merge=dso.FieldPriority(),
            description="company profiles and headline figures",
            summarize=summarize_fundamentals,
        ),
        dso.Namespace(
            "news",
            tuple[NewsArticle, ...],
            merge=dso.ConcatDedupe(
                identity=_article_identity,
                sort_key=_article_time,
                reverse=True,
                limit=NEWS_LIMIT,
            ),
            description="news articles about a symbol, newest first",
            summarize=summarize_news,
        ),
        dso.Namespace(
            "filings",
            FilingSummary,
            merge=dso.FieldPriority(),
            description="SEC registrants and their recent filings",
            summarize=summarize_filings,
        ),
    ]


@dso.hookimpl
def dso_replay_routes() -> Sequence[Path]:
    """Return the route files of the recorded responses."""
    from . import replay_route_files

    return replay_route_files()


def _article_identity(article: NewsArticle) -> str:
    return article.url.rstrip("/").lower()


def _article_time(article: NewsArticle) -> float:
    return article.published_at.timestamp()
