"""Health: the operator's verdict on a `Stats` snapshot, and its alerts.

`judge` is a pure function of a snapshot and the thresholds, so every
alert rule can be tested on numbers alone.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from ._config import HealthSettings
from ._stats import NamespaceStats, ProviderStats, Stats


class HealthStatus(enum.Enum):
    """How well things are going."""

    OK = "ok"
    """Nothing to report."""

    DEGRADED = "degraded"
    """Something crossed a threshold; data still flows."""

    FAILING = "failing"
    """No provider can be called: only the cache serves."""


@attrs.frozen
class Alert:
    """A threshold crossed.

    Attributes:
        rule: Which rule (``"hit_rate"``, ``"failure_rate"``,
            ``"breaker_open"``, ``"stale_share"``, ``"quota"``,
            ``"health_check"``).
        subject: The namespace or provider concerned.
        value: The measured value (0 or 1 for the rules that are states).
        threshold: The configured limit it crossed.
        message: The alert in words.
    """

    rule: str
    subject: str
    value: float
    threshold: float
    message: str


@attrs.frozen
class ProviderHealth:
    """One provider's status.

    Attributes:
        status: ``FAILING`` while its breaker is open or its last health
            check failed, ``DEGRADED`` while another of its alerts is
            active or its breaker is testing it, else ``OK``.
        breaker: Its breaker's state.
        reasons: The messages of its active alerts.
    """

    status: HealthStatus
    breaker: str
    reasons: tuple[str, ...] = ()


@attrs.frozen
class Health:
    """The overall verdict.

    Attributes:
        status: ``FAILING`` when every provider is failing, ``DEGRADED``
            when any alert is active, else ``OK``.
        providers: Each provider's status, by name.
        alerts: The active alerts.
    """

    status: HealthStatus
    providers: dict[str, ProviderHealth]
    alerts: tuple[Alert, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return the verdict as plain data, ready for JSON."""
        return attrs.asdict(self, value_serializer=lambda _, __, value: _plain(value))


def _plain(value: object) -> object:
    return value.value if isinstance(value, HealthStatus) else value


_OPEN = frozenset({"open", "forced_open"})


def judge(stats: Stats, settings: HealthSettings) -> Health:
    """Return the health that *stats* show under *settings*' thresholds."""
    alerts: list[Alert] = []
    for name, space in stats.namespaces.items():
        alerts.extend(_namespace_alerts(name, space, settings))

    for name, provider in stats.providers.items():
        alerts.extend(_provider_alerts(name, provider, settings))

    providers = {
        name: _provider_health(name, provider, alerts)
        for name, provider in stats.providers.items()
    }
    return Health(_overall(providers, alerts), providers, tuple(alerts))


def _namespace_alerts(
    name: str, space: NamespaceStats, settings: HealthSettings
) -> list[Alert]:
    if space.recent_lookups < settings.min_samples:
        return []

    alerts = []
    hit_rate = space.recent_hit_rate or 0.0
    if hit_rate < settings.min_hit_rate:
        alerts.append(
            Alert(
                "hit_rate",
                name,
                hit_rate,
                settings.min_hit_rate,
                f"cache hit rate of {name} is {hit_rate:.0%},"
                f" below {settings.min_hit_rate:.0%}",
            )
        )

    stale_share = space.recent_stale_share or 0.0
    if stale_share > settings.max_stale_share:
        alerts.append(
            Alert(
                "stale_share",
                name,
                stale_share,
                settings.max_stale_share,
                f"{name} served {stale_share:.0%} stale values,"
                f" above {settings.max_stale_share:.0%}",
            )
        )

    return alerts


def _provider_alerts(
    name: str, provider: ProviderStats, settings: HealthSettings
) -> list[Alert]:
    alerts = []
    if settings.alert_on_open_breaker and provider.breaker in _OPEN:
        alerts.append(
            Alert("breaker_open", name, 1.0, 0.0, f"the breaker of {name} is open")
        )

    failure_rate = provider.recent_failure_rate or 0.0
    if (
        provider.recent_attempts >= settings.min_samples
        and failure_rate > settings.max_failure_rate
    ):
        alerts.append(
            Alert(
                "failure_rate",
                name,
                failure_rate,
                settings.max_failure_rate,
                f"{name} failed {failure_rate:.0%} of recent calls,"
                f" above {settings.max_failure_rate:.0%}",
            )
        )

    if provider.quota_used is not None and provider.quota_used > settings.max_quota_use:
        alerts.append(
            Alert(
                "quota",
                name,
                provider.quota_used,
                settings.max_quota_use,
                f"{name} has used {provider.quota_used:.0%} of its quota,"
                f" above {settings.max_quota_use:.0%}",
            )
        )

    if provider.last_check_ok is False:
        alerts.append(
            Alert("health_check", name, 1.0, 0.0, f"the health check of {name} failed")
        )

    return alerts


def _provider_health(
    name: str, provider: ProviderStats, alerts: list[Alert]
) -> ProviderHealth:
    own = [alert for alert in alerts if alert.subject == name and alert.rule in _RULES]
    reasons = tuple(alert.message for alert in own)
    if provider.breaker in _OPEN or provider.last_check_ok is False:
        status = HealthStatus.FAILING
    elif own or provider.breaker == "half_open":
        status = HealthStatus.DEGRADED
    else:
        status = HealthStatus.OK

    return ProviderHealth(status, provider.breaker, reasons)


_RULES = frozenset({"breaker_open", "failure_rate", "quota", "health_check"})
"""The rules whose subject is a provider."""


def _overall(providers: dict[str, ProviderHealth], alerts: list[Alert]) -> HealthStatus:
    statuses = [provider.status for provider in providers.values()]
    if statuses and all(status is HealthStatus.FAILING for status in statuses):
        return HealthStatus.FAILING

    if alerts or any(status is not HealthStatus.OK for status in statuses):
        return HealthStatus.DEGRADED

    return HealthStatus.OK
