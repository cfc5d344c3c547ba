from collections.abc import AsyncIterator

import httpx
import pytest

import dso_example
from dso.testing import ReplayServer, find_fixtures_dir, load_routes, open_replay_server


@pytest.fixture
async def replay() -> AsyncIterator[ReplayServer]:
    """A replay server on loopback serving the package's recordings."""
    routes = [
        route
        for path in dso_example.replay_route_files()
        for route in load_routes(path)
    ]
    async with open_replay_server(routes, find_fixtures_dir()) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client, as the orchestrator would share it."""
    async with httpx.AsyncClient() as client:
        yield client
