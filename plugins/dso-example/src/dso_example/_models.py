"""The value type of the ``daily_prices`` namespace."""

from __future__ import annotations

import datetime as dt

import attrs


@attrs.frozen
class DailyBar:
    """One trading day's prices, as the exchange reported them (unadjusted).

    Attributes:
        day: The trading day.
        open: The first price of the day.
        high: The highest price of the day.
        low: The lowest price of the day.
        close: The last price of the day.
        volume: Shares traded.
    """

    day: dt.date
    open: float
    high: float
    low: float
    close: float
    volume: int


@attrs.frozen
class PriceHistory:
    """The daily bars of one symbol, oldest first.

    Attributes:
        symbol: The ticker, upper case.
        bars: The bars, oldest first, one per trading day.
    """

    symbol: str
    bars: tuple[DailyBar, ...]


def summarize_history(history: PriceHistory) -> str:
    """Return one line for ``dso fetch``: the span and the last close."""
    first, last = history.bars[0], history.bars[-1]
    return (
        f"{history.symbol}: {len(history.bars)} bars {first.day}..{last.day}, "
        f"last close {last.close:.2f}"
    )
