import pytest

from dso._config import Config, TtlSettings
from dso._ttl import TtlTable


@pytest.fixture
def table() -> TtlTable:
    return TtlTable(
        {
            "quotes": TtlSettings(
                fresh=60, stale=3600, tiers={"premium": 15, "archive": 600}
            ),
            "news": TtlSettings(fresh=300, stale=86400, partial=20),
        },
        default=TtlSettings(fresh=30, stale=100),
    )


def test_fresh_is_the_rows_fresh_without_a_tier(table: TtlTable) -> None:
    """Without a tier, an entry is fresh for the row's ``fresh``."""
    assert 60 == table.fresh_for("quotes")


def test_a_tier_the_row_lists_overrides_fresh(table: TtlTable) -> None:
    """A tier's own freshness replaces the row's."""
    assert 15 == table.fresh_for("quotes", "premium")


def test_a_tier_the_row_does_not_list_uses_the_rows_fresh(table: TtlTable) -> None:
    """A tier known elsewhere but not in this row gets the row's ``fresh``."""
    assert 300 == table.fresh_for("news", "premium")


def test_a_namespace_without_a_row_uses_the_default_row(table: TtlTable) -> None:
    """Unconfigured namespaces get the default row."""
    assert 30 == table.fresh_for("fundamentals")


def test_the_default_default_row_is_ttl_settings_defaults() -> None:
    """A table built without a default row falls back to `TtlSettings()`."""
    table = TtlTable({})

    assert TtlSettings().fresh == table.fresh_for("anything")


def test_an_unknown_tier_names_itself_and_the_known_ones(table: TtlTable) -> None:
    """A tier no row lists raises `ValueError` naming the known tiers."""
    with pytest.raises(ValueError, match=r"'gold'.*archive, premium"):
        table.fresh_for("quotes", "gold")


def test_partial_defaults_to_a_quarter_of_fresh(table: TtlTable) -> None:
    """A partial merge is fresh for a quarter of ``fresh`` when unset."""
    assert 15 == table.fresh_for("quotes", partial=True)


def test_partial_uses_the_rows_partial(table: TtlTable) -> None:
    """A row's ``partial`` sets how long partial merges are fresh."""
    assert 20 == table.fresh_for("news", partial=True)


def test_partial_never_exceeds_the_tiers_fresh() -> None:
    """A partial merge is never fresher-for-longer than a complete one."""
    table = TtlTable({"quotes": TtlSettings(fresh=60, partial=50, tiers={"vip": 5})})

    assert 5 == table.fresh_for("quotes", "vip", partial=True)


def test_partial_never_exceeds_fresh_without_a_tier() -> None:
    """A ``partial`` set above ``fresh`` is cut back to ``fresh``."""
    table = TtlTable({"quotes": TtlSettings(fresh=60, partial=90)})

    assert 60 == table.fresh_for("quotes", partial=True)


def test_lifetime_is_the_longest_fresh_plus_stale(table: TtlTable) -> None:
    """Entries live for the row's longest freshness plus its stale window."""
    assert 600 + 3600 == table.lifetime_for("quotes")


def test_lifetime_without_tiers_is_fresh_plus_stale(table: TtlTable) -> None:
    """Without tiers, the lifetime is ``fresh + stale``."""
    assert 300 + 86400 == table.lifetime_for("news")


def test_from_config_reads_each_namespaces_ttl() -> None:
    """The table built from a configuration uses its namespaces' ``ttl``."""
    config = Config.from_dict(
        {"namespaces": {"quotes": {"ttl": {"fresh": 10, "tiers": {"premium": 2}}}}}
    )

    table = TtlTable.from_config(config)

    assert (10, 2) == (table.fresh_for("quotes"), table.fresh_for("quotes", "premium"))


def test_a_negative_tier_freshness_is_refused() -> None:
    """A tier fresh for negative seconds is refused when the row is made."""
    with pytest.raises(ValueError, match="must not be negative, got -1"):
        TtlSettings(tiers={"premium": -1})
