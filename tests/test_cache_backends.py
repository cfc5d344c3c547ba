"""The three strategies against every core backend, from one shared suite.

Plugins run the same suite against theirs by subclassing
`dso.testing.CacheBackendSuite` (see dso-redis).
"""

from pathlib import Path
from typing import Any

import pytest

from dso.testing import CacheBackendSuite


class TestMemory(CacheBackendSuite):
    @pytest.fixture
    def cache_settings(self) -> dict[str, Any]:
        return {"backend": "memory"}


class TestSqlite(CacheBackendSuite):
    @pytest.fixture
    def cache_settings(self, tmp_path: Path) -> dict[str, Any]:
        return {"backend": "sqlite", "path": str(tmp_path / "cache.sqlite3")}


class TestTieredMemoryOverSqlite(CacheBackendSuite):
    @pytest.fixture
    def cache_settings(self, tmp_path: Path) -> dict[str, Any]:
        return {
            "backend": "tiered",
            "l1": {"backend": "memory", "max_entries": 100},
            "l2": {"backend": "sqlite", "path": str(tmp_path / "cache.sqlite3")},
            "l1_ttl": 30,
        }
