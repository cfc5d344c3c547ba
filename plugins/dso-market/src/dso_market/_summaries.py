"""Short renderings of market values, for the ``dso fetch`` table."""

from __future__ import annotations

from ._models import FilingSummary, Fundamentals, NewsArticle, Quote


def summarize_quote(quote: Quote) -> str:
    """Render a quote as ``AAPL 387.94 USD (+0.68%)``."""
    parts = [quote.symbol]
    if quote.price is not None:
        parts.append(f"{quote.price:,.2f}")

    if quote.currency:
        parts.append(quote.currency)

    if quote.change_percent is not None:
        parts.append(f"({quote.change_percent:+.2f}%)")

    return " ".join(parts)


def summarize_fundamentals(fundamentals: Fundamentals) -> str:
    """Render a profile as its name, sector and market capitalisation."""
    parts = [fundamentals.name or fundamentals.symbol]
    if fundamentals.sector:
        parts.append(fundamentals.sector)

    if fundamentals.market_cap is not None:
        parts.append(f"market cap {fundamentals.market_cap / 1e9:,.1f} bn")

    if fundamentals.pe_ratio is not None:
        parts.append(f"P/E {fundamentals.pe_ratio:.1f}")

    return " · ".join(parts)


def summarize_news(articles: tuple[NewsArticle, ...]) -> str:
    """Render articles as their count and the newest headline."""
    if not articles:
        return "no articles"

    newest = articles[0]
    title = newest.title if len(newest.title) <= 60 else newest.title[:59] + "…"
    return f"{len(articles)} articles; newest: {title} ({newest.provider})"


def summarize_filings(summary: FilingSummary) -> str:
    """Render a registrant as its name and latest filing."""
    if not summary.recent_filings:
        return f"{summary.name}: no recent filings"

    latest = summary.recent_filings[0]
    return (
        f"{summary.name}: {len(summary.recent_filings)} filings, "
        f"latest {latest.form} on {latest.filed_on.isoformat()}"
    )
