"""The server side of one HTTP/1.1 connection, spoken with h11."""

from __future__ import annotations

import http
from collections.abc import Mapping

import attrs
import h11
import trio


_RECEIVE_SIZE = 64 * 1024

# Request bodies are read to keep the connection in step, but only this
# much is kept: the control endpoint's JSON is the only body we look at.
_MAX_KEPT_BODY = 64 * 1024


@attrs.frozen
class Incoming:
    """A complete request.

    Attributes:
        method: The method, such as ``"GET"``.
        target: The raw request target: path and query, still encoded.
        body: The body, cut short after 64 KiB.
    """

    method: str
    target: str
    body: bytes


@attrs.frozen
class Answer:
    """A complete response.

    Attributes:
        status: The HTTP status.
        body: The body, sent as it is, with a ``Content-Length``.
        content_type: The ``Content-Type`` header's value.
        headers: Further headers.
    """

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = attrs.field(factory=dict)


class Connection:
    """Requests in, answers out, over one stream.

    The stream's errors (`trio.BrokenResourceError` when the client goes
    away) and `h11.RemoteProtocolError` for a malformed request reach
    the caller.
    """

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._h11 = h11.Connection(h11.SERVER)

    async def receive(self) -> Incoming | None:
        """Return the next request, or ``None`` once the client has closed."""
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data[: _MAX_KEPT_BODY - len(body)]
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                return _incoming(request, bytes(body))
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def send(self, answer: Answer, *, close: bool = False) -> None:
        """Send a complete response.

        Args:
            answer: The response.
            close: Ask the client to close the connection afterwards.
        """
        headers = [
            ("Content-Type", answer.content_type),
            ("Content-Length", str(len(answer.body))),
            *answer.headers.items(),
        ]
        if close:
            headers.append(("Connection", "close"))

        response = h11.Response(
            status_code=answer.status, headers=headers, reason=_reason(answer.status)
        )
        data = self._encode(response)
        data += self._encode(h11.Data(data=answer.body))
        data += self._encode(h11.EndOfMessage())
        await self._stream.send_all(data)

    async def refuse(self, error: h11.RemoteProtocolError) -> None:
        """Answer a malformed request with a 4xx status, if still possible."""
        if self._h11.our_state not in {h11.IDLE, h11.SEND_RESPONSE}:
            return

        answer = Answer(error.error_status_hint, b"malformed HTTP request\n")
        await self.send(answer, close=True)

    def start_next_cycle(self) -> bool:
        """Prepare for the next request; return whether one may come."""
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
            return True

        return False

    async def wait_closed(self) -> None:
        """Wait, reading and discarding, until the client closes."""
        while await self._stream.receive_some(_RECEIVE_SIZE):
            continue

    async def _next_event(self) -> h11.Event:
        while True:
            event = self._h11.next_event()
            if isinstance(event, h11.Event):
                return event

            if event is h11.PAUSED:
                raise RuntimeError("a request arrived before the last was answered")

            data = await self._stream.receive_some(_RECEIVE_SIZE)
            self._h11.receive_data(bytes(data))

    def _encode(self, event: h11.Event) -> bytes:
        data = self._h11.send(event)
        assert data is not None, "only ConnectionClosed encodes to nothing"
        return data


def _incoming(request: h11.Request, body: bytes) -> Incoming:
    # h11 has checked that the method is a token; a target should be ASCII
    # (RFC 3986), but a sloppy client's raw UTF-8 still decodes.
    target = request.target.decode("utf-8", errors="replace")
    return Incoming(request.method.decode("ascii"), target, body)


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""
