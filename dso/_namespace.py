"""What a namespace is: a kind of data with its value type and merge."""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

import attrs

from ._config import NamespaceSettings
from ._merge import Merge


@attrs.frozen
class Namespace:
    """A kind of data, such as ``quotes`` or ``news``.

    Plugins declare namespaces through the ``dso_namespaces`` hook; the
    configuration adds provider chains and TTLs under the same name.

    Attributes:
        name: Used in configuration, cache keys and telemetry.
        value_type: The type every value of the namespace has, so that a
            cached value comes back as the same type (an attrs class, a
            ``tuple[Article, ...]``, ``dict[str, float]``...).
        merge: How `fetch_with_merge` combines several providers' values
            when the caller names no strategy.
        description: One line for ``dso plugins``.
        summarize: Renders a value in a few words for ``dso fetch``'s
            table; a generic rendering is used without it.
    """

    name: str
    value_type: Any = object
    merge: Merge[Any] | None = None
    description: str = ""
    summarize: Callable[[Any], str] | None = None


@attrs.frozen
class BoundNamespace:
    """A namespace as one orchestrator uses it: its spec and its settings.

    Attributes:
        spec: What the plugins declared (value type, default merge).
        settings: What the configuration says (providers, version, TTLs).
        name: The namespace's name.
        version: The version part of its cache keys.
        value_type: The type of its values.
    """

    spec: Namespace
    settings: NamespaceSettings
    # Taken from the two above once, as plain attributes: every cache hit
    # reads them, and a property costs a call each time.
    name: str = attrs.field(init=False, eq=False, repr=False)
    version: int = attrs.field(init=False, eq=False, repr=False)
    value_type: Any = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "name", self.spec.name)
        object.__setattr__(self, "version", self.settings.version)
        object.__setattr__(self, "value_type", self.spec.value_type)

    def accepts(self, value: object) -> bool:
        """Tell whether *value* is of the namespace's type, as far as it shows.

        Plain classes are checked with ``isinstance``; for a generic such as
        ``tuple[Article, ...]`` the container and its items are checked.
        ``object`` and ``Any`` accept everything.
        """
        return _is_instance(value, self.value_type)


def _is_instance(value: object, expected: Any) -> bool:
    if expected is object or expected is Any:
        return True

    origin = typing.get_origin(expected)
    if origin is None:
        return not isinstance(expected, type) or isinstance(value, expected)

    if not isinstance(origin, type):
        # Unions, literals and the like are left to the codec.
        return True

    if not isinstance(value, origin):
        return False

    arguments = typing.get_args(expected)
    if origin in (list, tuple, set, frozenset) and len(arguments) in (1, 2):
        item_type = arguments[0]
        if len(arguments) == 2 and arguments[1] is not Ellipsis:
            return True

        return all(_is_instance(item, item_type) for item in value)  # type: ignore[attr-defined]

    return True
