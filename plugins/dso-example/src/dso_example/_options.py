"""The options both providers take: the window of days to return."""

from __future__ import annotations

import datetime as dt

import attrs

from dso import ConfigError, ProviderSettings


@attrs.frozen
class Window:
    """The days a provider returns bars for; ``None`` leaves a side open.

    Attributes:
        start: The first day, or ``None`` for the API's default.
        end: The last day, or ``None`` for the latest.
    """

    start: dt.date | None = None
    end: dt.date | None = None

    def holds(self, day: dt.date) -> bool:
        """Return whether *day* lies in the window."""
        after_start = self.start is None or day >= self.start
        return after_start and (self.end is None or day <= self.end)


def window_option(settings: ProviderSettings) -> Window:
    """Return the window the ``start_date`` and ``end_date`` options set.

    Raises:
        ConfigError: An option is not an ISO date, or the window is empty;
            the message names the option.
    """
    start = _date_option(settings, "start_date")
    end = _date_option(settings, "end_date")
    if start is not None and end is not None and end < start:
        raise ConfigError(
            f"providers.{settings.name}.options.end_date: {end} is before "
            f"start_date {start}"
        )

    return Window(start, end)


def _date_option(settings: ProviderSettings, name: str) -> dt.date | None:
    value = settings.options.get(name)
    if value is None or isinstance(value, dt.date):
        return value

    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        pass

    raise ConfigError(
        f"providers.{settings.name}.options.{name}: expected an ISO date such "
        f"as 2015-01-02, got {value!r}"
    )
