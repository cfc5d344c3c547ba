"""A real redis-server on a loopback port, for tests and benchmarks."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import trio


START_TIMEOUT = 10.0
"""Seconds a starting server may take to answer ``PING``."""

STOP_TIMEOUT = 10.0
"""Seconds a stopping server may take before it is killed."""

_POLL_INTERVAL = 0.005
_LOG_TAIL = 2_000


def find_redis_server() -> str | None:
    """Return the path of the ``redis-server`` program, or ``None``."""
    return shutil.which("redis-server")


class RedisServer:
    """A ``redis-server`` process that tests can stop, kill and restart.

    It listens on 127.0.0.1 only, keeps nothing on disk (no RDB
    snapshots, no append-only file) and logs to ``redis.log`` in
    *directory*. It keeps its port across restarts, so clients that
    reconnect find it again.

    Use `open_redis_server` to get a running one.

    Args:
        directory: Where the server runs and logs.
        port: The loopback port it listens on.
        arguments: More ``redis-server`` arguments, such as
            ``["--requirepass", "secret"]``.
    """

    def __init__(
        self, directory: Path, *, port: int, arguments: Sequence[str] = ()
    ) -> None:
        self.directory = directory
        self.port = port
        self._arguments = list(arguments)
        self._process: trio.Process | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"RedisServer(port={self.port}, {state})"

    @property
    def running(self) -> bool:
        """Whether the process has been started and not stopped."""
        return self._process is not None

    @property
    def url(self) -> str:
        """The ``redis://`` URL of its database 0, without credentials."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        return self.directory / "redis.log"

    async def start(self) -> None:
        """Start the server and wait until it answers.

        Raises:
            RuntimeError: It is running already, or it exited or did not
                answer within `START_TIMEOUT` (the message quotes its log).
        """
        if self._process is not None:
            raise RuntimeError(f"{self!r} is running already")

        program = find_redis_server()
        if program is None:
            raise RuntimeError("redis-server is not installed")

        self._process = await trio.lowlevel.open_process(
            [program, *self._command_line()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await self._wait_until_ready()
        except BaseException:
            with trio.move_on_after(STOP_TIMEOUT, shield=True):
                await self.kill()

            raise

    async def stop(self) -> None:
        """Shut the server down (``SIGTERM``), killing it if it lingers."""
        process = self._process
        if process is None:
            return

        with trio.CancelScope(shield=True):
            process.terminate()
            with trio.move_on_after(STOP_TIMEOUT):
                await process.wait()

            await self.kill()

    async def kill(self) -> None:
        """Kill the server at once (``SIGKILL``), as a crash would."""
        process, self._process = self._process, None
        if process is None:
            return

        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()

            await process.wait()

    async def restart(self) -> None:
        """Stop the server and start it again on the same port, empty."""
        await self.stop()
        await self.start()

    def pause(self) -> None:
        """Freeze the server (``SIGSTOP``): connections stay open, unanswered."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server go on (``SIGCONT``)."""
        self._signal(signal.SIGCONT)

    def _signal(self, number: signal.Signals) -> None:
        if self._process is None:
            raise RuntimeError(f"{self!r} is not running")

        self._process.send_signal(number)

    def _command_line(self) -> list[str]:
        return [
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--logfile",
            str(self.log_path),
            *self._arguments,
        ]

    async def _wait_until_ready(self) -> None:
        with trio.move_on_after(START_TIMEOUT):
            while True:
                if await self._answers_ping():
                    return

                await trio.sleep(_POLL_INTERVAL)

        raise RuntimeError(
            f"redis-server did not answer on port {self.port} within "
            f"{START_TIMEOUT} s; its log ends:\n{await self._log_tail()}"
        )

    async def _answers_ping(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise RuntimeError(
                f"redis-server exited with {self._process.returncode}; "
                f"its log ends:\n{await self._log_tail()}"
            )

        try:
            stream = await trio.open_tcp_stream("127.0.0.1", self.port)
        except OSError:
            return False

        async with stream:
            await stream.send_all(b"PING\r\n")
            answer = await stream.receive_some(64)

        # A server with a password answers too, with an error.
        return answer.startswith((b"+PONG", b"-NOAUTH"))

    async def _log_tail(self) -> str:
        try:
            text = await trio.Path(self.log_path).read_text(errors="replace")
        except OSError:
            return "(no log)"

        return text[-_LOG_TAIL:]


_START_ATTEMPTS = 3
"""Ports tried before a server that finds its port taken gives up."""


@asynccontextmanager
async def open_redis_server(
    directory: Path, *, arguments: Sequence[str] = ()
) -> AsyncIterator[RedisServer]:
    """Start a `RedisServer` on a free loopback port; stop it on exit.

    Args:
        directory: Where the server runs and logs; it must exist.
        arguments: More ``redis-server`` arguments.

    Raises:
        RuntimeError: ``redis-server`` is not installed or did not start.
    """
    for attempt in range(_START_ATTEMPTS):
        server = RedisServer(directory, port=await _free_port(), arguments=arguments)
        try:
            await server.start()
        except RuntimeError as exc:
            # Another program (or a port in *arguments*, chosen the same
            # way) took the port between our probe and the server's bind.
            taken = "Address already in use" in str(exc)
            if not taken or attempt == _START_ATTEMPTS - 1:
                raise
        else:
            break

    try:
        yield server
    finally:
        with trio.move_on_after(2 * STOP_TIMEOUT, shield=True):
            await server.stop()


async def _free_port() -> int:
    # The port is free now; redis-server binds it a moment later, and sets
    # SO_REUSEADDR, so a port left in TIME_WAIT does not stop it.
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]

    return port
