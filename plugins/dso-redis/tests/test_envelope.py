"""Laws of the envelope: what it packs comes back, and junk never escapes."""

import math

import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dso import CacheEntry
from dso_redis._envelope import EnvelopeError, pack_entry, unpack_entry


# No deadline: these run on a machine others share, and time is not the law.
no_deadline = settings(deadline=None)

entries = st.builds(
    CacheEntry,
    payload=st.binary(max_size=2_048),
    stored_at=st.floats(allow_nan=False, allow_infinity=False),
    expires_at=st.floats(allow_nan=False),
    partial=st.booleans(),
)


@no_deadline
@given(entries)
def test_an_entry_round_trips(entry: CacheEntry) -> None:
    """unpack_entry(pack_entry(e)) == e, for any entry with real times."""
    assert entry == unpack_entry(pack_entry(entry))


@no_deadline
@given(st.binary(max_size=256))
def test_any_bytes_are_an_entry_or_an_envelope_error(data: bytes) -> None:
    """Arbitrary bytes give an entry or raise EnvelopeError, nothing else."""
    try:
        entry = unpack_entry(data)
    except EnvelopeError:
        return

    assert (True, entry) == (
        math.isfinite(entry.stored_at),
        unpack_entry(pack_entry(entry)),
    )


@no_deadline
@given(entries, st.integers(min_value=0), st.binary(min_size=1, max_size=8))
def test_a_damaged_envelope_is_refused_or_still_an_entry(
    entry: CacheEntry, cut: int, tail: bytes
) -> None:
    """A truncated or extended envelope is never read as the entry it was."""
    data = pack_entry(entry)
    damaged = [data[: cut % len(data)], data + tail]

    for candidate in damaged:
        with pytest.raises(EnvelopeError):
            unpack_entry(candidate)


plain = st.none() | st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary()


@no_deadline
@given(st.recursive(plain, st.lists, max_leaves=20))
def test_other_msgpack_data_is_refused(value: object) -> None:
    """Msgpack data of any other shape is not an envelope."""
    with pytest.raises(EnvelopeError):
        unpack_entry(msgpack.packb(value))
