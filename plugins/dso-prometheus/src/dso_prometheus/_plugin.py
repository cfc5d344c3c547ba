"""The hook implementation dso finds through the ``dso`` entry point."""

from __future__ import annotations

from collections.abc import Mapping

import dso

from ._collector import render


@dso.hookimpl
def dso_metrics_exporters() -> Mapping[str, dso.MetricsExporter]:
    """Offer the Prometheus text format as the ``prometheus`` exporter."""
    return {"prometheus": render}
