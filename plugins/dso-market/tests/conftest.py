from collections.abc import AsyncIterator

import httpx
import pytest

import dso_market
from dso.testing import ReplayServer, find_fixtures_dir, load_routes, open_replay_server


@pytest.fixture
async def replay() -> AsyncIterator[ReplayServer]:
    """A replay server on loopback serving every recorded provider response."""
    routes = [
        route for path in dso_market.replay_route_files() for route in load_routes(path)
    ]
    async with open_replay_server(routes, find_fixtures_dir()) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client, as the orchestrator would share it."""
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def sent_requests() -> list[httpx.Request]:
    """The requests `recording_http` has sent, oldest first."""
    return []


@pytest.fixture
async def recording_http(
    sent_requests: list[httpx.Request],
) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client that keeps every request it sends in `sent_requests`."""

    # httpx's async client wants a coroutine function as its hook.
    async def record(request: httpx.Request) -> None:  # noqa: ASYNC124
        sent_requests.append(request)

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as client:
        yield client
