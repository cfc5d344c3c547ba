"""Scripted fake providers, for testing code that uses dso."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import trio

from .._errors import ErrorCode, ProviderError
from .._provider import ProviderContext


@attrs.frozen
class Hang:
    """A step that never answers (until the caller's timeout cancels it)."""


@attrs.frozen
class Delay:
    """A step that answers with *then* after *seconds* (on trio's clock).

    Attributes:
        seconds: How long to wait first.
        then: What to answer: a value, or a `ProviderError` to raise.
    """

    seconds: float
    then: object


@attrs.frozen
class FakeCall:
    """One call a fake provider received.

    Attributes:
        keys: The keys asked for.
        started_at: When the call started (trio time).
        batch: Whether it was a ``fetch_batch`` call.
    """

    keys: tuple[str, ...]
    started_at: float
    batch: bool = False


class FakeProvider:
    """A provider that answers from a dict, or as scripted per key.

    Without a script, a key in *data* gets its value and any other key a
    NOT_FOUND. `script` queues answers for a key, used one per call, before
    falling back to *data*; `fail_all` makes every call fail until
    `recover`.

    Args:
        name: The provider's name.
        data: The values it knows, by key.
        delay: Seconds every call takes (on trio's clock).
    """

    def __init__(
        self, name: str, data: Mapping[str, object] | None = None, *, delay: float = 0.0
    ) -> None:
        self._name = name
        self.data = dict(data or {})
        self.delay = delay
        self.calls: list[FakeCall] = []
        self._scripts: defaultdict[str, deque[object]] = defaultdict(deque)
        self._failure: object | None = None

    @property
    def name(self) -> str:
        """The provider's name."""
        return self._name

    def script(self, key: str, *steps: object) -> None:
        """Queue answers for *key*: values, `ProviderError`, `Hang`, `Delay`."""
        self._scripts[key].extend(steps)

    def fail_all(self, failure: object | None = None) -> None:
        """Make every call fail (UNAVAILABLE unless another step is given)."""
        if failure is None:
            failure = ProviderError(ErrorCode.UNAVAILABLE, "scripted outage")

        self._failure = failure

    def recover(self) -> None:
        """Undo `fail_all`."""
        self._failure = None

    async def fetch(self, key: str, ctx: ProviderContext) -> object:
        """Answer for one key as scripted."""
        self.calls.append(FakeCall((key,), trio.current_time()))
        await trio.sleep(self.delay)
        return await self._play(self._next_step(key))

    def _next_step(self, key: str) -> object:
        if self._failure is not None:
            return self._failure

        script = self._scripts.get(key)
        if script:
            return script.popleft()

        if key in self.data:
            return self.data[key]

        return ProviderError(ErrorCode.NOT_FOUND, f"{self._name} does not know {key}")

    async def _play(self, step: object) -> object:
        if isinstance(step, Hang):
            await trio.sleep_forever()

        if isinstance(step, Delay):
            await trio.sleep(step.seconds)
            step = step.then

        if isinstance(step, BaseException):
            raise step

        return step


class FakeBatchProvider(FakeProvider):
    """A `FakeProvider` that also answers batches.

    A batch answers every key it knows, in reverse order (callers must
    match by key, not position), and leaves out the keys it does not
    know. A key whose next step is an error fails the whole batch.

    Args:
        name: The provider's name.
        data: The values it knows, by key.
        max_batch_size: The largest batch it accepts.
        delay: Seconds every call takes (on trio's clock).
    """

    def __init__(
        self,
        name: str,
        data: Mapping[str, object] | None = None,
        *,
        max_batch_size: int = 10,
        delay: float = 0.0,
    ) -> None:
        super().__init__(name, data, delay=delay)
        self.max_batch_size = max_batch_size

    async def fetch_batch(
        self, keys: Sequence[str], ctx: ProviderContext
    ) -> Mapping[str, object]:
        """Answer a batch as scripted."""
        if len(keys) > self.max_batch_size:
            raise ValueError(f"{len(keys)} keys exceed max_batch_size")

        self.calls.append(FakeCall(tuple(keys), trio.current_time(), batch=True))
        await trio.sleep(self.delay)

        found: dict[str, Any] = {}
        for key in reversed(keys):
            try:
                found[key] = await self._play(self._next_step(key))
            except ProviderError as exc:
                if exc.code is not ErrorCode.NOT_FOUND:
                    raise

        return found
