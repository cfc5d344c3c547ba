"""Retries of transient failures, with stamina, inside the call's deadline.

Only TIMEOUT and UNAVAILABLE (which a dropped connection is) are tried
again: every other code says something a second try will not change, and
skips by a breaker or a limit are decisions, not failures. A caller's
cancellation is never caught here, so it is never retried.

The first try runs without stamina (see `worth_retrying`), so that the
common case, a first try that works, costs nothing extra. Its failure is
then handed to stamina, which schedules the next tries.

The wait before each retry is "full jitter" (uniform between 0 and the
exponential backoff, as AWS's architecture blog recommends, so that
callers who failed together do not come back together). stamina's own
jitter only adds to the backoff, so the wait is computed here and handed
to stamina through its backoff hook. stamina sleeps with trio's clock and
honours ``stamina.set_testing``.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
import stamina

from ._config import RetrySettings
from ._errors import ErrorCode
from ._results import Attempt


V = TypeVar("V")

TRANSIENT = frozenset({ErrorCode.TIMEOUT, ErrorCode.UNAVAILABLE})
"""The codes that are worth another try."""

TryOnce = Callable[[int], Awaitable[tuple[V | None, Attempt]]]
"""Makes one try; takes the retry number (1 for the first retry)."""

OnWait = Callable[[int, float, Attempt], None]
"""Told of each retry scheduled: its number, the wait, the failed attempt."""


class _TryFailed(Exception):
    """A try ended in a transient failure; stamina decides what comes next."""

    def __init__(self, attempt: Attempt) -> None:
        super().__init__(f"{attempt.provider}: {attempt.code}")
        self.attempt = attempt


@attrs.define
class _FullJitter:
    """stamina's backoff hook: a full-jitter wait, or no retry at all."""

    settings: RetrySettings
    clock: Callable[[], float]
    deadline: Callable[[], float]
    on_wait: OnWait | None = None
    failures: int = 0

    def __call__(self, exc: Exception) -> bool | float:
        if not isinstance(exc, _TryFailed):
            return False

        self.failures += 1
        if self.failures >= self.settings.attempts:
            # That was the last try: stamina stops here whatever we say,
            # and no retry may be reported.
            return False

        wait = random.uniform(0, self.ceiling(self.failures))
        # A retry whose wait cannot end before the deadline is not started.
        if self.clock() + wait >= self.deadline():
            return False

        if self.on_wait is not None:
            self.on_wait(self.failures, wait, exc.attempt)

        return wait

    def ceiling(self, failures: int) -> float:
        settings = self.settings
        try:
            backoff = settings.wait_initial * settings.wait_exp_base ** (failures - 1)
        except OverflowError:
            return settings.wait_max

        return min(settings.wait_max, backoff)


def worth_retrying(attempt: Attempt, settings: RetrySettings) -> bool:
    """Whether *attempt*'s failure calls for `retry`."""
    return attempt.code in TRANSIENT and settings.enabled


async def retry(
    first: Attempt,
    try_once: TryOnce[V],
    settings: RetrySettings,
    *,
    clock: Callable[[], float],
    deadline: Callable[[], float],
    on_wait: OnWait | None = None,
) -> tuple[V | None, tuple[Attempt, ...]]:
    """Try again after a transient failure, while tries fail and time allows.

    Args:
        first: The first try's attempt, which failed transiently.
        try_once: Makes one more try and says how it went.
        settings: How many tries, and how long to wait between them.
        clock: Trio's clock.
        deadline: The call's deadline now (it may move later).
        on_wait: Told of each retry as it is scheduled.

    Returns:
        The value of the try that worked (or ``None``) and every try's
        attempt, the first included, each with its retry number.
    """
    made = [first]
    backoff = _FullJitter(settings, clock, deadline, on_wait)
    retrying = stamina.retry_context(
        on=backoff, attempts=settings.attempts, timeout=None
    )
    try:
        async for next_try in retrying:
            with next_try:
                if next_try.num == 1:
                    # The first try already ran, before stamina was needed.
                    raise _TryFailed(first)

                value, attempt = await try_once(next_try.num - 1)
                made.append(attempt)
                if attempt.code in TRANSIENT:
                    raise _TryFailed(attempt)

                return value, tuple(made)
    except _TryFailed:
        pass

    return None, tuple(made)
