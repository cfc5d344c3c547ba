"""The TTL table: how long entries stay fresh, by namespace and tier."""

from __future__ import annotations

from collections.abc import Mapping

from ._config import Config, TtlSettings


class TtlTable:
    """Freshness and lifetime of cache entries, by namespace and tier.

    A namespace without a row uses the default row. A tier that a row
    does not list uses the row's ``fresh``; a tier that no row lists is a
    mistake and raises.

    Args:
        rows: The TTL settings by namespace name.
        default: The row of every other namespace.
    """

    def __init__(
        self, rows: Mapping[str, TtlSettings], default: TtlSettings | None = None
    ) -> None:
        self._rows = dict(rows)
        self._default = TtlSettings() if default is None else default
        self._tiers = _known_tiers([*self._rows.values(), self._default])

    @classmethod
    def from_config(cls, config: Config) -> TtlTable:
        """Build the table from the ``ttl`` of each configured namespace."""
        rows = {name: section.ttl for name, section in config.namespaces.items()}
        return cls(rows)

    def __repr__(self) -> str:
        return f"TtlTable({self._rows!r}, default={self._default!r})"

    @property
    def tiers(self) -> frozenset[str]:
        """Every tier some row names."""
        return self._tiers

    def fresh_for(
        self, namespace: str, tier: str | None = None, *, partial: bool = False
    ) -> float:
        """Return how many seconds an entry of *namespace* is fresh.

        Args:
            namespace: The entry's namespace.
            tier: The caller's tier; ``None`` for the row's own ``fresh``.
            partial: The entry is a merge built from fewer than all
                providers: the row's ``partial`` (a quarter of ``fresh``
                when unset), but never more than the tier's freshness.

        Raises:
            ValueError: No row names *tier*.
        """
        row = self._row(namespace)
        fresh = self._tier_fresh(row, tier)
        if not partial:
            return fresh

        partial_fresh = row.fresh / 4 if row.partial is None else row.partial
        return min(partial_fresh, fresh)

    def lifetime_for(self, namespace: str) -> float:
        """Return how long after storing an entry may still be served.

        That is the longest freshness of the row, over its tiers, plus its
        stale window; the orchestrator stores entries with
        ``expires_at = stored_at + lifetime``.
        """
        row = self._row(namespace)
        return max([row.fresh, *row.tiers.values()]) + row.stale

    def _row(self, namespace: str) -> TtlSettings:
        return self._rows.get(namespace, self._default)

    def _tier_fresh(self, row: TtlSettings, tier: str | None) -> float:
        if tier is None:
            return row.fresh

        if tier not in self._tiers:
            known = ", ".join(sorted(self._tiers)) or "none"
            raise ValueError(f"unknown tier {tier!r}; known tiers: {known}")

        return row.tiers.get(tier, row.fresh)


def _known_tiers(rows: list[TtlSettings]) -> frozenset[str]:
    return frozenset(tier for row in rows for tier in row.tiers)
