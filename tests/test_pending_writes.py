"""PendingWrites: what a delete and closing wait for."""

import trio
import trio.testing

from dso._pending_writes import PendingWrites


async def test_waiting_for_a_key_waits_for_its_writes_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A wait ends when the key's writes end, whatever other keys do."""
    pending = PendingWrites()
    ended = []

    async def write(keys: list[str], seconds: float) -> None:
        with pending.writing(keys):
            await trio.sleep(seconds)

    async def wait(key: str) -> None:
        await pending.wait_for(key)
        ended.append((key, trio.current_time()))

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write, ["a", "b"], 5)
            nursery.start_soon(write, ["b"], 10)
            nursery.start_soon(write, ["c"], 20)
            await trio.testing.wait_all_tasks_blocked()
            for key in ("a", "b", "idle"):
                nursery.start_soon(wait, key)

    assert [("idle", 0), ("a", 5), ("b", 10)] == ended


async def test_waiting_for_all_waits_for_the_last_write(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """wait_all ends when no write is under way, and at once when none is."""
    pending = PendingWrites()

    async def write(seconds: float) -> None:
        with pending.writing(["k"]):
            await trio.sleep(seconds)

    await pending.wait_all()
    at_once = trio.current_time()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write, 3)
            nursery.start_soon(write, 7)
            await trio.testing.wait_all_tasks_blocked()
            await pending.wait_all()
            after_all = trio.current_time()

    assert (0, 7) == (at_once, after_all)


async def test_a_write_that_fails_is_no_longer_waited_for() -> None:
    """The mark goes whatever ends the write."""
    pending = PendingWrites()

    try:
        with pending.writing(["k"]):
            raise ConnectionError("down")
    except ConnectionError:
        pass

    with trio.fail_after(1):
        await pending.wait_for("k")
        await pending.wait_all()


async def test_a_wait_for_a_key_ignores_writes_that_begin_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Writes of the key begun while a delete waits do not hold it back."""
    pending = PendingWrites()
    ended = []

    async def write(seconds: float) -> None:
        with pending.writing(["k"]):
            await trio.sleep(seconds)

    async def wait() -> None:
        await pending.wait_for("k")
        ended.append(trio.current_time())

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write, 5)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(wait)
            await trio.sleep(1)
            nursery.start_soon(write, 30)
            await trio.testing.wait_all_tasks_blocked()
            await pending.wait_all()
            ended.append(trio.current_time())

    assert [5, 31] == ended
