"""The ``redis`` cache backend: entries in Redis, shared by every process.

Each entry is one Redis string holding an envelope (see `pack_entry`),
stored with a millisecond expiry (``PX``) that covers the entry's fresh
and stale windows. Reads of many keys are one ``MGET``; writes of many
are one pipeline, without a transaction (each ``SET`` stands alone).

Commands run on coredis, which runs on trio through anyio. Its connection
tasks live in the client's task group, which `open_redis_cache` opens and
closes.
"""

from __future__ import annotations

import logging
import math
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import attrs
import coredis
import trio
from coredis.exceptions import ConnectionError as RedisConnectionError
from coredis.exceptions import RedisError, WrongTypeError
from coredis.retry import ConstantRetryPolicy

from dso import CacheEntry, CacheSettings, ConfigError, WallClock

from ._envelope import EnvelopeError, pack_entry, unpack_entry
from ._errors import RedisCacheError
from ._options import RedisOptions, read_options


logger = logging.getLogger("dso.redis")

# A bound far beyond any TTL table, and far inside what Redis accepts for
# PX (a 64-bit count of milliseconds from now).
_MAX_LIFETIME = 100 * 365 * 24 * 3600.0

# What coredis raises when Redis is down, slow or refusing. OSError covers
# the socket errors a TLS handshake may let through unwrapped.
_FAILURES = (RedisError, TimeoutError, OSError)

_MAX_MESSAGE = 200


@attrs.frozen
class RedisCacheStatistics:
    """A snapshot of one `RedisCache`'s counters (this process only).

    Attributes:
        hits: Keys read that had a live entry.
        misses: Keys read that had none: nothing stored, an expired
            entry, or bytes that are not an entry.
        undecodable: Of the misses, keys holding bytes that are not an
            entry dso wrote (junk, truncated, a pickle...), or a value of
            another Redis type. The next write replaces them.
    """

    hits: int
    misses: int
    undecodable: int


class RedisCache:
    """Entries in Redis, read and written through coredis.

    Entries are judged by the time they carry, read from *clock*, so
    every process that shares the server agrees on them; Redis's own
    expiry only frees the memory. A failure raises `RedisCacheError`: at
    once when Redis is down or refuses, after the client's command timeout
    when it does not answer. Nothing waits for Redis to come back; a later
    operation reconnects by itself.

    Use `open_redis_cache` to get one from configuration, or pass a
    client opened yourself (its ``decode_responses`` must be off).

    Args:
        client: An entered coredis client; the caller keeps ownership.
        clock: Tells the time entries expire by.
    """

    name = "redis"

    def __init__(self, client: coredis.Redis[bytes], *, clock: WallClock) -> None:
        self._client = client
        self._clock = clock
        self._hits = 0
        self._misses = 0
        self._undecodable = 0

    def __repr__(self) -> str:
        # coredis shows host and port only, never the credentials.
        return f"RedisCache({self._client!r})"

    async def get(self, key: str) -> CacheEntry | None:
        """Return the live entry under *key*, or ``None``.

        Raises:
            RedisCacheError: Redis failed or did not answer in time.
        """
        try:
            data = await self._client.get(key)
        except WrongTypeError:
            self._refused(key, "a value of another Redis type")
            return None
        except _FAILURES as exc:
            raise _failed("GET", exc) from exc

        return self._entry(key, data, self._clock())

    async def get_many(self, keys: Sequence[str]) -> dict[str, CacheEntry]:
        """Return the live entries under *keys*, read with one ``MGET``.

        Raises:
            RedisCacheError: Redis failed or did not answer in time.
        """
        unique = list(dict.fromkeys(keys))
        if not unique:
            await trio.lowlevel.checkpoint()
            return {}

        try:
            values = await self._client.mget(unique)
        except _FAILURES as exc:
            raise _failed("MGET", exc) from exc

        now = self._clock()
        found = {}
        for key, data in zip(unique, values, strict=True):
            entry = self._entry(key, data, now)
            if entry is not None:
                found[key] = entry

        return found

    async def set(self, key: str, entry: CacheEntry) -> None:
        """Store *entry* under *key*, to expire with it.

        An entry already expired is not stored; what was under *key* is
        removed, as the memory backend does.

        Raises:
            RedisCacheError: Redis failed or did not answer in time.
        """
        milliseconds = _milliseconds_left(entry, self._clock())
        try:
            if milliseconds > 0:
                await self._client.set(key, pack_entry(entry), px=milliseconds)
            else:
                await self._client.delete([key])
        except _FAILURES as exc:
            raise _failed("SET", exc) from exc

    async def set_many(self, entries: Mapping[str, CacheEntry]) -> None:
        """Store several entries in one pipelined round trip.

        Raises:
            RedisCacheError: Redis failed or did not answer in time; some
                of the entries may have been stored.
        """
        if not entries:
            await trio.lowlevel.checkpoint()
            return

        now = self._clock()
        try:
            async with self._client.pipeline(transaction=False) as pipeline:
                expired = []
                for key, entry in entries.items():
                    milliseconds = _milliseconds_left(entry, now)
                    if milliseconds > 0:
                        pipeline.set(key, pack_entry(entry), px=milliseconds)
                    else:
                        expired.append(key)

                if expired:
                    pipeline.delete(expired)
        except _FAILURES as exc:
            raise _failed("pipelined SET", exc) from exc

    async def delete(self, key: str) -> None:
        """Remove the entry under *key*, if any.

        Raises:
            RedisCacheError: Redis failed or did not answer in time.
        """
        try:
            await self._client.delete([key])
        except _FAILURES as exc:
            raise _failed("DEL", exc) from exc

    def statistics(self) -> RedisCacheStatistics:
        """Return this process's counters."""
        return RedisCacheStatistics(
            hits=self._hits, misses=self._misses, undecodable=self._undecodable
        )

    def _entry(self, key: str, data: bytes | None, now: float) -> CacheEntry | None:
        if data is None:
            self._misses += 1
            return None

        try:
            entry = unpack_entry(data)
        except EnvelopeError as exc:
            self._refused(key, str(exc))
            return None

        if entry.is_expired(now):
            self._misses += 1
            return None

        self._hits += 1
        return entry

    def _refused(self, key: str, reason: str) -> None:
        self._misses += 1
        self._undecodable += 1
        # The key's last part may be personal data, and this backend does
        # not know how telemetry shows keys: only the namespace part is told.
        head = key.rpartition(":")[0] or "(no namespace)"
        logger.warning(
            "not a dso entry under a key of %s in Redis (%s): a miss", head, reason
        )


@asynccontextmanager
async def open_redis_cache(
    settings: CacheSettings, clock: WallClock
) -> AsyncIterator[RedisCache]:
    """Open a `RedisCache` on the server *settings* name; close it on exit.

    Options, under ``[cache.options]``:

    - ``url`` (required): ``redis://[user[:password]@]host[:port][/db]``,
      or ``rediss://`` for TLS. A password with ``@`` or ``:`` in it is
      written percent-encoded.
    - ``connect_timeout``: seconds a new connection may take (default 1).
    - ``max_connections``: connections open at most (default 64).
    - ``ca_file``: with ``rediss://``, the certificate authorities to
      trust instead of the system's.

    ``cache.timeout`` bounds each command. Opening does not connect: a
    Redis that is down makes operations fail, not the opening.

    Raises:
        ConfigError: An option is missing, unknown or invalid.
    """
    options = read_options(settings)
    client = _client(options, settings.timeout)
    async with client:
        yield RedisCache(client, clock=clock)


def _client(options: RedisOptions, timeout: float) -> coredis.Redis[bytes]:
    # TODO: Redis Cluster (coredis.RedisCluster) is not offered yet: an MGET
    # across hash slots needs the cluster client's split into several
    # requests, and the batch round-trip tests would have to allow that.
    return coredis.Redis(
        host=options.host,
        port=options.port,
        db=options.db,
        username=options.username,
        password=options.password,
        ssl_context=_tls_context(options),
        # These two bound every command, even outside an orchestrator. No
        # pool timeout: commands share connections, so none waits for one
        # beyond connecting, and a third scope would slow every hit.
        connect_timeout=options.connect_timeout,
        stream_timeout=timeout,
        max_connections=options.max_connections,
        decode_responses=False,
        # One immediate retry covers a pooled connection that died with a
        # restarted server; more would only make a down Redis slower to
        # report. Timeouts are not retried: the caller's time is spent.
        retry_policy=ConstantRetryPolicy((RedisConnectionError,), retries=1, delay=0),
    )


def _tls_context(options: RedisOptions) -> ssl.SSLContext | None:
    if not options.tls:
        return None

    try:
        return ssl.create_default_context(cafile=options.ca_file)
    except OSError as exc:
        raise ConfigError(
            f"cache.options.ca_file: cannot load certificates from "
            f"{options.ca_file!r} ({type(exc).__name__})"
        ) from None


def _milliseconds_left(entry: CacheEntry, now: float) -> int:
    left = entry.expires_at - now
    if not left > 0:
        # Expired, or a NaN: never a PX Redis would refuse.
        return 0

    return math.ceil(min(left, _MAX_LIFETIME) * 1000)


def _failed(command: str, exc: BaseException) -> RedisCacheError:
    reason = str(exc).partition("\n")[0][:_MAX_MESSAGE]
    detail = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
    return RedisCacheError(f"Redis {command} failed: {detail}")
