"""Plugin discovery through the dso entry points, and its switches."""

import pytest

import dso
import dso_market._plugin
from dso._plugins import load_plugins


def test_builtin_backends_register_through_the_hook() -> None:
    """Memory and sqlite come from dso's own plugin, like a third party's."""
    plugins = load_plugins(dso.PluginSettings(autoload=False))

    backends = plugins.cache_backends()

    assert {"memory", "sqlite"} <= set(backends)
    assert "dso" == backends["memory"].plugin.distribution


def test_installed_distribution_is_discovered() -> None:
    """The dso-market distribution's entry point provides its providers."""
    plugins = load_plugins(dso.PluginSettings(), environ={})

    factories = plugins.provider_factories()

    assert "tiingo" in factories
    assert "dso-market" == factories["tiingo"].plugin.distribution
    assert "quotes" in plugins.namespaces()


@pytest.mark.parametrize(
    ("settings", "environ"),
    [
        (dso.PluginSettings(autoload=False), {}),
        (dso.PluginSettings(), {"DSO_PLUGINS": "0"}),
        (dso.PluginSettings(only=["something-else"]), {}),
        (dso.PluginSettings(), {"DSO_PLUGINS": "something-else"}),
    ],
)
def test_autoloading_can_be_switched_off_or_limited(
    settings: dso.PluginSettings, environ: dict[str, str]
) -> None:
    """Config and DSO_PLUGINS can keep entry-point plugins out."""
    plugins = load_plugins(settings, environ=environ)

    assert "tiingo" not in plugins.provider_factories()


def test_allow_list_by_distribution_name() -> None:
    """An allow-list may name the distribution instead of the entry point."""
    plugins = load_plugins(dso.PluginSettings(), environ={"DSO_PLUGINS": "dso-market"})

    assert "tiingo" in plugins.provider_factories()


def test_clashing_names_are_refused() -> None:
    """Two plugins offering the same backend name is an error naming both."""

    class Clash:
        @dso.hookimpl
        def dso_cache_backends(self) -> dict[str, object]:
            return {"memory": object()}

    plugins = load_plugins(dso.PluginSettings(autoload=False), extra=[Clash()])

    with pytest.raises(ValueError, match="'memory' is offered by both"):
        plugins.cache_backends()


def test_allow_list_names_are_normalised() -> None:
    """dso_market, DSO-Market and dso-market name the same distribution."""
    plugins = load_plugins(dso.PluginSettings(), environ={"DSO_PLUGINS": "DSO_Market"})

    assert "tiingo" in plugins.provider_factories()


def test_a_plugin_registered_twice_is_registered_once() -> None:
    """Passing an autoloaded plugin in code as well is harmless."""
    plugins = load_plugins(dso.PluginSettings(), extra=[dso_market._plugin], environ={})

    assert "tiingo" in plugins.provider_factories()


def test_a_hook_returning_the_wrong_type_names_the_plugin() -> None:
    """A hook that returns nonsense is a TypeError naming the plugin."""

    class Wrong:
        @dso.hookimpl
        def dso_provider_factories(self) -> list[str]:
            return ["not", "a", "mapping"]

    plugins = load_plugins(dso.PluginSettings(autoload=False), extra=[Wrong()])

    with pytest.raises(TypeError, match=r"plugin extra-0 .*returned list"):
        plugins.provider_factories()
