"""Orchestrated fetching from outside APIs, for trio.

Say what you want (a key, a namespace, providers); dso decides how: which
cache to read, which provider to call, what to do when one is slow, down,
rate limited or lying, and what to tell operators about it.

::

    async with dso.open_orchestrator(config) as orch:
        result = await orch.fetch_with_fallback(
            "AAPL", ["tiingo", "yahoo"], namespace="quotes", allow_stale=True
        )
"""

from ._breaker import BreakerState as BreakerState
from ._breaker import BreakerStatistics as BreakerStatistics
from ._breaker import BreakerTransition as BreakerTransition
from ._breaker import CircuitBreaker as CircuitBreaker
from ._breaker import Permit as Permit
from ._cache import CacheBackend as CacheBackend
from ._cache import CacheBackendFactory as CacheBackendFactory
from ._cache import CacheEntry as CacheEntry
from ._cache import WallClock as WallClock
from ._config import BreakerSettings as BreakerSettings
from ._config import CacheSettings as CacheSettings
from ._config import Config as Config
from ._config import NamespaceSettings as NamespaceSettings
from ._config import PluginSettings as PluginSettings
from ._config import ProviderSettings as ProviderSettings
from ._config import TtlSettings as TtlSettings
from ._config import load_config as load_config
from ._errors import CacheError as CacheError
from ._errors import ConfigError as ConfigError
from ._errors import DsoError as DsoError
from ._errors import ErrorCode as ErrorCode
from ._errors import OrchestratorClosed as OrchestratorClosed
from ._errors import ProviderError as ProviderError
from ._guarded_cache import CacheBackendStatistics as CacheBackendStatistics
from ._hooks import ProviderFactory as ProviderFactory
from ._hooks import hookimpl as hookimpl
from ._http import check_response as check_response
from ._http import error_from_http as error_from_http
from ._http import parse_retry_after as parse_retry_after
from ._inflight import InflightCalls as InflightCalls
from ._inflight import InflightStatistics as InflightStatistics
from ._merge import ConcatDedupe as ConcatDedupe
from ._merge import FieldPriority as FieldPriority
from ._merge import Merge as Merge
from ._namespace import Namespace as Namespace
from ._orchestrator import USE_DEFAULT as USE_DEFAULT
from ._orchestrator import Orchestrator as Orchestrator
from ._orchestrator import OrchestratorStatistics as OrchestratorStatistics
from ._orchestrator import open_orchestrator as open_orchestrator
from ._provider import BatchProvider as BatchProvider
from ._provider import Provider as Provider
from ._provider import ProviderContext as ProviderContext
from ._results import Attempt as Attempt
from ._results import BatchResult as BatchResult
from ._results import BatchSummary as BatchSummary
from ._results import FetchResult as FetchResult


__all__ = [
    "USE_DEFAULT",
    "Attempt",
    "BatchProvider",
    "BatchResult",
    "BatchSummary",
    "BreakerSettings",
    "BreakerState",
    "BreakerStatistics",
    "BreakerTransition",
    "CacheBackend",
    "CacheBackendFactory",
    "CacheBackendStatistics",
    "CacheEntry",
    "CacheError",
    "CacheSettings",
    "CircuitBreaker",
    "ConcatDedupe",
    "Config",
    "ConfigError",
    "DsoError",
    "ErrorCode",
    "FetchResult",
    "FieldPriority",
    "InflightCalls",
    "InflightStatistics",
    "Merge",
    "Namespace",
    "NamespaceSettings",
    "Orchestrator",
    "OrchestratorClosed",
    "OrchestratorStatistics",
    "Permit",
    "PluginSettings",
    "Provider",
    "ProviderContext",
    "ProviderError",
    "ProviderFactory",
    "ProviderSettings",
    "TtlSettings",
    "WallClock",
    "check_response",
    "error_from_http",
    "hookimpl",
    "load_config",
    "open_orchestrator",
    "parse_retry_after",
]
