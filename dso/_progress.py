"""A progress bar for long ``dso fetch --batch`` runs, fed by telemetry."""

from __future__ import annotations

from rich.progress import Progress, TaskID

from ._events import AttemptFailed, AttemptSucceeded, BatchChunkFetched, CacheHit, Event


class BatchProgress:
    """A telemetry sink that moves a progress bar as a batch's keys are done.

    Keys count as done when a chunk returns (all its keys), when a key is
    answered from the cache, or when a provider call for one key ends.

    Args:
        progress: The rich progress display.
        namespace: The batch's namespace; other events are ignored.
        total: Keys in the batch.
    """

    def __init__(self, progress: Progress, namespace: str, total: int) -> None:
        self._progress = progress
        self._namespace = namespace
        self._total = total
        self._task: TaskID = progress.add_task(f"fetching {namespace}", total=total)
        self._done = 0
        # Keys already counted one by one (bounded by the batch's size).
        self._keys: set[str] = set()

    @property
    def done(self) -> int:
        """Keys counted as done so far."""
        return self._done

    def __call__(self, event: Event) -> None:
        """Advance the bar for one event (called in the sinks' thread)."""
        if event.namespace != self._namespace:
            return

        if isinstance(event, BatchChunkFetched):
            self._advance(event.keys)
        elif (
            isinstance(event, CacheHit | AttemptSucceeded | AttemptFailed)
            and event.key is not None
            and event.key not in self._keys
        ):
            self._keys.add(event.key)
            self._advance(1)

    def finish(self) -> None:
        """Show every key as done (some are done without an event).

        A key that joined a call already in flight, or that a chunk left
        unanswered, is done without an event of its own.
        """
        self._advance(self._total - self._done)

    def _advance(self, keys: int) -> None:
        keys = min(keys, self._total - self._done)
        self._done += keys
        self._progress.update(self._task, completed=self._done)
