"""The conformance kit fails a provider for each rule it breaks, and only then."""

from pathlib import Path

# httpx imports httpcore when it opens its first client. pytester's inline
# runs forget the modules first imported inside them, so a later run would
# meet a second copy of httpcore's exceptions, which httpx does not know.
import httpcore._backends.trio  # noqa: F401
import pytest


pytest_plugins = ("pytester",)

KIT = """
from dso.testing import ProviderConformance
from conformance_providers import ROUTES, Price, {factory}


class TestKit(ProviderConformance):
    factory = {factory}
    replay_provider = "tiingo"
    routes = ROUTES
    fixtures_dir = {fixtures_dir!r}
    good_keys = ("AAPL",)
    batch_keys = ("MSFT", "AAPL")
    missing_key = "NONEXIST"
    needs_api_key = True
    value_type = Price

    def key_of(self, value):
        return value.symbol
"""

SECRET_SCENARIOS = (
    "success",
    "not-found",
    "http-401",
    "http-429",
    "http-503",
    "dropped",
    "refused",
    "client-timeout",
)


STATUSES = (
    "401-AUTH",
    "403-AUTH",
    "404-NOT_FOUND",
    "429-RATE_LIMIT",
    "500-UNAVAILABLE",
    "502-UNAVAILABLE",
    "503-UNAVAILABLE",
)


def secret_rules(*scenarios: str) -> set[str]:
    return {f"test_secret_stays_out_of_errors_and_logs[{name}]" for name in scenarios}


BROKEN = {
    "HardCodedName": {"test_name_is_the_configured_name"},
    "SyncHealthCheck": {"test_methods_are_coroutines"},
    "ZeroBatchSize": {"test_batch_size_is_sane"},
    "RawDict": {"test_good_keys_are_fetched"},
    "NoneForMissing": {"test_missing_key_is_not_found"},
    "AuthAsUnavailable": {
        "test_status_maps_to_code[401-AUTH]",
        "test_status_maps_to_code[403-AUTH]",
    },
    "ForgetsRetryAfter": {"test_retry_after_is_kept"},
    "StatusBlind": {
        *(f"test_status_maps_to_code[{status}]" for status in STATUSES),
        "test_retry_after_is_kept",
        "test_batch_failure_fails_the_whole_call",
    },
    "RefusedAsTimeout": {"test_refused_connection_is_unavailable"},
    "DroppedAsInvalid": {"test_dropped_connection_is_unavailable"},
    "TimeoutAsUnavailable": {"test_client_timeout_is_timeout"},
    # At its deadline a call may be TIMEOUT; its caller's cancellation not.
    "SwallowsCancelled": {"test_cancellation_is_not_swallowed[cancel]"},
    "CancelledAsUnavailable": {
        "test_cancellation_is_not_swallowed[deadline]",
        "test_cancellation_is_not_swallowed[cancel]",
    },
    "KeyInErrors": secret_rules("http-401", "http-429", "http-503"),
    "KeyInNotes": secret_rules("http-401", "http-429", "http-503"),
    "LogsKey": secret_rules(*SECRET_SCENARIOS),
    "CallsWithoutKey": {"test_missing_api_key_is_auth_without_a_call"},
    "PositionalBatch": {"test_batch_is_matched_by_key"},
    "DuplicatesCrash": {"test_batch_ignores_duplicate_keys"},
    "MissingAsNone": {"test_batch_leaves_out_missing_keys"},
    "BatchErrorAsEmpty": {"test_batch_failure_fails_the_whole_call"},
}

INI = """
[pytest]
{trio_mode}
addopts = -p no:cacheprovider
filterwarnings = error
"""


@pytest.fixture
def kit(pytester: pytest.Pytester, fixtures_dir: Path) -> pytest.Pytester:
    """A project that will run the kit, with the kit's providers importable."""
    pytester.syspathinsert(Path(__file__).parent)
    pytester.makeini(INI.format(trio_mode="trio_mode = true"))
    return pytester


def write_kit(pytester: pytest.Pytester, factory: str, fixtures_dir: Path) -> None:
    source = KIT.format(factory=factory, fixtures_dir=str(fixtures_dir))
    pytester.makepyfile(test_kit=source)


def outcomes(result: pytest.HookRecorder) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"passed": set(), "failed": set(), "skipped": set()}
    for report in result.getreports("pytest_runtest_logreport"):
        if report.when == "call" or report.outcome != "passed":
            found[report.outcome].add(report.nodeid.rpartition("::")[2])

    return found


@pytest.mark.parametrize("factory", sorted(BROKEN))
def test_broken_provider_fails_its_rule(
    kit: pytest.Pytester, fixtures_dir: Path, factory: str
) -> None:
    """A provider that breaks one rule fails that rule's tests and no other."""
    write_kit(kit, factory, fixtures_dir)

    result = kit.inline_run()

    expected = BROKEN[factory]
    assert expected == outcomes(result)["failed"]


@pytest.mark.parametrize("trio_mode", ["trio_mode = true", "trio_mode = false", ""])
def test_good_provider_passes_every_rule(
    pytester: pytest.Pytester, fixtures_dir: Path, trio_mode: str
) -> None:
    """A provider that keeps every rule passes, with or without trio_mode."""
    pytester.syspathinsert(Path(__file__).parent)
    pytester.makeini(INI.format(trio_mode=trio_mode))
    write_kit(pytester, "GoodPrices", fixtures_dir)

    result = pytester.inline_run()

    found = outcomes(result)
    expected = (31, set(), set())
    assert expected == (len(found["passed"]), found["failed"], found["skipped"])


def test_routes_with_absolute_files_need_no_fixtures_folder(
    kit: pytest.Pytester, fixtures_dir: Path
) -> None:
    """Routes whose files are absolute pass without a fixtures folder."""
    source = KIT.format(factory="GoodPrices", fixtures_dir="/no/such/fixtures")
    absolute = (
        "routes = [attrs.evolve(route, file=str(Path(FOLDER, route.file)))"
        " for route in ROUTES]"
    )
    header = f"import attrs\nfrom pathlib import Path\nFOLDER = {str(fixtures_dir)!r}\n"
    kit.makepyfile(test_kit=header + source.replace("routes = ROUTES", absolute))

    result = kit.inline_run()

    found = outcomes(result)
    expected = (31, set())
    assert expected == (len(found["passed"]), found["failed"])


def test_every_rule_can_fail(kit: pytest.Pytester, fixtures_dir: Path) -> None:
    """Each rule the good provider passes is failed by some broken provider."""
    write_kit(kit, "GoodPrices", fixtures_dir)

    result = kit.inline_run()

    failable = set().union(*BROKEN.values())
    expected: set[str] = set()
    assert expected == outcomes(result)["passed"] - failable


def test_rules_that_do_not_apply_are_skipped_with_a_reason(
    kit: pytest.Pytester, fixtures_dir: Path
) -> None:
    """Batch rules skip a provider without batches, the key rule one without keys."""
    source = KIT.format(factory="SinglePrices", fixtures_dir=str(fixtures_dir))
    kit.makepyfile(test_kit=source.replace("needs_api_key = True", ""))

    result = kit.inline_run()

    skipped = [
        report
        for report in result.getreports("pytest_runtest_logreport")
        if report.skipped
    ]
    reasons = {
        report.nodeid.rpartition("::")[2]: report.longrepr[2] for report in skipped
    }
    no_batch = "Skipped: the provider has no fetch_batch"
    expected = {
        "test_batch_is_matched_by_key": no_batch,
        "test_batch_ignores_duplicate_keys": no_batch,
        "test_batch_leaves_out_missing_keys": no_batch,
        "test_batch_failure_fails_the_whole_call": no_batch,
        "test_missing_api_key_is_auth_without_a_call": (
            "Skipped: needs_api_key is not set"
        ),
    }
    assert expected == reasons


def test_rules_carry_the_kit_marker(kit: pytest.Pytester, fixtures_dir: Path) -> None:
    """``-m "not dso_conformance"`` leaves the kit's rules out, under strict markers."""
    write_kit(kit, "GoodPrices", fixtures_dir)
    kit.makepyfile(test_other="def test_other():\n    pass\n")

    result = kit.inline_run("--strict-markers", "-m", "not dso_conformance")

    expected = {"test_other"}
    assert expected == outcomes(result)["passed"]


def test_incomplete_kit_names_what_is_missing(
    kit: pytest.Pytester, fixtures_dir: Path
) -> None:
    """A kit without ``good_keys`` fails to collect, naming the attribute."""
    source = KIT.format(factory="GoodPrices", fixtures_dir=str(fixtures_dir))
    kit.makepyfile(test_kit=source.replace('good_keys = ("AAPL",)', ""))

    result = kit.runpytest()

    result.stdout.fnmatch_lines(["*TypeError: TestKit: set `good_keys`*"])


def test_shared_base_class_may_be_incomplete(
    kit: pytest.Pytester, fixtures_dir: Path
) -> None:
    """A base class pytest does not collect need not name a provider."""
    write_kit(kit, "GoodPrices", fixtures_dir)
    kit.makepyfile(
        test_base=(
            "from dso.testing import ProviderConformance\n\n\n"
            "class SharedKit(ProviderConformance):\n"
            "    replay_provider = 'tiingo'\n"
        )
    )

    result = kit.inline_run()

    expected = (0, 31)
    assert expected == (len(outcomes(result)["failed"]), result.countoutcomes()[0])


def test_kit_without_pytest_trio_is_a_usage_error(
    pytester: pytest.Pytester, fixtures_dir: Path
) -> None:
    """Without pytest-trio the kit says what is missing instead of skipping."""
    pytester.syspathinsert(Path(__file__).parent)
    write_kit(pytester, "GoodPrices", fixtures_dir)

    result = pytester.runpytest("-p", "no:trio", "--strict-markers")

    result.stderr.fnmatch_lines(["*conformance kit needs pytest-trio*"])
