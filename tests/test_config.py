"""Configuration: structured from TOML, and bad fields named in the error."""

import math
from pathlib import Path

import pytest

import dso


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"providers": {"tiingo": {"timeout": "fast"}}},
            'providers.tiingo.timeout: expected a number, got "fast"',
        ),
        (
            {"providers": {"tiingo": {"timeot": 3}}},
            "providers.tiingo: unknown field timeot",
        ),
        (
            {"namespaces": {"quotes": {"providers": ["a", 1]}}},
            "namespaces.quotes.providers.1: expected a string, got 1",
        ),
        (
            {"providers": {"x": {"breaker": {"threshold": 0}}}},
            "providers.x.breaker.threshold: must be greater than 0, got 0",
        ),
        (
            {"namespaces": {"q": {"ttl": {"fresh": -1}}}},
            "namespaces.q.ttl.fresh: must not be negative, got -1",
        ),
        (
            {"namespaces": {"q": {"ttl": {"stale": -0.5}}}},
            "namespaces.q.ttl.stale: must not be negative, got -0.5",
        ),
        (
            {"namespaces": {"q": {"ttl": {"partial": -3}}}},
            "namespaces.q.ttl.partial: must not be negative, got -3",
        ),
        (
            {"namespaces": {"q": {"negative_ttl": -1}}},
            "namespaces.q.negative_ttl: must not be negative, got -1",
        ),
        (
            {"cache": {"backend": "tiered", "l1": {}, "l2": {}, "l1_ttl": -1}},
            "cache.l1_ttl: must not be negative, got -1",
        ),
        (
            {"cache": {"breaker": {"reset_after": 0}}},
            "cache.breaker.reset_after: must be greater than 0, got 0",
        ),
        (
            {"namespaces": {"q": {"ttl": {"tiers": {"pro": -5}}}}},
            "namespaces.q.ttl.tiers.pro: must not be negative, got -5",
        ),
        ({"cache": {"max_entries": True}}, "cache.max_entries: expected an integer"),
        ({"providers": []}, "providers: expected a table"),
    ],
)
def test_bad_field_is_named(data: dict[str, object], message: str) -> None:
    """An invalid configuration fails with a message naming the bad field."""
    with pytest.raises(dso.ConfigError) as info:
        dso.Config.from_dict(data)

    assert message in str(info.value)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    """A bad file's error names the file and the field."""
    path = tmp_path / "dso.toml"
    path.write_text('[providers.tiingo]\ntimeout = "fast"\n')

    with pytest.raises(dso.ConfigError) as info:
        dso.load_config(path)

    assert str(info.value).startswith(f"{path}: providers.tiingo.timeout")


def test_not_toml_is_a_config_error(tmp_path: Path) -> None:
    """A file that is not TOML fails as a ConfigError naming the file."""
    path = tmp_path / "dso.toml"
    path.write_text("this is = = not toml")

    with pytest.raises(dso.ConfigError, match="not valid TOML"):
        dso.load_config(path)


def test_full_file_is_structured(tmp_path: Path) -> None:
    """Every section of a valid file lands in its typed field."""
    path = tmp_path / "dso.toml"
    path.write_text(
        """
        timeout = 20
        [cache]
        backend = "sqlite"
        path = "cache.sqlite3"
        [providers.tiingo]
        base_url = "http://127.0.0.1:1/tiingo"
        api_key_env = "TIINGO_KEY"
        timeout = 2.5
        breaker = { threshold = 2, reset_after = 60 }
        [namespaces.quotes]
        providers = ["tiingo", "yahoo"]
        ttl = { fresh = 60, stale = 86400, tiers = { pro = 15 } }
        """
    )

    config = dso.load_config(path, environ={"TIINGO_KEY": "k-123"})

    tiingo = config.providers["tiingo"]
    assert ("tiingo", "tiingo", 2.5, "k-123") == (
        tiingo.name,
        tiingo.kind,
        tiingo.timeout,
        tiingo.api_key,
    )
    assert dso.BreakerSettings(threshold=2, reset_after=60) == tiingo.breaker
    assert {"pro": 15} == config.namespaces["quotes"].ttl.tiers
    assert (20, "sqlite") == (config.timeout, config.cache.backend)


def test_api_key_is_not_in_repr() -> None:
    """A provider's API key never shows in its settings' repr."""
    config = dso.Config.from_dict({"providers": {"p": {"api_key": "SECRET-1"}}})

    assert "SECRET-1" not in repr(config)


@pytest.mark.parametrize("code", ["paused", "rate_limited_locally", "cancelled"])
def test_breakers_cannot_ignore_what_dso_decides_itself(code: str) -> None:
    """Skip and cancel codes are no provider outcome: a breaker cannot ignore them."""
    with pytest.raises(dso.ConfigError) as caught:
        dso.Config.from_dict({"providers": {"p": {"breaker": {"ignore": [code]}}}})

    assert str(caught.value).startswith("providers.p.breaker.ignore.0: unknown error")


def test_a_too_long_key_salt_is_refused_without_showing_it() -> None:
    """A key_salt BLAKE2 cannot take fails at load, naming the field only."""
    salt = "salty-secret-" * 6

    with pytest.raises(dso.ConfigError) as info:
        dso.Config.from_dict({"telemetry": {"keys": "hash", "key_salt": salt}})

    message = str(info.value)
    assert "telemetry.key_salt: must be at most 64 bytes" in message
    assert "salty-secret" not in message


@pytest.mark.parametrize(
    "field", ["min_hit_rate", "max_failure_rate", "max_stale_share", "max_quota_use"]
)
def test_a_health_threshold_must_be_a_share(field: str) -> None:
    """A threshold written as a percentage (80) fails, naming the field."""
    with pytest.raises(dso.ConfigError) as info:
        dso.Config.from_dict({"health": {field: 80}})

    expected = f"health.{field}: must be between 0 and 1, got 80"
    assert expected in str(info.value)


WINDOWS = {
    "health.window": lambda seconds: {"health": {"window": seconds}},
    "providers.p.breaker.window_seconds": lambda seconds: {
        "providers": {"p": {"breaker": {"window_seconds": seconds}}}
    },
}


@pytest.mark.parametrize("field", sorted(WINDOWS))
@pytest.mark.parametrize("seconds", [0.5, 86_401, math.inf])
def test_a_time_window_spans_a_second_to_a_day(field: str, seconds: float) -> None:
    """A time window under a second or over a day fails, naming the field."""
    with pytest.raises(dso.ConfigError) as info:
        dso.Config.from_dict(WINDOWS[field](seconds))

    expected = f"{field}: must be from 1 second to a day (86400), got {seconds!r}"
    assert expected in str(info.value)
