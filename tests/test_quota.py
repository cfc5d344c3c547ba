"""Quotas: a daily or monthly budget per provider, on UTC calendar periods."""

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

import dso
from dso._quota import Quota
from dso.testing import FakeProvider


@asynccontextmanager
async def orchestrator(
    *providers: FakeProvider, **settings: dict[str, Any]
) -> AsyncIterator[dso.Orchestrator]:
    config = dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {"quotes": {"ttl": {"fresh": 600}}},
            "providers": settings,
        }
    )
    with trio.fail_after(3600):
        async with dso.open_orchestrator(config, providers=providers) as orch:
            yield orch


def utc(*parts: int) -> float:
    return dt.datetime(*parts, tzinfo=dt.UTC).timestamp()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("500/day", dso.QuotaLimit(500, "day")),
        ("10000/Month", dso.QuotaLimit(10000, "month")),
        ("25 / days", dso.QuotaLimit(25, "day")),
        (25, dso.QuotaLimit(25, "day")),
    ],
)
def test_quotas_are_read_from_their_written_forms(
    written: object, expected: dso.QuotaLimit
) -> None:
    """A "<calls>/day" or "<calls>/month" string, or calls per day, is understood."""
    config = dso.Config.from_dict({"providers": {"p": {"quota": written}}})

    assert expected == config.providers["p"].quota


@pytest.mark.parametrize("written", ["5/hour", "0/day", "2.5/day", 0, 2.5, True])
def test_a_bad_quota_names_its_field(written: object) -> None:
    """A quota that means nothing is refused with the field's path."""
    with pytest.raises(dso.ConfigError) as caught:
        dso.Config.from_dict({"providers": {"av": {"quota": written}}})

    assert str(caught.value).startswith("providers.av.quota: expected")


async def test_a_spent_quota_skips_the_provider(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Once the day's budget is used, the provider is skipped as QUOTA_EXHAUSTED."""
    keys = ["A", "B", "C", "D"]
    budgeted = FakeProvider("budgeted", dict.fromkeys(keys, 1))
    backup = FakeProvider("backup", dict.fromkeys(keys, 2))

    async with orchestrator(budgeted, backup, budgeted={"quota": "3/day"}) as orch:
        results = [
            await orch.fetch_with_fallback(
                key, ["budgeted", "backup"], namespace="quotes"
            )
            for key in keys
        ]
        used = orch.statistics().quota_used

    expected = [None, None, None, dso.ErrorCode.QUOTA_EXHAUSTED]
    assert expected == [result.attempts[0].code for result in results]
    assert (3, 2) == (len(budgeted.calls), results[-1].data)
    assert {"budgeted": 1.0} == used


async def test_quota_use_is_reported_as_a_fraction(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The orchestrator's and the provider's statistics report the quota used."""
    provider = FakeProvider("p", {"A": 1})
    other = FakeProvider("other", {"A": 1})

    async with orchestrator(provider, other, p={"quota": "4/day"}) as orch:
        await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
        used = orch.statistics().quota_used
        stats = orch.limits("p").statistics()

    assert {"p": 0.25} == used
    assert (dso.QuotaLimit(4), 1, 0.25) == (
        stats.quota,
        stats.quota_used,
        stats.quota_fraction,
    )


async def test_a_daily_quota_starts_again_at_utc_midnight(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The count of a daily quota goes back to 0 at 00:00 UTC, not 24 h later."""
    start = utc(2026, 3, 1, 23, 59)
    quota = Quota(dso.QuotaLimit(2), wall=lambda: start + trio.current_time())
    quota.spend()
    quota.spend()
    spent_before_midnight = quota.spent

    await trio.sleep(60)

    assert (True, False, 0) == (spent_before_midnight, quota.spent, quota.used)


async def test_a_monthly_quota_lasts_until_the_first_of_the_month(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A monthly quota is not renewed at midnight, only when the month changes."""
    start = utc(2026, 2, 27, 12)
    quota = Quota(dso.QuotaLimit(1, "month"), wall=lambda: start + trio.current_time())
    quota.spend()

    await trio.sleep(86400)
    next_day = quota.spent
    await trio.sleep(86400)

    assert (True, False) == (next_day, quota.spent)
