"""The market data model: what every provider's payload is parsed into.

Units are the same whatever the source: prices in the quote currency,
percentages in percent (``-2.5`` means -2.5 %), times as aware datetimes.
A field a provider does not send, or sends as null (after the close, for
example), is ``None``; it is never guessed.
"""

from __future__ import annotations

import datetime as dt

import attrs


@attrs.frozen
class Quote:
    """The latest price of a symbol.

    Attributes:
        symbol: The ticker, upper case.
        price: The last trade price (or the provider's best estimate of
            it after the close).
        open: The session's opening price.
        high: The session's high.
        low: The session's low.
        previous_close: The previous session's close.
        change: ``price - previous_close``.
        change_percent: The change in percent.
        volume: Shares traded in the session.
        currency: ISO 4217 code, when the provider says.
        as_of: When the price was observed.
    """

    symbol: str
    price: float | None = None
    open: float | None = None
    high: float | None = None
    low: float | None = None
    previous_close: float | None = None
    change: float | None = None
    change_percent: float | None = None
    volume: int | None = None
    currency: str | None = None
    as_of: dt.datetime | None = None


@attrs.frozen
class Fundamentals:
    """A company's profile and headline figures.

    Attributes:
        symbol: The ticker, upper case.
        name: The company's name.
        exchange: Where the symbol is listed.
        currency: The reporting currency.
        country: The country of the head office.
        sector: The sector, as the provider words it.
        industry: The industry, as the provider words it.
        description: A paragraph on the business.
        market_cap: Market capitalisation in *currency*.
        pe_ratio: Price to earnings.
        eps: Earnings per share.
        dividend_yield: Dividend yield in percent.
        beta: Beta against the market.
        shares_outstanding: Shares outstanding.
        employees: Full-time employees.
        cik: The SEC's identifier, zero-padded to ten digits.
    """

    symbol: str
    name: str | None = None
    exchange: str | None = None
    currency: str | None = None
    country: str | None = None
    sector: str | None = None
    industry: str | None = None
    description: str | None = None
    market_cap: float | None = None
    pe_ratio: float | None = None
    eps: float | None = None
    dividend_yield: float | None = None
    beta: float | None = None
    shares_outstanding: int | None = None
    employees: int | None = None
    cik: str | None = None


@attrs.frozen
class NewsArticle:
    """One news article about one or more symbols.

    Attributes:
        url: The article's address; also what identifies it across
            providers when merging.
        title: The headline, as published.
        published_at: When it was published.
        source: The publisher's name.
        summary: A short teaser or description.
        symbols: The tickers the provider tagged it with.
        provider: The provider it came from.
    """

    url: str
    title: str
    published_at: dt.datetime
    source: str | None = None
    summary: str | None = None
    symbols: tuple[str, ...] = ()
    provider: str | None = None


@attrs.frozen
class Filing:
    """One filing in a company's SEC history.

    Attributes:
        accession_number: The SEC's identifier of the filing.
        form: The form type (``10-K``, ``8-K``...).
        filed_on: The filing date.
        report_date: The period the filing reports on, if any.
        primary_document: The main document's file name.
    """

    accession_number: str
    form: str
    filed_on: dt.date
    report_date: dt.date | None = None
    primary_document: str | None = None


@attrs.frozen
class FilingSummary:
    """A company as the SEC knows it, with its most recent filings.

    Attributes:
        cik: The SEC's identifier, zero-padded to ten digits.
        name: The registrant's name.
        tickers: Its tickers.
        exchanges: Where they trade.
        sic: The Standard Industrial Classification code.
        sic_description: What the SIC code means.
        fiscal_year_end: ``MMDD``.
        recent_filings: The newest filings first (at most a configured
            number).
    """

    cik: str
    name: str
    tickers: tuple[str, ...] = ()
    exchanges: tuple[str, ...] = ()
    sic: str | None = None
    sic_description: str | None = None
    fiscal_year_end: str | None = None
    recent_filings: tuple[Filing, ...] = ()
