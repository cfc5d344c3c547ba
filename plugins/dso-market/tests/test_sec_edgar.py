import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from dso import ConfigError, ErrorCode, ProviderContext, ProviderError, ProviderSettings
from dso.testing import (
    Fault,
    ReplayServer,
    Route,
    find_fixtures_dir,
    open_replay_server,
)
from dso_market import Filing, FilingSummary
from dso_market._sec_edgar import (
    FACTORIES,
    SecEdgarSubmissions,
    classify_error,
    normalize_cik,
)


USER_AGENT = "dso-tests research@example.test"

MRVL_NEWEST_TEN = [
    "0000315066-26-001414",
    "0001193125-26-258064",
    "0001628280-26-039656",
    "0001950047-26-005345",
    "0001835632-26-000019",
    "0001835632-26-000014",
    "0001628280-26-037497",
    "0001628280-26-037488",
    "0001628280-26-036627",
    "0001628280-26-035865",
]


def context(
    http: httpx.AsyncClient, server: ReplayServer, **options: Any
) -> ProviderContext:
    settings = ProviderSettings(
        name="sec_edgar",
        base_url=server.base_url("sec_edgar"),
        options={"user_agent": USER_AGENT, **options},
    )
    return ProviderContext(http=http, settings=settings, namespace="filings")


async def submissions(
    key: str, http: httpx.AsyncClient, server: ReplayServer, **options: Any
) -> FilingSummary:
    ctx = context(http, server, **options)
    return await SecEdgarSubmissions(ctx.settings).fetch(key, ctx)


async def submissions_error(
    key: str, http: httpx.AsyncClient, server: ReplayServer
) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await submissions(key, http, server)

    return caught.value


@pytest.fixture(
    params=[
        ("marketwatch/quote_page_datadome_captcha_401.html", "text/html"),
        ("sec_edgar/submissions_unknown_CIK_404.xml", "application/xml"),
        ("sec_edgar/companyfacts_CIK0001835632_MRVL_trimmed.json", "application/json"),
    ],
    ids=["html", "xml", "companyfacts"],
)
async def junk(request: pytest.FixtureRequest) -> AsyncIterator[ReplayServer]:
    """An EDGAR answering MRVL's submissions with 200 and a recorded other body."""
    file, content_type = request.param
    route = Route(
        provider="sec_edgar",
        path="/submissions/CIK0001835632.json",
        file=file,
        content_type=content_type,
    )
    async with open_replay_server([route], find_fixtures_dir()) as server:
        yield server


async def test_registrant_is_summarised_with_its_newest_filings(
    http: httpx.AsyncClient, replay: ReplayServer
) -> None:
    """MRVL's submissions give its profile and its newest filings, empty as None."""
    expected = FilingSummary(
        cik="0001835632",
        name="Marvell Technology, Inc.",
        tickers=("MRVL",),
        exchanges=("Nasdaq",),
        sic="3674",
        sic_description="Semiconductors & Related Devices",
        fiscal_year_end="0130",
        recent_filings=(
            Filing(
                accession_number="0000315066-26-001414",
                form="SCHEDULE 13G/A",
                filed_on=dt.date(2026, 6, 5),
                report_date=None,
                primary_document="xslSCHEDULE_13G_X02/primary_doc.xml",
            ),
            Filing(
                accession_number="0001193125-26-258064",
                form="SD",
                filed_on=dt.date(2026, 6, 5),
                report_date=None,
                primary_document="d152119dsd.htm",
            ),
            Filing(
                accession_number="0001628280-26-039656",
                form="4",
                filed_on=dt.date(2026, 6, 1),
                report_date=dt.date(2026, 6, 1),
                primary_document="xslF345X06/wk-form4_1780360341.xml",
            ),
            Filing(
                accession_number="0001950047-26-005345",
                form="144",
                filed_on=dt.date(2026, 6, 1),
                report_date=None,
                primary_document="xsl144X01/primary_doc.xml",
            ),
            Filing(
                accession_number="0001835632-26-000019",
                form="10-Q",
                filed_on=dt.date(2026, 5, 28),
                report_date=dt.date(2026, 5, 2),
                primary_document="mrvl-20260502.htm",
            ),
        ),
    )

    actual = await submissions("1835632", http, replay, max_filings=5)

    assert expected == actual


async def test_ten_newest_filings_are_kept_by_default(
    http: httpx.AsyncClient, replay: ReplayServer
) -> None:
    """Without max_filings, the ten newest of MRVL's 787 recent filings are kept."""
    summary = await submissions("1835632", http, replay)

    assert MRVL_NEWEST_TEN == [f.accession_number for f in summary.recent_filings]


async def test_test_filer_without_filings_is_a_summary(
    http: httpx.AsyncClient, replay: ReplayServer
) -> None:
    """The SEC's test filer, whose filing arrays are empty, has no filings."""
    expected = FilingSummary(
        cik="0000350001",
        name="Company Name Three `!#$(),:;=.-;\\|@/{}&'\\WA\\",
        tickers=(),
        exchanges=(),
        sic="6189",
        sic_description="Asset-Backed Securities",
        fiscal_year_end="1231",
        recent_filings=(),
    )

    actual = await submissions("350001", http, replay)

    assert expected == actual


async def test_every_spelling_of_a_cik_asks_for_the_padded_one(
    replay: ReplayServer,
) -> None:
    """Bare, padded and CIK-prefixed keys all request the ten-digit file."""
    keys = ["1835632", "0001835632", "CIK0001835632", " cik1835632 "]
    async with httpx.AsyncClient() as http:
        for key in keys:
            await submissions(key, http, replay)

    expected = ["/submissions/CIK0001835632.json"] * len(keys)
    assert expected == [request.path for request in replay.requests]


async def test_request_declares_the_configured_user_agent(
    replay: ReplayServer,
    recording_http: httpx.AsyncClient,
    sent_requests: list[httpx.Request],
) -> None:
    """Every request names the configured tool and contact, as the SEC requires."""
    await submissions("350001", recording_http, replay)

    (request,) = sent_requests
    assert USER_AGENT == request.headers["User-Agent"]


async def test_unknown_cik_is_not_found(
    http: httpx.AsyncClient, replay: ReplayServer
) -> None:
    """The recorded S3 NoSuchKey XML with 404 is NOT_FOUND."""
    error = await submissions_error("0", http, replay)

    assert ErrorCode.NOT_FOUND == error.code


@pytest.mark.parametrize("key", ["AAPL", "-000000001", "12345678901", ""])
async def test_key_that_is_no_cik_is_not_found_without_a_call(
    key: str, http: httpx.AsyncClient, replay: ReplayServer
) -> None:
    """A key that is not up to ten digits is NOT_FOUND, and nothing is sent."""
    error = await submissions_error(key, http, replay)

    assert (ErrorCode.NOT_FOUND, []) == (error.code, replay.requests)


async def test_other_bodies_than_submissions_are_invalid_responses(
    http: httpx.AsyncClient, junk: ReplayServer
) -> None:
    """HTML, XML or another JSON shape sent with 200 is INVALID_RESPONSE."""
    error = await submissions_error("1835632", http, junk)

    assert ErrorCode.INVALID_RESPONSE == error.code


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        # The SEC's refusal of undeclared tools.
        pytest.param(Fault.status_code(403), ErrorCode.AUTH, id="403"),
        pytest.param(Fault.status_code(503), ErrorCode.UNAVAILABLE, id="503"),
        pytest.param(Fault.drop(), ErrorCode.UNAVAILABLE, id="dropped"),
    ],
)
async def test_failure_status_or_transport_is_classified(
    fault: Fault, expected: ErrorCode, http: httpx.AsyncClient, replay: ReplayServer
) -> None:
    """A 403 is AUTH; a 503 or a dropped connection is UNAVAILABLE."""
    replay.inject("sec_edgar", fault)

    error = await submissions_error("1835632", http, replay)

    assert expected == error.code


def test_refusal_for_the_request_rate_is_a_rate_limit() -> None:
    """A 403 that names the SEC's request rate threshold is RATE_LIMIT."""
    request = httpx.Request(
        "GET", "https://data.sec.gov/submissions/CIK0000320193.json"
    )
    response = httpx.Response(
        403, text="Request Rate Threshold Exceeded", request=request
    )

    error = classify_error(response, provider="sec_edgar")

    assert ErrorCode.RATE_LIMIT == error.code


async def test_hung_answer_is_a_timeout(
    replay: ReplayServer, autojump_clock: trio.testing.MockClock
) -> None:
    """An answer that never comes is a TIMEOUT once the client gives up."""
    replay.inject("sec_edgar", Fault.hang())

    async with httpx.AsyncClient(timeout=2.0) as http:
        with trio.fail_after(10):
            error = await submissions_error("1835632", http, replay)

    assert ErrorCode.TIMEOUT == error.code


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("320193", "0000320193"),
        ("0000320193", "0000320193"),
        ("CIK0000320193", "0000320193"),
        ("AAPL", None),
        ("\uff13\uff12\uff10\uff11\uff19\uff13", None),  # full-width digits
        ("12345678901", None),
    ],
)
def test_normalize_cik(key: str, expected: str | None) -> None:
    """Up to ten ASCII digits, with an optional CIK prefix, pad to ten."""
    assert expected == normalize_cik(key)


@pytest.mark.parametrize(
    "options",
    [{}, {"user_agent": "  "}, {"user_agent": "ok a@b.test", "max_filings": -1}],
    ids=["no-user-agent", "blank-user-agent", "negative-max-filings"],
)
def test_invalid_options_are_config_errors(options: dict[str, Any]) -> None:
    """A missing user agent or a negative max_filings is refused at once."""
    settings = ProviderSettings(name="sec", options=options)

    with pytest.raises(ConfigError, match=r"providers\.sec\.options\."):
        SecEdgarSubmissions(settings)


def test_factories_name_the_submissions_provider() -> None:
    """The module's factories build the EDGAR submissions provider."""
    assert {"sec_edgar": SecEdgarSubmissions} == dict(FACTORIES)
