"""The ``[cache.options]`` the redis backend reads, checked before any I/O."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from dso import CacheSettings, ConfigError


DEFAULT_CONNECT_TIMEOUT = 1.0
"""Seconds a new connection may take before the operation fails."""

DEFAULT_MAX_CONNECTIONS = 64
"""Connections open at most; commands share them (coredis multiplexes)."""

DEFAULT_PORT = 6379

_SCHEMES = ("redis", "rediss")

REDACTED = "***"
"""What a password is replaced with wherever the URL is shown."""


@attrs.frozen
class RedisOptions:
    """Where the Redis server is and how to reach it.

    Attributes:
        url: The URL as configured, its password hidden.
        host: The server's host name or address.
        port: Its port.
        db: The database number.
        username: The user to authenticate as, if any.
        password: The password; never shown in ``repr``.
        tls: Whether the URL asked for TLS (``rediss://``).
        ca_file: With TLS, the certificate authorities to trust instead
            of the system's.
        connect_timeout: Seconds a new connection may take.
        max_connections: Connections open at most.
    """

    url: str
    host: str
    port: int
    db: int = 0
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS


def read_options(settings: CacheSettings) -> RedisOptions:
    """Return the redis backend's options from *settings*.

    Raises:
        ConfigError: An option is missing, unknown or invalid; the message
            names it as ``cache.options.<key>`` and never shows a password.
    """
    options = dict(settings.options)
    unknown = sorted(set(options) - set(_READERS))
    if unknown:
        known = ", ".join(sorted(_READERS))
        raise ConfigError(
            f"cache.options.{unknown[0]}: not an option of the redis backend; "
            f"known: {known}"
        )

    read = {name: reader(options) for name, reader in _READERS.items()}
    options_from_url = _parse_url(read.pop("url"))
    if read["ca_file"] is not None and not options_from_url["tls"]:
        raise ConfigError(
            "cache.options.ca_file: only a rediss:// URL uses TLS certificates"
        )

    return RedisOptions(**options_from_url, **read)


def _url(options: Mapping[str, Any]) -> str:
    value = options.get("url")
    if value is None:
        raise ConfigError(
            "cache.options.url: the redis backend needs the server's URL, "
            "like redis://localhost:6379/0"
        )

    if not isinstance(value, str):
        raise ConfigError(
            f"cache.options.url: expected a string, got a {type(value).__name__}"
        )

    return value


def _connect_timeout(options: Mapping[str, Any]) -> float:
    value = options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    # "not > 0" also refuses NaN, which would fail every connection.
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(
            f"cache.options.connect_timeout: expected a positive number of "
            f"seconds, got {value!r}"
        )

    return float(value)


def _max_connections(options: Mapping[str, Any]) -> int:
    value = options.get("max_connections", DEFAULT_MAX_CONNECTIONS)
    if type(value) is not int or value <= 0:
        raise ConfigError(
            f"cache.options.max_connections: expected a positive integer, got {value!r}"
        )

    return value


def _ca_file(options: Mapping[str, Any]) -> str | None:
    value = options.get("ca_file")
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(
            f"cache.options.ca_file: expected the path of a file, got {value!r}"
        )

    return value


_READERS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "ca_file": _ca_file,
    "connect_timeout": _connect_timeout,
    "max_connections": _max_connections,
    "url": _url,
}


def _parse_url(url: str) -> dict[str, Any]:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        # Not even split into parts: nothing of it can be shown safely.
        raise ConfigError("cache.options.url: not a valid URL") from None

    shown = _redacted(parts)
    try:
        port = parts.port
    except ValueError:
        raise _url_error(shown, "the port is not a number from 0 to 65535") from None

    if parts.scheme not in _SCHEMES:
        raise _url_error(shown, "the scheme must be redis:// or rediss://")

    if not parts.hostname:
        raise _url_error(shown, "it names no host")

    if parts.query or parts.fragment:
        # A query (?ssl_cert_reqs=none...) would be silently ignored.
        raise _url_error(shown, "put settings in cache.options, not in the URL")

    return {
        "url": shown,
        "host": parts.hostname,
        "port": DEFAULT_PORT if port is None else port,
        "db": _database(parts.path, shown),
        "username": _unquoted(parts.username),
        "password": _unquoted(parts.password),
        "tls": parts.scheme == "rediss",
    }


def _redacted(parts: urllib.parse.SplitResult) -> str:
    if parts.password is None:
        return parts.geturl()

    host = parts.netloc.rpartition("@")[2]
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    return parts._replace(netloc=f"{user}:{REDACTED}@{host}").geturl()


def _database(path: str, shown: str) -> int:
    number = path.strip("/")
    if not number:
        return 0

    if not number.isdigit() or not number.isascii():
        raise _url_error(shown, "the path must be a database number, like /0")

    return int(number)


def _unquoted(part: str | None) -> str | None:
    # A password with "@" or ":" in it is written percent-encoded. An empty
    # user (redis://:password@host) is Redis's "default" user.
    return urllib.parse.unquote(part) if part else None


def _url_error(shown: str, reason: str) -> ConfigError:
    return ConfigError(f"cache.options.url: {reason}; got {shown!r}")
