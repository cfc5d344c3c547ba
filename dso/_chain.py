"""Running a provider chain: in order, hedged, or all at once for a merge.

These are the bodies of shared calls. Each publishes its result on the
call's handle as soon as it has one and writes the cache, unless the key
was invalidated meanwhile: a cache in this process first, at once, so that
the next request finds the value; any other after the waiters have it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import trio

from ._errors import ErrorCode
from ._guarded import GuardedProvider
from ._inflight import SharedCall
from ._merge import Merge
from ._namespace import BoundNamespace
from ._results import DEADLINE_PASSED, Attempt, FetchResult
from ._typed_cache import TypedCache, WriteRest


async def run_in_order(
    key: str,
    space: BoundNamespace,
    chain: Sequence[GuardedProvider],
    call: SharedCall[FetchResult[Any]],
    cache: TypedCache,
) -> FetchResult[Any]:
    """Try the providers one after the other; the first success wins.

    No attempt starts once the call's deadline has passed.
    """
    attempts: list[Attempt] = []
    for guarded in chain:
        if trio.current_time() >= call.deadline:
            attempts.append(DEADLINE_PASSED)
            break

        value, tries = await guarded.fetch(
            key, namespace=space.name, deadline=call, accepts=space.accepts
        )
        attempts.extend(tries)
        if value is not None:
            return await _succeed(
                key, space, guarded.name, value, attempts, call, cache
            )

    return await _fail(key, space, tuple(attempts), call, cache)


async def run_hedged(
    key: str,
    space: BoundNamespace,
    chain: Sequence[GuardedProvider],
    call: SharedCall[FetchResult[Any]],
    cache: TypedCache,
    hedge_after: float,
) -> FetchResult[Any]:
    """Try the providers in order, starting the next one early if one is slow.

    If the current provider has not answered within *hedge_after* seconds,
    the next one starts alongside it (a failure starts it at once). The
    first success wins and the attempts still running are cancelled; they
    are recorded as CANCELLED, and their breakers count nothing.
    """
    attempts: list[tuple[Attempt, ...] | None] = []
    winner: list[tuple[str, object]] = []

    async with trio.open_nursery() as nursery:

        async def attempt(
            index: int, guarded: GuardedProvider, done: trio.Event
        ) -> None:
            try:
                value, tries = await guarded.fetch(
                    key,
                    namespace=space.name,
                    deadline=call,
                    accepts=space.accepts,
                )
            except trio.Cancelled:
                attempts[index] = (_lost(guarded),)
                raise

            attempts[index] = tries
            done.set()
            if value is not None and not winner:
                winner.append((guarded.name, value))
                nursery.cancel_scope.cancel()
                # Waiters get the answer now, not when every loser has
                # noticed its cancellation (one stuck in a thread may not
                # for a while), and the cache is written here, shielded,
                # so that closing while the losers wind down keeps it.
                won = _won(key, space, guarded.name, value, chain, attempts)
                await _publish_and_store(won, space, False, call, cache)

        for index, guarded in enumerate(chain):
            if trio.current_time() >= call.deadline:
                break

            done = trio.Event()
            attempts.append(None)
            nursery.start_soon(attempt, index, guarded, done)
            with trio.move_on_after(hedge_after):
                await done.wait()

    made = tuple(record for tries in attempts if tries for record in tries)
    if not winner:
        return await _fail(key, space, made, call, cache)

    name, value = winner[0]
    return _answer(key, space, name, value, made)


def _won(
    key: str,
    space: BoundNamespace,
    provider: str,
    value: object,
    chain: Sequence[GuardedProvider],
    attempts: list[tuple[Attempt, ...] | None],
) -> FetchResult[Any]:
    # The attempts still running at this point are about to be cancelled.
    made = tuple(
        record
        for guarded, tries in zip(chain, attempts, strict=False)
        for record in (tries if tries is not None else (_lost(guarded),))
    )
    return _answer(key, space, provider, value, made)


def _lost(guarded: GuardedProvider) -> Attempt:
    # TODO: tries this provider made before the winner's answer (retries)
    # are not listed, only the cancelled one.
    return Attempt(guarded.name, ErrorCode.CANCELLED, "another provider answered first")


def _answer(
    key: str,
    space: BoundNamespace,
    provider: str,
    value: object,
    attempts: tuple[Attempt, ...],
) -> FetchResult[Any]:
    return FetchResult(
        key,
        space.name,
        value,
        source=provider,
        age=0.0,
        sources=(provider,),
        attempts=attempts,
    )


async def run_all(
    key: str,
    space: BoundNamespace,
    chain: Sequence[GuardedProvider],
    merge: Merge[Any],
    needed: int,
    call: SharedCall[FetchResult[Any]],
    cache: TypedCache,
) -> FetchResult[Any]:
    """Call every provider at once and merge the successes.

    Attempts never raise, so one provider's failure cancels no other.
    Fewer than *needed* successes give no data. A merge from fewer than all
    providers is partial and is cached as such.
    """
    outcomes: list[tuple[object | None, tuple[Attempt, ...]]] = [
        (None, (Attempt(guarded.name),)) for guarded in chain
    ]

    async def attempt(index: int, guarded: GuardedProvider) -> None:
        outcomes[index] = await guarded.fetch(
            key, namespace=space.name, deadline=call, accepts=space.accepts
        )

    async with trio.open_nursery() as nursery:
        for index, guarded in enumerate(chain):
            nursery.start_soon(attempt, index, guarded)

    attempts = tuple(record for _, tries in outcomes for record in tries)
    successes = [
        (guarded.name, value)
        for guarded, (value, _) in zip(chain, outcomes, strict=True)
        if value is not None
    ]
    if len(successes) < needed:
        return FetchResult(key, space.name, attempts=attempts)

    value = merge(successes)
    partial = len(successes) < len(chain)
    sources = tuple(name for name, _ in successes)
    result = FetchResult(
        key,
        space.name,
        value,
        source="+".join(sources),
        age=0.0,
        partial=partial,
        sources=sources,
        attempts=attempts,
    )
    await _publish_and_store(result, space, partial, call, cache)
    return result


async def _succeed(
    key: str,
    space: BoundNamespace,
    provider: str,
    value: object,
    attempts: list[Attempt],
    call: SharedCall[FetchResult[Any]],
    cache: TypedCache,
) -> FetchResult[Any]:
    result = _answer(key, space, provider, value, tuple(attempts))
    await _publish_and_store(result, space, False, call, cache)
    return result


async def _fail(
    key: str,
    space: BoundNamespace,
    attempts: tuple[Attempt, ...],
    call: SharedCall[FetchResult[Any]],
    cache: TypedCache,
) -> FetchResult[Any]:
    result: FetchResult[Any] = FetchResult(key, space.name, attempts=attempts)
    remember_for = space.settings.negative_ttl
    if not remember_for or not result.not_found or call.superseded:
        return result

    # Only when every provider was asked and said so: a provider that was
    # down or skipped might know the key.
    await _publish_then_write(
        call,
        result,
        functools.partial(cache.write_not_found_nowait, space, [key], remember_for),
        functools.partial(cache.write_not_found, space, [key], remember_for),
    )
    return result


async def _publish_and_store(
    result: FetchResult[Any],
    space: BoundNamespace,
    partial: bool,
    call: SharedCall[FetchResult[Any]],
    cache: TypedCache,
) -> None:
    # An invalidation before this point supersedes the call, and nothing
    # is written; one after it waits for the write (`TypedCache.delete`).
    if call.superseded:
        call.publish(result)
        return

    key, value = result.key, result.data
    await _publish_then_write(
        call,
        result,
        functools.partial(cache.write_nowait, space, key, value, partial=partial),
        functools.partial(cache.write, space, key, value, partial=partial),
    )


async def _publish_then_write(
    call: SharedCall[FetchResult[Any]],
    result: FetchResult[Any],
    write_nowait: Callable[[], WriteRest | None],
    write: WriteRest,
) -> None:
    # A cache in this process (and a tiered backend's L1) is written first,
    # at once, so that a request made as soon as the waiters wake finds the
    # value. Any other (and L2) is written after they have the answer, so
    # that none waits for a round trip.
    try:
        rest = write_nowait()
    except trio.WouldBlock:
        rest = write

    call.publish(result)
    if rest is None:
        return

    # Shielded, so that closing the orchestrator right after a fetch (as a
    # command-line run does) still keeps its answer; the cache's own
    # timeout bounds the wait.
    with trio.CancelScope(shield=True):
        await rest()
