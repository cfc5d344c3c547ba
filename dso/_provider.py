"""The protocol a provider implements, and what it is given to work with."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs
import httpx
import trio


if TYPE_CHECKING:
    from ._config import ProviderSettings


@attrs.frozen
class ProviderContext:
    """What a provider gets for one call.

    Attributes:
        http: The orchestrator's shared HTTP client. Providers never
            open their own: connection pools and limits are shared.
        settings: The provider's own configuration section (base URL,
            API key, options).
        namespace: The namespace the data is fetched for.
        deadline: The trio time by which the call must be done
            (``math.inf`` when there is none).
    """

    http: httpx.AsyncClient
    settings: ProviderSettings
    namespace: str
    deadline: float = math.inf

    def remaining(self) -> float:
        """Return the seconds left before the deadline (``inf`` if none)."""
        return self.deadline - trio.current_time()


@runtime_checkable
class Provider(Protocol):
    """A source of data for keys, such as a market data API.

    A provider reports failure by raising `ProviderError` with a code; it
    returns data only when it has data for the key. An HTTP 200 that
    carries an error message is an error, never data.

    Optional capabilities are found by the orchestrator with ``getattr``:

    - ``max_batch_size: int`` and
      ``async fetch_batch(keys, ctx) -> Mapping[str, object]`` for
      providers that can fetch many keys in one call (see
      `BatchProvider`);
    - ``async health_check(ctx) -> None``, raising `ProviderError` when the
      provider is unhealthy.
    """

    @property
    def name(self) -> str:
        """The provider's name, as used in configuration and results."""
        ...

    async def fetch(self, key: str, ctx: ProviderContext) -> object:
        """Fetch the value for one key.

        Raises:
            ProviderError: The provider has no data for the key, or failed.
        """
        ...


@runtime_checkable
class BatchProvider(Provider, Protocol):
    """A provider that can fetch several keys in one call."""

    @property
    def max_batch_size(self) -> int:
        """The largest number of keys one ``fetch_batch`` call accepts."""
        ...

    async def fetch_batch(
        self, keys: Sequence[str], ctx: ProviderContext
    ) -> Mapping[str, object]:
        """Fetch several keys at once.

        Returns:
            The values found, by key. A key the provider did not return is
            a per-key NOT_FOUND for the caller, never a crash. Order does
            not matter: results are matched by key.

        Raises:
            ProviderError: The whole call failed.
        """
        ...
