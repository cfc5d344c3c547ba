"""The ``dso`` pytest plugin: runs the conformance kit's rules under trio.

pytest loads it through the ``pytest11`` entry point wherever dso is
installed. It registers the ``dso_conformance`` marker and marks every
rule of a `ProviderConformance` subclass with it and with pytest-trio's
``trio`` marker, so that the rules run whether or not the project sets
``trio_mode = true``: without that setting pytest-trio runs only the async
tests marked for it.
"""

from __future__ import annotations

import pytest

from ._conformance import ProviderConformance, check_declaration


MARKER = "dso_conformance"
"""The marker of the kit's rules: ``pytest -m dso_conformance`` runs them."""


def pytest_configure(config: pytest.Config) -> None:
    """Register the kit's marker."""
    config.addinivalue_line(
        "markers", f"{MARKER}: a rule of dso's provider conformance kit"
    )


def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> None:
    """Fail the collection of a kit that lacks a required attribute.

    Only the classes pytest collects are checked, so that a shared base
    class of several kits may leave attributes to its subclasses.

    Raises:
        TypeError: The kit lacks an attribute; the message names it.
    """
    if (
        isinstance(obj, type)
        and issubclass(obj, ProviderConformance)
        and collector.istestclass(obj, name)
    ):
        check_declaration(obj)


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark a rule of the kit as a trio test of the kit, or skip it.

    This runs before ``-m`` and ``-k`` select tests, so that they can
    select by the kit's marker. In ``trio_mode`` pytest-trio marks the rule
    again, which changes nothing.
    """
    if not _is_rule(item):
        return

    item.add_marker(MARKER)
    # Without pytest-trio the marker is unknown; the collection stops below.
    if item.config.pluginmanager.has_plugin("trio"):
        item.add_marker(pytest.mark.trio)

    reason = _skip_reason(item)
    if reason is not None:
        item.add_marker(pytest.mark.skip(reason=reason))


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Refuse to run the kit's rules without pytest-trio.

    Raises:
        pytest.UsageError: Rules were collected but pytest-trio, which runs
            them, is not active.
    """
    if any(_is_rule(item) for item in items) and not config.pluginmanager.has_plugin(
        "trio"
    ):
        raise pytest.UsageError(
            "dso's conformance kit needs pytest-trio to run its rules: "
            "pip install pytest-trio (and do not disable it with -p no:trio)"
        )


def _skip_reason(item: pytest.Item) -> str | None:
    # Skipping here rather than in the rule keeps the reason: pytest-trio
    # reports a skip raised inside a trio test without it.
    kit = getattr(item, "instance", None)
    rule = getattr(item, "originalname", item.name)
    if not isinstance(kit, ProviderConformance):
        return None

    return kit.skip_reason(rule)


def _is_rule(item: pytest.Item) -> bool:
    cls = getattr(item, "cls", None)
    return isinstance(cls, type) and issubclass(cls, ProviderConformance)
