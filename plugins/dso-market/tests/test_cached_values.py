"""Every market namespace's values come back from the cache as they went in."""

import datetime as dt
import types
import typing
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dso._codec import Codec
from dso_market import _plugin


NAMESPACES = {space.name: space.value_type for space in _plugin.dso_namespaces()}

# Whole-second offsets: Python 3.11's fromisoformat misreads sub-second ones.
_offsets = st.integers(min_value=-86_399, max_value=86_399).map(
    lambda seconds: dt.timezone(dt.timedelta(seconds=seconds))
)
_SCALARS: dict[Any, st.SearchStrategy[Any]] = {
    str: st.text(),
    # NaN is kept too (the codec checks it), but never equals itself.
    float: st.floats(allow_nan=False),
    int: st.integers(min_value=-(2**63), max_value=2**64 - 1),
    dt.datetime: st.datetimes(timezones=_offsets | st.timezones()),
    dt.date: st.dates(),
    type(None): st.none(),
}


def values_of(value_type: Any) -> st.SearchStrategy[Any]:
    """Generate every shape a field of *value_type* can take, fields included."""
    if value_type in _SCALARS:
        return _SCALARS[value_type]

    if attrs.has(value_type):
        hints = typing.get_type_hints(value_type)
        fields = {
            field.name: values_of(hints[field.name])
            for field in attrs.fields(value_type)
        }
        return st.builds(value_type, **fields)

    origin = typing.get_origin(value_type)
    arguments = typing.get_args(value_type)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(values_of(argument) for argument in arguments))

    if origin is tuple and arguments[1:] == (Ellipsis,):
        return st.lists(values_of(arguments[0]), max_size=3).map(tuple)

    raise TypeError(f"no strategy for {value_type!r}")


@pytest.mark.parametrize("namespace", sorted(NAMESPACES))
@given(data=st.data())
def test_market_values_round_trip_through_the_codec(
    namespace: str, data: st.DataObject
) -> None:
    """decode(encode(value)) equals the value and has the same type."""
    value_type = NAMESPACES[namespace]
    value = data.draw(values_of(value_type))
    codec = Codec()

    decoded = codec.decode(codec.encode(value, value_type), value_type)

    assert (value, type(value)) == (decoded, type(decoded))
