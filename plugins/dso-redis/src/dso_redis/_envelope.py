"""The bytes stored under a key: an entry's payload with its timing.

Redis keeps only bytes and a time to live, so the entry's times travel
with its payload. Every process then judges freshness from the same
``stored_at``, whatever Redis's own expiry says.

An envelope is a msgpack array ``[1, stored_at, expires_at, partial,
payload]``; the leading 1 is the format's version. Reading is strict and
bounded: anything else stored under a dso key (junk, a truncated value,
an extension type, a pickle) is refused as data, never interpreted.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

import msgpack  # type: ignore[import-untyped]  # ships no type hints

from dso import CacheEntry


FORMAT_VERSION = 1
"""The first item of every envelope this module writes."""

_FIELDS = 5


class EnvelopeError(Exception):
    """The bytes are not an envelope this module wrote."""


def pack_entry(entry: CacheEntry) -> bytes:
    """Return the envelope that carries *entry*."""
    packed: bytes = msgpack.packb(
        [
            FORMAT_VERSION,
            float(entry.stored_at),
            float(entry.expires_at),
            entry.partial,
            entry.payload,
        ],
        use_bin_type=True,
    )
    return packed


def unpack_entry(data: bytes) -> CacheEntry:
    """Return the entry an envelope carries.

    Raises:
        EnvelopeError: *data* is not an envelope; the message says why.
    """
    fields = _unpack(data)
    version, stored_at, expires_at, partial, payload = fields
    if type(version) is not int or version != FORMAT_VERSION:
        raise EnvelopeError(f"unknown envelope version {_kind(version)}")

    # An entry may never expire (an infinite expires_at); no time is NaN.
    if not (_is_float(stored_at) and math.isfinite(stored_at)):
        raise EnvelopeError("stored_at is not a finite number")

    if not _is_float(expires_at) or math.isnan(expires_at):
        raise EnvelopeError("expires_at is not a number")

    if type(partial) is not bool or type(payload) is not bytes:
        raise EnvelopeError("the partial flag or the payload has the wrong type")

    return CacheEntry(payload, stored_at, expires_at, partial)


def _unpack(data: bytes) -> tuple[Any, ...]:
    size = len(data)
    try:
        # Each bound is the data's own size or the envelope's shape, so a
        # length header that lies cannot make msgpack allocate much.
        fields = msgpack.unpackb(
            data,
            use_list=False,
            raw=False,
            max_bin_len=size,
            max_str_len=size,
            max_array_len=_FIELDS,
            max_map_len=0,
            max_ext_len=0,
            strict_map_key=True,
        )
    except (ValueError, msgpack.UnpackException) as exc:
        raise EnvelopeError(f"not msgpack data ({type(exc).__name__})") from None

    if type(fields) is not tuple or len(fields) != _FIELDS:
        raise EnvelopeError(f"expected an array of {_FIELDS}, got {_kind(fields)}")

    return fields


def _is_float(value: object) -> TypeGuard[float]:
    return type(value) is float


def _kind(value: object) -> str:
    # Never the value itself: it came from outside and may be anything.
    return f"a {type(value).__name__}"
