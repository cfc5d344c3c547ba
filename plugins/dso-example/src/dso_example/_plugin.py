"""The hook implementations dso finds through the ``dso`` entry point."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import dso

from ._alpha_vantage import AlphaVantageDaily
from ._models import PriceHistory, summarize_history
from ._tiingo import TiingoDaily


NAMESPACE = "daily_prices"
"""The namespace of `PriceHistory` values."""


@dso.hookimpl
def dso_provider_factories() -> Mapping[str, dso.ProviderFactory]:
    """Return the two providers, by type name."""
    return {"tiingo_daily": TiingoDaily, "alpha_vantage_daily": AlphaVantageDaily}


@dso.hookimpl
def dso_namespaces() -> Sequence[dso.Namespace]:
    """Return the ``daily_prices`` namespace."""
    return [
        dso.Namespace(
            NAMESPACE,
            PriceHistory,
            merge=dso.FieldPriority(),
            description="daily price bars of a symbol, oldest first",
            summarize=summarize_history,
        )
    ]


@dso.hookimpl
def dso_replay_routes() -> Sequence[Path]:
    """Return the route files of the recorded responses."""
    from . import replay_route_files

    return replay_route_files()
