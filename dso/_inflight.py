"""In-flight de-duplication: concurrent requests for one key share a call.

The shared call runs in a nursery the orchestrator owns, never in the task
of the caller that happened to come first. So one waiter's cancellation
cannot cancel the call for the others, and no waiter ever sees another
task's ``Cancelled``. When every waiter has gone, the call is cancelled
(or, if the table is told so, left to finish and fill the cache).

Each waiter brings its own deadline. The call works to the latest of
them, which it reads from its `SharedCall` handle; a waiter whose deadline
comes first stops waiting then, with `trio.TooSlowError`, and leaves the
call to the others.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import Generic, TypeVar

import attrs
import trio

from ._errors import OrchestratorClosed


logger = logging.getLogger("dso")


T = TypeVar("T")

_GRACE = 0.25
"""Seconds the waiter with the latest deadline allows the call past it.

The call itself stops its work at that deadline and publishes what it has
(the attempts made, a timeout); the grace lets that answer, rather than a
bare timeout, reach the waiter whose deadline it shares.
"""


@attrs.frozen
class InflightStatistics:
    """A snapshot of an `InflightCalls` table.

    Attributes:
        calls: Shared calls running now.
        waiters: Callers waiting on them.
        joins: Callers, since the start, who joined a call already running.
    """

    calls: int
    waiters: int
    joins: int


class SharedCall(Generic[T]):
    """What a shared call knows of itself while it runs.

    Attributes:
        deadline: The latest deadline among its waiters (trio time); it
            only ever moves later, as waiters join.
        superseded: Set when the key was invalidated while the call ran:
            its answer may still go to its waiters, but must not be
            cached over the newer state.
        claimed: The call is a batch's, which answers it itself.
        origin: What its starter said of it (the orchestrator gives the
            caller's tier, or marks a background refresh), so that a
            caller may tell whether joining it beats reading the cache.
    """

    def __init__(self, deadline: float, origin: Hashable = None) -> None:
        self.deadline = deadline
        self.origin = origin
        self.superseded = False
        self.claimed = False
        self.done = trio.Event()
        self.cancel_scope = trio.CancelScope()
        self.value: T | None = None
        self.error: BaseException | None = None
        self.waiters = 0
        self._followers: dict[int, tuple[trio.CancelScope, float]] = {}
        # The waiters whose deadline is the call's: only they need retiming
        # when a later deadline joins, which keeps joining O(1).
        self._latest: dict[int, tuple[float, trio.CancelScope]] = {}

    def publish(self, value: T) -> None:
        """Hand *value* to every waiter now; the call may go on (to cache it)."""
        if not self.done.is_set():
            self.value = value
            self.done.set()

    @contextlib.contextmanager
    def follow(self, scope: trio.CancelScope, limit: float) -> Iterator[None]:
        """Keep *scope*'s deadline at the call's, but never past *limit*.

        An attempt running when a later deadline joins is given the extra
        time too, up to its own timeout.
        """
        self._followers[id(scope)] = (scope, limit)
        try:
            yield
        finally:
            del self._followers[id(scope)]

    def _fail(self, error: BaseException) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()

    def _join(self, deadline: float) -> trio.CancelScope | None:
        self.waiters += 1
        if deadline > self.deadline:
            # The call now works longer: the waiters who shared its old
            # deadline stop at their own, without grace.
            for own_deadline, scope in self._latest.values():
                scope.deadline = own_deadline

            self._latest.clear()
            self.deadline = deadline
            for follower, limit in self._followers.values():
                follower.deadline = min(limit, deadline)

        if deadline == math.inf:
            # Nothing to time: the wait ends with the call (a common case,
            # and one where a cancel scope per waiter is pure cost).
            return None

        scope = trio.CancelScope(deadline=deadline)
        if deadline == self.deadline:
            # The call stops its own work at this deadline and publishes
            # what it has; the grace lets that answer arrive.
            scope.deadline = deadline + _GRACE
            self._latest[id(scope)] = (deadline, scope)

        return scope

    def _leave(self, scope: trio.CancelScope | None) -> None:
        self.waiters -= 1
        if scope is not None:
            self._latest.pop(id(scope), None)


class _Abandoned(Exception):
    """The claimed call ended without an answer; its waiters start afresh."""


RunShared = Callable[[SharedCall[T]], Awaitable[T]]
"""A shared call's body: it gets its handle, and returns or publishes."""


class InflightCalls(Generic[T]):
    """A table of calls in flight, keyed by what they fetch.

    Args:
        nursery: Where shared calls run. Its owner closing it ends them;
            their waiters then get `OrchestratorClosed`.
        finish_abandoned: When every waiter has left, let the call finish
            (and fill the cache) instead of cancelling it.
    """

    def __init__(self, nursery: trio.Nursery, *, finish_abandoned: bool = False):
        self._nursery = nursery
        self._finish_abandoned = finish_abandoned
        self._calls: dict[Hashable, SharedCall[T]] = {}
        self._watched: dict[int, tuple[Hashable, SharedCall[T]]] = {}
        self._joins = 0

    def running(self, key: Hashable) -> SharedCall[T] | None:
        """Return the call for *key* in flight now, or ``None``."""
        return self._calls.get(key)

    async def call(
        self,
        key: Hashable,
        run: RunShared[T],
        *,
        deadline: float = math.inf,
        origin: Hashable = None,
    ) -> T:
        """Return the answer of the call for *key*, starting one if none runs.

        Args:
            key: What the call fetches; equal keys share one call.
            run: The call's body, used only if this caller starts it.
            deadline: When this caller stops waiting (trio time).
            origin: Recorded on the call if this caller starts it (see
                `SharedCall.origin`).

        Raises:
            trio.TooSlowError: The deadline passed before an answer.
            OrchestratorClosed: The nursery closed before the call ended.
            Exception: Whatever the call raised, to every waiter.
        """
        while True:
            shared = self._calls.get(key)
            if shared is None:
                shared = self._start(key, run, deadline, origin)
            else:
                self._joins += 1

            scope = shared._join(deadline)
            try:
                if scope is None:
                    await shared.done.wait()
                else:
                    with scope:
                        await shared.done.wait()
            finally:
                shared._leave(scope)
                if shared.waiters == 0 and not shared.done.is_set():
                    self._abandon(key, shared)

            if not shared.done.is_set():
                raise trio.TooSlowError

            if isinstance(shared.error, _Abandoned):
                # A batch claimed the key and gave up on it: start anew.
                continue

            if shared.error is not None:
                raise shared.error

            return shared.value  # type: ignore[return-value]

    def claim(self, key: Hashable, deadline: float) -> SharedCall[T] | None:
        """Register a call for *key* that the caller runs itself.

        A batch claims the keys of its chunks, so that requests for them
        wait for the chunk instead of calling the provider again. The
        claimant must `release` the call when done, after publishing its
        answer if it has one.

        Returns:
            The claimed call, or ``None`` if one for *key* already runs
            (join it with `call` instead).
        """
        if key in self._calls:
            return None

        shared: SharedCall[T] = SharedCall(deadline)
        shared.claimed = True
        self._calls[key] = shared
        return shared

    def release(self, key: Hashable, shared: SharedCall[T]) -> None:
        """End a claimed call; waiters it did not answer start afresh."""
        if self._calls.get(key) is shared:
            del self._calls[key]

        shared._fail(_Abandoned())

    @contextlib.contextmanager
    def watching(self, key: Hashable, shared: SharedCall[T]) -> Iterator[None]:
        """Let `supersede` reach *shared*, a call for *key* nobody may join.

        For a call its caller runs alone (a batch's per-key fallback), which
        must still not cache an answer that an invalidation made old.
        """
        self._watched[id(shared)] = (key, shared)
        try:
            yield
        finally:
            del self._watched[id(shared)]

    def supersede(self, matches: Callable[[Hashable], bool]) -> int:
        """Detach the calls whose keys *matches* accepts; return how many.

        A detached call goes on for its waiters, but new requests start a
        fresh call, and its `SharedCall.superseded` is set so that it does
        not cache its answer. Watched calls (see `watching`) are marked too.
        """
        detached = [key for key in self._calls if matches(key)]
        for key in detached:
            self._calls.pop(key).superseded = True

        for key, shared in self._watched.values():
            if matches(key):
                shared.superseded = True

        return len(detached)

    def statistics(self) -> InflightStatistics:
        """Return how many calls and waiters there are now."""
        return InflightStatistics(
            calls=len(self._calls),
            waiters=sum(shared.waiters for shared in self._calls.values()),
            joins=self._joins,
        )

    def _start(
        self, key: Hashable, run: RunShared[T], deadline: float, origin: Hashable
    ) -> SharedCall[T]:
        shared: SharedCall[T] = SharedCall(deadline, origin)
        try:
            self._nursery.start_soon(self._run, key, shared, run)
        except RuntimeError:
            # The nursery no longer accepts tasks: its owner is closing.
            raise OrchestratorClosed("the orchestrator closed") from None

        self._calls[key] = shared
        return shared

    def _abandon(self, key: Hashable, shared: SharedCall[T]) -> None:
        if self._finish_abandoned or shared.claimed:
            # A claimed call is its batch's to end, with `release`.
            return

        # Forget the call at once, not when its task notices the
        # cancellation: a provider stuck in a thread may take a while, and
        # a caller arriving meanwhile must start a fresh call rather than
        # join one that is already cancelled.
        if self._calls.get(key) is shared:
            del self._calls[key]

        shared.cancel_scope.cancel()

    async def _run(
        self, key: Hashable, shared: SharedCall[T], run: RunShared[T]
    ) -> None:
        try:
            with shared.cancel_scope:
                shared.publish(await run(shared))
        except Exception as exc:
            if shared.done.is_set():
                # Raised after the answer went out (by a cache write, say):
                # no waiter is left to tell, so the log must.
                logger.error("a shared call failed after answering", exc_info=exc)
            shared._fail(exc)
        finally:
            if self._calls.get(key) is shared:
                del self._calls[key]

            # Cancelled from outside (the orchestrator is closing) or a
            # BaseException on its way out: either way, no waiter may be
            # left hanging, and none may get this task's Cancelled.
            shared._fail(OrchestratorClosed("the orchestrator closed"))
