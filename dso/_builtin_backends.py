"""The built-in cache backends, offered through the same hook as plugins'."""

from __future__ import annotations

from collections.abc import Mapping

from ._cache import CacheBackendFactory
from ._hooks import hookimpl
from ._memory import open_memory_cache
from ._sqlite import open_sqlite_cache


@hookimpl
def dso_cache_backends() -> Mapping[str, CacheBackendFactory]:
    """Return the ``memory`` and ``sqlite`` backend factories."""
    return {"memory": open_memory_cache, "sqlite": open_sqlite_cache}
