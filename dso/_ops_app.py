"""The operator's HTTP endpoints, as a plain ASGI application.

``/health`` (JSON; 503 while failing), ``/stats`` (JSON), ``/metrics``
(the ``prometheus`` exporter a plugin offers) and ``/`` (the dashboard).
Any ASGI server runs it; `serve_ops` runs it on hypercorn.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from ._dashboard import render_dashboard
from ._exporter import Exposition, MetricsExporter, StatsSource
from ._health import HealthStatus


if TYPE_CHECKING:
    from ._orchestrator import Orchestrator

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MIN_REFRESH = 0.1
"""The shortest refresh interval of the dashboard, in seconds."""

_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"
_HTML = "text/html; charset=utf-8"
# The page carries its own script and style and fetches only its own
# endpoints: nothing else may load, whatever a name in the stats says.
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; img-src data:; connect-src 'self'"
)


def ops_app(
    orchestrator: Orchestrator,
    *,
    metrics: MetricsExporter | None = None,
    refresh_every: float = 2.0,
) -> OpsApp:
    """Return the ASGI application serving *orchestrator*'s operator view.

    Args:
        orchestrator: Whose stats and health to serve.
        metrics: Renders ``/metrics``; by default the ``prometheus``
            exporter of an installed plugin (dso-prometheus). Without
            one, ``/metrics`` answers 404 saying what to install.
        refresh_every: Seconds between the dashboard's refreshes, at least
            0.1.

    Raises:
        ValueError: *refresh_every* is under 0.1 s or not finite.
    """
    if metrics is None:
        offered = orchestrator.plugins.metrics_exporters().get("prometheus")
        metrics = None if offered is None else offered.item

    return OpsApp(orchestrator, metrics, refresh_every)


class OpsApp:
    """The ASGI application `ops_app` builds.

    Args:
        source: Whose stats and health to serve.
        metrics: Renders ``/metrics``, or ``None`` for none.
        refresh_every: Seconds between the dashboard's refreshes.
    """

    def __init__(
        self,
        source: StatsSource,
        metrics: MetricsExporter | None,
        refresh_every: float = 2.0,
    ) -> None:
        # A page that reloads its data more often than ten times a second
        # only loads the server; NaN or infinity cannot be a timer at all.
        if not MIN_REFRESH <= refresh_every < math.inf:
            raise ValueError(
                f"refresh_every must be at least {MIN_REFRESH} s and finite,"
                f" not {refresh_every}"
            )

        self._source = source
        self._metrics = metrics
        self._refresh_every = refresh_every
        self._routes: dict[str, Callable[[], tuple[int, Exposition]]] = {
            "/": self._dashboard,
            "/health": self._health,
            "/stats": self._stats,
            "/metrics": self._metrics_page,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one ASGI connection."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return

        if scope["type"] != "http":
            # Websockets: refuse the handshake.
            await send({"type": "websocket.close", "code": 1003})
            return

        status, answer = self._answer(scope["method"], scope["path"])
        body = b"" if scope["method"] == "HEAD" else answer.body
        headers = [
            (b"content-type", answer.content_type.encode()),
            (b"content-length", str(len(answer.body)).encode()),
            (b"cache-control", b"no-store"),
            (b"content-security-policy", _CSP.encode()),
            (b"x-content-type-options", b"nosniff"),
        ]
        if status == 405:
            # RFC 9110, 15.5.6: a 405 must say which methods are allowed.
            headers.append((b"allow", b"GET, HEAD"))

        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": body})

    def _answer(self, method: str, path: str) -> tuple[int, Exposition]:
        route = self._routes.get(path)
        if route is None:
            return 404, _text(f"no such page: {path}; try / /health /stats /metrics")

        if method not in ("GET", "HEAD"):
            return 405, _text(f"{method} not allowed: only GET and HEAD")

        return route()

    def _health(self) -> tuple[int, Exposition]:
        health = self._source.health()
        status = 503 if health.status is HealthStatus.FAILING else 200
        return status, _json(health.to_dict())

    def _stats(self) -> tuple[int, Exposition]:
        return 200, _json(self._source.stats().to_dict())

    def _metrics_page(self) -> tuple[int, Exposition]:
        if self._metrics is None:
            return 404, _text(
                "no metrics exporter: install dso-prometheus for /metrics"
            )

        return 200, self._metrics(self._source)

    def _dashboard(self) -> tuple[int, Exposition]:
        page = render_dashboard(
            self._source.stats().to_dict(),
            self._source.health().to_dict(),
            self._refresh_every,
        )
        return 200, Exposition(_HTML, page.encode())


async def _lifespan(receive: Receive, send: Send) -> None:
    # Nothing to open or close: the orchestrator belongs to the caller.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _json(data: object) -> Exposition:
    return Exposition(_JSON, json.dumps(data, default=str).encode())


def _text(message: str) -> Exposition:
    return Exposition(_TEXT, (message + "\n").encode())
