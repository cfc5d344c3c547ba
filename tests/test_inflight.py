"""InflightCalls: one shared call per key, owned by a nursery, not by a waiter."""

import pytest
import trio
import trio.lowlevel
import trio.testing

import dso
from dso._inflight import SharedCall


async def test_concurrent_callers_share_one_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Callers arriving while a call runs join it and get its value."""
    runs = 0

    async def run(call: object) -> str:
        nonlocal runs
        runs += 1
        await trio.sleep(1)
        return "value"

    results = []
    async with trio.open_nursery() as owner:
        calls: dso.InflightCalls[str] = dso.InflightCalls(owner)

        async def call() -> None:
            results.append(await calls.call("key", run))

        async with trio.open_nursery() as callers:
            for _ in range(5):
                callers.start_soon(call)
            await trio.testing.wait_all_tasks_blocked()
            statistics = calls.statistics()

    assert (1, ["value"] * 5) == (runs, results)
    assert dso.InflightStatistics(calls=1, waiters=5, joins=4) == statistics
    assert 0 == calls.statistics().calls


async def test_first_callers_cancellation_does_not_reach_the_others(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The first waiter leaving early leaves the call running for the rest."""

    async def run(call: object) -> str:
        await trio.sleep(10)
        return "value"

    async with trio.open_nursery() as owner:
        calls: dso.InflightCalls[str] = dso.InflightCalls(owner)
        with trio.move_on_after(1):
            async with trio.open_nursery() as callers:
                callers.start_soon(calls.call, "key", run)
                await trio.testing.wait_all_tasks_blocked()
                second = trio.Event()
                results = []

                async def patient() -> None:
                    with trio.CancelScope(shield=True):
                        results.append(await calls.call("key", run))
                    second.set()

                owner.start_soon(patient)
        await second.wait()

    assert ["value"] == results


async def test_call_is_cancelled_when_every_waiter_leaves(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With no one left waiting, the shared call is cancelled and removed."""
    cancelled = trio.Event()

    async def run(call: object) -> str:
        try:
            await trio.sleep(100)
        except trio.Cancelled:
            cancelled.set()
            raise
        return "never"

    async with trio.open_nursery() as owner:
        calls: dso.InflightCalls[str] = dso.InflightCalls(owner)
        with trio.move_on_after(1):
            await calls.call("key", run)
        with trio.fail_after(1):
            await cancelled.wait()
        await trio.testing.wait_all_tasks_blocked()

    assert 0 == calls.statistics().calls


async def test_an_error_reaches_every_waiter() -> None:
    """An exception raised by the shared call is raised to every waiter."""

    async def run(call: object) -> str:
        await trio.lowlevel.checkpoint()
        raise ValueError("boom")

    errors = []
    async with trio.open_nursery() as owner:
        calls: dso.InflightCalls[str] = dso.InflightCalls(owner)

        async def call() -> None:
            with pytest.raises(ValueError, match="boom") as info:
                await calls.call("key", run)
            errors.append(info.value)

        async with trio.open_nursery() as callers:
            for _ in range(3):
                callers.start_soon(call)

    assert 3 == len(errors)
    assert 0 == calls.statistics().calls


async def test_closing_the_owner_releases_waiters_with_closed_error() -> None:
    """Waiters of a call whose nursery closes get OrchestratorClosed, not Cancelled."""

    async def run(call: object) -> str:
        await trio.sleep_forever()
        return "never"

    outcome = []
    async with trio.open_nursery() as outer, trio.open_nursery() as owner:
        calls: dso.InflightCalls[str] = dso.InflightCalls(owner)

        async def waiter() -> None:
            try:
                await calls.call("key", run)
            except dso.OrchestratorClosed as exc:
                outcome.append(exc)

        outer.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        owner.cancel_scope.cancel()

    assert 1 == len(outcome)


async def test_a_later_request_starts_a_fresh_call() -> None:
    """Once a call has ended, the next request for the key runs again."""
    runs = 0

    async def run(call: object) -> int:
        nonlocal runs
        runs += 1
        await trio.lowlevel.checkpoint()
        return runs

    async with trio.open_nursery() as owner:
        calls: dso.InflightCalls[int] = dso.InflightCalls(owner)
        first = await calls.call("key", run)
        second = await calls.call("key", run)

    assert (1, 2) == (first, second)


async def test_a_caller_after_everyone_left_starts_afresh(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A call abandoned by all its waiters is never joined; the next one runs anew."""
    runs = 0

    async def run(call: object) -> int:
        nonlocal runs
        runs += 1
        # Like a blocking SDK in a thread: cancellation waits for it.
        with trio.CancelScope(shield=True):
            await trio.sleep(5)
        return runs

    async with trio.open_nursery() as owner:
        calls: dso.InflightCalls[int] = dso.InflightCalls(owner)
        with trio.move_on_after(1):
            await calls.call("key", run)
        second = await calls.call("key", run)

    assert (2, 2) == (runs, second)


async def test_an_error_after_the_answer_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A call that fails after publishing its answer says so in the log."""

    async def run(call: SharedCall[str]) -> str:
        call.publish("value")
        await trio.lowlevel.checkpoint()
        raise ConnectionError("the cache write failed")

    async with trio.open_nursery() as owner:
        calls: dso.InflightCalls[str] = dso.InflightCalls(owner)
        with trio.fail_after(5):
            value = await calls.call("key", run)
            await trio.testing.wait_all_tasks_blocked()

    logged = [record.exc_info[1] for record in caplog.records if record.exc_info]
    assert ("value", ["the cache write failed"]) == (value, [str(e) for e in logged])
