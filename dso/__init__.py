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
from ._config import HealthSettings as HealthSettings
from ._config import NamespaceSettings as NamespaceSettings
from ._config import PluginSettings as PluginSettings
from ._config import ProviderSettings as ProviderSettings
from ._config import RetrySettings as RetrySettings
from ._config import TelemetrySettings as TelemetrySettings
from ._config import TtlSettings as TtlSettings
from ._config import load_config as load_config
from ._errors import CacheError as CacheError
from ._errors import ConfigError as ConfigError
from ._errors import DsoError as DsoError
from ._errors import ErrorCode as ErrorCode
from ._errors import OrchestratorClosed as OrchestratorClosed
from ._errors import ProviderError as ProviderError
from ._events import AttemptFailed as AttemptFailed
from ._events import AttemptSkipped as AttemptSkipped
from ._events import AttemptStarted as AttemptStarted
from ._events import AttemptSucceeded as AttemptSucceeded
from ._events import BatchChunkFetched as BatchChunkFetched
from ._events import BreakerTransitioned as BreakerTransitioned
from ._events import CacheFailed as CacheFailed
from ._events import CacheHit as CacheHit
from ._events import CacheMiss as CacheMiss
from ._events import CacheWritten as CacheWritten
from ._events import DedupJoined as DedupJoined
from ._events import Event as Event
from ._events import FetchFinished as FetchFinished
from ._events import MergeFinished as MergeFinished
from ._events import ProviderPaused as ProviderPaused
from ._events import RetryScheduled as RetryScheduled
from ._events import StaleServed as StaleServed
from ._exporter import Exposition as Exposition
from ._exporter import MetricsExporter as MetricsExporter
from ._exporter import StatsSource as StatsSource
from ._exporter import ThreadSafeSource as ThreadSafeSource
from ._guarded_cache import CacheBackendStatistics as CacheBackendStatistics
from ._health import Alert as Alert
from ._health import Health as Health
from ._health import HealthStatus as HealthStatus
from ._health import ProviderHealth as ProviderHealth
from ._hooks import ProviderFactory as ProviderFactory
from ._hooks import hookimpl as hookimpl
from ._http import check_response as check_response
from ._http import error_from_http as error_from_http
from ._http import parse_retry_after as parse_retry_after
from ._inflight import InflightCalls as InflightCalls
from ._inflight import InflightStatistics as InflightStatistics
from ._limits import LimitStatistics as LimitStatistics
from ._limits import ProviderLimits as ProviderLimits
from ._merge import ConcatDedupe as ConcatDedupe
from ._merge import FieldPriority as FieldPriority
from ._merge import Merge as Merge
from ._namespace import Namespace as Namespace
from ._ops_app import OpsApp as OpsApp
from ._ops_app import ops_app as ops_app
from ._ops_server import serve_ops as serve_ops
from ._orchestrator import USE_DEFAULT as USE_DEFAULT
from ._orchestrator import Orchestrator as Orchestrator
from ._orchestrator import OrchestratorStatistics as OrchestratorStatistics
from ._orchestrator import open_orchestrator as open_orchestrator
from ._provider import BatchProvider as BatchProvider
from ._provider import Provider as Provider
from ._provider import ProviderContext as ProviderContext
from ._quota import QuotaLimit as QuotaLimit
from ._rate import RateLimit as RateLimit
from ._redaction import RedactingFilter as RedactingFilter
from ._redaction import redact_text as redact_text
from ._redaction import redact_url as redact_url
from ._results import Attempt as Attempt
from ._results import BatchResult as BatchResult
from ._results import BatchSummary as BatchSummary
from ._results import FetchResult as FetchResult
from ._stats import NamespaceStats as NamespaceStats
from ._stats import ProviderStats as ProviderStats
from ._stats import Stats as Stats
from ._telemetry import Sink as Sink


__all__ = [
    "USE_DEFAULT",
    "Alert",
    "Attempt",
    "AttemptFailed",
    "AttemptSkipped",
    "AttemptStarted",
    "AttemptSucceeded",
    "BatchChunkFetched",
    "BatchProvider",
    "BatchResult",
    "BatchSummary",
    "BreakerSettings",
    "BreakerState",
    "BreakerStatistics",
    "BreakerTransition",
    "BreakerTransitioned",
    "CacheBackend",
    "CacheBackendFactory",
    "CacheBackendStatistics",
    "CacheEntry",
    "CacheError",
    "CacheFailed",
    "CacheHit",
    "CacheMiss",
    "CacheSettings",
    "CacheWritten",
    "CircuitBreaker",
    "ConcatDedupe",
    "Config",
    "ConfigError",
    "DedupJoined",
    "DsoError",
    "ErrorCode",
    "Event",
    "Exposition",
    "FetchFinished",
    "FetchResult",
    "FieldPriority",
    "Health",
    "HealthSettings",
    "HealthStatus",
    "InflightCalls",
    "InflightStatistics",
    "LimitStatistics",
    "Merge",
    "MergeFinished",
    "MetricsExporter",
    "Namespace",
    "NamespaceSettings",
    "NamespaceStats",
    "OpsApp",
    "Orchestrator",
    "OrchestratorClosed",
    "OrchestratorStatistics",
    "Permit",
    "PluginSettings",
    "Provider",
    "ProviderContext",
    "ProviderError",
    "ProviderFactory",
    "ProviderHealth",
    "ProviderLimits",
    "ProviderPaused",
    "ProviderSettings",
    "ProviderStats",
    "QuotaLimit",
    "RateLimit",
    "RedactingFilter",
    "RetryScheduled",
    "RetrySettings",
    "Sink",
    "StaleServed",
    "Stats",
    "StatsSource",
    "TelemetrySettings",
    "ThreadSafeSource",
    "TtlSettings",
    "WallClock",
    "check_response",
    "error_from_http",
    "hookimpl",
    "load_config",
    "open_orchestrator",
    "ops_app",
    "parse_retry_after",
    "redact_text",
    "redact_url",
    "serve_ops",
]
