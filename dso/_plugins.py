"""Plugin discovery: the built-ins and the ``dso`` entry points, via pluggy.

Each orchestrator (and each ``dso`` command) builds its own `Plugins`; there
is no process-wide registry.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pluggy

from . import _builtin_backends, _hooks
from ._config import PluginSettings
from ._hooks import PROJECT_NAME


logger = logging.getLogger("dso")

_HOOK_RESULTS: dict[str, type] = {
    "dso_provider_factories": Mapping,
    "dso_cache_backends": Mapping,
    "dso_namespaces": Sequence,
    "dso_replay_routes": Sequence,
    "dso_metrics_exporters": Mapping,
}

ENTRY_POINT_GROUP = "dso"
"""The entry-point group that plugin distributions advertise modules under."""

PLUGINS_ENV = "DSO_PLUGINS"
"""Overrides autoloading: ``0`` for none, or a comma-separated allow-list."""


@attrs.frozen
class PluginInfo:
    """Where a plugin came from.

    Attributes:
        name: Its entry-point name (``builtin`` for dso's own).
        module: The module implementing the hooks.
        distribution: The distribution that advertised it.
        version: That distribution's version.
    """

    name: str
    module: str
    distribution: str
    version: str


@attrs.frozen
class Offered:
    """Something a plugin offers, with the plugin that offered it."""

    name: str
    item: Any
    plugin: PluginInfo


class Plugins:
    """The plugins one orchestrator uses, and what they offer.

    Args:
        manager: A pluggy manager with dso's hook specifications.
        infos: Where each registered plugin came from, by plugin name.
    """

    def __init__(self, manager: pluggy.PluginManager, infos: Mapping[str, PluginInfo]):
        self.manager = manager
        self.infos = dict(infos)

    def provider_factories(self) -> dict[str, Offered]:
        """Return the provider factories by type name."""
        return self._offered("dso_provider_factories")

    def cache_backends(self) -> dict[str, Offered]:
        """Return the cache backend factories by name."""
        return self._offered("dso_cache_backends")

    def namespaces(self) -> dict[str, Offered]:
        """Return the declared namespaces by name."""
        offered: dict[str, Offered] = {}
        for plugin, namespaces in self._call("dso_namespaces"):
            for namespace in namespaces:
                _add(offered, namespace.name, namespace, plugin, "namespace")

        return offered

    def replay_routes(self) -> list[Path]:
        """Return the route files of every plugin's recorded responses."""
        return [
            Path(path) for _, paths in self._call("dso_replay_routes") for path in paths
        ]

    def metrics_exporters(self) -> dict[str, Offered]:
        """Return the metrics exporters by format name."""
        return self._offered("dso_metrics_exporters")

    def event_sinks(self) -> list[Offered]:
        """Return the ``dso_event`` implementations, each a telemetry sink."""
        return [
            Offered(impl.function.__name__, impl.function, self.infos[impl.plugin_name])
            for impl in reversed(self.manager.hook.dso_event.get_hookimpls())
        ]

    def _offered(self, hook_name: str) -> dict[str, Offered]:
        offered: dict[str, Offered] = {}
        for plugin, items in self._call(hook_name):
            for name, item in items.items():
                _add(offered, name, item, plugin, hook_name.removeprefix("dso_"))

        return offered

    def _call(self, hook_name: str) -> list[tuple[PluginInfo, Any]]:
        # Calling each implementation ourselves (rather than the hook)
        # tells us which plugin offered what, for `dso plugins` and for
        # error messages about clashes.
        caller = getattr(self.manager.hook, hook_name)
        expected = _HOOK_RESULTS[hook_name]
        results = []
        for impl in reversed(caller.get_hookimpls()):
            info = self.infos[impl.plugin_name]
            result = impl.function()
            if result is None:
                continue

            if not isinstance(result, expected):
                raise TypeError(
                    f"plugin {info.name} ({info.distribution}): {hook_name} "
                    f"returned {type(result).__name__}, not {expected.__name__}"
                )

            results.append((info, result))

        return results


def load_plugins(
    settings: PluginSettings | None = None,
    *,
    extra: Iterable[object] = (),
    environ: Mapping[str, str] | None = None,
) -> Plugins:
    """Build the plugin set for *settings*.

    The built-in backends always load, through the same hook a third party
    implements. Entry-point plugins load unless autoloading is off; the
    ``DSO_PLUGINS`` environment variable overrides the settings.

    Args:
        settings: The configuration's ``plugins`` section; the defaults
            when omitted.
        extra: Plugin objects (modules or instances) to register as well,
            for embedding and tests.
        environ: Where ``DSO_PLUGINS`` is read; the process environment by
            default.
    """
    if settings is None:
        settings = PluginSettings()

    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(_hooks)
    infos: dict[str, PluginInfo] = {}

    _register(manager, infos, _builtin_backends, _builtin_info())
    for entry_point in _allowed_entry_points(settings, environ):
        info = _entry_point_info(entry_point)
        try:
            module = entry_point.load()
        except Exception:
            # One broken plugin must not take every other one down with it.
            logger.warning(
                "plugin %s from %s %s cannot be imported; skipping it",
                info.name,
                info.distribution,
                info.version,
                exc_info=True,
            )
            continue

        _register(manager, infos, module, info)

    for index, plugin in enumerate(extra):
        name = getattr(plugin, "__name__", type(plugin).__name__)
        info = PluginInfo(f"extra-{index}", name, "(registered in code)", "")
        _register(manager, infos, plugin, info)

    return Plugins(manager, infos)


def _register(
    manager: pluggy.PluginManager,
    infos: dict[str, PluginInfo],
    plugin: object,
    info: PluginInfo,
) -> None:
    if manager.is_registered(plugin):
        # Passed in code and also advertised by an entry point: once is
        # enough.
        return

    manager.register(plugin, name=info.name)
    infos[info.name] = info


def _allowed_entry_points(
    settings: PluginSettings, environ: Mapping[str, str] | None
) -> list[importlib.metadata.EntryPoint]:
    allowed = _allow_list(settings, os.environ if environ is None else environ)
    if allowed is not None and not allowed:
        return []

    chosen = []
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        distribution = entry_point.dist.name if entry_point.dist else ""
        names = {_normalized(entry_point.name), _normalized(distribution)}
        if allowed is None or names & allowed:
            chosen.append(entry_point)

    return sorted(chosen, key=lambda entry_point: entry_point.name)


def _allow_list(
    settings: PluginSettings, environ: Mapping[str, str]
) -> set[str] | None:
    """Return the names allowed, ``None`` for all, or an empty set for none."""
    override = environ.get(PLUGINS_ENV)
    if override is not None:
        override = override.strip().lower()
        if override in {"0", "false", "no", "none", "off", ""}:
            return set()

        if override in {"1", "true", "yes", "all", "on"}:
            return None

        return {_normalized(name) for name in override.split(",") if name.strip()}

    if not settings.autoload:
        return set()

    if settings.only is not None:
        return {_normalized(name) for name in settings.only}

    return None


def _normalized(name: str) -> str:
    # Distribution names compare as the packaging standards say: case and
    # runs of "-", "_" and "." do not matter.
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _builtin_info() -> PluginInfo:
    return PluginInfo(
        "builtin", _builtin_backends.__name__, "dso", _distribution_version("dso")
    )


def _entry_point_info(entry_point: importlib.metadata.EntryPoint) -> PluginInfo:
    distribution = entry_point.dist
    return PluginInfo(
        name=entry_point.name,
        module=entry_point.value,
        distribution=distribution.name if distribution else "",
        version=distribution.version if distribution else "",
    )


def _distribution_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _add(
    offered: dict[str, Offered], name: str, item: Any, plugin: PluginInfo, what: str
) -> None:
    clash = offered.get(name)
    if clash is not None:
        raise ValueError(
            f"{what} {name!r} is offered by both {clash.plugin.distribution} "
            f"({clash.plugin.name}) and {plugin.distribution} ({plugin.name})"
        )

    offered[name] = Offered(name, item, plugin)
