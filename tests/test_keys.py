import pytest
from hypothesis import given
from hypothesis import strategies as st

from dso._keys import CacheKeyParts, cache_key, parse_cache_key


# Few letters, among them the separator and the escape's pieces, so that
# near-collisions such as "a:b" against "a%3Ab" are tried often.
tricky_text = st.text(alphabet=":%3A25a", max_size=8)
any_text = tricky_text | st.text()
versions = st.integers(min_value=-(2**70), max_value=2**70)
parts = st.builds(
    CacheKeyParts, prefix=any_text, namespace=any_text, version=versions, key=any_text
)


def _key_of(parts: CacheKeyParts) -> str:
    return cache_key(parts.prefix, parts.namespace, parts.version, parts.key)


def test_plain_keys_stay_readable() -> None:
    """Parts without ``:`` or ``%`` appear as they are."""
    assert "dso:quotes:1:AAPL" == cache_key("dso", "quotes", 1, "AAPL")


def test_separator_and_escape_character_are_escaped() -> None:
    """``:`` and ``%`` inside a part are percent-escaped."""
    key = cache_key("d:s", "n%", 2, "a:b%3A")

    assert "d%3As:n%25:2:a%3Ab%253A" == key


@given(first=parts, second=parts)
def test_different_parts_give_different_keys(
    first: CacheKeyParts, second: CacheKeyParts
) -> None:
    """No two different part tuples share a key."""
    if first != second:
        assert _key_of(first) != _key_of(second)


@given(parts=parts)
def test_parse_cache_key_gives_back_the_parts(parts: CacheKeyParts) -> None:
    """`parse_cache_key` is the inverse of `cache_key`."""
    key = _key_of(parts)

    parsed = parse_cache_key(key)

    assert parts == parsed


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("dso:quotes:AAPL", id="three-parts"),
        pytest.param("dso:quotes:1:AA:PL", id="five-parts"),
        pytest.param("dso:quotes:one:AAPL", id="word-version"),
        pytest.param("dso:quotes:01:AAPL", id="padded-version"),
        pytest.param("dso:quotes:1:AA%PL", id="stray-percent"),
        pytest.param("dso:quotes:1:AA%41", id="other-escape"),
    ],
)
def test_text_that_cache_key_never_returns_is_refused(text: str) -> None:
    """Parsing refuses what `cache_key` would not have made."""
    with pytest.raises(ValueError, match="cache key"):
        parse_cache_key(text)


@pytest.mark.parametrize("version", [True, 1.0, "1"], ids=repr)
def test_version_must_be_an_int(version: object) -> None:
    """A bool, float or str version is a mistake, not a different key."""
    with pytest.raises(TypeError, match="version"):
        cache_key("dso", "quotes", version, "AAPL")  # type: ignore[arg-type]


def test_parts_must_be_str() -> None:
    """A non-str key is a mistake, not silently turned into text."""
    with pytest.raises(TypeError, match="str"):
        cache_key("dso", "quotes", 1, 42)  # type: ignore[arg-type]
