"""A cache backend behind a circuit breaker and a timeout.

A cache that fails is treated like a failed provider: a read that raises
or takes too long is a miss, a write is skipped, and the fetch goes on.
After a few failures in a row the breaker opens and the backend is not
asked at all for a while, so an outage costs no timeouts; then a trial
operation tests it, and the first that works closes the breaker again.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import attrs
import trio

from ._breaker import BreakerState, BreakerTransition, CircuitBreaker, Permit
from ._cache import CacheBackend, CacheEntry
from ._config import BreakerSettings
from ._errors import CacheError


logger = logging.getLogger("dso")

R = TypeVar("R")


class CacheListener(Protocol):
    """Hears what the cache does; the orchestrator's telemetry is one."""

    def cache_failed(self, backend: str, operation: str) -> None:
        """A backend failed at *operation*; the fetch went on without it."""

    def cache_written(self, namespace: str, keys: int) -> None:
        """Entries for *keys* keys of *namespace* were handed to the backend."""


@attrs.frozen
class CacheBackendStatistics:
    """A snapshot of one cache backend as the orchestrator sees it.

    Attributes:
        backend: The backend's name.
        state: Its breaker's state.
        errors: Operations that raised or did not finish in time.
        skipped: Operations not tried because the breaker was open.
    """

    backend: str
    state: BreakerState
    errors: int
    skipped: int


class GuardedBackend:
    """Asks a backend only while it works, and never lets a read or write fail.

    Reads that fail are misses and writes that fail are skipped, both
    counted; `delete` is the exception and raises, because an entry that
    should be gone might be served. A read answered with anything but
    entries for the keys asked has failed too (a batch read is checked
    only for a backend outside the process). A backend that keeps its data in the
    process (``in_process = True``) runs without a timeout scope.

    Any other backend's operation runs in one cancel scope, its timeout.
    A read's scope is also the one `cancel_reads` cancels: the
    orchestrator ends the reads under way that way when it closes, and
    needs no scope of its own around each read.

    Args:
        backend: The backend to guard.
        label: Its name in logs and statistics.
        timeout: Seconds one operation may take.
        breaker: When to stop asking it, and for how long.

    Attributes:
        listener: Told of every failure, once set.
    """

    def __init__(
        self,
        backend: CacheBackend,
        *,
        label: str,
        timeout: float,
        breaker: BreakerSettings,
    ) -> None:
        self.backend = backend
        self.label = label
        self.breaker = CircuitBreaker(
            label,
            clock=trio.current_time,
            settings=breaker,
            on_transition=self._log_transition,
        )
        self.in_process = bool(getattr(backend, "in_process", False))
        self._get_nowait: Callable[[str], object] | None = (
            _at_once(backend, label, "get_nowait") if self.in_process else None
        )
        self._set_many_nowait: Callable[[Mapping[str, CacheEntry]], None] | None = (
            _at_once(backend, label, "set_many_nowait") if self.in_process else None
        )
        self.reads_at_once = self._get_nowait is not None
        """Whether `get_nowait` can answer (else it raises `trio.WouldBlock`)."""
        self.writes_at_once = self._set_many_nowait is not None
        """Whether `set_many_nowait` can write (else it raises `trio.WouldBlock`)."""
        self._timeout = timeout
        self._errors = 0
        self._skipped = 0
        self._in_outage = False
        # The timeout scopes of the reads under way, for `cancel_reads`.
        self._reads: set[trio.CancelScope] = set()
        # Set by `cancel_reads` until `allow_reads`: a read that would begin
        # after closing (a tiered read moving on from L1 to L2) is a miss.
        self._reads_cancelled = False
        self._in_use = False
        self.listener: CacheListener | None = None

    def __repr__(self) -> str:
        return f"GuardedBackend({self.backend!r}, label={self.label!r})"

    @property
    def name(self) -> str:
        """The guarded backend's name."""
        return self.backend.name

    async def get(self, key: str) -> CacheEntry | None:
        """Return the entry under *key*; ``None`` also when the backend fails."""
        if not self.in_process:
            # The hit path of a backend outside the process: `_run` written
            # out, with no closure and no coroutine layer of its own.
            if self._reads_cancelled:
                return None

            permit = self.breaker.try_acquire()
            if permit is None:
                self._skipped += 1
                return None

            scope = trio.CancelScope(deadline=trio.current_time() + self._timeout)
            self._reads.add(scope)
            try:
                with scope:
                    found = await self.backend.get(key)
                    if found is not None and not isinstance(found, CacheEntry):
                        raise _not_an_entry(found)
            except Exception:
                self._failed(permit, "read")
                return None
            except BaseException:
                self.breaker.release(permit)
                raise
            finally:
                self._reads.discard(scope)

            if scope.cancelled_caught:
                self._cut_short(permit, "read", scope)
                return None

            self.breaker.record_success(permit)
            return found

        # The hit path of an in-process backend: no closure, no scope.
        permit = self.breaker.try_acquire()
        if permit is None:
            self._skipped += 1
            return None

        try:
            entry = await self.backend.get(key)
            if entry is not None and not isinstance(entry, CacheEntry):
                raise _not_an_entry(entry)
        except Exception:
            self._failed(permit, "read")
            return None
        except BaseException:
            self.breaker.release(permit)
            raise

        self.breaker.record_success(permit)
        return entry

    def get_nowait(self, key: str) -> CacheEntry | None:
        """Return the entry under *key* without waiting; ``None`` on failure.

        Raises:
            trio.WouldBlock: The backend cannot answer without waiting: it
                is not in this process, offers no ``get_nowait``, or says so.
        """
        get_nowait = self._get_nowait
        if get_nowait is None:
            raise trio.WouldBlock

        permit = self.breaker.try_acquire()
        if permit is None:
            self._skipped += 1
            return None

        try:
            entry = get_nowait(key)
            if entry is not None and not isinstance(entry, CacheEntry):
                raise _not_an_entry(entry)
        except trio.WouldBlock:
            self.breaker.release(permit)
            raise
        except Exception:
            self._failed(permit, "read")
            return None

        self.breaker.record_success(permit)
        return entry

    async def get_many(self, keys: Sequence[str]) -> dict[str, CacheEntry]:
        """Return the entries found under *keys*; none when the backend fails."""
        if self.in_process:
            # Trusted, like its own process: a cached batch of thousands of
            # keys is not worth checking entry by entry.
            return await self._run("read", lambda: self.backend.get_many(keys), {})

        return await self._run("read", lambda: self._get_many(keys), {})

    def set_many_nowait(self, entries: Mapping[str, CacheEntry]) -> None:
        """Store the entries at once, or skip them when the backend fails.

        Raises:
            trio.WouldBlock: The backend cannot write without waiting: it
                offers no ``set_many_nowait``, or says so; nothing was
                stored.
        """
        set_many_nowait = self._set_many_nowait
        if set_many_nowait is None:
            raise trio.WouldBlock

        permit = self.breaker.try_acquire()
        if permit is None:
            self._skipped += 1
            return

        try:
            set_many_nowait(entries)
        except trio.WouldBlock:
            self.breaker.release(permit)
            raise
        except Exception:
            self._failed(permit, "write")
            return

        self.breaker.record_success(permit)

    async def set(self, key: str, entry: CacheEntry) -> None:
        """Store *entry* under *key*, or skip it when the backend fails."""
        await self.set_many({key: entry})

    async def set_many(self, entries: Mapping[str, CacheEntry]) -> None:
        """Store several entries, or skip them when the backend fails."""
        await self._run("write", lambda: self.backend.set_many(entries), None)

    async def delete(self, key: str) -> None:
        """Remove the entry under *key*, even while the breaker is open.

        Raises:
            CacheError: The backend failed or did not answer in time.
        """
        try:
            with trio.fail_after(self._timeout):
                await self.backend.delete(key)
        except trio.TooSlowError:
            self._count_failure("delete")
            raise CacheError(
                f"cache backend {self.label} did not delete a key in time"
            ) from None
        except Exception as exc:
            self._count_failure("delete")
            raise CacheError(
                f"cache backend {self.label} failed to delete a key"
            ) from exc

    async def _get_many(self, keys: Sequence[str]) -> dict[str, CacheEntry]:
        # A backend that breaks its protocol has failed the read: its
        # answer is not served, nor copied into another tier.
        found = await self.backend.get_many(keys)
        if not isinstance(found, Mapping):
            raise _not_an_entry(found)

        asked = set(keys)
        for key, entry in found.items():
            if not isinstance(entry, CacheEntry):
                raise _not_an_entry(entry)
            if key not in asked:
                raise TypeError("the backend returned an entry for a key not asked")

        return found

    def statistics(self) -> CacheBackendStatistics:
        """Return the breaker's state and the failure counters."""
        return CacheBackendStatistics(
            backend=self.backend.name,
            state=self.breaker.state,
            errors=self._errors,
            skipped=self._skipped,
        )

    def cancel_reads(self) -> None:
        """End the reads under way at once, as misses.

        A read ended this way says nothing of the backend: it counts as
        neither a failure nor a success. A single read of a backend in the
        process answers at once and has nothing to cancel; its batch reads
        take a scope with no deadline, for this alone. Writes go on, each
        within its timeout: the orchestrator shields the write of a value
        fetched just before it closed, so that the value is kept. Reads
        asked for afterwards are misses, until `allow_reads`.
        """
        self._reads_cancelled = True
        for scope in self._reads:
            scope.cancel()

    def allow_reads(self) -> None:
        """Let reads run, for a new orchestrator: again after `cancel_reads`.

        Raises:
            ValueError: An orchestrator still open reads through this
                guard: closing either would end the other's reads.
        """
        if self._in_use and not self._reads_cancelled:
            raise ValueError(
                f"cache backend {self.label!r} is in use by an open "
                "orchestrator; give each orchestrator a backend of its own"
            )

        self._in_use = True
        self._reads_cancelled = False

    async def _run(
        self, operation: str, call: Callable[[], Awaitable[R]], missing: R
    ) -> R:
        if operation == "read" and self._reads_cancelled:
            return missing

        permit = self.breaker.try_acquire()
        if permit is None:
            self._skipped += 1
            return missing

        settled = False
        try:
            # A backend in this process answers at once or not at all: no
            # timeout, and its scope is only for closing to cancel.
            seconds = math.inf if self.in_process else self._timeout
            scope = trio.CancelScope(deadline=trio.current_time() + seconds)
            if operation == "read":
                self._reads.add(scope)
            try:
                with scope:
                    try:
                        result = await call()
                    except Exception:
                        settled = True
                        self._failed(permit, operation)
                        return missing

                    settled = True
                    self.breaker.record_success(permit)
                    return result
            finally:
                self._reads.discard(scope)

            settled = True
            self._cut_short(permit, operation, scope)
            return missing
        finally:
            if not settled:
                # The caller was cancelled: that says nothing of the backend.
                self.breaker.release(permit)

    def _cut_short(
        self, permit: Permit, operation: str, scope: trio.CancelScope
    ) -> None:
        # The operation's scope was cancelled. Before its deadline, only
        # `cancel_reads` can have done it, which says nothing of the
        # backend; at its deadline, the backend failed to answer in time.
        if trio.current_time() < scope.deadline:
            self.breaker.release(permit)
        else:
            self._failed(permit, f"{operation} in time")

    def _count_failure(self, operation: str) -> None:
        self._errors += 1
        if self.listener is not None:
            self.listener.cache_failed(self.label, operation)

    def _failed(self, permit: Permit, operation: str) -> None:
        self._count_failure(operation)
        self.breaker.record_failure(permit)
        # Once per outage at WARNING (when the breaker opens); each failure
        # only at DEBUG, so a dead backend does not flood the log.
        logger.debug(
            "cache backend %s failed to %s", self.label, operation, exc_info=True
        )

    def _log_transition(self, transition: BreakerTransition) -> None:
        if transition.new is BreakerState.OPEN and not self._in_outage:
            self._in_outage = True
            logger.warning(
                "cache backend %s is failing (%s); going on without it, "
                "trying again in %g s",
                self.label,
                transition.reason,
                self.breaker.settings.reset_after,
                extra={"cache_backend": self.label, "breaker_state": "open"},
            )
        elif transition.new is BreakerState.CLOSED and self._in_outage:
            self._in_outage = False
            logger.warning(
                "cache backend %s is back (%s)",
                self.label,
                transition.reason,
                extra={"cache_backend": self.label, "breaker_state": "closed"},
            )


def _not_an_entry(found: object) -> TypeError:
    return TypeError(f"the backend returned a {type(found).__name__}, not entries")


def _at_once(backend: object, label: str, name: str) -> Any:
    # An optional method that must answer without waiting: one written
    # `async def` would hand back a coroutine on every call, and every read
    # or write would fail. Said at once, to the plugin's author.
    method = getattr(backend, name, None)
    if method is not None and inspect.iscoroutinefunction(method):
        raise TypeError(
            f"cache backend {label!r}: {name} must answer at once, "
            "so it cannot be an async function"
        )

    return method
