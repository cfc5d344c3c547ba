"""The errors dso raises, under one root.

::

    DsoError
     ├── ProviderError       a provider call failed; ``code`` says how
     ├── ConfigError         the configuration is invalid; names the field
     ├── CacheError          a cache backend failed where that matters
     └── OrchestratorClosed  the orchestrator has shut down

Misuse of the API (a wrong type, an unknown provider name) raises the
built-in ``TypeError``, ``ValueError`` or ``LookupError`` instead.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.Enum):
    """Why an attempt did not produce data.

    Providers raise the first six. The orchestrator records the others
    itself: CANCELLED for a hedge that lost, and the skips, when it
    decides not to call a provider at all.
    """

    NOT_FOUND = "not_found"
    """The provider does not know the key; the provider itself is healthy."""

    RATE_LIMIT = "rate_limit"
    """The provider refused the call because of its rate limit or quota."""

    AUTH = "auth"
    """The credentials were refused (bad, missing or expired key)."""

    TIMEOUT = "timeout"
    """The attempt did not finish within its time."""

    UNAVAILABLE = "unavailable"
    """The provider could not be reached or answered with a server error."""

    INVALID_RESPONSE = "invalid_response"
    """The provider answered with something that is not the data asked for."""

    CIRCUIT_OPEN = "circuit_open"
    """The provider's circuit breaker is open; it was not called."""

    CANCELLED = "cancelled"
    """The attempt was cancelled because another provider answered first."""

    RATE_LIMITED_LOCALLY = "rate_limited_locally"
    """The provider's configured rate limit is spent; it was not called."""

    QUOTA_EXHAUSTED = "quota_exhausted"
    """The provider's quota for the day (or month) is used up; not called."""

    PAUSED = "paused"
    """The provider asked for a pause (``Retry-After``); it was not called."""

    @property
    def skipped(self) -> bool:
        """Whether this code means the provider was not called at all."""
        return self in _SKIPS


_SKIPS = frozenset(
    {
        ErrorCode.CIRCUIT_OPEN,
        ErrorCode.RATE_LIMITED_LOCALLY,
        ErrorCode.QUOTA_EXHAUSTED,
        ErrorCode.PAUSED,
    }
)


class DsoError(Exception):
    """The root of every error dso raises on purpose."""


class ProviderError(DsoError):
    """A provider could not deliver the data for a key.

    Args:
        code: What kind of failure this is.
        message: A human-readable explanation; never carries a secret.
        retry_after: With ``RATE_LIMIT``: seconds until the provider
            accepts calls again, when the provider said so.
        provider: The name of the provider that failed, when known.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retry_after: float | None = None,
        provider: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.provider = provider

    def __str__(self) -> str:
        where = f"{self.provider}: " if self.provider else ""
        return f"{where}{self.code.name}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"ProviderError({self.code.name}, {self.message!r}, "
            f"retry_after={self.retry_after!r}, provider={self.provider!r})"
        )


class ConfigError(DsoError, ValueError):
    """The configuration is invalid.

    The message names the path of the bad field, for example
    ``providers.tiingo.timeout: expected a number, got "fast"``.
    """


class CacheError(DsoError):
    """A cache backend failed at something that cannot be skipped.

    Reads and writes that fail are misses and skipped writes; only an
    invalidation raises this, since the value it should remove might
    still be served. The backend's own error is chained as the cause.
    """


class OrchestratorClosed(DsoError):
    """The orchestrator has shut down; it can no longer fetch."""
