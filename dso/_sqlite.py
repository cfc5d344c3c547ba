"""The ``sqlite`` cache backend: a file that several processes share.

It runs the standard library's `sqlite3` in trio's thread pool. One
connection serves the whole cache, used by one thread at a time (a
`trio.Lock` guards it). The database runs in WAL mode, so readers do not
wait for a writer, and with a busy timeout, so two processes can write
to the same file.

A write runs in one transaction. A thread cannot be cancelled, so a
write that has reached its thread completes even if the caller is
cancelled meanwhile; one cancelled before that has not happened. Either
way no row is ever half written.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TypeVar

import attrs
import trio

from ._cache import CacheEntry, WallClock
from ._config import CacheSettings
from ._errors import ConfigError


DEFAULT_BUSY_TIMEOUT = 5.0
"""Seconds a write waits for another process's write to finish."""

_T = TypeVar("_T")

# Far under SQLite's variable limit (999 before 3.32), and big enough that
# a batch read is still a handful of statements.
_MAX_KEYS_PER_SELECT = 500

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS dso_cache (
        key TEXT PRIMARY KEY,
        payload BLOB NOT NULL,
        stored_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        partial INTEGER NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS dso_cache_expires_at ON dso_cache (expires_at)",
    "CREATE INDEX IF NOT EXISTS dso_cache_stored_at ON dso_cache (stored_at)",
)


@attrs.frozen
class SqliteCacheStatistics:
    """A snapshot of one `SqliteCache`'s counters (this process only).

    Attributes:
        hits: Keys read that had a live entry.
        misses: Keys read that had none, or only an expired one.
        evictions: Live entries dropped to stay within ``max_entries``.
    """

    hits: int
    misses: int
    evictions: int


class SqliteCache:
    """Entries in a SQLite table, kept across processes and restarts.

    Expired rows are never returned. They are deleted, and the table cut
    back to *max_entries* (the oldest stored first), when the cache opens
    and after every *purge_every* entries written; in between, the table
    may hold up to *purge_every* entries more than *max_entries*.

    Use `open_sqlite_cache` to get one.

    Args:
        connection: An open connection made with
            ``check_same_thread=False`` and ``isolation_level=None``.
        clock: Tells the time entries expire by.
        max_entries: How many entries the table keeps after a purge.
        purge_every: Entries written between purges; by default a tenth
            of *max_entries*, at least 1 and at most 1000.
    """

    name = "sqlite"

    def __init__(
        self,
        connection: sqlite3.Connection,
        *,
        clock: WallClock,
        max_entries: int,
        purge_every: int | None = None,
    ) -> None:
        self._connection = connection
        self._lock = trio.Lock()
        self._clock = clock
        self._max_entries = max_entries
        self._purge_every = purge_every or max(1, min(1000, max_entries // 10))
        self._written_since_purge = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    def __repr__(self) -> str:
        return f"SqliteCache(max_entries={self._max_entries})"

    async def get(self, key: str) -> CacheEntry | None:
        """Return the live entry under *key*, or ``None``."""
        found = await self.get_many([key])
        return found.get(key)

    async def get_many(self, keys: Sequence[str]) -> dict[str, CacheEntry]:
        """Return the live entries under *keys*, a few hundred per SELECT."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            await trio.lowlevel.checkpoint()
            return {}

        found = await self._run(
            functools.partial(_select, self._connection, unique, self._clock())
        )
        self._hits += len(found)
        self._misses += len(unique) - len(found)
        return found

    async def set(self, key: str, entry: CacheEntry) -> None:
        """Store *entry* under *key*, replacing what was there."""
        await self.set_many({key: entry})

    async def set_many(self, entries: Mapping[str, CacheEntry]) -> None:
        """Store several entries in one transaction."""
        if not entries:
            await trio.lowlevel.checkpoint()
            return

        written = self._written_since_purge + len(entries)
        bound = self._max_entries if written >= self._purge_every else None
        evicted = await self._run(
            functools.partial(
                _write, self._connection, dict(entries), self._clock(), bound
            )
        )
        self._written_since_purge = 0 if bound is not None else written
        self._evictions += evicted

    async def delete(self, key: str) -> None:
        """Remove the entry under *key*, if any."""
        await self._run(functools.partial(_delete, self._connection, key))

    async def purge(self) -> None:
        """Delete expired rows, then the oldest beyond ``max_entries``."""
        evicted = await self._run(
            functools.partial(
                _purge_in_transaction,
                self._connection,
                self._clock(),
                self._max_entries,
            )
        )
        self._written_since_purge = 0
        self._evictions += evicted

    def statistics(self) -> SqliteCacheStatistics:
        """Return this process's counters."""
        return SqliteCacheStatistics(
            hits=self._hits, misses=self._misses, evictions=self._evictions
        )

    async def aclose(self) -> None:
        """Close the connection; `open_sqlite_cache` does it on exit."""
        await self._run(self._connection.close)

    async def _run(self, function: Callable[[], _T]) -> _T:
        async with self._lock:
            return await trio.to_thread.run_sync(function)


@asynccontextmanager
async def open_sqlite_cache(
    settings: CacheSettings, clock: WallClock
) -> AsyncIterator[SqliteCache]:
    """Open the SQLite cache file *settings* name, and close it on exit.

    Creates the file, its parent directories and the table when missing,
    and purges expired rows. ``settings.options["busy_timeout"]`` sets how
    many seconds a write waits for another process (default 5).

    Raises:
        ConfigError: ``cache.path`` is not set, or
            ``cache.options.busy_timeout`` is not a positive number.
        sqlite3.Error: The database cannot be opened.
    """
    path = _database_path(settings)
    busy_timeout = _busy_timeout_option(settings)
    connection = await trio.to_thread.run_sync(_connect, path, busy_timeout)
    cache = SqliteCache(connection, clock=clock, max_entries=settings.max_entries)
    try:
        await cache.purge()
        yield cache
    finally:
        with trio.CancelScope(shield=True):
            await cache.aclose()


def _database_path(settings: CacheSettings) -> Path:
    if not settings.path:
        raise ConfigError(
            "cache.path: the sqlite backend needs the path of its database file"
        )

    return Path(settings.path).expanduser()


def _busy_timeout_option(settings: CacheSettings) -> float:
    value = settings.options.get("busy_timeout", DEFAULT_BUSY_TIMEOUT)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(
            f"cache.options.busy_timeout: expected a positive number, got {value!r}"
        )

    return float(value)


def _connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None leaves transactions to us: BEGIN IMMEDIATE takes
    # the write lock up front, so a busy file makes us wait (busy_timeout)
    # rather than fail when a read would upgrade to a write.
    connection = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL cannot corrupt the file; a crash may lose the
        # last writes, which a cache can afford.
        connection.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            connection.execute(statement)
    except BaseException:
        connection.close()
        raise

    return connection


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        # Some errors (a full disk, for one) end the transaction already.
        if connection.in_transaction:
            connection.execute("ROLLBACK")

        raise

    connection.execute("COMMIT")


def _select(
    connection: sqlite3.Connection, keys: list[str], now: float
) -> dict[str, CacheEntry]:
    found = {}
    for start in range(0, len(keys), _MAX_KEYS_PER_SELECT):
        chunk = keys[start : start + _MAX_KEYS_PER_SELECT]
        marks = ", ".join("?" * len(chunk))
        rows = connection.execute(
            "SELECT key, payload, stored_at, expires_at, partial FROM dso_cache"
            f" WHERE key IN ({marks}) AND expires_at > ?",
            [*chunk, now],
        )
        for key, payload, stored_at, expires_at, partial in rows:
            found[key] = CacheEntry(
                payload=payload,
                stored_at=stored_at,
                expires_at=expires_at,
                partial=bool(partial),
            )

    return found


def _write(
    connection: sqlite3.Connection,
    entries: dict[str, CacheEntry],
    now: float,
    bound: int | None,
) -> int:
    live = [
        (key, entry.payload, entry.stored_at, entry.expires_at, int(entry.partial))
        for key, entry in entries.items()
        if not entry.is_expired(now)
    ]
    dead = [(key,) for key, entry in entries.items() if entry.is_expired(now)]
    with _transaction(connection):
        connection.executemany(
            "INSERT OR REPLACE INTO dso_cache"
            " (key, payload, stored_at, expires_at, partial) VALUES (?, ?, ?, ?, ?)",
            live,
        )
        connection.executemany("DELETE FROM dso_cache WHERE key = ?", dead)
        if bound is None:
            return 0

        return _purge(connection, now, bound)


def _delete(connection: sqlite3.Connection, key: str) -> None:
    connection.execute("DELETE FROM dso_cache WHERE key = ?", (key,))


def _purge_in_transaction(
    connection: sqlite3.Connection, now: float, max_entries: int
) -> int:
    with _transaction(connection):
        return _purge(connection, now, max_entries)


def _purge(connection: sqlite3.Connection, now: float, max_entries: int) -> int:
    connection.execute("DELETE FROM dso_cache WHERE expires_at <= ?", (now,))
    (count,) = connection.execute("SELECT count(*) FROM dso_cache").fetchone()
    excess = int(count) - max_entries
    if excess <= 0:
        return 0

    connection.execute(
        "DELETE FROM dso_cache WHERE key IN"
        " (SELECT key FROM dso_cache ORDER BY stored_at, key LIMIT ?)",
        (excess,),
    )
    return excess
