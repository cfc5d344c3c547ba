"""error_from_http: one mapping from HTTP outcomes to ProviderError codes."""

import datetime as dt

import httpx
import pytest

import dso


def response(status: int, **headers: str) -> httpx.Response:
    request = httpx.Request("GET", "https://api.example.com/v1/q?apikey=SECRET-9")
    return httpx.Response(status, headers=headers, request=request)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, dso.ErrorCode.INVALID_RESPONSE),
        (401, dso.ErrorCode.AUTH),
        (403, dso.ErrorCode.AUTH),
        (404, dso.ErrorCode.NOT_FOUND),
        (408, dso.ErrorCode.TIMEOUT),
        (429, dso.ErrorCode.RATE_LIMIT),
        (500, dso.ErrorCode.UNAVAILABLE),
        (503, dso.ErrorCode.UNAVAILABLE),
    ],
)
def test_status_maps_to_code(status: int, code: dso.ErrorCode) -> None:
    """Each HTTP status class has its code."""
    error = dso.error_from_http(response(status), provider="p")

    assert code == error.code


def test_message_names_host_and_path_but_never_the_query() -> None:
    """Query strings carry API keys, so messages leave them out."""
    error = dso.error_from_http(response(500), provider="p")

    assert "HTTP 500 from api.example.com/v1/q" == error.message
    assert "SECRET-9" not in str(error) + repr(error)


def test_retry_after_in_seconds_is_kept() -> None:
    """A 429's Retry-After in seconds becomes retry_after."""
    error = dso.error_from_http(response(429, **{"retry-after": "30"}))

    assert 30.0 == error.retry_after


def test_retry_after_as_http_date() -> None:
    """An HTTP-date Retry-After is turned into seconds from now."""
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)

    seconds = dso.parse_retry_after(
        "Thu, 01 Jan 2026 12:02:00 GMT", now=now.timestamp()
    )

    assert 120.0 == seconds


@pytest.mark.parametrize("value", ["soon", "", None, "-5", "nan"])
def test_unparseable_retry_after_is_none(value: str | None) -> None:
    """A Retry-After that means nothing is None, not an error."""
    assert dso.parse_retry_after(value) is None


@pytest.mark.parametrize(
    ("exception", "code"),
    [
        (httpx.ReadTimeout("slow"), dso.ErrorCode.TIMEOUT),
        (httpx.ConnectError("refused"), dso.ErrorCode.UNAVAILABLE),
        (httpx.RemoteProtocolError("dropped"), dso.ErrorCode.UNAVAILABLE),
        (httpx.DecodingError("gzip"), dso.ErrorCode.INVALID_RESPONSE),
    ],
)
def test_transport_errors_map_to_codes(
    exception: httpx.HTTPError, code: dso.ErrorCode
) -> None:
    """Timeouts, refused and dropped connections have their codes."""
    exception.request = httpx.Request("GET", "https://api.example.com/x?token=T0K")

    error = dso.error_from_http(exception, provider="p")

    assert code == error.code
    assert "T0K" not in error.message


def test_check_response_passes_success_through() -> None:
    """A 2xx response is returned as it is; others raise."""
    ok = response(200)

    assert ok is dso.check_response(ok)
    with pytest.raises(dso.ProviderError):
        dso.check_response(response(502))
