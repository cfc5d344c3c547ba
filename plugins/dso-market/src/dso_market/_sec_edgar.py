"""SEC EDGAR submissions (data.sec.gov): a registrant and its recent filings.

The SEC needs no key, but refuses requests whose ``User-Agent`` does not
name the tool and a contact (for example ``"Acme Research ops@acme.test"``);
it is taken from ``options["user_agent"]``, which is therefore required.

Keys are CIKs. ``320193``, ``0000320193`` and ``CIK0000320193`` all name
the same registrant; the provider pads to the ten digits of the URL. A key
that is not a CIK is NOT_FOUND without a call: the SEC itself answers such
a path with a 404 (an S3 ``NoSuchKey`` error in XML), so the call would
only spend a share of the SEC's rate limit to learn the same thing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from dso import (
    ConfigError,
    ErrorCode,
    Provider,
    ProviderContext,
    ProviderError,
    ProviderSettings,
    error_from_http,
)

from ._configured import ConfiguredProvider
from ._models import Filing, FilingSummary
from ._parse import (
    PayloadError,
    api_url,
    get_json,
    parse_cik,
    parse_text,
    require_list,
    require_mapping,
    require_text,
    require_value,
    translate_payload_errors,
    where,
)


DEFAULT_BASE_URL = "https://data.sec.gov"
"""Where EDGAR's JSON API lives when the configuration names no ``base_url``."""

DEFAULT_MAX_FILINGS = 10
"""Filings kept when ``options["max_filings"]`` is not set."""

_CIK_DIGITS = 10

# The SEC answers its rate limit (10 requests a second) with a 403 page
# titled this way; any other 403 is the "undeclared automated tool" refusal.
_RATE_LIMIT_PHRASE = "Request Rate Threshold Exceeded"

_FILING_COLUMNS = (
    "accessionNumber",
    "form",
    "filingDate",
    "reportDate",
    "primaryDocument",
)


class SecEdgarSubmissions(ConfiguredProvider):
    """A registrant's profile and newest filings, from EDGAR's submissions API.

    The key is a CIK. Options: ``user_agent`` (required), the tool's name and
    a contact e-mail as the SEC asks; ``max_filings``, how many of the newest
    filings to keep (default 10).

    Raises:
        ConfigError: ``user_agent`` is missing or an option is invalid.
    """

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self._user_agent = _user_agent_option(settings)
        self._max_filings = _max_filings_option(settings)

    async def fetch(self, key: str, ctx: ProviderContext) -> FilingSummary:
        """Return the registrant whose CIK is *key*, with its newest filings.

        A registrant without filings (such as the SEC's test filer) is a
        summary with no filings, not an error.

        Raises:
            ProviderError: NOT_FOUND for an unknown CIK or a key that is no
                CIK; AUTH, RATE_LIMIT, TIMEOUT, UNAVAILABLE or
                INVALID_RESPONSE otherwise.
        """
        cik = normalize_cik(key)
        if cik is None:
            message = f"{key!r} is not a CIK (up to ten digits)"
            raise ProviderError(ErrorCode.NOT_FOUND, message, provider=self.name)

        response, body = await self._get(cik, ctx)

        with translate_payload_errors(response, provider=self.name):
            return _summary(require_mapping(body, "body"), self._max_filings)

    async def _get(self, cik: str, ctx: ProviderContext) -> tuple[httpx.Response, Any]:
        return await get_json(
            ctx,
            api_url(ctx, DEFAULT_BASE_URL, f"/submissions/CIK{cik}.json"),
            provider=self.name,
            headers={"User-Agent": self._user_agent},
            classify=classify_error,
        )


FACTORIES: Mapping[str, Callable[[ProviderSettings], Provider]] = {
    "sec_edgar": SecEdgarSubmissions,
}
"""The provider classes of this module by provider type name."""


def normalize_cik(key: str) -> str | None:
    """Return *key* as a ten-digit CIK, or ``None`` if it is not a CIK.

    An optional ``CIK`` prefix and surrounding blanks are allowed.
    """
    digits = key.strip().upper().removeprefix("CIK")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > _CIK_DIGITS:
        return None

    return digits.zfill(_CIK_DIGITS)


def classify_error(
    response: httpx.Response, *, provider: str | None = None
) -> ProviderError:
    """Return the error that a failed EDGAR answer stands for.

    EDGAR's errors are not JSON: an unknown CIK is S3's XML ``NoSuchKey``
    with 404, and its refusals are HTML pages with 403. The status decides,
    except that a 403 about the request rate is RATE_LIMIT, not AUTH.

    Args:
        response: The answer, with its request.
        provider: The provider's name, for the error.
    """
    error = error_from_http(response, provider=provider)
    if response.status_code == 403 and _RATE_LIMIT_PHRASE in response.text:
        message = f"request rate exceeded at {where(response)}"
        return ProviderError(ErrorCode.RATE_LIMIT, message, provider=provider)

    return error


def _summary(raw: Mapping[str, object], max_filings: int) -> FilingSummary:
    tickers = _strings(raw.get("tickers"), "tickers")
    return FilingSummary(
        cik=require_value(parse_cik(raw.get("cik")), "cik"),
        name=require_text(raw.get("name"), "name"),
        tickers=tuple(ticker.upper() for ticker in tickers),
        exchanges=_strings(raw.get("exchanges"), "exchanges"),
        sic=parse_text(raw.get("sic"), "sic"),
        sic_description=parse_text(raw.get("sicDescription"), "sicDescription"),
        fiscal_year_end=parse_text(raw.get("fiscalYearEnd"), "fiscalYearEnd"),
        recent_filings=_newest_filings(raw, max_filings),
    )


def _newest_filings(raw: Mapping[str, object], limit: int) -> tuple[Filing, ...]:
    # "recent" holds parallel arrays, one per field. They come newest first,
    # but are sorted by date again so that "newest" does not rest on that.
    filings = require_mapping(raw.get("filings"), "filings")
    recent = require_mapping(filings.get("recent"), "filings.recent")
    columns = [
        require_list(recent.get(name), f"filings.recent.{name}")
        for name in _FILING_COLUMNS
    ]
    if len({len(column) for column in columns}) > 1:
        raise PayloadError("filings.recent: the columns differ in length")

    rows = sorted(
        (_filing(*row) for row in zip(*columns, strict=True)),
        key=lambda filing: filing.filed_on,
        reverse=True,
    )
    return tuple(rows[:limit])


def _filing(
    accession_number: object,
    form: object,
    filed_on: object,
    report_date: object,
    primary_document: object,
) -> Filing:
    return Filing(
        accession_number=require_text(accession_number, "accessionNumber"),
        form=require_text(form, "form"),
        filed_on=require_value(_date(filed_on, "filingDate"), "filingDate"),
        report_date=_date(report_date, "reportDate"),
        primary_document=parse_text(primary_document, "primaryDocument"),
    )


def _date(value: object, what: str) -> dt.date | None:
    # EDGAR sends "" for a date it has none of, rather than leaving it out.
    text = parse_text(value, what)
    if text is None:
        return None

    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise PayloadError(f"{what}: not an ISO 8601 date") from exc


def _strings(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()

    items = (parse_text(item, what) for item in require_list(value, what))
    return tuple(item for item in items if item is not None)


def _user_agent_option(settings: ProviderSettings) -> str:
    value = settings.options.get("user_agent")
    if isinstance(value, str) and value.strip():
        return value.strip()

    raise ConfigError(
        f"providers.{settings.name}.options.user_agent: required, the tool's "
        f"name and a contact e-mail (the SEC refuses anonymous requests), "
        f"got {value!r}"
    )


def _max_filings_option(settings: ProviderSettings) -> int:
    value = settings.options.get("max_filings", DEFAULT_MAX_FILINGS)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(
            f"providers.{settings.name}.options.max_filings: expected a whole "
            f"number of at least 0, got {value!r}"
        )

    return value
