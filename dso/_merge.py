"""Merge strategies: how `fetch_with_merge` combines providers' values.

A strategy is any callable that takes the successful providers' values, in
the order the providers were named, and returns one value. Two shapes are
common enough to ship: records merged field by field, and lists of items
concatenated, de-duplicated, sorted and cut.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, Protocol, TypeVar

import attrs


T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Merge(Protocol[T]):
    """Combines values from several providers into one."""

    def __call__(self, values: Sequence[tuple[str, T]]) -> T:
        """Merge *values*, given as ``(provider, value)`` in priority order."""
        ...


@attrs.frozen
class FieldPriority:
    """Merge attrs records field by field.

    Each field takes the first value that is not ``None`` in provider
    order, so a secondary provider fills what the primary left out.

    Attributes:
        missing: Values treated as absent, besides ``None`` (for example
            ``""`` for providers that send empty strings).
    """

    missing: tuple[object, ...] = ()

    def __call__(self, values: Sequence[tuple[str, T]]) -> T:
        """Merge *values*; see the class docstring."""
        if not values:
            raise ValueError("nothing to merge")

        first: Any = values[0][1]
        if not attrs.has(type(first)):
            raise TypeError(f"FieldPriority merges attrs instances, not {first!r}")

        changes: dict[str, Any] = {}
        for field in attrs.fields(type(first)):
            if not field.init:
                continue

            for _, value in values:
                candidate = getattr(value, field.name)
                if not self._is_missing(candidate):
                    changes[field.alias] = candidate
                    break

        merged: T = attrs.evolve(first, **changes)
        return merged

    def _is_missing(self, value: object) -> bool:
        return value is None or any(value == absent for absent in self.missing)


@attrs.frozen
class ConcatDedupe:
    """Merge sequences: concatenate, drop duplicates, sort, keep the first N.

    Attributes:
        identity: Gives the key that makes two items the same; the item
            from the earlier provider wins.
        sort_key: Orders the result; ``None`` keeps provider order.
        reverse: Sort in descending order (newest first for dates).
        limit: Keep at most this many items; ``None`` keeps all.
    """

    identity: Callable[[Any], Hashable]
    sort_key: Callable[[Any], Any] | None = None
    reverse: bool = False
    limit: int | None = None

    def __call__(self, values: Sequence[tuple[str, Sequence[Any]]]) -> tuple[Any, ...]:
        """Merge *values*; see the class docstring."""
        seen: set[Hashable] = set()
        items = []
        for _, sequence in values:
            for item in sequence:
                identity = self.identity(item)
                if identity in seen:
                    continue

                seen.add(identity)
                items.append(item)

        if self.sort_key is not None:
            # sorted() is stable, so equal keys keep provider priority.
            items.sort(key=self.sort_key, reverse=self.reverse)

        if self.limit is not None:
            del items[self.limit :]

        return tuple(items)
