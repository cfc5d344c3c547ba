"""Translation of httpx outcomes into `ProviderError` codes.

This is the one place where HTTP statuses and transport failures become
dso's error codes, so every provider classifies them the same way.
Messages name the host and path only: query strings carry API keys.
"""

from __future__ import annotations

import email.utils
import time

import httpx

from ._errors import ErrorCode, ProviderError


_STATUS_CODES = {
    401: ErrorCode.AUTH,
    403: ErrorCode.AUTH,
    404: ErrorCode.NOT_FOUND,
    408: ErrorCode.TIMEOUT,
    410: ErrorCode.NOT_FOUND,
    429: ErrorCode.RATE_LIMIT,
}


def error_from_http(
    failure: httpx.Response | httpx.HTTPError, *, provider: str | None = None
) -> ProviderError:
    """Return the `ProviderError` that an HTTP failure stands for.

    Args:
        failure: A response with a non-success status, or an exception
            httpx raised (a timeout, a refused or dropped connection).
        provider: The provider's name, for the error message.

    Returns:
        The error to raise, chained by the caller with ``from`` when it
        translates an exception.
    """
    if isinstance(failure, httpx.Response):
        return _error_from_response(failure, provider)

    return _error_from_exception(failure, provider)


def check_response(
    response: httpx.Response, *, provider: str | None = None
) -> httpx.Response:
    """Return *response* if its status is a success, else raise.

    Raises:
        ProviderError: The status maps to an error code (see
            `error_from_http`).
    """
    if response.is_success:
        return response

    raise error_from_http(response, provider=provider)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait.

    Both forms of RFC 9110 are understood: a number of seconds and an
    HTTP date. Dates in the past give 0. Values that mean nothing give
    ``None``: unparseable ones, and negative or not-a-number seconds
    (RFC 9110 allows digits only), so that callers fall back to a
    default instead of taking them at their word.

    Args:
        value: The header's value.
        now: The current wall-clock time (for the date form); defaults to
            the system's clock, since an HTTP date is wall time.
    """
    if value is None:
        return None

    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 else None

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None

    if now is None:
        now = time.time()

    return max(0.0, when.timestamp() - now)


def _where(request: httpx.Request | None) -> str:
    if request is None:
        return "the provider"

    url = request.url
    return f"{url.host}{url.path}"


def _error_from_response(
    response: httpx.Response, provider: str | None
) -> ProviderError:
    status = response.status_code
    code = _STATUS_CODES.get(status)
    if code is None:
        code = ErrorCode.UNAVAILABLE if status >= 500 else ErrorCode.INVALID_RESPONSE

    retry_after = None
    if code is ErrorCode.RATE_LIMIT or status == 503:
        retry_after = parse_retry_after(response.headers.get("retry-after"))

    request = _request_of(response)
    message = f"HTTP {status} from {_where(request)}"
    return ProviderError(code, message, retry_after=retry_after, provider=provider)


def _error_from_exception(exc: httpx.HTTPError, provider: str | None) -> ProviderError:
    request = _request_of(exc)
    where = _where(request)

    if isinstance(exc, httpx.TimeoutException):
        return ProviderError(
            ErrorCode.TIMEOUT, f"timed out talking to {where}", provider=provider
        )

    if isinstance(exc, httpx.HTTPStatusError):
        return _error_from_response(exc.response, provider)

    if isinstance(exc, httpx.DecodingError):
        return ProviderError(
            ErrorCode.INVALID_RESPONSE,
            f"undecodable response from {where}",
            provider=provider,
        )

    # Connection refused, reset or dropped mid-response, protocol errors:
    # the provider is not answering properly right now.
    kind = type(exc).__name__
    return ProviderError(
        ErrorCode.UNAVAILABLE, f"{kind} talking to {where}", provider=provider
    )


def _request_of(source: httpx.Response | httpx.HTTPError) -> httpx.Request | None:
    # Both properties raise RuntimeError instead of returning None when no
    # request is attached (a response built by hand, for instance).
    try:
        return source.request
    except RuntimeError:
        return None
