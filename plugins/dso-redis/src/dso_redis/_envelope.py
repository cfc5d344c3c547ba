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
from typing import Any

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
    # One test on the path every read takes; the reasons only on failure.
    if (
        type(version) is int
        and version == FORMAT_VERSION
        and type(stored_at) is float
        and math.isfinite(stored_at)
        # An entry may never expire (an infinite expires_at), but no time
        # is NaN.
        and type(expires_at) is float
        and not math.isnan(expires_at)
        and type(partial) is bool
        and type(payload) is bytes
    ):
        return CacheEntry(payload, stored_at, expires_at, partial)

    raise EnvelopeError(_reason(fields))


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


def _reason(fields: tuple[Any, ...]) -> str:
    version, stored_at, expires_at = fields[:3]
    if type(version) is not int or version != FORMAT_VERSION:
        return f"unknown envelope version, {_kind(version)}"

    if type(stored_at) is not float or not math.isfinite(stored_at):
        return "stored_at is not a finite number"

    if type(expires_at) is not float or math.isnan(expires_at):
        return "expires_at is not a number"

    return "the partial flag or the payload has the wrong type"


def _kind(value: object) -> str:
    # Never the value itself: it came from outside and may be anything.
    return f"a {type(value).__name__}"
