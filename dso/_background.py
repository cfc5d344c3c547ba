"""A nursery for background work that its ``async with`` block owns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio


@asynccontextmanager
async def open_background_nursery() -> AsyncIterator[trio.Nursery]:
    """Open a nursery whose tasks live only as long as the block.

    Unlike a plain nursery, leaving the block does not wait for the tasks:
    it cancels them. And an exception raised by the block comes out as
    itself rather than wrapped in an exception group, so callers of an
    object that owns background work catch their own errors as usual.
    """
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        try:
            yield nursery
        except BaseException as exc:  # noqa: ASYNC103 - raised again below
            body_error = exc
        finally:
            nursery.cancel_scope.cancel()

    if body_error is not None:
        raise body_error
