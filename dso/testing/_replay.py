"""A loopback HTTP server that replays recorded provider responses.

Tests and the demo point providers' base URLs at it and talk to it over
real sockets, so the whole HTTP stack runs as it does in production.
Faults (latency, error statuses, rate limits, hangs, dropped
connections) can be injected per provider and path, from the test
itself or, through ``POST /_replay/faults``, from another process.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import h11
import trio

from .._background import open_background_nursery
from .._redaction import redact_url
from ._faults import ANY_PROVIDER, Fault, rule_from_json
from ._http11 import Answer, Connection, Incoming
from ._routes import CONTROL_PROVIDER, Route, RouteTable


_CONTROL_PATH = "/faults"


def _shown(parsed: _Parsed) -> str:
    # What a 404 says was asked for: the query too, which tells which
    # recording was missed, with any secret-looking value hidden.
    if not parsed.query:
        return parsed.path

    pairs = [(name, value) for name, values in parsed.query.items() for value in values]
    return redact_url(f"{parsed.path}?{urllib.parse.urlencode(pairs)}")


def _query_names(query: Mapping[str, str]) -> str:
    # Query strings carry API keys: a repr shows only the names.
    return f"<query {', '.join(sorted(query))}>"


@attrs.frozen
class ReplayRequest:
    """A request the replay server received for a provider.

    Attributes:
        provider: The first path segment, decoded.
        method: The HTTP method.
        path: The rest of the path, decoded.
        query: The query parameters; a repeated one keeps its last value.
            The repr shows only their names, since they may hold keys.
    """

    provider: str
    method: str
    path: str
    query: Mapping[str, str] = attrs.field(repr=_query_names)


@attrs.frozen
class ReplayStatistics:
    """What a replay server has done so far.

    Attributes:
        requests_served: Requests received for providers, whatever the
            answer (control requests are not counted).
        faults_applied: Requests that met an injected fault.
        unmatched: Requests answered 404 because no route matched.
        connections_open: Client connections open right now.
    """

    requests_served: int
    faults_applied: int
    unmatched: int
    connections_open: int


@attrs.frozen
class _Parsed:
    provider: str
    path: str
    query: Mapping[str, Sequence[str]]


class ReplayServer:
    """A running replay server; made by `open_replay_server`.

    Attributes:
        url: The server's root, such as ``"http://127.0.0.1:50123"``.
    """

    def __init__(
        self, url: str, routes: Iterable[Route], bodies: Mapping[str, bytes]
    ) -> None:
        self.url = url
        self._routes = RouteTable(routes)
        self._bodies = bodies
        self._faults: dict[tuple[str, str | None], Fault] = {}
        self._requests: list[ReplayRequest] = []
        self._faults_applied = 0
        self._unmatched = 0
        self._connections_open = 0

    def __repr__(self) -> str:
        return f"<ReplayServer {self.url}>"

    @property
    def requests(self) -> list[ReplayRequest]:
        """Every provider request received so far, oldest first (a copy)."""
        return list(self._requests)

    def base_url(self, provider: str) -> str:
        """Return the URL to configure as *provider*'s base URL."""
        return f"{self.url}/{provider}"

    def inject(self, provider: str, fault: Fault, *, path: str | None = None) -> None:
        """Make the server misbehave for some requests, until cleared.

        A fault for a provider and path wins over one for the whole
        provider, which wins over one for ``"*"``. Injecting again for the
        same provider and path replaces the fault.

        Args:
            provider: The provider, or ``"*"`` for every provider.
            fault: What to do instead of (or before) answering.
            path: Only requests for this path under the provider prefix,
                such as ``"/iex/AAPL"``; ``None`` for every path.

        Raises:
            ValueError: *path* does not start with ``/``, or *provider* is
                empty or holds a ``/``.
        """
        if not provider or "/" in provider:
            raise ValueError(f"not a provider name: {provider!r}")

        if path is not None and not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")

        self._faults[provider, path] = fault

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self._faults.clear()

    def statistics(self) -> ReplayStatistics:
        """Return what the server has done so far."""
        return ReplayStatistics(
            requests_served=len(self._requests),
            faults_applied=self._faults_applied,
            unmatched=self._unmatched,
            connections_open=self._connections_open,
        )

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        self._connections_open += 1
        try:
            async with stream:
                await self._converse(Connection(stream))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # The client went away; there is no one left to answer.
        finally:
            self._connections_open -= 1

    async def _converse(self, connection: Connection) -> None:
        keep_going = True
        while keep_going:
            try:
                request = await connection.receive()
            except h11.RemoteProtocolError as exc:
                await connection.refuse(exc)
                return

            if request is None:
                return

            keep_going = await self._exchange(connection, request)

    async def _exchange(self, connection: Connection, request: Incoming) -> bool:
        """Answer one request; return whether the connection stays open."""
        parsed = _parse_target(request.target)
        if parsed.provider == CONTROL_PROVIDER:
            await connection.send(self._control(request.method, parsed, request.body))
            return connection.start_next_cycle()

        self._requests.append(_record(request.method, parsed))
        fault = self._fault_for(parsed.provider, parsed.path)
        if fault is None:
            await connection.send(self._recorded(request.method, parsed))
            return connection.start_next_cycle()

        self._faults_applied += 1
        return await self._misbehave(connection, request.method, parsed, fault)

    async def _misbehave(
        self, connection: Connection, method: str, parsed: _Parsed, fault: Fault
    ) -> bool:
        if fault.kind == "drop":
            return False

        if fault.kind == "hang":
            await connection.wait_closed()
            return False

        if fault.kind == "latency":
            await trio.sleep(fault.seconds)
            answer = self._recorded(method, parsed)
        else:
            answer = _fault_answer(fault)

        await connection.send(answer)
        return connection.start_next_cycle()

    def _fault_for(self, provider: str, path: str) -> Fault | None:
        for key in (
            (provider, path),
            (provider, None),
            (ANY_PROVIDER, path),
            (ANY_PROVIDER, None),
        ):
            fault = self._faults.get(key)
            if fault is not None:
                return fault

        return None

    def _recorded(self, method: str, parsed: _Parsed) -> Answer:
        route = self._routes.match(parsed.provider, method, parsed.path, parsed.query)
        if route is None:
            self._unmatched += 1
            message = f"no recording for {parsed.provider} {_shown(parsed)}"
            return Answer(404, message.encode())

        body = self._bodies[route.file]
        return Answer(route.status, body, route.content_type, route.headers)

    def _control(self, method: str, parsed: _Parsed, body: bytes) -> Answer:
        if parsed.path != _CONTROL_PATH:
            return Answer(404, f"no control endpoint {parsed.path}".encode())

        if method == "DELETE":
            self.clear_faults()
            return Answer(200, b"faults cleared\n")

        if method != "POST":
            return Answer(
                405, b"use POST or DELETE\n", headers={"Allow": "POST, DELETE"}
            )

        try:
            rule = rule_from_json(body)
        except ValueError as exc:
            return Answer(400, f"{exc}\n".encode())

        self.inject(rule.provider, rule.fault, path=rule.path)
        return Answer(200, b"fault set\n")


def _parse_target(target: str) -> _Parsed:
    raw_path, _, raw_query = target.partition("?")
    raw_provider, slash, raw_rest = raw_path.removeprefix("/").partition("/")
    query: dict[str, list[str]] = {}
    for name, value in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
        query.setdefault(name, []).append(value)

    return _Parsed(
        provider=urllib.parse.unquote(raw_provider),
        path=urllib.parse.unquote(slash + raw_rest),
        query=query,
    )


def _record(method: str, parsed: _Parsed) -> ReplayRequest:
    last_values = {name: values[-1] for name, values in parsed.query.items()}
    return ReplayRequest(parsed.provider, method, parsed.path, last_values)


def _fault_answer(fault: Fault) -> Answer:
    headers = {}
    if fault.kind == "rate_limit" and fault.retry_after is not None:
        headers["Retry-After"] = fault.retry_after

    message = f"injected fault: HTTP {fault.status}\n"
    return Answer(fault.status, message.encode(), headers=headers)


@asynccontextmanager
async def open_replay_server(
    routes: Iterable[Route],
    fixtures_dir: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
) -> AsyncIterator[ReplayServer]:
    """Serve recorded responses for the duration of an ``async with`` block.

    Leaving the block stops the server and closes every connection,
    including requests hung by a fault; no task outlives it.

    Args:
        routes: The recordings to serve.
        fixtures_dir: The folder the routes' relative files are relative
            to (see `find_fixtures_dir`).
        host: The address to listen on.
        port: The port to listen on; 0 picks a free one.

    Yields:
        The running server; its ``url`` says where it listens.

    Raises:
        FileNotFoundError: A route's file does not exist.
        OSError: The address cannot be listened on.
    """
    server, listeners = await _open_server(routes, fixtures_dir, host, port)
    async with open_background_nursery() as nursery:
        await nursery.start(trio.serve_listeners, server._serve_connection, listeners)
        yield server


async def serve_replay(
    routes: Iterable[Route],
    fixtures_dir: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[ReplayServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve recorded responses until cancelled.

    Start it with ``await nursery.start(serve_replay, routes, folder)``,
    which returns the running `ReplayServer` once it listens.

    Args:
        routes: The recordings to serve.
        fixtures_dir: The folder the routes' relative files are relative to.
        host: The address to listen on.
        port: The port to listen on; 0 picks a free one.
        task_status: Receives the running server.

    Raises:
        FileNotFoundError: A route's file does not exist.
        OSError: The address cannot be listened on.
    """
    server, listeners = await _open_server(routes, fixtures_dir, host, port)
    task_status.started(server)
    await trio.serve_listeners(server._serve_connection, listeners)


async def _open_server(
    routes: Iterable[Route],
    fixtures_dir: str | os.PathLike[str],
    host: str,
    port: int,
) -> tuple[ReplayServer, list[trio.SocketListener]]:
    routes = list(routes)
    bodies = _read_bodies(routes, Path(fixtures_dir))
    listeners = await trio.open_tcp_listeners(port, host=host)
    return ReplayServer(_url_of(listeners[0]), routes, bodies), listeners


def _read_bodies(routes: list[Route], folder: Path) -> dict[str, bytes]:
    # Each file is read once, before the first request, so that no request
    # waits for the disk and a missing file fails at once. The read blocks,
    # on purpose: recordings are small, and a worker thread would let trio's
    # autojump clock, which tests run on, leap ahead while the thread reads.
    files = sorted({route.file for route in routes})
    return {file: (folder / file).read_bytes() for file in files}


def _url_of(listener: trio.SocketListener) -> str:
    address, port, *_ = listener.socket.getsockname()
    if address in {"0.0.0.0", "::"}:
        address = "127.0.0.1" if address == "0.0.0.0" else "::1"

    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}"
