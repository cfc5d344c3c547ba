"""A provider's limits: its rate limit, its quota and server-asked pauses.

They are checked before every call, in this order: a pause the provider
asked for, the quota, the rate limit. A call that any of them refuses is
not made; the provider is skipped as if its breaker were open, and the
attempt says which limit refused it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import trio

from ._errors import ErrorCode
from ._quota import Quota, QuotaLimit
from ._rate import RateLimit, TokenBucket


@attrs.frozen
class LimitStatistics:
    """A snapshot of a provider's limits.

    Attributes:
        rate_limit: The configured rate limit (``None``: none).
        tokens: Calls the rate limit would let through at once now.
        quota: The configured quota (``None``: none).
        quota_used: Calls counted in the quota's current period.
        quota_fraction: *quota_used* as a share of the quota.
        paused_for: Seconds left of a pause the provider asked for.
    """

    rate_limit: RateLimit | None
    tokens: float | None
    quota: QuotaLimit | None
    quota_used: int
    quota_fraction: float | None
    paused_for: float


@attrs.frozen
class Refusal:
    """Why a limit refused a call.

    Attributes:
        code: The attempt's code.
        message: What to tell people.
    """

    code: ErrorCode
    message: str


_QUOTA_SPENT = Refusal(ErrorCode.QUOTA_EXHAUSTED, "the quota is used up")
_NO_TOKEN = Refusal(ErrorCode.RATE_LIMITED_LOCALLY, "the rate limit is spent")


class ProviderLimits:
    """The rate limit, quota and pause of one provider, for every caller.

    Args:
        rate_limit: Calls per period (``None``: unlimited).
        quota: Calls per UTC day or month (``None``: unlimited).
        wait_for_token: Wait for the rate limit within the call's
            deadline, instead of skipping the provider at once.
        max_pause: The longest pause a ``Retry-After`` may ask for.
        default_pause: The pause after a rate-limit error without a
            usable ``Retry-After``.
        clock: Trio's clock, or another monotonic one.
        wall: Seconds since the epoch, for the quota's UTC periods.
    """

    def __init__(
        self,
        *,
        rate_limit: RateLimit | None = None,
        quota: QuotaLimit | None = None,
        wait_for_token: bool = False,
        max_pause: float = 3600.0,
        default_pause: float = 60.0,
        clock: Callable[[], float] = trio.current_time,
        wall: Callable[[], float],
    ) -> None:
        self.bucket: TokenBucket | None = None
        if rate_limit is not None:
            self.bucket = TokenBucket(rate_limit, clock=clock)

        self.quota = None if quota is None else Quota(quota, wall=wall)
        self.wait_for_token = wait_for_token
        self.max_pause = max_pause
        self.default_pause = default_pause
        self._clock = clock
        self._paused_until = -math.inf

    @property
    def paused_until(self) -> float:
        """When the current pause ends (clock time; in the past if none)."""
        return self._paused_until

    def check(self) -> Refusal | None:
        """Return why a call may not start now, without spending anything.

        The rate limit is left out: taking its token is `take`'s job.
        """
        if self._clock() < self._paused_until:
            left = self._paused_until - self._clock()
            return Refusal(
                ErrorCode.PAUSED,
                f"the provider asked for a pause; {left:.1f} s left",
            )

        if self.quota is not None and self.quota.spent:
            return _QUOTA_SPENT

        return None

    def take(self) -> Refusal | None:
        """Spend a token and a quota unit for a call, or say why not."""
        refusal = self.check()
        if refusal is not None:
            return refusal

        if self.bucket is not None and not self.bucket.try_take():
            return _NO_TOKEN

        if self.quota is not None:
            self.quota.spend()

        return None

    async def wait_and_take(self, deadline: float) -> Refusal | None:
        """Like `take`, but wait for a token if one comes before *deadline*.

        A wait that cannot end before the deadline is not started.
        """
        while True:
            refusal = self.take()
            if refusal is not _NO_TOKEN or self.bucket is None:
                return refusal

            ready_at = self._clock() + self.bucket.wait_time()
            if ready_at >= deadline:
                return refusal

            await trio.sleep_until(ready_at)

    def pause(self, retry_after: float | None) -> float:
        """Pause the provider after it refused a call for its rate limit.

        Args:
            retry_after: Seconds the provider asked to wait. Missing,
                negative or not-a-number values get the default pause;
                longer ones than ``max_pause`` are cut to it.

        Returns:
            The pause's length in seconds.
        """
        if retry_after is None or not retry_after >= 0:
            seconds = self.default_pause
        else:
            seconds = min(retry_after, self.max_pause)

        # A later, shorter answer never shortens a pause already running.
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        return seconds

    def statistics(self) -> LimitStatistics:
        """Return a snapshot of the limits."""
        quota = self.quota
        return LimitStatistics(
            rate_limit=None if self.bucket is None else self.bucket.limit,
            tokens=None if self.bucket is None else self.bucket.tokens,
            quota=None if quota is None else quota.limit,
            quota_used=0 if quota is None else quota.used,
            quota_fraction=None if quota is None else quota.fraction,
            paused_for=max(0.0, self._paused_until - self._clock()),
        )
