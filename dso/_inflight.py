"""In-flight de-duplication: concurrent requests for one key share a call.

The shared call runs in a nursery the orchestrator owns, never in the task
of the caller that happened to come first. So one waiter's cancellation
cannot cancel the call for the others, and no waiter ever sees another
task's ``Cancelled``. When every waiter has gone, the call is cancelled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import attrs
import trio

from ._errors import OrchestratorClosed


T = TypeVar("T")


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


class _SharedCall(Generic[T]):
    def __init__(self) -> None:
        self.done = trio.Event()
        self.cancel_scope = trio.CancelScope()
        self.waiters = 0
        self.value: T | None = None
        self.error: BaseException | None = None


class InflightCalls(Generic[T]):
    """A table of calls in flight, keyed by what they fetch.

    Args:
        nursery: Where shared calls run. Its owner closing it ends them;
            their waiters then get `OrchestratorClosed`.
    """

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._calls: dict[Hashable, _SharedCall[T]] = {}
        self._joins = 0

    async def call(self, key: Hashable, run: Callable[[], Awaitable[T]]) -> T:
        """Return what *run* returns, sharing one run among concurrent callers.

        If a call for *key* is in flight, wait for it instead of starting
        another. An exception raised by the call reaches every waiter.

        Raises:
            OrchestratorClosed: The nursery closed before the call ended.
        """
        shared = self._calls.get(key)
        if shared is None:
            shared = self._start(key, run)
        else:
            self._joins += 1

        shared.waiters += 1
        try:
            await shared.done.wait()
        finally:
            shared.waiters -= 1
            if shared.waiters == 0 and not shared.done.is_set():
                self._abandon(key, shared)

        if shared.error is not None:
            raise shared.error

        return shared.value  # type: ignore[return-value]

    def _start(self, key: Hashable, run: Callable[[], Awaitable[T]]) -> _SharedCall[T]:
        shared: _SharedCall[T] = _SharedCall()
        try:
            self._nursery.start_soon(self._run, key, shared, run)
        except RuntimeError:
            # The nursery no longer accepts tasks: its owner is closing.
            raise OrchestratorClosed("the orchestrator closed") from None

        self._calls[key] = shared
        return shared

    def _abandon(self, key: Hashable, shared: _SharedCall[T]) -> None:
        # Forget the call at once, not when its task notices the
        # cancellation: a provider stuck in a thread may take a while, and
        # a caller arriving meanwhile must start a fresh call rather than
        # join one that is already cancelled.
        if self._calls.get(key) is shared:
            del self._calls[key]

        shared.cancel_scope.cancel()

    def statistics(self) -> InflightStatistics:
        """Return how many calls and waiters there are now."""
        return InflightStatistics(
            calls=len(self._calls),
            waiters=sum(shared.waiters for shared in self._calls.values()),
            joins=self._joins,
        )

    async def _run(
        self, key: Hashable, shared: _SharedCall[T], run: Callable[[], Awaitable[T]]
    ) -> None:
        finished = False
        try:
            with shared.cancel_scope:
                shared.value = await run()
                finished = True
        except Exception as exc:
            shared.error = exc
            finished = True
        finally:
            if self._calls.get(key) is shared:
                del self._calls[key]

            if not finished:
                # Cancelled from outside (the orchestrator is closing) or a
                # BaseException on its way out: either way, no waiter may
                # be left hanging, and none may get this task's Cancelled.
                shared.error = OrchestratorClosed("the orchestrator closed")

            shared.done.set()
