"""Helpers the market providers share to call an API and read its answer.

Outside APIs send numbers as strings, percentages as fractions, nulls
after the close and error messages inside an HTTP 200. These helpers turn
such values into the model's units and raise `PayloadError` on anything
that is not what the API documents; a provider reads a payload inside
`translate_payload_errors`, which makes that an ``INVALID_RESPONSE``, so an
odd payload is never a crash.

Request helpers live here too, because sending the request and reading the
body are one step for every provider: `send_get` translates transport
failures, `get_json` also classifies a failure status and refuses bodies
that are not JSON, and `error_with_detail` adds what the API said to the
error. So do the checks of settings that several providers share
(`require_api_key`, `page_size_option`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import httpx

from dso import (
    ConfigError,
    ErrorCode,
    ProviderContext,
    ProviderError,
    ProviderSettings,
    error_from_http,
)


V = TypeVar("V")

_MISSING_MARKERS = frozenset({"", "-", "None"})
_EXCERPT_LENGTH = 200
_PERCENT_PLACES = decimal.Decimal("0.0001")


class PayloadError(ValueError):
    """A value in a response is not of the shape the API documents.

    The message names the field and the problem but not the value, so that
    it is safe to show. Providers read payloads inside
    `translate_payload_errors`, which turns it into an ``INVALID_RESPONSE``.
    """


def require_mapping(value: object, what: str) -> Mapping[str, Any]:
    """Return *value* if it is a JSON object.

    Raises:
        PayloadError: It is something else; the message names *what*.
    """
    if not isinstance(value, Mapping):
        raise PayloadError(f"{what}: expected an object, got {_kind(value)}")

    return value


def require_list(value: object, what: str) -> list[Any]:
    """Return *value* if it is a JSON array.

    Raises:
        PayloadError: It is something else; the message names *what*.
    """
    if not isinstance(value, list):
        raise PayloadError(f"{what}: expected a list, got {_kind(value)}")

    return value


def require_value(value: V | None, what: str) -> V:
    """Return *value*, a field the API always sends, if it is there.

    Raises:
        PayloadError: It is ``None``; the message names *what*.
    """
    if value is None:
        raise PayloadError(f"{what}: missing")

    return value


def require_text(value: object, what: str) -> str:
    """Return a string field the API always sends (see `parse_text`).

    Raises:
        PayloadError: The value is not a string, or is missing or one of
            the "no value" markers.
    """
    return require_value(parse_text(value, what), what)


def parse_text(value: object, what: str = "value") -> str | None:
    """Return a string field, with the APIs' "no value" markers as ``None``.

    Alpha Vantage writes ``"None"`` and ``"-"`` for fields it lacks;
    other APIs send ``null`` or ``""``.

    Raises:
        PayloadError: The value is not a string.
    """
    if value is None:
        return None

    if not isinstance(value, str):
        raise PayloadError(f"{what}: expected a string, got {_kind(value)}")

    value = value.strip()
    if value in _MISSING_MARKERS:
        return None

    return value


def parse_float(value: object, what: str = "value") -> float | None:
    """Return a number, whether the API sent it as a number or a string.

    Raises:
        PayloadError: The value is neither, or not finite.
    """
    number = _parse_decimal(value, what)
    if number is None:
        return None

    return float(number)


def parse_int(value: object, what: str = "value") -> int | None:
    """Return a whole number (a count of shares, a volume, employees).

    ``"69600"``, ``69600`` and ``69600.0`` are all accepted.

    Raises:
        PayloadError: The value is not a whole number.
    """
    number = _parse_decimal(value, what)
    if number is None:
        return None

    if number != number.to_integral_value():
        raise PayloadError(f"{what}: expected a whole number")

    return int(number)


def parse_percent(value: object, what: str = "value") -> float | None:
    """Return a value already in percent, such as ``"0.4207%"`` or ``-2.58``.

    Raises:
        PayloadError: The value is not a number, with or without ``%``.
    """
    if isinstance(value, str):
        value = value.strip().removesuffix("%")

    return parse_float(value, what)


def parse_fraction_as_percent(value: object, what: str = "value") -> float | None:
    """Return a fraction (``0.0067``) converted to percent (``0.67``).

    The product is computed in decimal, so that ``0.0067`` becomes exactly
    ``0.67`` rather than ``0.6699999999999999``.

    Raises:
        PayloadError: The value is not a number.
    """
    number = _parse_decimal(value, what)
    if number is None:
        return None

    return float(number * 100)


def parse_epoch(value: object, what: str = "value") -> dt.datetime | None:
    """Return an aware UTC datetime from epoch seconds.

    Raises:
        PayloadError: The value is not a number of seconds in range.
    """
    seconds = parse_float(value, what)
    if seconds is None:
        return None

    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise PayloadError(f"{what}: epoch seconds out of range") from exc


def parse_iso_datetime(value: object, what: str = "value") -> dt.datetime | None:
    """Return an aware datetime from an ISO 8601 string.

    Nanosecond fractions (Tiingo) are cut to microseconds; ``Z`` and
    offsets without a colon (``+0000``, FMP) are accepted.

    Raises:
        PayloadError: The value is not an ISO 8601 time with an offset.
    """
    text = parse_text(value, what)
    if text is None:
        return None

    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise PayloadError(f"{what}: not an ISO 8601 time") from exc

    if moment.tzinfo is None:
        raise PayloadError(f"{what}: the time has no offset")

    return moment


def parse_cik(value: object, what: str = "CIK") -> str | None:
    """Return an SEC CIK zero-padded to ten digits, as the SEC writes it.

    Raises:
        PayloadError: The value is not made of at most ten digits.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)

    text = parse_text(value, what)
    if text is None:
        return None

    if not text.isdigit() or len(text) > 10:
        raise PayloadError(f"{what}: expected up to ten digits")

    return text.zfill(10)


def derive_change(
    price: float | None, previous_close: float | None
) -> tuple[float | None, float | None]:
    """Return the change and the change in percent from two prices.

    For APIs that send the previous close but not the change. Decimal
    arithmetic keeps ``387.935 - 385.31`` at ``2.625``; the percentage is
    rounded to four places, as the APIs that send one round it.

    Returns:
        ``(change, change_percent)``, both ``None`` unless both prices are
        known and the previous close is not zero.
    """
    if price is None or previous_close is None or previous_close == 0:
        return None, None

    before = decimal.Decimal(repr(previous_close))
    change = decimal.Decimal(repr(price)) - before
    percent = (change / before * 100).quantize(_PERCENT_PLACES)
    return float(change), float(percent)


def match_by_symbol(
    keys: Sequence[str], found: Iterable[V], symbol_of: Callable[[V], str]
) -> dict[str, V]:
    """Return the values found for *keys*, under the caller's own keys.

    Batch answers come in any order and leave unknown symbols out, so
    values are matched by symbol, ignoring case, never by position. Keys
    with no value are absent from the result.
    """
    by_symbol = {symbol_of(value).upper(): value for value in found}
    return {key: by_symbol[key.upper()] for key in keys if key.upper() in by_symbol}


@contextlib.contextmanager
def translate_payload_errors(
    response: httpx.Response, *, provider: str
) -> Iterator[None]:
    """Turn a `PayloadError` raised in the block into ``INVALID_RESPONSE``.

    Raises:
        ProviderError: `invalid_response` for *response*, chained to the
            `PayloadError`.
    """
    try:
        yield
    except PayloadError as exc:
        raise invalid_response(response, str(exc), provider=provider) from exc


def invalid_response(
    response: httpx.Response, reason: str, *, provider: str
) -> ProviderError:
    """Return the ``INVALID_RESPONSE`` error for an unusable *response*.

    The message names the host and path only: query strings carry keys.
    """
    return ProviderError(
        ErrorCode.INVALID_RESPONSE,
        f"unexpected response from {where(response)}: {reason}",
        provider=provider,
    )


def api_url(ctx: ProviderContext, default_base_url: str, path: str) -> str:
    """Return the address of *path* on the API the provider is configured for.

    A ``base_url`` in the configuration (a replay server, a proxy) wins
    over the API's own *default_base_url*; a trailing slash is dropped.
    """
    base_url = ctx.settings.base_url or default_base_url
    return base_url.rstrip("/") + path


def require_api_key(ctx: ProviderContext, what: str, *, provider: str) -> str:
    """Return the configured key of an API that refuses calls without one.

    *what* is what the API calls its key (``"Tiingo token"``), for the
    message.

    Raises:
        ProviderError: ``AUTH``: no key is configured, so nothing is sent.
    """
    api_key = ctx.settings.api_key
    if not api_key:
        variable = ctx.settings.api_key_env
        how = (
            f"set the environment variable {variable}"
            if variable
            else "set api_key or api_key_env in its configuration"
        )
        raise ProviderError(
            ErrorCode.AUTH, f"no {what} configured ({how})", provider=provider
        )

    return api_key


async def get_json(
    ctx: ProviderContext,
    url: str,
    *,
    provider: str,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    classify: ErrorClassifier = error_from_http,
) -> tuple[httpx.Response, Any]:
    """Send a GET (see `send_get`) and return the response and its JSON body.

    A failure status raises the error *classify* returns for it, by
    default the one the status alone means. An error inside an HTTP 200
    is the caller's to find in the body.

    Raises:
        ProviderError: The request failed in transport, the status is a
            failure, or the body is not JSON (``INVALID_RESPONSE``).
    """
    response = await send_get(
        ctx, url, provider=provider, params=params, headers=headers
    )
    if not response.is_success:
        raise classify(response, provider=provider)

    return response, decode_json(response, provider=provider)


async def send_get(
    ctx: ProviderContext,
    url: str,
    *,
    provider: str,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """Send a GET through the shared client and return the response.

    Any status is returned: the caller knows what its API's error bodies
    mean. The deadline is the orchestrator's cancel scope, not a timeout
    here; the client's own timeouts still apply.

    Raises:
        ProviderError: The request failed in transport (``TIMEOUT`` or
            ``UNAVAILABLE``).
    """
    try:
        return await ctx.http.get(url, params=params, headers=headers)
    except httpx.HTTPError as exc:
        raise error_from_http(exc, provider=provider) from exc


def decode_json(response: httpx.Response, *, provider: str) -> Any:
    """Return the JSON body of *response*.

    Raises:
        ProviderError: ``INVALID_RESPONSE``: the body is not JSON.
    """
    try:
        return json.loads(response.content)
    except (UnicodeDecodeError, ValueError) as exc:
        raise invalid_response(
            response, "the body is not JSON", provider=provider
        ) from exc


class ErrorClassifier(Protocol):
    """Says which error an answer with a failure status stands for.

    `get_json` takes one. `dso.error_from_http` judges by the status
    alone; an API whose error bodies say more has its own, often
    `error_with_detail` told where the API puts its message.
    """

    def __call__(self, response: httpx.Response, /, *, provider: str) -> ProviderError:
        """Return the error that *response*, a failure status, stands for."""
        ...


def error_with_detail(
    response: httpx.Response,
    *,
    provider: str,
    message_of: Callable[[Any], str | None],
    secret: str | None = None,
) -> ProviderError:
    """Return the error a failure status stands for, with what the API said.

    Args:
        response: An answer whose status is a failure.
        provider: The provider's name, for the error.
        message_of: Returns the API's message in a JSON body, or ``None``
            if it holds none. A body that is not JSON (a plain-text 429, a
            quota notice) is the message itself.
        secret: The API key, cut out of the message (see `excerpt`).
    """
    message: str | None
    try:
        body = json.loads(response.content)
    except ValueError:
        message = response.text
    else:
        message = message_of(body)

    error = error_from_http(response, provider=provider)
    if message is None or not message.strip():
        return error

    return with_detail(error, excerpt(message, secret))


def with_detail(error: ProviderError, detail: str | None) -> ProviderError:
    """Return *error* with what the API said about it appended."""
    if not detail:
        return error

    return ProviderError(
        error.code,
        f"{error.message}: {detail}",
        retry_after=error.retry_after,
        provider=error.provider,
    )


def json_or_none(response: httpx.Response) -> object:
    """Return the JSON body of *response*, or ``None`` if it is not JSON.

    For error answers, whose bodies may be anything (an HTML page, text).
    """
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def excerpt(text: str, secret: str | None) -> str:
    """Return the start of an API's message, safe to show.

    The API key is cut out in case the API echoes it, and the text is
    shortened to one line of reasonable length.
    """
    if secret:
        text = text.replace(secret, "***")

    text = " ".join(text.split())
    if len(text) > _EXCERPT_LENGTH:
        text = text[: _EXCERPT_LENGTH - 1] + "…"

    return text


def where(response: httpx.Response) -> str:
    """Return the host and path *response* answered, without the query."""
    try:
        url = response.request.url
    except RuntimeError:
        # httpx raises when a response was built without a request.
        return "the provider"

    return f"{url.host}{url.path}"


def page_size_option(settings: ProviderSettings, *, default: int, maximum: int) -> int:
    """Return the ``page_size`` option: how many articles a call asks for.

    It is *default* when not set, and at most *maximum*, the largest page
    the API hands out.

    Raises:
        ConfigError: The option is not a whole number from 1 to *maximum*.
    """
    value = settings.options.get("page_size", default)
    if isinstance(value, bool) or not isinstance(value, int):
        problem = f"expected a whole number, got {value!r}"
    elif not 1 <= value <= maximum:
        problem = f"must be from 1 to {maximum}, got {value}"
    else:
        return value

    raise ConfigError(f"providers.{settings.name}.options.page_size: {problem}")


def _parse_decimal(value: object, what: str) -> decimal.Decimal | None:
    if isinstance(value, bool):
        raise PayloadError(f"{what}: expected a number, got a boolean")

    if isinstance(value, str):
        text = parse_text(value, what)
        if text is None:
            return None
        value = text

    elif value is None:
        return None

    elif isinstance(value, float):
        # repr() is the shortest text that round-trips, so 0.0067 stays
        # 0.0067 in decimal rather than its binary expansion.
        value = repr(value)

    elif not isinstance(value, int):
        raise PayloadError(f"{what}: expected a number, got {_kind(value)}")

    try:
        number = decimal.Decimal(value)
    except decimal.InvalidOperation as exc:
        raise PayloadError(f"{what}: expected a number") from exc

    if not number.is_finite():
        raise PayloadError(f"{what}: expected a finite number")

    return number


def _kind(value: object) -> str:
    if value is None:
        return "null"

    return {
        bool: "a boolean",
        dict: "an object",
        list: "a list",
        str: "a string",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)
