"""Cache keys: ``prefix:namespace:version:key``, escaped so none collide.

Each part is percent-escaped for ``%`` and ``:`` only, so a part never
contains the separator and two different inputs never give the same key,
while plain keys stay readable: ``dso:quotes:1:AAPL``.
"""

from __future__ import annotations

import re

import attrs


_ESCAPES = {"%": "%25", ":": "%3A"}
_UNESCAPES = {escaped: raw for raw, escaped in _ESCAPES.items()}
_ESCAPED_PART = re.compile(r"(?:[^%:]|%25|%3A)*")
_ESCAPE_SEQUENCE = re.compile(r"%25|%3A")
_VERSION = re.compile(r"-?(?:0|[1-9][0-9]*)")


@attrs.frozen
class CacheKeyParts:
    """The parts a cache key was built from.

    Attributes:
        prefix: The first part, shared by one application's keys.
        namespace: The namespace's name.
        version: The namespace's version.
        key: The caller's key.
    """

    prefix: str
    namespace: str
    version: int
    key: str


def cache_key(prefix: str, namespace: str, version: int, key: str) -> str:
    """Return the backend key for *key* in *namespace*.

    Raises:
        TypeError: *version* is not an int, or a part is not a str.
    """
    return key_head(prefix, namespace, version) + escape_key_part(key)


def key_head(prefix: str, namespace: str, version: int) -> str:
    """Return what every key of *namespace* starts with, up to the key itself.

    ``key_head(p, n, v) + escape_key_part(k) == cache_key(p, n, v, k)``;
    callers that build many keys of one namespace compute it once.

    Raises:
        TypeError: *version* is not an int, or a part is not a str.
    """
    if type(version) is not int:
        raise TypeError(f"version must be an int, got {type(version).__name__}")

    for part in (prefix, namespace):
        if not isinstance(part, str):
            raise TypeError(f"key parts must be str, got {type(part).__name__}")

    return f"{_escape(prefix)}:{_escape(namespace)}:{version}:"


def escape_key_part(part: str) -> str:
    """Return *part* escaped for a cache key (unchanged unless it has ``%`` or ``:``).

    Raises:
        TypeError: *part* is not a str.
    """
    if not isinstance(part, str):
        raise TypeError(f"key parts must be str, got {type(part).__name__}")

    return _escape(part)


def parse_cache_key(text: str) -> CacheKeyParts:
    """Split a key made by `cache_key` back into its parts.

    Raises:
        ValueError: *text* is not something `cache_key` returns.
    """
    pieces = text.split(":")
    if len(pieces) != 4:
        raise ValueError(f"a cache key has 4 parts, this one has {len(pieces)}")

    prefix, namespace, version, key = pieces
    if not _VERSION.fullmatch(version):
        raise ValueError("the version part of the cache key is not an integer")

    return CacheKeyParts(
        prefix=_unescape(prefix),
        namespace=_unescape(namespace),
        version=int(version),
        key=_unescape(key),
    )


def _escape(part: str) -> str:
    if "%" not in part and ":" not in part:
        return part

    return part.replace("%", _ESCAPES["%"]).replace(":", _ESCAPES[":"])


def _unescape(part: str) -> str:
    if not _ESCAPED_PART.fullmatch(part):
        raise ValueError("a cache key part has a stray '%'")

    return _ESCAPE_SEQUENCE.sub(lambda match: _UNESCAPES[match[0]], part)
