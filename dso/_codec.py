"""The codec: cached values to bytes and back.

cattrs turns attrs classes, tuples, datetimes and nested containers into
plain data and back; msgpack turns plain data into bytes. Nothing is ever
pickled: a shared cache must not be a way to run code, so decoding only
ever builds plain data and the types the caller names.

Datetimes are written as ISO 8601 text, which keeps microseconds, the
offset and naive-ness. A datetime in a `zoneinfo.ZoneInfo` zone also keeps
its zone, in the RFC 9557 suffix form ``2024-11-03T01:30:00-04:00[America/
New_York]``, because around a change of offset such a datetime compares
unequal to the same instant in a fixed-offset zone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import cattrs
import msgpack  # type: ignore[import-untyped]  # ships no type hints
from cattrs.preconf.msgpack import make_converter

from ._errors import DsoError


DEFAULT_MAX_SIZE = 64 * 1024 * 1024
"""The largest encoded value, in bytes, that the codec writes or reads."""

_MIN_INT = -(2**63)
_MAX_INT = 2**64 - 1
_MAX_DEPTH = 256
_PLAIN_SCALARS = (type(None), bool, float, str, bytes)
_IMMUTABLE_SCALARS = frozenset(
    {type(None), bool, int, float, str, bytes, dt.datetime, dt.date, dt.time}
)


class CodecError(DsoError):
    """A value cannot be encoded exactly, or bytes cannot be decoded.

    The orchestrator treats a decoding failure as a cache miss, and an
    encoding failure as a value it logs and does not store. Messages name
    types and where in the value the problem is, not the whole value.
    """


class Codec:
    """Turns values into bytes and back, keeping their types.

    ``decode(encode(value, T), T) == value`` and the result has the same
    type as *value*. A value that would not come back exactly is refused
    when it is encoded, never noticed when it is read. Dict keys must be
    strings: msgpack's unpacker refuses other keys, because crafted int
    keys that share a hash could make decoding take quadratic time.

    Args:
        max_size: The largest encoded value, in bytes; larger ones are
            refused both ways.

    Raises:
        ValueError: *max_size* is not positive.
    """

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        if max_size <= 0:
            raise ValueError(f"max_size must be greater than 0, got {max_size!r}")

        self._max_size = max_size
        self._converter = _make_converter()

    def encode(self, value: object, value_type: Any) -> bytes:
        """Return the bytes that stand for *value*.

        Args:
            value: What to encode.
            value_type: The type to encode it as (an attrs class,
                ``tuple[Quote, ...]``...). With `object` or `typing.Any`,
                *value* must be plain data: ``None``, bools, 64-bit ints,
                floats, strings, bytes, lists and dicts with string keys.

        Raises:
            CodecError: *value* would not come back equal and of the same
                type; the message names the problem and where it is.
        """
        if _is_plain_type(value_type):
            _check_plain(value, "$", 0)
            return self._pack(value)

        data = self._pack(self._unstructure(value, value_type))
        self._check_round_trip(value, data, value_type)
        return data

    def decode(self, data: bytes, value_type: Any) -> Any:
        """Return the value *data* stands for, as a *value_type*.

        Raises:
            CodecError: *data* is not what `encode` writes for
                *value_type* (junk, truncated, too large, an unknown
                extension type, or plain data of another shape).
        """
        plain = self._unpack(data)
        if _is_plain_type(value_type):
            return plain

        try:
            return self._converter.structure(plain, value_type)
        except Exception as exc:
            # cattrs raises many kinds (exception groups among them); for
            # the orchestrator they all mean "not a usable cache entry".
            raise CodecError(
                f"cached data is not a {_type_name(value_type)}: {_describe(exc)}"
            ) from exc

    def _unstructure(self, value: object, value_type: Any) -> Any:
        try:
            return self._converter.unstructure(value, unstructure_as=value_type)
        except Exception as exc:
            raise CodecError(
                f"cannot encode a {type(value).__name__} as "
                f"{_type_name(value_type)}: {_describe(exc)}"
            ) from exc

    def _pack(self, plain: Any) -> bytes:
        try:
            data = msgpack.packb(plain, use_bin_type=True, datetime=False)
        except OverflowError:
            raise CodecError("an integer does not fit in 64 bits") from None
        except (TypeError, ValueError) as exc:
            raise CodecError(f"cannot encode: {exc}") from None

        if len(data) > self._max_size:
            raise CodecError(
                f"the encoded value has {len(data)} bytes, "
                f"more than max_size ({self._max_size})"
            )

        return bytes(data)

    def _unpack(self, data: bytes) -> Any:
        size = len(data)
        if size > self._max_size:
            raise CodecError(
                f"cached data has {size} bytes, more than max_size ({self._max_size})"
            )

        # A length header can claim far more elements than the data holds;
        # bounding each kind by the data's size stops a few junk bytes from
        # making msgpack allocate gigabytes.
        try:
            # One call, on every cache read of a backend outside the
            # process; an Unpacker (below) costs twice as much to make, and
            # is only needed to say what is wrong with bad data.
            return msgpack.unpackb(data, **_unpack_options(size))
        except Exception:
            return self._unpack_reporting(data)

    def _unpack_reporting(self, data: bytes) -> Any:
        # The same limits as `_unpack`, through an Unpacker, whose errors
        # tell a truncated value from trailing bytes or a bad one.
        size = len(data)
        unpacker = msgpack.Unpacker(
            max_buffer_size=self._max_size, **_unpack_options(size)
        )
        try:
            unpacker.feed(data)
            plain = unpacker.unpack()
        except msgpack.BufferFull:
            raise CodecError(
                f"cached data has {size} bytes, more than max_size ({self._max_size})"
            ) from None
        except msgpack.OutOfData:
            raise CodecError("cached data is truncated") from None
        except Exception as exc:
            raise CodecError(f"cached data is not valid: {_describe(exc)}") from None

        if unpacker.tell() != size:
            raise CodecError("cached data has extra bytes after the value")

        return plain

    def _check_round_trip(self, value: object, data: bytes, value_type: Any) -> None:
        try:
            decoded = self.decode(data, value_type)
        except CodecError as exc:
            raise CodecError(
                f"a {type(value).__name__} does not round-trip as "
                f"{_type_name(value_type)}: {exc}"
            ) from exc

        difference = _first_difference(value, decoded, "$")
        if difference is not None:
            raise CodecError(
                f"a {type(value).__name__} does not round-trip as "
                f"{_type_name(value_type)}: {difference}"
            )


def is_immutable(value: object) -> bool:
    """Tell whether *value* can be shared between callers as it is.

    True for scalars, dates and times, and tuples and frozen attrs
    instances made only of such values; nothing else (not a list, a dict,
    or a plain class) is trusted.
    """
    kind = type(value)
    if kind in _IMMUTABLE_SCALARS:
        return True

    if kind is tuple:
        return all(is_immutable(item) for item in value)  # type: ignore[attr-defined]

    if attrs.has(kind) and _is_frozen(kind):
        return all(
            is_immutable(getattr(value, field.name)) for field in attrs.fields(kind)
        )

    return False


def _is_frozen(kind: type) -> bool:
    # attrs has no public flag for it; a frozen class's __setattr__ is
    # attrs' own refusing one, whatever the version.
    return getattr(kind.__setattr__, "__name__", "") == "_frozen_setattrs"


def _make_converter() -> cattrs.Converter:
    converter = make_converter()
    converter.register_unstructure_hook(dt.datetime, _unstructure_datetime)
    converter.register_structure_hook(dt.datetime, _structure_datetime)
    converter.register_unstructure_hook(dt.date, dt.date.isoformat)
    converter.register_structure_hook(dt.date, _structure_date)
    converter.register_structure_hook(type(None), _structure_none)
    return converter


def _unstructure_datetime(value: dt.datetime) -> str:
    text = value.isoformat()
    if isinstance(value.tzinfo, ZoneInfo) and value.tzinfo.key:
        return f"{text}[{value.tzinfo.key}]"

    return text


def _structure_datetime(data: Any, _: Any) -> dt.datetime:
    if not isinstance(data, str):
        raise TypeError(f"expected ISO 8601 text, got {type(data).__name__}")

    text, bracket, zone_part = data.partition("[")
    value = dt.datetime.fromisoformat(text)
    if not bracket:
        return value

    if value.tzinfo is None or not zone_part.endswith("]"):
        raise ValueError("malformed zone suffix")

    return _in_zone(value, ZoneInfo(zone_part[:-1]))


def _in_zone(value: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    # The offset says which of two equal wall times (or which side of a
    # gap) was meant, which is what `fold` records.
    for fold in (0, 1):
        candidate = value.replace(tzinfo=zone, fold=fold)
        if candidate.utcoffset() == value.utcoffset():
            return candidate

    raise ValueError(f"the offset does not occur in {zone.key}")


def _structure_date(data: Any, _: Any) -> dt.date:
    if not isinstance(data, str):
        raise TypeError(f"expected ISO 8601 text, got {type(data).__name__}")

    return dt.date.fromisoformat(data)


def _structure_none(data: Any, _: Any) -> None:
    if data is not None:
        raise TypeError(f"expected None, got {type(data).__name__}")


def _unpack_options(size: int) -> dict[str, Any]:
    # Limits for *size* bytes of untrusted data, and no extension types.
    return {
        "max_str_len": size,
        "max_bin_len": size,
        "max_array_len": size,
        "max_map_len": size // 2,
        "max_ext_len": 0,
        "ext_hook": _refuse_extension,
        "raw": False,
        "strict_map_key": True,
    }


def _refuse_extension(code: int, data: bytes) -> Any:
    raise ValueError(f"unknown msgpack extension type {code}")


def _is_plain_type(value_type: Any) -> bool:
    return value_type is object or value_type is Any


def _check_plain(value: object, path: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise CodecError(f"{path}: nested deeper than {_MAX_DEPTH} levels")

    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return

    if kind is int:
        _check_int(value, path)
    elif kind is list:
        _check_plain_list(value, path, depth)
    elif kind is dict:
        _check_plain_dict(value, path, depth)
    elif kind is tuple:
        raise CodecError(
            f"{path}: a tuple would come back as a list; "
            "name a value type such as tuple[int, ...]"
        )
    else:
        raise CodecError(
            f"{path}: a {kind.__name__} is not plain data; name its value type"
        )


def _check_int(value: Any, path: str) -> None:
    if not _MIN_INT <= value <= _MAX_INT:
        raise CodecError(f"{path}: an integer does not fit in 64 bits")


def _check_plain_list(value: Any, path: str, depth: int) -> None:
    for index, item in enumerate(value):
        _check_plain(item, f"{path}[{index}]", depth + 1)


def _check_plain_dict(value: Any, path: str, depth: int) -> None:
    for key, item in value.items():
        if type(key) is not str:
            raise CodecError(
                f"{path}: a key of type {type(key).__name__} cannot be cached; "
                "only str keys can"
            )

        _check_plain(item, f"{path}[{_short_repr(key)}]", depth + 1)


def _first_difference(expected: Any, actual: Any, path: str) -> str | None:
    """Describe where *actual* first differs from *expected*, if anywhere.

    Stricter than ``==``: ``1 == 1.0`` and ``[1] != (1,)`` would both hide
    a value that comes back as another type.
    """
    if type(expected) is not type(actual):
        return f"{path}: {type(expected).__name__} came back as {type(actual).__name__}"

    if isinstance(expected, float):
        same = expected == actual or (math.isnan(expected) and math.isnan(actual))
        return None if same else f"{path}: the number changed"

    if attrs.has(type(expected)):
        names = [field.name for field in attrs.fields(type(expected)) if field.eq]
        return _first_field_difference(expected, actual, names, path)

    if dataclasses.is_dataclass(expected):
        names = [field.name for field in dataclasses.fields(expected) if field.compare]
        return _first_field_difference(expected, actual, names, path)

    if isinstance(expected, list | tuple):
        return _first_item_difference(expected, actual, path)

    if isinstance(expected, dict):
        return _first_entry_difference(expected, actual, path)

    return None if expected == actual else f"{path}: the value changed"


def _first_field_difference(
    expected: Any, actual: Any, names: list[str], path: str
) -> str | None:
    for name in names:
        found = _first_difference(
            getattr(expected, name), getattr(actual, name), f"{path}.{name}"
        )
        if found is not None:
            return found

    return None


def _first_item_difference(
    expected: list[Any] | tuple[Any, ...], actual: Any, path: str
) -> str | None:
    if len(expected) != len(actual):
        return f"{path}: {len(expected)} items came back as {len(actual)}"

    for index, (left, right) in enumerate(zip(expected, actual, strict=True)):
        found = _first_difference(left, right, f"{path}[{index}]")
        if found is not None:
            return found

    return None


def _first_entry_difference(
    expected: dict[Any, Any], actual: Any, path: str
) -> str | None:
    for key, item in expected.items():
        where = f"{path}[{_short_repr(key)}]"
        if key not in actual:
            return f"{where}: the key did not come back as itself"

        found = _first_difference(item, actual[key], where)
        if found is not None:
            return found

    if len(expected) != len(actual):
        return f"{path}: {len(expected)} keys came back as {len(actual)}"

    return None


def _short_repr(key: object) -> str:
    text = repr(key)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _type_name(value_type: Any) -> str:
    if isinstance(value_type, type):
        return value_type.__qualname__

    return repr(value_type)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)

    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
