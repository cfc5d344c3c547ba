"""Bytes dso did not write, under a dso key: a counted miss, never run."""

import pickle
from collections.abc import AsyncIterator
from pathlib import Path

import coredis
import msgpack  # type: ignore[import-untyped]
import pytest
import trio

import dso
from dso import CacheEntry
from dso_redis import RedisCache, RedisCacheStatistics, open_redis_cache
from dso_redis._envelope import pack_entry
from dso_redis.testing import RedisServer


DEADLINE = 10

KEY = "dso:quotes:1:AAPL"


class Trap:
    """Unpickling this touches a file: proof that a pickle was run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.touch, (self.path,))


def envelope(*fields: object) -> bytes:
    data: bytes = msgpack.packb(list(fields), use_bin_type=True)
    return data


VALID = pack_entry(CacheEntry(b"payload", 1_000.0, 1_060.0))

JUNK = {
    "text": b"hello, world",
    "empty": b"",
    "truncated": VALID[:-3],
    "extra bytes": VALID + b"\x00",
    "extension type": msgpack.packb(msgpack.ExtType(42, b"\x00" * 8)),
    "timestamp extension": msgpack.packb(msgpack.Timestamp(1, 0)),
    "map": msgpack.packb({"payload": b"x"}),
    "too few fields": envelope(1, 1_000.0, 1_060.0, False),
    "too many fields": envelope(1, 1_000.0, 1_060.0, False, b"x", b"y"),
    "unknown version": envelope(2, 1_000.0, 1_060.0, False, b"x"),
    "bool version": envelope(True, 1_000.0, 1_060.0, False, b"x"),
    "text payload": envelope(1, 1_000.0, 1_060.0, False, "x"),
    "int times": envelope(1, 1_000, 1_060, False, b"x"),
    "nan expiry": envelope(1, 1_000.0, float("nan"), False, b"x"),
    "infinite stored_at": envelope(1, float("inf"), 1_060.0, False, b"x"),
    "int flag": envelope(1, 1_000.0, 1_060.0, 0, b"x"),
    "nested arrays": b"\x91" * 5_000 + b"\xc0",
    "huge length header": b"\xdd\xff\xff\xff\xff",
    "huge bin header": b"\x95\x01\xcb"
    + b"\x00" * 8
    + b"\xcb"
    + b"\x00" * 8
    + b"\xc2"
    + b"\xc6\xff\xff\xff\xff",
}


@pytest.fixture
async def cache(redis_server: RedisServer) -> AsyncIterator[RedisCache]:
    settings = dso.CacheSettings(backend="redis", options={"url": redis_server.url})
    async with open_redis_cache(settings, lambda: 1_000.0) as opened:
        yield opened


@pytest.mark.parametrize("junk", list(JUNK.values()), ids=list(JUNK))
async def test_junk_is_a_counted_miss(
    cache: RedisCache, admin: coredis.Redis[bytes], junk: bytes
) -> None:
    """Junk under a key is a miss for get and get_many, counted as undecodable."""
    with trio.fail_after(DEADLINE):
        await admin.set(KEY, junk)

        found = (await cache.get(KEY), await cache.get_many([KEY, "other"]))

    assert (None, {}) == found
    assert RedisCacheStatistics(hits=0, misses=3, undecodable=2) == cache.statistics()


async def test_a_pickle_is_never_unpickled(
    cache: RedisCache, admin: coredis.Redis[bytes], tmp_path: Path
) -> None:
    """A pickle written under a dso key is a miss; the code in it never runs."""
    proof = tmp_path / "pickle-ran"
    with trio.fail_after(DEADLINE):
        await admin.set(KEY, pickle.dumps(Trap(proof)))

        found = (await cache.get(KEY), await cache.get_many([KEY]))

    assert ((None, {}), False) == (found, proof.exists())
    assert 2 == cache.statistics().undecodable


async def test_a_value_of_another_redis_type_is_a_miss(
    cache: RedisCache, admin: coredis.Redis[bytes]
) -> None:
    """A list under a dso key is a miss for get and get_many, not an error."""
    with trio.fail_after(DEADLINE):
        await admin.rpush(KEY, [b"a", b"b"])

        found = (await cache.get(KEY), await cache.get_many([KEY]))

    assert (None, {}) == found


@pytest.mark.parametrize("junk", [JUNK["text"], JUNK["truncated"]], ids=repr)
async def test_the_next_write_replaces_the_junk(
    cache: RedisCache, admin: coredis.Redis[bytes], junk: bytes
) -> None:
    """After a write, the key holds a readable entry again."""
    stored = CacheEntry(b"fresh", 1_000.0, 1_060.0)
    with trio.fail_after(DEADLINE):
        await admin.set(KEY, junk)
        await admin.rpush("list-key", [b"a"])

        await cache.set_many({KEY: stored, "list-key": stored})

        found = await cache.get_many([KEY, "list-key"])

    assert {KEY: stored, "list-key": stored} == found


async def test_junk_is_logged_without_its_content(
    cache: RedisCache, admin: coredis.Redis[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    """The warning names the namespace, never the key's own part or the bytes."""
    with trio.fail_after(DEADLINE):
        await admin.set(KEY, b"SECRET-LOOKING-JUNK")

        await cache.get(KEY)

    assert [True] == ["dso:quotes:1" in message for message in caplog.messages]
    assert "AAPL" not in caplog.text
    assert "SECRET-LOOKING-JUNK" not in caplog.text
