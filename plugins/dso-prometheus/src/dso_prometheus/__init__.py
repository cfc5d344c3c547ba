"""Prometheus metrics for dso, read from ``orch.stats()`` at scrape time.

::

    registry = dso_prometheus.register(orch)  # or pass your own registry
    # serve it with prometheus_client, or run `dso serve`, whose /metrics
    # finds this plugin by itself.
"""

from ._collector import DsoCollector as DsoCollector
from ._collector import register as register
from ._collector import render as render


__all__ = ["DsoCollector", "register", "render"]
