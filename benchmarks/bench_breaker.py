"""What a circuit breaker adds to a successful call, against a bare await.

Every case awaits the same trivial coroutine in a loop; the protected cases
ask a breaker first and report the success after. A case's time is given as
a ratio to a bare ``await work()`` on its own event loop, measured in the
same run, so that the ratios compare across machines:

- dso's `CircuitBreaker` (default settings, failures in a row) under trio,
  in the orchestrator's pattern: `try_acquire`, the await, `record_success`;
- a minimal hand-written breaker under trio: the floor for a breaker with
  the same methods, which issue 3 puts at about 2x;
- pybreaker and purgatory around the same coroutine, each the way its
  README shows. Neither supports trio, so they run on asyncio and are
  compared with a bare await on asyncio.

The target (issue 3): dso's ratio at most that of the fastest library, and
under 3x. The script reports; it exits 0 whether or not the target is met.
"""

from __future__ import annotations

import asyncio
import gc
import platform
import time
from collections.abc import Awaitable, Callable
from importlib import metadata

import attrs
import trio

import dso


CALLS = 100_000
REPEATS = 5
TARGET_RATIO = 3.0


@attrs.frozen
class Case:
    """One measured loop.

    Attributes:
        label: The row's name in the table.
        loop: ``"trio"`` or ``"asyncio"``, the event loop it runs on.
        timed: Awaits the protected call so many times; returns seconds.
        how: How the call is protected, for the notes under the table.
        library: Whether the target compares dso with this case.
    """

    label: str
    loop: str
    timed: Callable[[int], Awaitable[float]]
    how: str = ""
    library: bool = False


async def work() -> int:
    """Do nothing worth measuring: the call every case protects."""
    return 1


def elapsed_since(start: float) -> float:
    """Return the seconds since *start*, on `time.perf_counter`."""
    return time.perf_counter() - start


async def bare(calls: int) -> float:
    """Time *calls* unprotected awaits: the baseline on either loop."""
    start = time.perf_counter()
    for _ in range(calls):
        await work()

    return elapsed_since(start)


async def dso_breaker(calls: int) -> float:
    """Time *calls* awaits protected the way the orchestrator does it."""
    breaker = dso.CircuitBreaker("bench", clock=trio.current_time)
    start = time.perf_counter()
    for _ in range(calls):
        permit = breaker.try_acquire()
        if permit is None:
            raise RuntimeError("the benchmark's breaker opened")

        try:
            await work()
        except BaseException:
            breaker.record_failure(permit)
            raise

        breaker.record_success(permit)

    return elapsed_since(start)


class MinimalBreaker:
    """The least a breaker can do: count failures in a row, refuse past five.

    It has methods, as dso's breaker has, so that the comparison is of the
    work done in them rather than of method calls against inlined code.
    """

    def __init__(self, threshold: int = 5) -> None:
        self.threshold = threshold
        self.failures = 0

    def allows(self) -> bool:
        """Return whether a call may go ahead."""
        return self.failures < self.threshold

    def record_success(self) -> None:
        """Reset the count of failures in a row."""
        self.failures = 0

    def record_failure(self) -> None:
        """Count one more failure in a row."""
        self.failures += 1


async def minimal_breaker(calls: int) -> float:
    """Time *calls* awaits protected by `MinimalBreaker`."""
    breaker = MinimalBreaker()
    start = time.perf_counter()
    for _ in range(calls):
        if not breaker.allows():
            raise RuntimeError("the benchmark's breaker opened")

        try:
            await work()
        except BaseException:
            breaker.record_failure()
            raise

        breaker.record_success()

    return elapsed_since(start)


def trio_cases() -> list[Case]:
    """Return the baseline, dso and the hand-written reference, on trio."""
    return [
        Case("bare await", "trio", bare),
        Case(
            "dso CircuitBreaker",
            "trio",
            dso_breaker,
            how="try_acquire(), await work(), record_success(permit)",
        ),
        Case(
            "minimal hand-written breaker",
            "trio",
            minimal_breaker,
            how="allows(), await work(), record_success(): a counter",
        ),
    ]


def asyncio_cases() -> list[Case]:
    """Return the baseline and the libraries that run on asyncio."""
    return [
        Case("bare await", "asyncio", bare),
        *pybreaker_cases(),
        *purgatory_cases(),
    ]


def pybreaker_cases() -> list[Case]:
    """Return pybreaker's two documented ways around a coroutine.

    Its README offers `call_async`, which runs the call as a Tornado
    coroutine (Tornado runs on asyncio), and the `calling()` context
    manager, which is synchronous but may enclose an ``await``.
    """
    try:
        import pybreaker
    except ImportError as error:
        print(f"skipping pybreaker: {error}")
        return []

    async def call_async(calls: int) -> float:
        """Time *calls* of ``await breaker.call_async(work)``."""
        breaker = pybreaker.CircuitBreaker()
        start = time.perf_counter()
        for _ in range(calls):
            await breaker.call_async(work)

        return elapsed_since(start)

    async def calling(calls: int) -> float:
        """Time *calls* of ``with breaker.calling(): await work()``."""
        breaker = pybreaker.CircuitBreaker()
        start = time.perf_counter()
        for _ in range(calls):
            with breaker.calling():
                await work()

        return elapsed_since(start)

    cases = [
        Case(
            "pybreaker with calling()",
            "asyncio",
            calling,
            how="with breaker.calling(): await work()  (sync context manager)",
            library=True,
        )
    ]
    try:
        import tornado
    except ImportError as error:
        print(f"skipping pybreaker call_async, which needs tornado: {error}")
        return cases

    return [
        Case(
            "pybreaker call_async",
            "asyncio",
            call_async,
            how=f"await breaker.call_async(work)  (a tornado {tornado.version} "
            "gen.coroutine that yields work())",
            library=True,
        ),
        *cases,
    ]


def purgatory_cases() -> list[Case]:
    """Return purgatory's async decorator around the coroutine."""
    try:
        from purgatory import AsyncCircuitBreakerFactory
    except ImportError as error:
        print(f"skipping purgatory: {error}")
        return []

    async def decorated(calls: int) -> float:
        """Time *calls* of a coroutine wrapped in the factory's decorator."""
        protected = AsyncCircuitBreakerFactory()("bench")(work)
        # The first call registers the circuit; time the steady state.
        await protected()
        start = time.perf_counter()
        for _ in range(calls):
            await protected()

        return elapsed_since(start)

    return [
        Case(
            "purgatory decorator",
            "asyncio",
            decorated,
            how="await AsyncCircuitBreakerFactory()('bench')(work)()  (in-memory;"
            " each call does `async with await factory.get_breaker('bench')`)",
            library=True,
        )
    ]


def version_of(distribution: str) -> str:
    """Return the installed version of *distribution*."""
    return metadata.version(distribution)


def run_once(case: Case) -> float:
    """Run *case* once on a fresh event loop; return seconds per call.

    The garbage collector is off while it runs, as `timeit` has it, so
    that a collection of one case's garbage is not billed to the next.
    """
    gc.disable()
    try:
        if case.loop == "trio":
            seconds = trio.run(case.timed, CALLS)
        else:
            seconds = asyncio.run(case.timed(CALLS))
    finally:
        gc.enable()

    return seconds / CALLS


def best_times(cases: list[Case]) -> dict[Case, float]:
    """Return each case's best seconds per call over `REPEATS` rounds.

    The rounds interleave the cases, so that a slow spell on the machine
    hits every case alike instead of one.
    """
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(REPEATS):
        for case in cases:
            best[case] = min(best[case], run_once(case))

    return best


def ratios(best: dict[Case, float]) -> dict[Case, float]:
    """Return each case's time over the bare await's on the same loop."""
    baseline = {case.loop: best[case] for case in best if case.timed is bare}
    return {case: seconds / baseline[case.loop] for case, seconds in best.items()}


def print_header() -> None:
    """Say what runs where, and which versions."""
    names = ["dso", "trio", "pybreaker", "tornado", "purgatory"]
    versions = []
    for name in names:
        try:
            versions.append(f"{name} {version_of(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} missing")

    print(f"Python {platform.python_version()}; {', '.join(versions)}")
    print(f"best of {REPEATS} rounds of {CALLS:,} calls of `await work()`")
    print("dso runs on trio; pybreaker and purgatory support only asyncio, so")
    print("they run on asyncio and each ratio is to the bare await on its loop")


def print_table(best: dict[Case, float], ratio: dict[Case, float]) -> None:
    """Print one row per case: its loop, ns per call and ratio."""
    row = "{:<30} {:<8} {:>8} {:>8}"
    print(row.format("case", "loop", "ns/call", "ratio"))
    for case, seconds in best.items():
        nanoseconds = f"{seconds * 1e9:.0f}"
        print(row.format(case.label, case.loop, nanoseconds, f"{ratio[case]:.2f}x"))

    print()
    for case in best:
        if case.how:
            print(f"{case.label}: {case.how}")

    print()


def print_verdict(ratio: dict[Case, float]) -> None:
    """Say whether dso's ratio meets the target of issue 3."""
    ours = next(r for case, r in ratio.items() if case.timed is dso_breaker)
    libraries = {case.label: r for case, r in ratio.items() if case.library}
    fastest = min(libraries, key=libraries.__getitem__, default="no library")
    theirs = libraries.get(fastest, float("inf"))

    met = ours <= theirs and ours < TARGET_RATIO
    print(
        f"target {'met' if met else 'missed'}: dso {ours:.2f}x, to be at most "
        f"{fastest}'s {theirs:.2f}x and under {TARGET_RATIO:.0f}x"
    )


def main() -> None:
    print_header()
    cases = [*trio_cases(), *asyncio_cases()]
    print()
    best = best_times(cases)
    ratio = ratios(best)
    print_table(best, ratio)
    print_verdict(ratio)


if __name__ == "__main__":
    main()
