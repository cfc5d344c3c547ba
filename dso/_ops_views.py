"""The operator's view in the terminal: health and stats as rich tables.

Both take the plain data of `Health.to_dict` and `Stats.to_dict`, so the
same views show an orchestrator opened here or a running ``dso serve``
read over HTTP.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text


_STYLES = {
    "ok": "green",
    "closed": "green",
    "degraded": "yellow",
    "half_open": "yellow",
    "disabled": "yellow",
    "failing": "red",
    "open": "red",
    "forced_open": "red",
}


def health_view(health: dict[str, Any]) -> RenderableType:
    """Return the overall status, each provider's, and the active alerts."""
    status = health["status"]
    headline = Text.assemble("health: ", _state(status))
    providers = Table(title="providers", title_justify="left")
    for column in ("provider", "status", "breaker", "reasons"):
        providers.add_column(column)

    for name, provider in health["providers"].items():
        providers.add_row(
            Text(name),
            _state(provider["status"]),
            _state(provider["breaker"]),
            Text("\n".join(provider["reasons"]) or "-"),
        )

    alerts = [Text(f"! {alert['message']}", style="red") for alert in health["alerts"]]
    return Group(headline, providers, *(alerts or [Text("no active alerts")]))


def stats_view(stats: dict[str, Any]) -> RenderableType:
    """Return the namespaces', providers' and totals' tables."""
    return Group(
        Text(f"up {stats['uptime']:.0f}s"),
        _namespaces(stats["namespaces"]),
        _providers(stats["providers"]),
        _totals(stats),
    )


def _namespaces(namespaces: dict[str, Any]) -> Table:
    table = Table(title="cache, per namespace", title_justify="left")
    for column in ("namespace", "hit rate", "recent", "hits", "misses", "stale"):
        table.add_column(column, justify="right")

    for name, space in namespaces.items():
        table.add_row(
            Text(name),
            _percent(space["hit_rate"]),
            _percent(space["recent_hit_rate"]),
            str(space["hits"]),
            str(space["misses"]),
            f"{space['stale_served']} ({_percent(space['stale_share'])})",
        )

    return table


def _providers(providers: dict[str, Any]) -> Table:
    table = Table(title="providers", title_justify="left")
    table.add_column("provider", no_wrap=True)
    table.add_column("breaker", no_wrap=True)
    for column in ("calls", "ok", "recent fail", "failures", "skips"):
        table.add_column(column, justify="right")

    table.add_column("p50 / p95 / p99", justify="right")
    table.add_column("quota", justify="right")

    for name, provider in providers.items():
        attempts = provider["attempts"]
        table.add_row(
            Text(name),
            _state(provider["breaker"]),
            str(attempts),
            _percent(provider["successes"] / attempts if attempts else None),
            _percent(provider["recent_failure_rate"]),
            _counts(provider["failures"]),
            _counts(provider["skips"]),
            " / ".join(
                _seconds(provider[field])
                for field in ("latency_p50", "latency_p95", "latency_p99")
            ),
            _percent(provider["quota_used"]),
        )

    return table


def _totals(stats: dict[str, Any]) -> Table:
    table = Table(title="savings and trouble", title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = (
        ("calls saved by joining", "dedup_joins"),
        ("calls saved by batching", "batch_calls_saved"),
        ("cache errors", "cache_errors"),
        ("events dropped", "events_dropped"),
        ("sink errors", "sink_errors"),
    )
    for label, field in rows:
        table.add_row(label, str(stats[field]))

    return table


def _state(state: str) -> Text:
    return Text(state, style=_STYLES.get(state, ""))


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"

    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"


def _counts(counts: dict[str, int]) -> Text:
    return Text(", ".join(f"{name} {count}" for name, count in counts.items()) or "0")
