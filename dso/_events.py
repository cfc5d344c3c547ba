"""Telemetry events: what each step of a fetch tells the outside.

Every event is a frozen record. All share the fields of `Event`; each kind
adds what is particular to it. Sinks receive them in a worker thread,
after the step they describe has happened, so a sink can never slow down
or break a fetch::

    Event
    ├── CacheHit, CacheMiss, StaleServed, CacheWritten, CacheFailed
    ├── AttemptStarted, AttemptSucceeded, AttemptFailed, AttemptSkipped
    ├── RetryScheduled, ProviderPaused, BreakerTransitioned
    ├── DedupJoined, BatchChunkFetched, MergeFinished
    └── FetchFinished
"""

from __future__ import annotations

import attrs

from ._breaker import BreakerState
from ._errors import ErrorCode


@attrs.frozen(kw_only=True)
class Event:
    """What every event carries.

    Attributes:
        at: When it happened, in seconds since the epoch.
        namespace: The namespace of the fetch, if there is one.
        provider: The provider concerned, if any.
        key: The key concerned: as given, hashed, or ``None``, as the
            ``telemetry.keys`` setting says (keys can be personal data).
    """

    at: float
    namespace: str | None = None
    provider: str | None = None
    key: str | None = None


@attrs.frozen(kw_only=True)
class CacheHit(Event):
    """A fresh value was served from the cache.

    Attributes:
        age: Seconds since the value was stored.
    """

    age: float


@attrs.frozen(kw_only=True)
class CacheMiss(Event):
    """The cache held no fresh value for the key."""


@attrs.frozen(kw_only=True)
class StaleServed(Event):
    """An expired value was served.

    Attributes:
        age: Seconds since the value was stored.
        revalidating: ``True`` when served at once while a refresh runs
            (stale-while-revalidate); ``False`` when every provider failed.
    """

    age: float
    revalidating: bool


@attrs.frozen(kw_only=True)
class CacheWritten(Event):
    """Values were handed to the cache to store.

    A backend that then failed also reports `CacheFailed`.

    Attributes:
        keys: How many.
    """

    keys: int


@attrs.frozen(kw_only=True)
class CacheFailed(Event):
    """A cache backend failed; the fetch went on without it.

    Attributes:
        backend: The backend's name.
        operation: What it failed to do (``"read"``, ``"write"``...).
    """

    backend: str
    operation: str


@attrs.frozen(kw_only=True)
class AttemptStarted(Event):
    """A call to a provider began."""


@attrs.frozen(kw_only=True)
class AttemptSucceeded(Event):
    """A call to a provider returned data.

    Attributes:
        duration: Seconds it took, on trio's clock.
    """

    duration: float


@attrs.frozen(kw_only=True)
class AttemptFailed(Event):
    """A call to a provider failed.

    Attributes:
        code: Why.
        duration: Seconds it took, on trio's clock.
    """

    code: ErrorCode
    duration: float


@attrs.frozen(kw_only=True)
class AttemptSkipped(Event):
    """A provider was not called.

    Attributes:
        reason: Why (an open breaker, a spent rate budget, a pause...).
    """

    reason: ErrorCode


@attrs.frozen(kw_only=True)
class RetryScheduled(Event):
    """A failed call will be tried again.

    Attributes:
        retry: Which retry this is (1 for the first).
        delay: Seconds until it starts.
        code: Why the previous try failed.
    """

    retry: int
    delay: float
    code: ErrorCode


@attrs.frozen(kw_only=True)
class ProviderPaused(Event):
    """A provider asked for a pause (Retry-After); nobody calls it until then.

    Attributes:
        seconds: How long the pause lasts.
    """

    seconds: float


@attrs.frozen(kw_only=True)
class BreakerTransitioned(Event):
    """A provider's circuit breaker changed state.

    Attributes:
        old: The state left.
        new: The state entered.
        reason: Why, in a few words.
    """

    old: BreakerState
    new: BreakerState
    reason: str


@attrs.frozen(kw_only=True)
class DedupJoined(Event):
    """A request joined a provider call already in flight for its key."""


@attrs.frozen(kw_only=True)
class BatchChunkFetched(Event):
    """One chunk of a batch came back from its provider.

    Attributes:
        keys: Keys the chunk asked for.
        found: Keys it returned values for.
        duration: Seconds the call took, on trio's clock.
        code: Why the whole chunk failed, or ``None``.
    """

    keys: int
    found: int
    duration: float
    code: ErrorCode | None = None


@attrs.frozen(kw_only=True)
class MergeFinished(Event):
    """A merge of several providers' answers ended.

    Attributes:
        succeeded: Providers that answered.
        asked: Providers asked.
        ok: Whether enough answered to merge.
    """

    succeeded: int
    asked: int
    ok: bool

    @property
    def partial(self) -> bool:
        """Whether the merge was built from fewer than all providers."""
        return self.ok and self.succeeded < self.asked


@attrs.frozen(kw_only=True)
class FetchFinished(Event):
    """A strategy call returned its result for one key.

    Attributes:
        strategy: ``"fallback"``, ``"merge"`` or ``"batch"``.
        source: Where the value came from (a provider, ``"cache"``), or
            ``None`` when there is none.
        ok: Whether it has a value.
        stale: Whether the value is stale.
        duration: Seconds the call took, on trio's clock.
    """

    strategy: str
    source: str | None
    ok: bool
    stale: bool
    duration: float
