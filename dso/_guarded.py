"""A provider behind its limits, breaker, bulkhead, timeout and retries."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol, TypeVar, cast

import attrs
import httpx
import trio

from ._breaker import BreakerTransition, CircuitBreaker
from ._clock import trio_wall_clock
from ._config import ProviderSettings
from ._errors import ErrorCode, ProviderError
from ._http import error_from_http
from ._limits import ProviderLimits, Refusal
from ._provider import BatchProvider, Provider, ProviderContext
from ._redaction import redact_text
from ._results import Attempt
from ._retry import retry, worth_retrying
from ._telemetry import Telemetry


V = TypeVar("V")

SKIPPED = frozenset(code for code in ErrorCode if code.skipped)
"""Codes of attempts that never reached the provider."""

logger = logging.getLogger("dso")


class _CallDeadlinePassed(ProviderError):
    """The whole call's deadline, not the provider's timeout, ended it."""


class MovingDeadline(Protocol):
    """A deadline that may move later while an attempt runs.

    A shared call's deadline is the latest of its waiters', and a waiter
    joining with a later one extends it, attempts already running included.
    """

    @property
    def deadline(self) -> float:
        """The deadline now (trio time)."""
        ...

    def follow(
        self, scope: trio.CancelScope, limit: float
    ) -> AbstractContextManager[None]:
        """Keep *scope*'s deadline at the deadline, but never past *limit*."""
        ...


def _now_due(deadline: float | MovingDeadline) -> float:
    return deadline if isinstance(deadline, float | int) else deadline.deadline


def _following(
    deadline: float | MovingDeadline, scope: trio.CancelScope, limit: float
) -> AbstractContextManager[None]:
    if isinstance(deadline, float | int):
        return contextlib.nullcontext()

    return deadline.follow(scope, limit)


class GuardedProvider:
    """Calls a provider the careful way.

    Every try checks the provider's pause and quota, waits for a place in
    the provider's bulkhead (a `trio.CapacityLimiter`), asks the breaker,
    takes a token from the rate limit, runs under a cancel scope bounded
    by the attempt timeout and the caller's deadline, and turns whatever
    happened into an `Attempt`. A RATE_LIMIT error pauses the provider
    for every caller; transient failures are tried again.

    Args:
        provider: The provider to call.
        settings: Its configuration section.
        http: The shared HTTP client, handed to the provider.
        on_transition: Called with the breaker's state changes.
        telemetry: Where attempts, retries and pauses are reported.
    """

    def __init__(
        self,
        provider: Provider,
        settings: ProviderSettings,
        http: httpx.AsyncClient,
        *,
        on_transition: Callable[[BreakerTransition], None] | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.provider = provider
        self.settings = settings
        self.breaker = CircuitBreaker(
            provider.name,
            clock=trio.current_time,
            settings=settings.breaker,
            on_transition=on_transition,
        )
        self.limiter = trio.CapacityLimiter(settings.max_concurrency)
        self.limits = ProviderLimits(
            rate_limit=settings.rate_limit,
            quota=settings.quota,
            wait_for_token=settings.rate_limit_wait,
            max_pause=settings.max_pause,
            default_pause=settings.default_pause,
            # Only a quota needs wall time, to know where UTC days begin.
            wall=trio_wall_clock() if settings.quota else trio.current_time,
        )
        self.calls = 0
        self._http = http
        self._telemetry = telemetry

    @property
    def name(self) -> str:
        """The provider's name."""
        return self.provider.name

    @property
    def max_batch_size(self) -> int | None:
        """The provider's batch size, or ``None`` if it cannot batch."""
        if not isinstance(self.provider, BatchProvider):
            return None

        return max(1, int(self.provider.max_batch_size))

    async def fetch(
        self,
        key: str,
        *,
        namespace: str,
        deadline: float | MovingDeadline,
        accepts: Callable[[object], bool] = lambda value: True,
    ) -> tuple[object | None, tuple[Attempt, ...]]:
        """Try to fetch one key; return the value (or ``None``) and the tries.

        A value that *accepts* refuses is the provider's INVALID_RESPONSE.
        """

        async def call(ctx: ProviderContext) -> object:
            value = await self.provider.fetch(key, ctx)
            if value is not None and not accepts(value):
                message = f"provider returned a {type(value).__name__}, not {namespace}"
                raise ProviderError(ErrorCode.INVALID_RESPONSE, message)

            return value

        return await self._tries(call, namespace=namespace, deadline=deadline, key=key)

    async def fetch_batch(
        self,
        keys: Sequence[str],
        *,
        namespace: str,
        deadline: float | MovingDeadline,
    ) -> tuple[Mapping[str, object] | None, tuple[Attempt, ...]]:
        """Try to fetch a chunk of keys in one call; it costs one token."""
        provider = cast(BatchProvider, self.provider)

        async def call(ctx: ProviderContext) -> Mapping[str, object]:
            found = await provider.fetch_batch(keys, ctx)
            if not isinstance(found, Mapping):
                raise ProviderError(
                    ErrorCode.INVALID_RESPONSE,
                    f"fetch_batch returned {type(found).__name__}, not a mapping",
                )

            return found

        return await self._tries(
            call, namespace=namespace, deadline=deadline, keys=len(keys), batch=True
        )

    def _report(
        self,
        namespace: str,
        key: str | None,
        attempt: Attempt,
        found: object,
        *,
        batch: bool,
    ) -> None:
        # Each try is reported as it ends, not once the retries are over: a
        # caller who leaves during a retry's wait leaves its tries counted.
        telemetry = self._telemetry
        if telemetry is None:
            return

        if attempt.code in SKIPPED:
            telemetry.attempt_skipped(namespace, self.name, key, attempt.code)
            return

        telemetry.attempt_ended(
            namespace, self.name, key, attempt.code, attempt.duration
        )
        if batch:
            found_keys = len(cast(Mapping[str, object], found)) if attempt.ok else 0
            telemetry.batch_chunk_fetched(
                namespace,
                self.name,
                attempt.keys,
                found_keys,
                attempt.duration,
                attempt.code,
            )

    async def _tries(
        self,
        call: Callable[[ProviderContext], Awaitable[V]],
        *,
        namespace: str,
        deadline: float | MovingDeadline,
        keys: int = 1,
        key: str | None = None,
        batch: bool = False,
    ) -> tuple[V | None, tuple[Attempt, ...]]:
        value, first = await self._attempt(
            call, namespace=namespace, deadline=deadline, keys=keys, key=key
        )
        self._report(namespace, key, first, value, batch=batch)
        if not worth_retrying(first, self.settings.retries):
            return value, (first,)

        async def try_again(number: int) -> tuple[V | None, Attempt]:
            value, attempt = await self._attempt(
                call, namespace=namespace, deadline=deadline, keys=keys, key=key
            )
            attempt = attrs.evolve(attempt, retry=number)
            self._report(namespace, key, attempt, value, batch=batch)
            return value, attempt

        def on_wait(number: int, delay: float, failed: Attempt) -> None:
            if self._telemetry is not None and failed.code is not None:
                self._telemetry.retry_scheduled(
                    namespace, self.name, key, number, delay, failed.code
                )

        return await retry(
            first,
            try_again,
            self.settings.retries,
            clock=trio.current_time,
            deadline=lambda: _now_due(deadline),
            on_wait=on_wait,
        )

    def _skipped(self, refusal: Refusal, keys: int) -> tuple[None, Attempt]:
        return None, Attempt(self.name, refusal.code, refusal.message, keys=keys)

    async def _attempt(
        self,
        call: Callable[[ProviderContext], Awaitable[V]],
        *,
        namespace: str,
        deadline: float | MovingDeadline,
        keys: int = 1,
        key: str | None = None,
    ) -> tuple[V | None, Attempt]:
        # A paused provider or a spent quota need not wait in the bulkhead
        # to be refused.
        refusal = self.limits.check()
        if refusal is not None:
            return self._skipped(refusal, keys)

        # Waiting for a place in the bulkhead comes first and is bounded by
        # the call's deadline only: time spent queued behind our own calls
        # says nothing about the provider, so it neither takes a breaker
        # permit nor counts against the attempt's timeout.
        with trio.move_on_at(_now_due(deadline)) as queued:
            async with self.limiter:
                queued.deadline = math.inf
                return await self._attempt_with_place(
                    call, namespace, deadline, keys, key
                )

        message = "no free place in the bulkhead before the deadline"
        return None, Attempt(self.name, ErrorCode.TIMEOUT, message, keys=keys)

    async def _attempt_with_place(
        self,
        call: Callable[[ProviderContext], Awaitable[V]],
        namespace: str,
        deadline: float | MovingDeadline,
        keys: int,
        key: str | None,
    ) -> tuple[V | None, Attempt]:
        permit = self.breaker.try_acquire()
        if permit is None:
            skipped = Attempt(
                self.name, ErrorCode.CIRCUIT_OPEN, "circuit breaker is open", keys=keys
            )
            return None, skipped

        settled = False
        try:
            # The token is taken last, so that no skip spends one.
            if self.limits.wait_for_token:
                refusal = await self.limits.wait_and_take(_now_due(deadline))
            else:
                refusal = self.limits.take()
            if refusal is not None:
                return self._skipped(refusal, keys)

            self.calls += 1
            if self._telemetry is not None:
                self._telemetry.attempt_started(namespace, self.name, key)

            started = trio.current_time()
            try:
                value = await self._call_in_time(call, namespace, deadline)
            except ProviderError as exc:
                duration = trio.current_time() - started
                if isinstance(exc, _CallDeadlinePassed):
                    # The caller ran out of time, not the provider: like a
                    # cancellation, it says nothing about its health.
                    self.breaker.release(permit)
                else:
                    self.breaker.record_error(permit, exc.code, duration)
                settled = True
                message = self._pause_if_asked(exc)
                return None, Attempt(
                    self.name, exc.code, message, duration=duration, keys=keys
                )
            else:
                duration = trio.current_time() - started
                self.breaker.record_success(permit, duration)
                settled = True
                return value, Attempt(self.name, duration=duration, keys=keys)
        finally:
            # A skip by a limit, or a cancellation from outside, gets here
            # unsettled: neither says anything about the provider's health.
            if not settled:
                self.breaker.release(permit)

    def _pause_if_asked(self, exc: ProviderError) -> str:
        # The provider's message should carry no secret; a careless one's
        # still must not reach the caller's result, or the CLI's table.
        message = redact_text(exc.message)
        if exc.code is not ErrorCode.RATE_LIMIT:
            return message

        seconds = self.limits.pause(exc.retry_after)
        if self._telemetry is not None:
            # Reports and logs the pause at WARNING.
            self._telemetry.provider_paused(self.name, seconds)
        else:
            logger.warning("provider %s asked for a pause of %g s", self.name, seconds)
        return f"{message}; provider paused for {seconds:g} s"

    async def _call_in_time(
        self,
        call: Callable[[ProviderContext], Awaitable[V]],
        namespace: str,
        deadline: float | MovingDeadline,
    ) -> V:
        # TODO: the context's deadline is the one at the attempt's start; a
        # later joiner extends the scope but the provider's ctx.remaining()
        # does not see it. The bulkhead wait above does not follow an
        # extension either.
        limit = trio.current_time() + self.settings.timeout
        scope = trio.CancelScope(deadline=min(_now_due(deadline), limit))
        ctx = ProviderContext(self._http, self.settings, namespace, scope.deadline)

        with _following(deadline, scope, limit), scope:
            return await self._translated(call, ctx)

        if trio.current_time() < limit:
            raise _CallDeadlinePassed(
                ErrorCode.TIMEOUT, "the call's deadline passed", provider=self.name
            )

        raise ProviderError(ErrorCode.TIMEOUT, "no answer in time", provider=self.name)

    async def _translated(
        self, call: Callable[[ProviderContext], Awaitable[V]], ctx: ProviderContext
    ) -> V:
        try:
            value = await call(ctx)
        except ProviderError:
            raise
        except httpx.HTTPError as exc:
            raise error_from_http(exc, provider=self.name) from exc
        except Exception as exc:
            # A bug in the provider: it fails like an outage would, and the
            # traceback goes to the log, not to the caller's result.
            logger.warning(
                "provider %s raised %s", self.name, type(exc).__name__, exc_info=True
            )
            message = f"provider raised {type(exc).__name__}"
            raise ProviderError(
                ErrorCode.UNAVAILABLE, message, provider=self.name
            ) from exc

        if value is None:
            raise ProviderError(
                ErrorCode.INVALID_RESPONSE, "provider returned None", provider=self.name
            )

        return value


async def run_health_check(guarded: GuardedProvider, timeout: float) -> None:
    """Run *guarded*'s provider's ``health_check(ctx)``; raise if it fails.

    The check bypasses the breaker, the bulkhead and the rate limits: it
    asks whether the provider is well, and must answer even while the
    breaker is open.

    Raises:
        ProviderError: The check failed or did not finish within *timeout*.
    """
    check = guarded.provider.health_check  # type: ignore[attr-defined]
    deadline = trio.current_time() + timeout
    ctx = ProviderContext(guarded._http, guarded.settings, "", deadline)
    with trio.move_on_at(deadline):
        try:
            await check(ctx)
        except ProviderError:
            raise
        except httpx.HTTPError as exc:
            raise error_from_http(exc, provider=guarded.name) from exc

        return

    raise ProviderError(ErrorCode.TIMEOUT, "health check took too long")
