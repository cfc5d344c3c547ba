import contextlib
import datetime as dt
import typing
from zoneinfo import ZoneInfo

import attrs
import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dso._codec import Codec, CodecError
from dso._errors import DsoError


@attrs.frozen
class Reading:
    label: str
    at: dt.datetime | None = None
    tags: tuple[str, ...] = ()
    score: float | None = None
    count: int | None = None


@attrs.frozen
class Series:
    name: str
    readings: tuple[Reading, ...] = ()
    day: dt.date | None = None
    totals: dict[str, int] = attrs.Factory(dict)
    latest: Reading | None = None


FALSY_VALUES = [0, "", [], {}, False, 0.0, None, b""]

# Whole seconds: Python 3.11's fromisoformat misreads some sub-second
# offsets, which the codec then refuses at encode time.
_fixed_offsets = st.builds(
    dt.timezone,
    st.integers(min_value=-86_399, max_value=86_399).map(
        lambda seconds: dt.timedelta(seconds=seconds)
    ),
)
datetimes = st.datetimes(timezones=st.none() | _fixed_offsets | st.timezones())
int64s = st.integers(min_value=-(2**63), max_value=2**64 - 1)
floats = st.floats(allow_nan=False)

readings = st.builds(
    Reading,
    label=st.text(),
    at=st.none() | datetimes,
    tags=st.tuples() | st.lists(st.text(), max_size=3).map(tuple),
    score=st.none() | floats,
    count=st.none() | int64s,
)
series = st.builds(
    Series,
    name=st.text(),
    readings=st.lists(readings, max_size=3).map(tuple),
    day=st.none() | st.dates(),
    totals=st.dictionaries(st.text(), int64s, max_size=3),
    latest=st.none() | readings,
)
plain_data = st.recursive(
    st.none() | st.booleans() | int64s | floats | st.text() | st.binary(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec()


@given(value=series)
def test_attrs_values_come_back_equal_and_of_the_same_type(
    codec: Codec, value: Series
) -> None:
    """An attrs value decodes to an equal value of its own type."""
    data = codec.encode(value, Series)

    decoded = codec.decode(data, Series)

    assert (value, Series) == (decoded, type(decoded))


@given(value=plain_data)
def test_plain_data_passes_through_unchanged(codec: Codec, value: object) -> None:
    """JSON-like data with value type `object` decodes to itself."""
    data = codec.encode(value, object)

    decoded = codec.decode(data, object)

    assert value == decoded


@given(value=st.lists(readings, max_size=3).map(tuple))
def test_tuples_of_attrs_values_come_back_as_tuples(
    codec: Codec, value: tuple[Reading, ...]
) -> None:
    """A ``tuple[Reading, ...]`` decodes to a tuple, not a list."""
    data = codec.encode(value, tuple[Reading, ...])

    decoded = codec.decode(data, tuple[Reading, ...])

    assert (value, tuple) == (decoded, type(decoded))


@pytest.mark.parametrize("value_type", [object, typing.Any])
@pytest.mark.parametrize("value", FALSY_VALUES, ids=repr)
def test_falsy_plain_values_keep_value_and_type(
    codec: Codec, value: object, value_type: object
) -> None:
    """Falsy values are not confused with each other or with a miss."""
    data = codec.encode(value, value_type)

    decoded = codec.decode(data, value_type)

    assert (value, type(value)) == (decoded, type(decoded))


@pytest.mark.parametrize("value", FALSY_VALUES, ids=repr)
def test_falsy_values_keep_value_and_type_with_their_own_type(
    codec: Codec, value: object
) -> None:
    """Falsy values also round-trip when their own type is named."""
    data = codec.encode(value, type(value))

    decoded = codec.decode(data, type(value))

    assert (value, type(value)) == (decoded, type(decoded))


def test_falsy_fields_of_an_attrs_value_are_kept(codec: Codec) -> None:
    """Zero, empty and false fields do not turn into ``None`` or defaults."""
    value = Reading(label="", tags=(), score=0.0, count=0)

    decoded = codec.decode(codec.encode(value, Reading), Reading)

    assert (0.0, 0) == (decoded.score, decoded.count)


def test_microseconds_and_offset_are_kept(codec: Codec) -> None:
    """A datetime keeps its microseconds and its UTC offset."""
    offset = dt.timezone(dt.timedelta(hours=5, minutes=30))
    value = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=offset)

    decoded = codec.decode(codec.encode(value, dt.datetime), dt.datetime)

    assert (value, value.utcoffset()) == (decoded, decoded.utcoffset())


def test_naive_datetimes_stay_naive(codec: Codec) -> None:
    """A naive datetime is not turned into an aware one."""
    value = dt.datetime(2024, 5, 6, 7, 8, 9, 1)

    decoded = codec.decode(codec.encode(value, dt.datetime), dt.datetime)

    assert (value, None) == (decoded, decoded.tzinfo)


@pytest.mark.parametrize(
    ("wall_time", "fold"),
    [
        pytest.param(dt.datetime(2024, 11, 3, 1, 30), 0, id="first-of-repeated"),
        pytest.param(dt.datetime(2024, 11, 3, 1, 30), 1, id="second-of-repeated"),
        pytest.param(dt.datetime(2024, 3, 10, 2, 30), 0, id="in-the-gap"),
    ],
)
def test_zoned_datetimes_around_a_change_of_offset_compare_equal(
    codec: Codec, wall_time: dt.datetime, fold: int
) -> None:
    """A datetime in a zone, at a change of offset, comes back equal."""
    value = wall_time.replace(tzinfo=ZoneInfo("America/New_York"), fold=fold)

    decoded = codec.decode(codec.encode(value, dt.datetime), dt.datetime)

    assert (value, value.utcoffset()) == (decoded, decoded.utcoffset())


@pytest.mark.parametrize(
    ("value", "value_type", "problem"),
    [
        pytest.param((1, 2), object, "tuple would come back as a list", id="tuple"),
        pytest.param(2**64, object, "does not fit in 64 bits", id="big-int"),
        pytest.param(-(2**63) - 1, object, "does not fit in 64 bits", id="low-int"),
        pytest.param({1: "a"}, object, "key of type int", id="int-key"),
        pytest.param({"a": [(1,)]}, object, r"\$\['a'\]\[0\]", id="names-path"),
        pytest.param(dt.date(2024, 1, 1), object, "date is not plain", id="date"),
        pytest.param(Reading("x", count=True), Reading, r"\$\.count", id="bool"),
        pytest.param([Reading("x")], tuple[Reading, ...], "list came back", id="list"),
        pytest.param({"a": (1,)}, dict[str, typing.Any], "tuple came back", id="any"),
        pytest.param(2**64, int, "64 bits", id="typed-big-int"),
    ],
)
def test_a_value_that_would_not_round_trip_is_refused_at_encode(
    codec: Codec, value: object, value_type: object, problem: str
) -> None:
    """Encoding refuses, naming the problem, a value that would come back changed."""
    with pytest.raises(CodecError, match=problem):
        codec.encode(value, value_type)


def test_codec_error_is_a_dso_error() -> None:
    """The orchestrator can catch codec failures with the other dso errors."""
    assert issubclass(CodecError, DsoError)


@given(data=st.binary())
def test_junk_bytes_raise_nothing_but_codec_error(codec: Codec, data: bytes) -> None:
    """Decoding arbitrary bytes either gives a value or raises `CodecError`."""
    for value_type in (object, Series, tuple[Reading, ...], dt.datetime):
        with contextlib.suppress(CodecError):
            codec.decode(data, value_type)


@given(value=plain_data)
def test_plain_data_of_any_shape_raises_nothing_but_codec_error(
    codec: Codec, value: object
) -> None:
    """Well-formed msgpack of the wrong shape gives a value or `CodecError`."""
    data = codec.encode(value, object)

    for value_type in (Series, tuple[Reading, ...], dt.datetime, dt.date):
        with contextlib.suppress(CodecError):
            codec.decode(data, value_type)


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-01T00:00:00+00:00[No/Such_Zone]",
        "2024-01-01T00:00:00+00:00[../../etc/passwd]",
        "2024-01-01T00:00:00[America/New_York]",
        "2024-01-01T00:00:00+07:00[America/New_York]",
        "2024-01-01T00:00:00+00:00[UTC",
        "yesterday",
    ],
)
def test_malformed_datetimes_are_refused(codec: Codec, text: str) -> None:
    """Datetime text the codec would not write raises `CodecError`."""
    data = codec.encode(text, str)

    with pytest.raises(CodecError, match="datetime"):
        codec.decode(data, dt.datetime)


@given(value=series, cut=st.integers(min_value=0))
def test_truncated_data_raises_codec_error(
    codec: Codec, value: Series, cut: int
) -> None:
    """A cut-off encoding is refused, never decoded into a partial value."""
    data = codec.encode(value, Series)
    truncated = data[: cut % len(data)]

    with pytest.raises(CodecError):
        codec.decode(truncated, Series)


@pytest.mark.parametrize(
    "extension",
    [
        pytest.param(msgpack.ExtType(5, b"payload"), id="unknown-ext"),
        pytest.param(msgpack.Timestamp(1, 2), id="timestamp-ext"),
    ],
)
def test_extension_types_are_refused(codec: Codec, extension: object) -> None:
    """Extension types, which the codec never writes, are refused."""
    data = msgpack.packb({"value": extension})

    with pytest.raises(CodecError, match="max_ext_len"):
        codec.decode(data, object)


def test_a_length_header_larger_than_the_data_is_refused(codec: Codec) -> None:
    """An array header claiming 4 billion items is refused, not allocated."""
    data = b"\xdd\xff\xff\xff\xff"

    with pytest.raises(CodecError, match="max_array_len"):
        codec.decode(data, object)


def test_extra_bytes_after_the_value_are_refused(codec: Codec) -> None:
    """Two values back to back are not one cached value."""
    data = codec.encode(1, object) + codec.encode(2, object)

    with pytest.raises(CodecError, match="extra bytes"):
        codec.decode(data, object)


def test_data_larger_than_max_size_is_refused() -> None:
    """Decoding refuses data larger than the codec's ``max_size``."""
    data = Codec().encode("x" * 100, str)

    with pytest.raises(CodecError, match="max_size"):
        Codec(max_size=50).decode(data, str)


def test_values_larger_than_max_size_are_not_encoded() -> None:
    """Encoding refuses a value that decoding would refuse for its size."""
    codec = Codec(max_size=50)

    with pytest.raises(CodecError, match="max_size"):
        codec.encode("x" * 100, str)


def test_data_of_another_shape_is_refused(codec: Codec) -> None:
    """Plain data that is not a *value_type* raises `CodecError`."""
    data = codec.encode({"unexpected": 1}, object)

    with pytest.raises(CodecError, match="Series"):
        codec.decode(data, Series)


def test_each_decode_gives_a_new_value(codec: Codec) -> None:
    """Mutating a decoded value does not change the next one decoded."""
    data = codec.encode({"items": [1, 2]}, object)
    first = codec.decode(data, object)
    first["items"].append(3)

    second = codec.decode(data, object)

    assert {"items": [1, 2]} == second


def test_max_size_must_be_positive() -> None:
    """A codec that could hold nothing is a mistake."""
    with pytest.raises(ValueError, match="max_size"):
        Codec(max_size=0)
