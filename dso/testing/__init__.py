"""Tools for testing code that uses dso, and dso's own providers.

Fake providers answer as scripted, without any network. The replay server
answers HTTP requests with recorded provider responses, over real
sockets, and misbehaves on demand::

    routes = load_routes("routes.toml")
    async with open_replay_server(routes, find_fixtures_dir()) as server:
        server.inject("tiingo", Fault.status_code(503))
        ...  # point the tiingo provider at server.base_url("tiingo")

`ProviderConformance` is the conformance kit: a provider package
subclasses it in a test module and gets a ready suite of rules.

PYTEST_DONT_REWRITE: dso ships a pytest plugin, so pytest rewrites the
asserts of dso's modules, adding names of its own to each; this module
has no asserts, and its names stay the ones it exports.

`CacheBackendSuite`, the strategies run against one cache backend, needs
pytest; it is imported only when asked for.
"""

from ._conformance import ProviderConformance as ProviderConformance
from ._fake import Delay as Delay
from ._fake import FakeBatchProvider as FakeBatchProvider
from ._fake import FakeCall as FakeCall
from ._fake import FakeProvider as FakeProvider
from ._fake import Hang as Hang
from ._fake_cache import FakeCacheBackend as FakeCacheBackend
from ._faults import Fault as Fault
from ._fixtures import find_fixtures_dir as find_fixtures_dir
from ._replay import ReplayRequest as ReplayRequest
from ._replay import ReplayServer as ReplayServer
from ._replay import ReplayStatistics as ReplayStatistics
from ._replay import open_replay_server as open_replay_server
from ._replay import serve_replay as serve_replay
from ._routes import Route as Route
from ._routes import load_routes as load_routes


__all__ = [
    "CacheBackendSuite",
    "Delay",
    "FakeBatchProvider",
    "FakeCacheBackend",
    "FakeCall",
    "FakeProvider",
    "Fault",
    "Hang",
    "ProviderConformance",
    "ReplayRequest",
    "ReplayServer",
    "ReplayStatistics",
    "Route",
    "find_fixtures_dir",
    "load_routes",
    "open_replay_server",
    "serve_replay",
]


_LAZY = ("CacheBackendSuite",)


def __getattr__(name: str) -> object:
    # Lazily, so that using the fakes or the replay server (as the demo
    # does) does not need pytest installed.
    if name == "CacheBackendSuite":
        from ._cache_suite import CacheBackendSuite

        return CacheBackendSuite

    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
