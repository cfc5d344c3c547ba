"""`serve_ops`: the operator's endpoints on hypercorn, inside a trio app."""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from ._ops_app import ops_app


if TYPE_CHECKING:
    from ._orchestrator import Orchestrator


logger = logging.getLogger("dso.ops")


async def serve_ops(
    orchestrator: Orchestrator,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    refresh_every: float = 2.0,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `ops_app` for *orchestrator* over HTTP until cancelled.

    Start it in a nursery you own, next to the orchestrator's work::

        url = await nursery.start(dso.serve_ops, orch, "127.0.0.1", 9000)

    Args:
        orchestrator: Whose stats and health to serve.
        host: The address to listen on.
        port: The port to listen on; 0 for any free one.
        refresh_every: Seconds between the dashboard's refreshes.
        task_status: Receives the server's URL once it listens.

    Raises:
        RuntimeError: hypercorn is not installed (``pip install
            'dso[serve]'``).
    """
    try:
        import hypercorn.config
        import hypercorn.trio
    except ImportError:
        raise RuntimeError(
            "serving needs hypercorn: pip install 'dso[serve]'"
        ) from None

    config = hypercorn.config.Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logger
    # hypercorn types ASGI messages as its own TypedDicts; the app speaks
    # plain ASGI mappings, which is the same thing on the wire.
    app: Any = ops_app(orchestrator, refresh_every=refresh_every)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(hypercorn.trio.serve, app, config))
        task_status.started(binds[0])
