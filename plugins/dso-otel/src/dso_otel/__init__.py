"""OpenTelemetry metrics for dso, read from ``orch.stats()`` when collected.

::

    meter = opentelemetry.metrics.get_meter("dso")
    dso_otel.instrument(orch, meter)

Only the API is needed here; the application chooses the SDK, its readers
and exporters.
"""

from ._instruments import instrument as instrument


__all__ = ["instrument"]
