"""The plugin hooks: how plugins give dso providers, backends and more.

A distribution advertises a module under the ``dso`` entry-point group::

    [project.entry-points.dso]
    market = "dso_market._plugin"

and that module implements some of the hooks below, marked with
`hookimpl`. Hooks are called synchronously and only to discover things;
the fetching itself stays in dso's trio code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pluggy

from ._cache import CacheBackendFactory
from ._config import ProviderSettings
from ._events import Event
from ._exporter import MetricsExporter
from ._namespace import Namespace
from ._provider import Provider


PROJECT_NAME = "dso"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marks a plugin's function as the implementation of a dso hook."""

ProviderFactory = Callable[[ProviderSettings], Provider]
"""Builds a provider from its configuration section."""


@hookspec
def dso_provider_factories() -> Mapping[str, ProviderFactory]:  # type: ignore[empty-body]
    """Return provider factories by type name.

    A configuration section ``[providers.NAME]`` is built by the factory
    named by its ``type`` (or by ``NAME`` itself when it has none).
    """


@hookspec
def dso_cache_backends() -> Mapping[str, CacheBackendFactory]:  # type: ignore[empty-body]
    """Return cache backend factories by name (``memory``, ``redis``...)."""


@hookspec
def dso_namespaces() -> Sequence[Namespace]:  # type: ignore[empty-body]
    """Return the namespaces the plugin's data belongs to."""


@hookspec
def dso_replay_routes() -> Sequence[Path]:  # type: ignore[empty-body]
    """Return route files describing the plugin's recorded responses.

    ``dso replay`` and `dso.testing.open_replay_server` serve them.
    """


@hookspec
def dso_event(event: Event) -> None:
    """Receive one telemetry event (see `dso.Event` and its subclasses).

    Called in a worker thread, never on the event loop, in the order the
    events happened. An exception is logged once per sink and counted; the
    events a sink is too slow for are dropped and counted, never queued
    without bound. Do not block for long: the next events wait.
    """


@hookspec
def dso_metrics_exporters() -> Mapping[str, MetricsExporter]:  # type: ignore[empty-body]
    """Return metrics exporters by format name (``prometheus``...).

    ``dso serve`` answers ``/metrics`` with the ``prometheus`` exporter.
    """
