"""The hook implementation dso finds through the ``dso`` entry point."""

from __future__ import annotations

from collections.abc import Mapping

import dso

from ._backend import open_redis_cache


@dso.hookimpl
def dso_cache_backends() -> Mapping[str, dso.CacheBackendFactory]:
    """Return the ``redis`` backend factory."""
    return {"redis": open_redis_cache}
