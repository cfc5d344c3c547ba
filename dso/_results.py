"""What the fetch strategies return."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

import attrs

from ._errors import ErrorCode


T = TypeVar("T")

CACHE_SOURCE = "cache"
"""The `FetchResult.source` of a value served from the cache."""


@attrs.frozen
class Attempt:
    """One try at one provider, and how it went.

    Attributes:
        provider: The provider's name.
        code: Why it produced no data; ``None`` when it succeeded.
        message: What happened, for people; never carries a secret.
        duration: Seconds the attempt took (0 when it was skipped).
        keys: How many keys the call asked for (1 unless batched).
        retry: 0 for a first try, 1 for the first retry, and so on.
    """

    provider: str
    code: ErrorCode | None = None
    message: str = ""
    duration: float = 0.0
    keys: int = 1
    retry: int = 0

    @property
    def ok(self) -> bool:
        """Whether the attempt produced data."""
        return self.code is None

    @property
    def skipped(self) -> bool:
        """Whether the provider was not called (a breaker or limit said no)."""
        return self.code is not None and self.code.skipped


DEADLINE_PASSED = Attempt(
    "(deadline)", ErrorCode.TIMEOUT, "the call's timeout passed before an answer"
)
"""The attempt recorded when the whole call's deadline cut it short."""

REMEMBERED_NOT_FOUND = Attempt(
    CACHE_SOURCE,
    ErrorCode.NOT_FOUND,
    "every provider answered not found a short while ago (negative_ttl)",
)
"""The attempt of a result served from a remembered NOT_FOUND."""


@attrs.frozen
class FetchResult(Generic[T]):
    """The answer for one key.

    A missing value is never an exception: ``data`` is ``None`` and
    ``attempts`` says what every provider did.

    Attributes:
        key: The key asked for.
        namespace: Its namespace.
        data: The value, or ``None`` when nothing could be had.
        source: Where the value came from: a provider's name, ``"cache"``,
            or for a merge the providers joined with ``+``.
        cached: The answer came from the cache: a value, or a NOT_FOUND
            remembered there (see `not_found`).
        stale: The value is past its freshness (served because every
            provider failed and stale data was allowed).
        age: Seconds since the value was fetched from a provider.
        partial: A merge built from fewer than all providers.
        sources: The providers whose data the value holds (for a cached
            value, empty).
        attempts: Every provider attempt, in the order they were made.
    """

    key: str
    namespace: str
    data: T | None = None
    source: str | None = None
    cached: bool = False
    stale: bool = False
    age: float | None = None
    partial: bool = False
    sources: tuple[str, ...] = ()
    attempts: tuple[Attempt, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether a value was found (fresh or stale)."""
        return self.source is not None

    @property
    def not_found(self) -> bool:
        """Whether every attempt said NOT_FOUND: nobody knows the key.

        A NOT_FOUND remembered by the cache (``negative_ttl``) counts: its
        one attempt is from ``"cache"`` with code NOT_FOUND.
        """
        return bool(self.attempts) and all(
            attempt.code is ErrorCode.NOT_FOUND for attempt in self.attempts
        )

    @property
    def errors(self) -> tuple[Attempt, ...]:
        """The attempts that failed or were skipped."""
        return tuple(attempt for attempt in self.attempts if not attempt.ok)


@attrs.frozen
class BatchSummary:
    """Counts over a batch.

    Attributes:
        total: Distinct keys asked for.
        successful: Keys with a value (fresh, cached or stale).
        failed: Keys without one.
        cached: Keys served from the cache.
        fresh: Keys fetched from a provider in this call.
        stale: Keys served stale.
        provider_calls: Calls made to providers (a chunk counts once).
    """

    total: int
    successful: int
    failed: int
    cached: int
    fresh: int
    stale: int
    provider_calls: int


@attrs.frozen
class BatchResult(Mapping[str, FetchResult[T]]):
    """The answers for a batch, by key, with a summary.

    It is a read-only mapping from each distinct key, in the order first
    asked, to its `FetchResult`.
    """

    results: Mapping[str, FetchResult[T]]
    summary: BatchSummary

    def __getitem__(self, key: str) -> FetchResult[T]:
        return self.results[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)


def not_found_from_cache(key: str, namespace: str, age: float) -> FetchResult[Any]:
    """Return the result of a NOT_FOUND remembered by the cache."""
    return FetchResult(
        key, namespace, cached=True, age=age, attempts=(REMEMBERED_NOT_FOUND,)
    )


class _Thawed(FetchResult[Any]):
    # FetchResult's very slots without its frozen guard: `cache_hit` sets
    # the fields with plain stores, then makes the object a FetchResult,
    # which Python allows since the layouts are the same. Both __setattr__
    # and __delattr__ are object's, or every store goes through a lookup;
    # object's __init__ makes an empty one faster than object.__new__ does.
    # A field added to FetchResult must be set there too (a test compares
    # such a result with one built by the constructor).
    __slots__ = ()
    __init__ = object.__init__
    __setattr__ = object.__setattr__
    __delattr__ = object.__delattr__


def cache_hit(
    key: str, namespace: str, data: Any, age: float, partial: bool = False
) -> FetchResult[Any]:
    """Return the result of a fresh cache hit.

    It equals ``FetchResult(key, namespace, data, "cache", True, False,
    age, partial)``, built in a quarter of the time the frozen class's own
    constructor takes: a hit spends much of its time there.
    """
    result: Any = _Thawed()
    result.key = key
    result.namespace = namespace
    result.data = data
    result.source = CACHE_SOURCE
    result.cached = True
    result.stale = False
    result.age = age
    result.partial = partial
    result.sources = ()
    result.attempts = ()
    result.__class__ = FetchResult
    return result  # type: ignore[no-any-return]


def cache_hits(
    namespace: str, hits: Mapping[str, tuple[Any, float]]
) -> dict[str, FetchResult[Any]]:
    """Return the results of fresh cache hits, by key, in the order of *hits*.

    Each is what `cache_hit` returns for the ``(data, age)`` of its key.
    """
    return {
        key: cache_hit(key, namespace, data, age) for key, (data, age) in hits.items()
    }
