"""The typed cache: what a memory hit shares, and what it decodes afresh."""

from collections.abc import Mapping
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from dso._cache import CacheEntry
from dso._clock import trio_wall_clock
from dso._codec import Codec
from dso._config import NamespaceSettings, TtlSettings
from dso._memory import MemoryCache
from dso._namespace import BoundNamespace, Namespace
from dso._ttl import TtlTable
from dso._typed_cache import TypedCache


@attrs.frozen
class Point:
    x: int
    labels: tuple[str, ...] = ()


class CountingCodec(Codec):
    """A codec that counts its decodes."""

    def __init__(self) -> None:
        super().__init__()
        self.decodes = 0

    def decode(self, data: bytes, value_type: Any) -> Any:
        self.decodes += 1
        return super().decode(data, value_type)


def typed_cache(codec: Codec, ttl: TtlSettings | None = None) -> TypedCache:
    clock = trio_wall_clock()
    backend = MemoryCache(clock=clock, max_entries=10)
    return TypedCache(backend, codec, TtlTable({}, ttl), clock, "dso")


def space(value_type: Any) -> BoundNamespace:
    return BoundNamespace(Namespace("things", value_type), NamespaceSettings())


async def test_an_immutable_value_is_served_from_memory_without_decoding() -> None:
    """A frozen value is shared as it is: nobody can change it."""
    codec = CountingCodec()
    cache = typed_cache(codec)
    points = space(Point)
    point = Point(1, ("a",))
    await cache.write(points, "p", point, partial=False)
    codec.decodes = 0  # encoding checks the round trip with a decode

    with trio.fail_after(5):
        first = await cache.read(points, "p", None)
        second = await cache.read(points, "p", None)

    assert first is not None
    assert second is not None
    assert (True, True, 0) == (
        first.value is point,
        second.value is point,
        codec.decodes,
    )


async def test_a_mutable_value_is_decoded_afresh_for_every_hit() -> None:
    """A list comes back as a new list each time, so no caller sees another's edits."""
    codec = CountingCodec()
    cache = typed_cache(codec)
    lists = space(list[int])
    await cache.write(lists, "l", [1, 2], partial=False)
    codec.decodes = 0

    with trio.fail_after(5):
        first = await cache.read(lists, "l", None)
        second = await cache.read(lists, "l", None)

    assert first is not None
    assert second is not None
    assert ([1, 2], False, 2) == (
        second.value,
        first.value is second.value,
        codec.decodes,
    )


async def test_a_kept_value_of_another_type_is_not_served() -> None:
    """An entry read as another value type is decoded as that type."""
    codec = CountingCodec()
    cache = typed_cache(codec)
    await cache.write(space(Point), "p", Point(1), partial=False)
    codec.decodes = 0

    with trio.fail_after(5):
        read = await cache.read(space(object), "p", None)

    assert read is not None
    assert ({"x": 1, "labels": []}, 1) == (read.value, codec.decodes)


@pytest.mark.parametrize(
    ("value_type", "value", "partial", "age", "tier"),
    [
        (Point, Point(1), False, 10, None),
        (Point, Point(1), False, 10, "pro"),
        (Point, Point(1), False, 100, None),
        (Point, Point(1), True, 10, None),
        (Point, Point(1), True, 40, None),
        (list[int], [1, 2], False, 10, None),
        (list[int], [1, 2], False, 100, None),
        (Point, Point(1), False, 5000, None),
        (Point, None, False, 10, None),
    ],
    ids=[
        "fresh",
        "stale-for-a-tier",
        "stale",
        "partial-fresh",
        "partial-stale",
        "mutable-fresh",
        "mutable-stale",
        "expired",
        "absent",
    ],
)
async def test_reading_at_once_finds_what_reading_by_waiting_finds(
    autojump_clock: trio.testing.MockClock,
    value_type: Any,
    value: Any,
    partial: bool,
    age: float,
    tier: str | None,
) -> None:
    """read_nowait and read agree on value, freshness and age, whatever the entry."""
    clock = trio_wall_clock()
    ttl = TtlTable({"things": TtlSettings(fresh=60, stale=600, tiers={"pro": 5})})
    cache = TypedCache(
        MemoryCache(clock=clock, max_entries=10), Codec(), ttl, clock, "dso"
    )
    things = space(value_type)
    if value is not None:
        await cache.write(things, "k", value, partial=partial)
    await trio.sleep(age)

    before = attrs.asdict(cache.counters)
    at_once = cache.read_nowait(things, "k", tier)
    between = attrs.asdict(cache.counters)
    waited = await cache.read(things, "k", tier)
    after = attrs.asdict(cache.counters)

    assert waited == at_once
    assert counted(before, between) == counted(between, after)


def counted(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - count for name, count in before.items()}


async def test_a_batch_read_sorts_fresh_values_from_the_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Fresh values come as (value, age) in the order asked; stale, NOT_FOUND apart."""
    cache = typed_cache(Codec(), TtlSettings(fresh=10, stale=100, partial=2))
    points, lists = space(Point), space(list[int])
    await cache.write(points, "old", Point(0), partial=False)
    await cache.write(points, "merged", Point(1), partial=True)
    await trio.sleep(5)
    await cache.write_many(points, {"kept": Point(2), "kept:too%": Point(3)})
    await cache.write_many(lists, {"list": [4]})
    await cache.write_not_found(points, ["nobody"], 60)
    await trio.sleep(6)

    with trio.fail_after(5):
        found = await cache.read_many(
            points, ["kept:too%", "nobody", "missing", "old", "merged", "kept"], None
        )
        listed = await cache.read_many(lists, ["list"], None)

    assert {"kept:too%": (Point(3), 6.0), "kept": (Point(2), 6.0)} == found.hits
    assert ["kept:too%", "kept"] == list(found.hits)
    assert {"list": ([4], 6.0)} == listed.hits
    assert {
        "nobody": (None, True, True),
        "old": (Point(0), False, False),
        "merged": (Point(1), False, False),
    } == {
        key: (cached.value, cached.fresh, cached.not_found)
        for key, cached in found.others.items()
    }
    assert (3, 2, 1, 3) == (
        cache.counters.hits,
        cache.counters.stale_hits,
        cache.counters.not_found_hits,
        cache.counters.misses,
    )


class BytesOnly(MemoryCache):
    """A backend that keeps only bytes, as one outside the process does."""

    async def set_many(self, entries: Mapping[str, CacheEntry]) -> None:
        await super().set_many(
            {key: attrs.evolve(entry, decoded=None) for key, entry in entries.items()}
        )


def bytes_only_cache() -> tuple[TypedCache, BytesOnly]:
    clock = trio_wall_clock()
    backend = BytesOnly(clock=clock, max_entries=10)
    return TypedCache(backend, Codec(), TtlTable({}), clock, "dso"), backend


async def test_bytes_read_by_waiting_are_judged_fresh_then_stale(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A decoded hit is fresh within the TTL and stale after it, and counted so."""
    cache, _ = bytes_only_cache()
    points = space(Point)
    await cache.write(points, "p", Point(1), partial=False)

    with trio.fail_after(120):
        first = await cache.read(points, "p", None)
        second = await cache.read(points, "p", None)
        await trio.sleep(61)
        later = await cache.read(points, "p", None)

    assert [(Point(1), True)] * 2 + [(Point(1), False)] == [
        (found.value, found.fresh) for found in (first, second, later) if found
    ]
    assert (2, 1) == (cache.counters.hits, cache.counters.stale_hits)


async def test_junk_bytes_read_by_waiting_are_one_undecodable_miss() -> None:
    """Bytes that are not a value are a miss, counted once as undecodable."""
    cache, backend = bytes_only_cache()
    points = space(Point)
    now = trio_wall_clock()()
    junk = CacheEntry(b"\xc1junk", now, now + 3600)
    await backend.set(cache.key_for(points, "p"), junk)

    with trio.fail_after(5):
        found = await cache.read(points, "p", None)

    assert (None, 1, 1) == (
        found,
        cache.counters.undecodable,
        cache.counters.misses,
    )


async def test_a_key_with_separators_is_read_at_once_where_it_was_written() -> None:
    """read_nowait escapes ':' and '%' as a write does, so keys never collide."""
    cache = typed_cache(Codec())
    points = space(Point)
    await cache.write(points, "a:b%c", Point(1), partial=False)
    await cache.write(points, "a%3Ab", Point(2), partial=False)

    found = [
        cached.value if cached is not None else None
        for cached in [
            cache.read_nowait(points, "a:b%c", None),
            cache.read_nowait(points, "a%3Ab", None),
            cache.read_nowait(points, "a:b", None),
        ]
    ]

    assert [Point(1), Point(2), None] == found
