"""Laws the shipped merge strategies keep, whatever the providers send."""

import attrs
import hypothesis.strategies as st
from hypothesis import given

import dso


@attrs.frozen
class Record:
    a: int | None = None
    b: str | None = None
    c: float | None = None


RECORDS = st.builds(
    Record,
    a=st.none() | st.integers(),
    b=st.none() | st.text(max_size=3),
    c=st.none() | st.floats(allow_nan=False),
)
ANSWERS = st.lists(RECORDS, min_size=1, max_size=5).map(
    lambda records: [(f"p{index}", record) for index, record in enumerate(records)]
)


@given(ANSWERS)
def test_field_priority_takes_the_first_present_value(
    answers: list[tuple[str, Record]],
) -> None:
    """Each field is the first non-None value in provider order, or None."""
    merged = dso.FieldPriority()(answers)

    for field in ("a", "b", "c"):
        present = [
            getattr(r, field) for _, r in answers if getattr(r, field) is not None
        ]
        assert (present[0] if present else None) == getattr(merged, field)


@given(ANSWERS)
def test_field_priority_of_one_answer_is_that_answer(
    answers: list[tuple[str, Record]],
) -> None:
    """Merging a single answer changes nothing."""
    assert answers[0][1] == dso.FieldPriority()(answers[:1])


@given(ANSWERS)
def test_field_priority_is_idempotent(answers: list[tuple[str, Record]]) -> None:
    """Merging the merge with its sources again gives the same merge."""
    merge = dso.FieldPriority()
    once = merge(answers)

    assert once == merge([("merged", once), *answers])


ITEMS = st.lists(st.tuples(st.integers(0, 20), st.integers(0, 1000)), max_size=15).map(
    lambda pairs: [{"id": ident, "at": at} for ident, at in pairs]
)
LISTS = st.lists(ITEMS, min_size=1, max_size=4).map(
    lambda lists: [(f"p{index}", items) for index, items in enumerate(lists)]
)


@given(LISTS, st.none() | st.integers(0, 10))
def test_concat_dedupe_is_distinct_sorted_and_bounded(
    answers: list[tuple[str, list[dict[str, int]]]], limit: int | None
) -> None:
    """No identity twice, newest first, at most limit items, all from the input."""
    merge = dso.ConcatDedupe(
        identity=lambda item: item["id"],
        sort_key=lambda item: item["at"],
        reverse=True,
        limit=limit,
    )

    merged = merge(answers)

    identities = [item["id"] for item in merged]
    every_item = [item for _, items in answers for item in items]
    distinct = {item["id"] for item in every_item}
    assert len(identities) == len(set(identities))
    assert [item["at"] for item in merged] == sorted(
        (item["at"] for item in merged), reverse=True
    )
    assert len(merged) == (
        len(distinct) if limit is None else min(limit, len(distinct))
    )
    assert all(any(item is source for source in every_item) for item in merged)


@given(LISTS)
def test_concat_dedupe_keeps_the_earliest_providers_copy(
    answers: list[tuple[str, list[dict[str, int]]]],
) -> None:
    """Of two items with one identity, the earlier provider's is kept."""
    merge = dso.ConcatDedupe(identity=lambda item: item["id"])

    merged = merge(answers)

    first_seen = {}
    for _, items in answers:
        for item in items:
            first_seen.setdefault(item["id"], item)
    assert list(first_seen.values()) == list(merged)
    assert all(kept is first_seen[kept["id"]] for kept in merged)
