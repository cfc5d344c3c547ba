"""The orchestrator: the three fetch strategies over shared machinery."""

from __future__ import annotations

import copy
import enum
import functools
import logging
import math
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterable,
    Iterator,
    Sequence,
)
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    asynccontextmanager,
    contextmanager,
)
from types import TracebackType
from typing import Any, Final, NamedTuple, TypeAlias

import attrs
import httpx
import trio

from ._background import open_background_nursery
from ._batch import BatchRun
from ._breaker import BreakerState, BreakerTransition, CircuitBreaker
from ._cache import CacheBackend, CacheBackendFactory, WallClock
from ._chain import run_all, run_hedged, run_in_order
from ._clock import trio_wall_clock
from ._codec import Codec
from ._config import TIERED, CacheSettings, Config
from ._errors import ConfigError, OrchestratorClosed
from ._guarded import GuardedProvider, run_health_check
from ._guarded_cache import CacheBackendStatistics
from ._health import Health, judge
from ._inflight import InflightCalls, RunShared, SharedCall
from ._limits import ProviderLimits
from ._merge import Merge
from ._namespace import BoundNamespace, Namespace
from ._plugins import Plugins, load_plugins
from ._provider import Provider
from ._redaction import RedactingFilter
from ._results import (
    CACHE_SOURCE,
    DEADLINE_PASSED,
    BatchResult,
    FetchResult,
    cache_hit,
    not_found_from_cache,
)
from ._stats import Stats, StatsAggregator
from ._telemetry import Sink, Telemetry
from ._tiered import open_tiered_cache
from ._ttl import TtlTable
from ._typed_cache import CachedValue, CacheView, TypedCache


logger = logging.getLogger("dso")


_MAX_REMEMBERED_CHAINS = 256

_Route: TypeAlias = tuple[BoundNamespace, tuple[GuardedProvider, ...], CacheView]
"""Where a fetch goes: its namespace, its provider chain, its cache view."""


class _UseDefault(enum.Enum):
    USE_DEFAULT = enum.auto()


USE_DEFAULT: Final = _UseDefault.USE_DEFAULT
"""Means "the orchestrator's configured value", unlike ``None``, which
switches a limit off."""


class _NotRead(enum.Enum):
    # The cache was not read yet: its backend cannot answer without waiting.
    NOT_READ = enum.auto()


_NOT_READ: Final = _NotRead.NOT_READ


class _Foreground(NamedTuple):
    # The origin of a shared call a caller started after finding no fresh
    # value for its tier (see `SharedCall.origin`); refreshes have none.
    tier: str | None


@attrs.frozen
class OrchestratorStatistics:
    """A snapshot of what an orchestrator has done since it opened.

    Attributes:
        cache_hits: Fresh values served from the cache.
        cache_misses: Lookups that found nothing fresh.
        stale_served: Stale values served because providers failed.
        cache_errors: Cache backend operations that failed.
        provider_calls: Calls that reached a provider, by provider.
        calls_in_flight: Shared provider calls running now.
        dedup_joins: Requests that joined a call already in flight.
        breakers: Each provider's breaker state.
        quota_used: For each provider with a quota, the share of it used
            in the current period (0 to 1).
        cache_not_found_hits: Keys answered NOT_FOUND from the cache
            (``negative_ttl``), without a provider call.
        cache_backends: Each cache backend's breaker state and failures,
            by label: the backend's name, or ``l1:<name>`` and
            ``l2:<name>`` for the tiers of a tiered cache.
    """

    cache_hits: int
    cache_misses: int
    stale_served: int
    cache_errors: int
    provider_calls: dict[str, int]
    calls_in_flight: int
    dedup_joins: int
    breakers: dict[str, BreakerState]
    quota_used: dict[str, float] = attrs.Factory(dict)
    cache_not_found_hits: int = 0
    cache_backends: dict[str, CacheBackendStatistics] = attrs.Factory(dict)


class _RunningCall:
    """The scope of one public call, which closing the orchestrator cancels.

    So no caller goes on using a closed cache or HTTP client, and each one
    learns why it stopped. (A class rather than a generator: it is entered
    on every fetch.)
    """

    __slots__ = ("_running", "_scope")

    def __init__(self, running: set[trio.CancelScope]) -> None:
        self._running = running
        self._scope = trio.CancelScope()

    def __enter__(self) -> None:
        self._running.add(self._scope)
        self._scope.__enter__()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self._scope.__exit__(kind, error, traceback)
        finally:
            self._running.discard(self._scope)

        # The scope is only ever cancelled by closing; anything else that
        # was raised goes on as it was.
        if self._scope.cancelled_caught:
            raise OrchestratorClosed("the orchestrator closed during the call")


class Orchestrator:
    """Fetches data for keys through caches and providers.

    Made by `open_orchestrator`, never directly; pass it down to the code
    that needs it, as you would a nursery.
    """

    def __init__(
        self,
        *,
        config: Config,
        plugins: Plugins,
        namespaces: dict[str, BoundNamespace],
        providers: dict[str, GuardedProvider],
        cache: TypedCache,
        http: httpx.AsyncClient,
        nursery: trio.Nursery,
        telemetry: Telemetry,
    ) -> None:
        self.config = config
        self.plugins = plugins
        self._namespaces = namespaces
        self._providers = providers
        self._cache = cache
        self._http = http
        self._nursery = nursery
        self._telemetry = telemetry
        self._inflight: InflightCalls[FetchResult[Any]] = InflightCalls(
            nursery, finish_abandoned=config.finish_abandoned_calls
        )
        self._factories = plugins.provider_factories()
        self._chains: dict[tuple[object, ...], tuple[GuardedProvider, ...]] = {}
        self._routes: dict[tuple[object, ...], _Route] = {}
        self._stale_served = 0
        self._closed = False
        self._running: set[trio.CancelScope] = set()
        # The run's clock, held directly: every fetch reads it (for its
        # deadline, and a round trip's duration), and trio.current_time()
        # looks the run up each time.
        self._now = trio.lowlevel.current_clock().current_time

    async def fetch_with_fallback(
        self,
        key: str,
        providers: Sequence[str] | None = None,
        *,
        namespace: str,
        tier: str | None = None,
        allow_stale: bool = False,
        timeout: float | _UseDefault | None = USE_DEFAULT,
        hedge_after: float | _UseDefault | None = USE_DEFAULT,
        revalidate_within: float | _UseDefault | None = USE_DEFAULT,
    ) -> FetchResult[Any]:
        """Return the value for *key* from the cache or the first provider that has it.

        A fresh cached value is returned at once. Otherwise the providers
        are tried in order, skipping any whose breaker is open; the first
        success is cached and returned. Concurrent calls for the same key
        share one provider call.

        Args:
            key: What to fetch (a ticker, an id...).
            providers: Provider names in order of preference; defaults to
                the namespace's configured chain.
            namespace: Selects the value type, TTLs and cache key prefix.
            tier: Selects a TTL row (fresher data for some callers).
            allow_stale: When every provider fails, return the newest
                expired value still held, marked stale.
            timeout: Seconds the whole call may take; ``None`` for no
                limit; by default the configuration's ``timeout``.
            hedge_after: Start the next provider when the current one has
                not answered in this many seconds, keep the first good
                answer and cancel the rest; ``None`` to wait for each; by
                default the namespace's setting.
            revalidate_within: Serve a value that stopped being fresh less
                than this many seconds ago at once, marked stale, and
                refresh it in the background; by default the namespace's.

        Returns:
            The result; ``data`` is ``None`` when nothing could be had, and
            ``attempts`` says why.

        Raises:
            OrchestratorClosed: The orchestrator has shut down.
            LookupError: A provider or namespace name is unknown.
            ValueError: *key* is not valid Unicode text (a lone surrogate).
        """
        _check_key(key)
        space, chain, view = self._route(namespace, tier, providers)
        _check_seconds(timeout, hedge_after, revalidate_within)
        cached: CachedValue | _NotRead | None = _NOT_READ
        if view.reads_at_once:
            # The hit path: no coroutine below this one, one checkpoint,
            # taken before the read, so that a caller cancelled there is
            # counted nowhere and starts no provider call on a miss.
            await trio.lowlevel.checkpoint()
            cached = _read_at_once(view, key)
            if type(cached) is CachedValue and cached.fresh and not cached.not_found:
                self._telemetry.fresh_hit_served(
                    "fallback", space.name, key, cached.age
                )
                return cache_hit(
                    key, space.name, cached.value, cached.age, cached.partial
                )

        # The rest in a method of its own: its closure's cells would
        # otherwise be made on every hit too.
        return await self._fall_back(
            key,
            space,
            chain,
            view,
            cached,
            tier=tier,
            allow_stale=allow_stale,
            timeout=timeout,
            hedge_after=hedge_after,
            revalidate_within=revalidate_within,
        )

    async def fetch_with_merge(
        self,
        key: str,
        providers: Sequence[str] | None = None,
        *,
        namespace: str,
        merge: Merge[Any] | None = None,
        min_providers: int | None = None,
        tier: str | None = None,
        allow_stale: bool = False,
        timeout: float | _UseDefault | None = USE_DEFAULT,
        revalidate_within: float | _UseDefault | None = USE_DEFAULT,
    ) -> FetchResult[Any]:
        """Call every provider at once and merge what they return.

        Each provider runs under its own timeout; one's failure cancels no
        other. A merge built from fewer than all providers is marked
        ``partial`` and stays fresh in the cache for a shorter time.

        Args:
            key: What to fetch.
            providers: Provider names, in merge priority; defaults to the
                namespace's configured chain.
            namespace: Selects the value type, TTLs and default merge.
            merge: The strategy; defaults to the namespace's.
            min_providers: Successes needed; defaults to the namespace's
                setting. With fewer, ``data`` is ``None``.
            tier: Selects a TTL row.
            allow_stale: Fall back to a stale value when the merge fails.
            timeout: Seconds the whole call may take (see
                `fetch_with_fallback`).
            revalidate_within: Serve a just-expired value at once and
                refresh it in the background (see `fetch_with_fallback`).

        Raises:
            OrchestratorClosed: The orchestrator has shut down.
            LookupError: A provider or namespace name is unknown.
            ValueError: No merge strategy is given or declared, or *key* is
                not valid Unicode text.
        """
        _check_key(key)
        space, chain, view = self._route(namespace, tier, providers)
        _check_seconds(timeout, USE_DEFAULT, revalidate_within)
        strategy = merge or space.spec.merge
        if strategy is None:
            raise ValueError(f"namespace {space.name!r} declares no merge; pass one")

        needed = _min_providers(
            space.settings.min_providers if min_providers is None else min_providers,
            len(chain),
        )

        cached: CachedValue | _NotRead | None = _NOT_READ
        if view.reads_at_once:
            # As in fetch_with_fallback: the checkpoint before the read.
            await trio.lowlevel.checkpoint()
            cached = _read_at_once(view, key)
            if type(cached) is CachedValue and cached.fresh and not cached.not_found:
                self._telemetry.fresh_hit_served("merge", space.name, key, cached.age)
                return cache_hit(
                    key, space.name, cached.value, cached.age, cached.partial
                )

        return await self._merge(
            key,
            space,
            chain,
            view,
            cached,
            strategy,
            needed,
            tier=tier,
            allow_stale=allow_stale,
            timeout=timeout,
            revalidate_within=revalidate_within,
        )

    async def batch_fetch(
        self,
        keys: Iterable[str],
        provider: str | None = None,
        *,
        namespace: str,
        fallback_providers: Sequence[str] = (),
        tier: str | None = None,
        allow_stale: bool = False,
        timeout: float | _UseDefault | None = USE_DEFAULT,
    ) -> BatchResult[Any]:
        """Fetch many keys with as few provider calls as possible.

        Duplicate keys are fetched once. The cache is read in one round
        trip; the misses are split into chunks of the provider's
        ``max_batch_size`` and fetched concurrently within its concurrency
        limit (a provider that cannot batch is called per key). A key a
        chunk did not return is a per-key NOT_FOUND; keys that failed may
        fall back, one by one, to *fallback_providers*.

        Args:
            keys: The keys, in the order wanted.
            provider: The batch provider; defaults to the first of the
                namespace's chain.
            namespace: Selects the value type and TTLs.
            fallback_providers: Tried per key for the keys that failed.
            tier: Selects a TTL row.
            allow_stale: Serve stale values for keys that failed.
            timeout: Seconds the whole batch may take.

        Raises:
            OrchestratorClosed: The orchestrator has shut down.
            LookupError: A provider or namespace name is unknown.
            ValueError: A key is not valid Unicode text (a lone surrogate).
        """
        space = self._namespace(namespace, tier)
        primary = self._chain(None if provider is None else [provider], space)[0]
        fallbacks = self._chain(fallback_providers, space) if fallback_providers else ()
        deadline = self._deadline(timeout)

        distinct = _distinct(keys)
        run = BatchRun(
            space=space,
            primary=primary,
            fallbacks=fallbacks,
            cache=self._cache,
            fallback=self._rescue,
            deadline=deadline,
            inflight=self._inflight,
            call_key=lambda key: _call_key(space, key, (primary.name,), None),
            join=lambda key: self._shared(
                _call_key(space, key, (primary.name,), None),
                functools.partial(
                    run_in_order, key, space, [primary], cache=self._cache
                ),
                key,
                space,
                deadline,
                tier,
            ),
        )
        started = trio.current_time()
        with self._call():
            await run.read(distinct, tier)
            self._telemetry.batch_looked_up(space.name, distinct, run.found)
            try:
                with trio.move_on_at(deadline) as scope:
                    await run.fetch()
            finally:
                # What arrived is kept, whatever stopped the rest: the
                # deadline, the caller's cancellation, closing (as for a
                # single fetch). The cache's timeout bounds the wait.
                try:
                    with trio.CancelScope(shield=True):
                        await run.store()
                finally:
                    run.release()

        result = run.result(allow_stale, timed_out=scope.cancelled_caught)
        self._stale_served += result.summary.stale
        self._telemetry.batch_finished(
            space.name, primary.name, result, trio.current_time() - started
        )
        return result

    async def invalidate(self, namespace: str, key: str) -> None:
        """Remove the cached value of *key* in *namespace*, from every tier.

        A remembered NOT_FOUND goes too. Unlike reads and writes, a
        failure here is not ignored: a value that should be gone might
        still be served.

        Raises:
            CacheError: A backend (or a tier) failed to delete the entry.
            ValueError: *key* is not valid Unicode text (a lone surrogate).
        """
        _check_key(key)
        space = self._namespace(namespace)

        # Calls already running for the key belong to the old state: new
        # requests must not join them, and their answers must not be
        # cached over whatever comes next.
        self._inflight.supersede(
            lambda call: isinstance(call, tuple) and call[:2] == (space.name, key)
        )
        with self._call():
            await self._cache.delete(space, key)

    def statistics(self) -> OrchestratorStatistics:
        """Return counters since the orchestrator opened."""
        counters = self._cache.counters
        inflight = self._inflight.statistics()
        backends = self._cache.statistics()
        return OrchestratorStatistics(
            cache_hits=counters.hits,
            cache_misses=counters.misses,
            stale_served=self._stale_served,
            cache_errors=sum(backend.errors for backend in backends.values()),
            provider_calls={name: p.calls for name, p in self._providers.items()},
            calls_in_flight=inflight.calls,
            dedup_joins=inflight.joins,
            breakers={name: p.breaker.state for name, p in self._providers.items()},
            quota_used={
                name: p.limits.quota.fraction
                for name, p in self._providers.items()
                if p.limits.quota is not None
            },
            cache_not_found_hits=counters.not_found_hits,
            cache_backends=backends,
        )

    def cache_breaker(self, label: str) -> CircuitBreaker:
        """Return the circuit breaker in front of a cache backend.

        Args:
            label: The backend's label in `statistics`' ``cache_backends``
                (``"memory"``, ``"l2:sqlite"``...).

        Raises:
            LookupError: No cache backend has that label.
        """
        return self._cache.guard(label).breaker

    def stats(self) -> Stats:
        """Return the operator's figures: hit rates, provider calls, latencies.

        Counts run from the moment the orchestrator opened; the ``recent_``
        rates cover the last ``health.window`` seconds.
        """
        return self._telemetry.stats.snapshot(
            breakers={
                name: guarded.breaker.state.value
                for name, guarded in self._providers.items()
            },
            quotas={
                name: guarded.limits.quota.fraction
                for name, guarded in self._providers.items()
                if guarded.limits.quota is not None
            },
        )

    def health(self) -> Health:
        """Return the overall status, each provider's, and the active alerts.

        Thresholds come from the ``[health]`` configuration section.
        """
        return judge(self.stats(), self.config.health)

    async def check_providers(self) -> dict[str, bool]:
        """Run every provider's ``health_check`` at once; return how each went.

        Providers without one are left out. A check that raises, or takes
        longer than ``health.check_timeout``, failed; the outcome shows in
        `stats` and `health` until the next check.
        """
        self._check_open()
        checked: dict[str, bool] = {}
        with self._call():
            async with trio.open_nursery() as nursery:
                for guarded in list(self._providers.values()):
                    if callable(getattr(guarded.provider, "health_check", None)):
                        nursery.start_soon(self._check_provider, guarded, checked)

        return dict(sorted(checked.items()))

    async def _check_provider(
        self, guarded: GuardedProvider, checked: dict[str, bool]
    ) -> None:
        try:
            await run_health_check(guarded, self.config.health.check_timeout)
        except Exception as exc:
            ok = False
            logger.warning("health check of %s failed: %s", guarded.name, exc)
        else:
            ok = True

        checked[guarded.name] = ok
        self._telemetry.stats.health_checked(guarded.name, ok=ok)

    async def _check_providers_every(self, seconds: float) -> None:
        while True:
            await trio.sleep(seconds)
            await self.check_providers()

    def breaker(self, provider: str) -> CircuitBreaker:
        """Return the circuit breaker of *provider*.

        Use it to read its `~CircuitBreaker.statistics` or to take manual
        control with `~CircuitBreaker.reset`, `~CircuitBreaker.force_open`
        and `~CircuitBreaker.disable`.

        Raises:
            LookupError: No provider has that name.
        """
        return self._guarded(provider).breaker

    def limits(self, provider: str) -> ProviderLimits:
        """Return the rate limit, quota and pause state of *provider*.

        Read its `~ProviderLimits.statistics` for the quota used, the
        tokens left and the time left of a pause the provider asked for.

        Raises:
            LookupError: No provider has that name.
        """
        return self._guarded(provider).limits

    def _guarded(self, name: str) -> GuardedProvider:
        # Providers that have a factory but no configuration section are
        # built on first use, with the default settings.
        self._check_open()
        guarded = self._providers.get(name)
        if guarded is not None:
            return guarded

        offered = self._factories.get(name)
        if offered is None:
            known = ", ".join(sorted({*self._providers, *self._factories}))
            raise LookupError(f"unknown provider {name!r}; known: {known}")

        settings = self.config.provider_settings(name)
        guarded = _guard(offered.item(settings), settings, self._http, self._telemetry)
        self._providers[name] = guarded
        return guarded

    def _close(self) -> None:
        self._closed = True
        for scope in self._running:
            scope.cancel()

        # Reads of a backend outside the process run in the cache guard's
        # timeout scope, not in one of `_running`'s (see `_read_cache`).
        self._cache.cancel_reads()

    def _check_open(self) -> None:
        if self._closed:
            raise OrchestratorClosed("the orchestrator is closed")

    def _call(self) -> _RunningCall:
        self._check_open()
        return _RunningCall(self._running)

    def _namespace(self, name: str, tier: str | None = None) -> BoundNamespace:
        self._check_open()
        self._cache.check_tier(tier)
        space = self._namespaces.get(name)
        if space is None:
            known = ", ".join(sorted(self._namespaces)) or "none"
            raise LookupError(f"unknown namespace {name!r}; known: {known}")

        return space

    def _route(
        self, namespace: str, tier: str | None, providers: Sequence[str] | None
    ) -> _Route:
        # `_namespace` and `_chain` in one look-up, for a combination that
        # resolved before: a hit should not pay for the checks again. Only
        # so many are remembered, since callers may name any permutation.
        if self._closed or isinstance(providers, str):
            return self._resolve_route(namespace, tier, providers)

        # The names taken once, and resolved as taken: an iterator gives
        # them only once, and a list may change after the call.
        try:
            names = None if providers is None else tuple(providers)
        except TypeError:
            # Not iterable: `_chain` says so.
            return self._resolve_route(namespace, tier, providers)

        memo_key = (namespace, tier, names)
        try:
            route = self._routes.get(memo_key)
        except TypeError:
            # A name that is not hashable: `_chain` says what is wrong.
            return self._resolve_route(namespace, tier, names)

        if route is None:
            route = self._resolve_route(namespace, tier, names)
            if len(self._routes) < _MAX_REMEMBERED_CHAINS:
                self._routes[memo_key] = route

        return route

    def _resolve_route(
        self, namespace: str, tier: str | None, providers: Sequence[str] | None
    ) -> _Route:
        space = self._namespace(namespace, tier)
        return space, self._chain(providers, space), self._cache.view(space, tier)

    def _chain(
        self, names: Sequence[str] | None, space: BoundNamespace
    ) -> tuple[GuardedProvider, ...]:
        if isinstance(names, str):
            raise TypeError("providers must be a sequence of names, not a string")

        # Every fetch resolves its chain; a hit should not pay for the
        # checks again. Only chains that resolved are remembered, and only
        # so many, since callers may name any permutation.
        names = _names(names)
        try:
            memo_key = (space.name, names)
            chain = self._chains.get(memo_key)
        except TypeError:
            return self._resolve_chain(names, space)

        if chain is None:
            chain = self._resolve_chain(names, space)
            if len(self._chains) < _MAX_REMEMBERED_CHAINS:
                self._chains[memo_key] = chain

        return chain

    def _resolve_chain(
        self, names: Sequence[str] | None, space: BoundNamespace
    ) -> tuple[GuardedProvider, ...]:
        if names is None:
            names = space.settings.providers

        if not names:
            raise ValueError(
                f"no providers given, and namespace {space.name!r} configures none"
            )

        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"provider names must be strings, got {name!r}")

        duplicates = sorted({name for name in names if list(names).count(name) > 1})
        if duplicates:
            raise ValueError(f"provider named twice: {', '.join(duplicates)}")

        return tuple(self._guarded(name) for name in names)

    def _deadline(self, timeout: float | _UseDefault | None) -> float:
        if timeout is USE_DEFAULT:
            timeout = self.config.timeout

        if timeout is None:
            return math.inf

        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")

        if not timeout >= 0:
            raise ValueError(f"timeout must be 0 or more seconds, got {timeout}")

        return self._now() + timeout

    async def _fall_back(
        self,
        key: str,
        space: BoundNamespace,
        chain: tuple[GuardedProvider, ...],
        view: CacheView,
        cached: CachedValue | _NotRead | None,
        *,
        tier: str | None,
        allow_stale: bool,
        timeout: float | _UseDefault | None,
        hedge_after: float | _UseDefault | None,
        revalidate_within: float | _UseDefault | None,
    ) -> FetchResult[Any]:
        # `fetch_with_fallback` past a memory cache's hit path.
        hedge = _seconds("hedge_after", hedge_after, space.settings.hedge_after)
        names = tuple(guarded.name for guarded in chain)
        call_key = _call_key(space, key, names, hedge)

        async def fetch(call: SharedCall[FetchResult[Any]]) -> FetchResult[Any]:
            if hedge is None:
                return await run_in_order(key, space, chain, call, self._cache)

            return await run_hedged(key, space, chain, call, self._cache, hedge)

        return await self._fetch(
            "fallback",
            key,
            space,
            call_key,
            fetch,
            cached,
            view=view,
            tier=tier,
            allow_stale=allow_stale,
            timeout=timeout,
            revalidate_within=revalidate_within,
        )

    async def _merge(
        self,
        key: str,
        space: BoundNamespace,
        chain: tuple[GuardedProvider, ...],
        view: CacheView,
        cached: CachedValue | _NotRead | None,
        strategy: Merge[Any],
        needed: int,
        *,
        tier: str | None,
        allow_stale: bool,
        timeout: float | _UseDefault | None,
        revalidate_within: float | _UseDefault | None,
    ) -> FetchResult[Any]:
        # `fetch_with_merge` past a memory cache's hit path.
        names = tuple(guarded.name for guarded in chain)
        call_key = (space.name, key, "merge", names, strategy, needed)

        async def fetch(call: SharedCall[FetchResult[Any]]) -> FetchResult[Any]:
            result = await run_all(
                key, space, chain, strategy, needed, call, self._cache
            )
            self._telemetry.merge_finished(
                space.name, key, len(result.sources), len(chain), ok=result.ok
            )
            return result

        return await self._fetch(
            "merge",
            key,
            space,
            call_key,
            fetch,
            cached,
            view=view,
            tier=tier,
            allow_stale=allow_stale,
            timeout=timeout,
            revalidate_within=revalidate_within,
        )

    async def _fetch(
        self,
        strategy: str,
        key: str,
        space: BoundNamespace,
        call_key: tuple[object, ...],
        body: RunShared[FetchResult[Any]],
        cached: CachedValue | _NotRead | None,
        *,
        view: CacheView,
        tier: str | None,
        allow_stale: bool,
        timeout: float | _UseDefault | None,
        revalidate_within: float | _UseDefault | None,
    ) -> FetchResult[Any]:
        # Both strategies past a memory cache's hit path: a fresh value read
        # by waiting, else the rest (`_answer`), timed for telemetry.
        deadline = self._deadline(timeout)
        started = self._now()
        if cached is _NOT_READ and not self._joins_at_once(call_key, tier):
            # A backend that cannot answer at once (Redis, a tiered
            # backend's L2): a round trip, and on a fresh hit none of the
            # machinery below. When the read at once raised WouldBlock, the
            # backend is asked only for what that read could not answer.
            # A Redis hit costs 1.13x to 1.20x a bare GET in bench_redis.py
            # (issue 5 asks for 1.2x at most), 20 to 30 µs above
            # RedisCache.get: the guard's cancel scope (about a third; the
            # read's timeout, which closing also cancels), the codec's
            # decode, and the checks, counters and frozen result that the
            # memory hit shares. Anything added here shows in that ratio.
            cached = await self._read_cache(view, key, after_nowait=view.reads_at_once)
            served = self._served_fresh(strategy, key, space, cached, started)
            if served is not None:
                return served

        result = await self._answer(
            key,
            space,
            call_key,
            body,
            cached,
            view=view,
            tier=tier,
            allow_stale=allow_stale,
            deadline=deadline,
            revalidate_within=revalidate_within,
        )
        self._telemetry.fetch_finished(
            strategy,
            space.name,
            key,
            result.source,
            ok=result.ok,
            stale=result.stale,
            duration=self._now() - started,
        )
        return result

    async def _answer(
        self,
        key: str,
        space: BoundNamespace,
        call_key: tuple[object, ...],
        body: RunShared[FetchResult[Any]],
        cached: CachedValue | _NotRead | None,
        *,
        view: CacheView,
        tier: str | None,
        allow_stale: bool,
        deadline: float,
        revalidate_within: float | _UseDefault | None,
    ) -> FetchResult[Any]:
        # The path both fallback and merge take after a fresh hit was ruled
        # out: the cache, stale-while-revalidate, then the shared call, then
        # stale fallback. *cached* is what the cache answered, if it was
        # read: it is not when the caller joins a call already out (see
        # `_joins_at_once`). Only a cache read needs a scope that closing
        # cancels: afterwards the caller waits on a shared call, which
        # closing ends with OrchestratorClosed.
        revalidate = _seconds(
            "revalidate_within", revalidate_within, space.settings.revalidate_within
        )
        if cached is _NOT_READ:
            if self._joins_at_once(call_key, tier):
                # It reads the cache, a round trip, only if it needs a
                # stale value to fall back on.
                self._telemetry.cache_miss(space.name, key)
                result = await self._shared(call_key, body, key, space, deadline, tier)
                if result.ok or not allow_stale:
                    return result

                cached = await self._read_cache(view, key)
                return self._with_stale(result, cached, allow_stale)

            cached = await self._read_cache(view, key)

        if cached is not None and cached.fresh:
            self._telemetry.cache_hit(space.name, key, cached.age)
            return _from_cache(key, space, cached)

        self._telemetry.cache_miss(space.name, key)

        if (
            cached is not None
            and revalidate is not None
            and cached.expired_for < revalidate
        ):
            self._start_background(
                self._revalidate, call_key, body, deadline, space.name, key
            )
            self._stale_served += 1
            self._telemetry.stale_served(space.name, key, cached.age, revalidating=True)
            return _from_cache(key, space, cached, stale=True)

        result = await self._shared(call_key, body, key, space, deadline, tier)
        return self._with_stale(result, cached, allow_stale)

    def _joins_at_once(self, call_key: Hashable, tier: str | None) -> bool:
        # A caller of this tier found no fresh value moments ago and its
        # call is still out: this one would find the same, so it joins the
        # call without reading a cache that cannot answer at once (a round
        # trip). (A background refresh is not joined this way:
        # revalidation serves the stale value at once.)
        running = self._inflight.running(call_key)
        return (
            running is not None
            and running.origin == _Foreground(tier)
            and not running.done.is_set()
        )

    def _served_fresh(
        self,
        strategy: str,
        key: str,
        space: BoundNamespace,
        cached: CachedValue | None,
        started: float,
    ) -> FetchResult[Any] | None:
        # The result of a fresh value read by waiting, or None.
        if cached is None or not cached.fresh or cached.not_found:
            return None

        duration = self._now() - started
        self._telemetry.fresh_hit_served(
            strategy, space.name, key, cached.age, duration
        )
        return cache_hit(key, space.name, cached.value, cached.age, cached.partial)

    async def _read_cache(
        self, view: CacheView, key: str, *, after_nowait: bool = False
    ) -> CachedValue | None:
        if self._cache.in_process:
            # A backend in this process answers at once: there is nothing
            # for closing to cancel, and a scope would cost every read.
            return await view.read(key, after_nowait=after_nowait)

        # No scope of its own, which would cost every read about as much
        # as the cache guard's timeout scope: closing cancels that one
        # (`TypedCache.cancel_reads`), and the read comes back empty. A
        # read begun after closing would be cancelled by nothing.
        self._check_open()
        cached = await view.read(key, after_nowait=after_nowait)
        if self._closed:
            raise OrchestratorClosed("the orchestrator closed during the call")

        return cached

    def _start_background(
        self, function: Callable[..., Awaitable[None]], *args: Any
    ) -> None:
        try:
            self._nursery.start_soon(function, *args)
        except RuntimeError:
            # The nursery no longer accepts tasks: the orchestrator closed.
            raise OrchestratorClosed("the orchestrator closed") from None

    async def _shared(
        self,
        call_key: Hashable,
        body: RunShared[FetchResult[Any]],
        key: str,
        space: BoundNamespace,
        deadline: float,
        tier: str | None,
    ) -> FetchResult[Any]:
        if self._inflight.running(call_key) is not None:
            self._telemetry.dedup_joined(space.name, key)

        try:
            result = await self._inflight.call(
                call_key, body, deadline=deadline, origin=_Foreground(tier)
            )
        except trio.TooSlowError:
            return FetchResult(key, space.name, attempts=(DEADLINE_PASSED,))

        # Waiters share one result; each gets its own copy of the data, so
        # that one caller's mutation never reaches another. Immutable data
        # comes back from deepcopy as itself, and then so does the result.
        data = copy.deepcopy(result.data)
        if data is result.data:
            return result

        return attrs.evolve(result, data=data)

    async def _revalidate(
        self,
        call_key: Hashable,
        body: RunShared[FetchResult[Any]],
        deadline: float,
        namespace: str,
        key: str,
    ) -> None:
        # Runs in the orchestrator's nursery, sharing the call with any
        # other refresh or fetch of the key; the cache is all it feeds.
        try:
            await self._inflight.call(call_key, body, deadline=deadline)
        except (trio.TooSlowError, OrchestratorClosed):
            pass
        except Exception:
            # A refresh nobody waits for must not take the orchestrator
            # down; the stale value stays until the next try. The key is
            # shown as telemetry.keys says: it may be personal data.
            shown = self._telemetry.shown_key(key) or "(key omitted)"
            logger.warning("refreshing %s/%s failed", namespace, shown, exc_info=True)

    async def _rescue(
        self,
        key: str,
        space: BoundNamespace,
        chain: Sequence[GuardedProvider],
        call: SharedCall[FetchResult[Any]],
    ) -> FetchResult[Any]:
        # A batch's per-key fallback: not shared, but under the batch's
        # claim of the key, if any (see BatchRun).
        return await run_in_order(key, space, chain, call, self._cache)

    def _with_stale(
        self, result: FetchResult[Any], cached: CachedValue | None, allow_stale: bool
    ) -> FetchResult[Any]:
        if result.ok or not allow_stale or cached is None:
            return result

        self._stale_served += 1
        self._telemetry.stale_served(
            result.namespace, result.key, cached.age, revalidating=False
        )
        return attrs.evolve(
            result,
            data=cached.value,
            source=CACHE_SOURCE,
            cached=True,
            stale=True,
            age=cached.age,
            partial=cached.partial,
        )


@asynccontextmanager
async def open_orchestrator(
    config: Config | None = None,
    *,
    providers: Iterable[Provider] = (),
    namespaces: Iterable[Namespace] = (),
    plugins: Iterable[object] = (),
    cache: CacheBackend | None = None,
    http: httpx.AsyncClient | None = None,
    sinks: Iterable[Sink] = (),
) -> AsyncIterator[Orchestrator]:
    """Open an orchestrator, and close everything it opened on exit.

    It opens the cache backend, the shared HTTP client and a nursery for
    background work. Leaving the block cancels that work and closes them.

    Args:
        config: The configuration; the defaults when omitted.
        providers: Provider instances to use besides those the
            configuration builds (their settings are looked up by name).
        namespaces: Namespaces to declare besides the plugins' ones.
        plugins: Plugin objects to register besides the discovered ones.
        cache: A backend to use instead of the configured one; the caller
            keeps ownership of it.
        http: An HTTP client to share instead of opening one; the caller
            keeps ownership of it.
        sinks: Telemetry sinks besides the plugins' ``dso_event`` hooks:
            callables that receive every `Event`, in a worker thread.

    Raises:
        ConfigError: The configuration names an unknown provider type or
            cache backend.
        TypeError: A telemetry sink is an async function.
    """
    config = Config() if config is None else config
    loaded = load_plugins(config.plugins, extra=plugins)
    spaces = _bind_namespaces(config, loaded, namespaces)

    async with AsyncExitStack() as stack:
        stack.enter_context(_redacting_logs())
        if http is None:
            http = await stack.enter_async_context(_open_http(config))

        clock = trio_wall_clock()
        backend = cache
        if backend is None:
            backend = await stack.enter_async_context(
                _open_backend(config.cache, loaded, clock, "cache")
            )

        telemetry = Telemetry(
            StatsAggregator(config.health.window),
            clock,
            config.telemetry,
            [*(offered.item for offered in loaded.event_sinks()), *sinks],
        )
        typed_cache = TypedCache(
            backend,
            Codec(),
            TtlTable.from_config(config),
            clock,
            config.cache.prefix,
            config.cache.timeout,
            config.cache.breaker,
            listener=telemetry,
        )
        # Whatever ends the opening, the cache's guards are let go for the
        # next orchestrator (see `GuardedBackend.allow_reads`).
        stack.callback(typed_cache.cancel_reads)
        guarded = _guard_all(config, loaded, providers, http, telemetry)
        # The backends close after the writes under way, each bounded by
        # the cache's timeout: a batch's store runs in its caller's task,
        # outside the nursery below, and is shielded from closing.
        stack.push_async_callback(_shielded, typed_cache.wait_writes)
        async with open_background_nursery() as nursery:
            orchestrator = Orchestrator(
                config=config,
                plugins=loaded,
                namespaces=spaces,
                providers=guarded,
                cache=typed_cache,
                http=http,
                nursery=nursery,
                telemetry=telemetry,
            )
            if telemetry.has_sinks:
                nursery.start_soon(telemetry.deliver)

            if config.health.check_every is not None:
                nursery.start_soon(
                    orchestrator._check_providers_every, config.health.check_every
                )

            try:
                yield orchestrator
            finally:
                orchestrator._close()


@contextmanager
def _redacting_logs() -> Iterator[None]:
    # httpx logs every request's full URL at INFO, query-string API keys
    # included; dso's own messages are redacted where they are made, and
    # the filter is a second guard for what providers log.
    redacting = RedactingFilter()
    loggers = [logging.getLogger(name) for name in _redacted_logger_names()]
    for each in loggers:
        each.addFilter(redacting)

    try:
        yield
    finally:
        for each in loggers:
            each.removeFilter(redacting)


def _redacted_logger_names() -> list[str]:
    # A logger's filters see only records logged on it, not those that
    # propagate from its children ("dso.ops", a plugin's "dso.redis"), so
    # each one that exists when the orchestrator opens gets the filter too.
    # TODO: a "dso.*" logger first created while an orchestrator is open
    # stays unfiltered; logging offers no hook for loggers yet to come.
    roots = ("dso", "httpx", "httpcore")
    # Copied at once: a worker thread may be creating a logger meanwhile.
    known = list(logging.Logger.manager.loggerDict)
    children = [
        name for name in known if name.startswith(tuple(f"{root}." for root in roots))
    ]
    return [*roots, *sorted(children)]


def _from_cache(
    key: str, space: BoundNamespace, cached: CachedValue, *, stale: bool = False
) -> FetchResult[Any]:
    if cached.not_found:
        return not_found_from_cache(key, space.name, cached.age)

    # Positional: on the hit path, keywords make this call twice as slow.
    return FetchResult(
        key,
        space.name,
        cached.value,
        CACHE_SOURCE,
        True,
        stale,
        cached.age,
        cached.partial,
    )


def _seconds(
    name: str, value: float | _UseDefault | None, default: float | None
) -> float | None:
    if value is USE_DEFAULT:
        return default

    if value is None:
        return None

    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")

    if not value >= 0:
        raise ValueError(f"{name} must be 0 or more seconds, got {value}")

    return float(value)


async def _shielded(wait: Callable[[], Awaitable[None]]) -> None:
    with trio.CancelScope(shield=True):
        await wait()


def _read_at_once(view: CacheView, key: str) -> CachedValue | _NotRead | None:
    # A backend in this process answers without a coroutine or a scope; the
    # caller asks only one that `reads_at_once`, which saves raising
    # WouldBlock on every read of any other backend.
    try:
        return view.read_nowait(key)
    except trio.WouldBlock:
        return _NOT_READ


def _check_seconds(
    timeout: float | _UseDefault | None,
    hedge_after: float | _UseDefault | None,
    revalidate_within: float | _UseDefault | None,
) -> None:
    # Before the cache is read, so that a bad value fails on a hit too; the
    # values are used only after a miss.
    if timeout is hedge_after is revalidate_within is USE_DEFAULT:
        return

    _seconds("timeout", timeout, None)
    _seconds("hedge_after", hedge_after, None)
    _seconds("revalidate_within", revalidate_within, None)


def _names(providers: Iterable[str] | None) -> tuple[str, ...] | None:
    # Provider names as a tuple, read once (see `Orchestrator._route`).
    if providers is None or type(providers) is tuple:
        return providers

    try:
        return tuple(providers)
    except TypeError:
        raise TypeError(
            f"providers must be a sequence of names, got {providers!r}"
        ) from None


def _call_key(
    space: BoundNamespace, key: str, names: tuple[str, ...], hedge: float | None
) -> tuple[object, ...]:
    # What makes two fallback fetches the same call; batches use it too.
    return (space.name, key, "fallback", names, hedge)


def _check_key(key: object) -> None:
    if not isinstance(key, str):
        raise TypeError(f"key must be a string, got {key!r}")

    # A lone surrogate cannot be encoded: every backend that stores keys
    # as text would fail on it, and one caller's bad key would open the cache's
    # breaker for everyone.
    if not key.isascii():
        try:
            key.encode()
        except UnicodeEncodeError:
            raise ValueError(f"key must be valid Unicode text, got {key!r}") from None


def _min_providers(needed: object, available: int) -> int:
    if isinstance(needed, bool) or not isinstance(needed, int):
        raise TypeError(f"min_providers must be an integer, got {needed!r}")

    if not 1 <= needed <= available:
        raise ValueError(
            f"min_providers must be between 1 and {available}, got {needed}"
        )

    return needed


def _distinct(keys: Iterable[str]) -> list[str]:
    if isinstance(keys, str):
        raise TypeError("keys must be an iterable of strings, not a string")

    distinct = list(dict.fromkeys(keys))
    if not _all_valid(distinct):
        for key in distinct:
            _check_key(key)

    return distinct


def _all_valid(keys: list[str]) -> bool:
    # `_check_key` for all keys at once, which a batch of thousands can
    # tell in one pass over their text; only when that says no are they
    # checked one by one, so that the error names the bad key. Strings
    # keep the code points they are given (two halves of a surrogate pair
    # stay two), so the joined text encodes if and only if every key does.
    try:
        joined = "".join(keys)
    except TypeError:
        return False

    if joined.isascii():
        return True

    try:
        joined.encode()
    except UnicodeEncodeError:
        return False

    return True


def _bind_namespaces(
    config: Config, plugins: Plugins, extra: Iterable[Namespace]
) -> dict[str, BoundNamespace]:
    specs = {name: offered.item for name, offered in plugins.namespaces().items()}
    specs.update((namespace.name, namespace) for namespace in extra)
    for name in config.namespaces:
        specs.setdefault(name, Namespace(name))

    return {
        name: BoundNamespace(spec, config.namespace_settings(name))
        for name, spec in specs.items()
    }


def _open_http(config: Config) -> httpx.AsyncClient:
    # No httpx timeout: every attempt runs under a trio cancel scope, which
    # bounds connecting, sending and reading alike. httpx logs each
    # request's full URL, API keys included: `_redacting_logs` covers it.
    return httpx.AsyncClient(headers={"user-agent": config.user_agent}, timeout=None)


def _open_backend(
    settings: CacheSettings, plugins: Plugins, clock: WallClock, path: str
) -> AbstractAsyncContextManager[CacheBackend]:
    if settings.backend == TIERED:
        # The tiers are looked up like any backend, so a plugin's can be L2.
        def open_tier(
            tier: CacheSettings, tier_path: str
        ) -> AbstractAsyncContextManager[CacheBackend]:
            return _open_backend(tier, plugins, clock, tier_path)

        return open_tiered_cache(settings, clock, open_tier)

    backends = plugins.cache_backends()
    offered = backends.get(settings.backend)
    if offered is None:
        known = ", ".join(sorted([*backends, TIERED]))
        raise ConfigError(
            f"{path}.backend: unknown backend {settings.backend!r}; known: {known}"
        )

    factory: CacheBackendFactory = offered.item
    opened = factory(settings, clock)
    return opened if path == "cache" else _errors_under(opened, path)


@asynccontextmanager
async def _errors_under(
    opened: AbstractAsyncContextManager[CacheBackend], path: str
) -> AsyncIterator[CacheBackend]:
    # Factories name their fields from "cache."; a tier's live under its
    # own path ("cache.l2.path"), and that is what the user must fix.
    entered = False
    try:
        async with opened as backend:
            entered = True
            yield backend
    except ConfigError as exc:
        message = str(exc)
        if entered or not message.startswith("cache."):
            raise

        raise ConfigError(f"{path}.{message.removeprefix('cache.')}") from None


def _guard_all(
    config: Config,
    plugins: Plugins,
    providers: Iterable[Provider],
    http: httpx.AsyncClient,
    telemetry: Telemetry,
) -> dict[str, GuardedProvider]:
    factories = plugins.provider_factories()
    guarded = {}
    for provider in providers:
        if provider.name in guarded:
            raise ValueError(f"provider {provider.name!r} is given twice")

        settings = config.provider_settings(provider.name)
        guarded[provider.name] = _guard(provider, settings, http, telemetry)

    for name, settings in config.providers.items():
        if name in guarded:
            continue

        offered = factories.get(settings.kind)
        if offered is None:
            known = ", ".join(sorted(factories)) or "none installed"
            raise ConfigError(
                f"providers.{name}.type: unknown provider type {settings.kind!r}; "
                f"known: {known}"
            )

        guarded[name] = _guard(offered.item(settings), settings, http, telemetry)

    return guarded


def _guard(
    provider: Provider, settings: Any, http: httpx.AsyncClient, telemetry: Telemetry
) -> GuardedProvider:
    def on_transition(transition: BreakerTransition) -> None:
        _log_transition(transition)
        telemetry.breaker_transitioned(transition)

    return GuardedProvider(
        provider, settings, http, on_transition=on_transition, telemetry=telemetry
    )


def _log_transition(transition: BreakerTransition) -> None:
    level = logging.WARNING if transition.new is BreakerState.OPEN else logging.INFO
    logger.log(
        level,
        "circuit breaker %s: %s -> %s (%s)",
        transition.name,
        transition.old.value,
        transition.new.value,
        transition.reason,
        extra={"provider": transition.name, "breaker_state": transition.new.value},
    )
