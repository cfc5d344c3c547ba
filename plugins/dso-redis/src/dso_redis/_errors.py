"""The one error the redis backend raises."""

from __future__ import annotations

from dso import DsoError


class RedisCacheError(DsoError):
    """Redis could not be reached, did not answer in time, or refused.

    The orchestrator counts it as a failed cache operation and goes on
    without the cache. The coredis error is chained as ``__cause__``; the
    message never shows a password.
    """
