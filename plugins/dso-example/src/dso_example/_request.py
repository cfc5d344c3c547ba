"""Sending a GET and reading its answer, as both providers do."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from dso import ErrorCode, ProviderContext, ProviderError, error_from_http


_EXCERPT_LENGTH = 200


async def send_get(
    ctx: ProviderContext,
    url: str,
    *,
    provider: str,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """Send a GET through the orchestrator's shared client; return any answer.

    The orchestrator bounds the call with a cancel scope, so no timeout is
    set here.

    Raises:
        ProviderError: The request failed in transport (``TIMEOUT`` or
            ``UNAVAILABLE``).
    """
    try:
        return await ctx.http.get(url, params=params, headers=headers)
    except httpx.HTTPError as exc:
        raise error_from_http(exc, provider=provider) from exc


def api_url(ctx: ProviderContext, default_base_url: str, path: str) -> str:
    """Return *path* on the configured ``base_url``, or on the API's own."""
    return (ctx.settings.base_url or default_base_url).rstrip("/") + path


def require_api_key(ctx: ProviderContext, what: str, *, provider: str) -> str:
    """Return the configured key; without one, nothing is sent.

    Raises:
        ProviderError: ``AUTH``: no key is configured.
    """
    if not ctx.settings.api_key:
        raise ProviderError(ErrorCode.AUTH, f"no {what} configured", provider=provider)

    return ctx.settings.api_key


def json_or_none(response: httpx.Response) -> Any:
    """Return the JSON body of *response*, or ``None`` if it is not JSON."""
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def where(response: httpx.Response) -> str:
    """Return the host and path *response* answered: query strings hold keys."""
    url = response.request.url
    return f"{url.host}{url.path}"


def excerpt(text: str, secret: str) -> str:
    """Return the start of an API's message on one line, without *secret*."""
    text = " ".join(text.replace(secret, "***").split())
    if len(text) > _EXCERPT_LENGTH:
        text = text[: _EXCERPT_LENGTH - 1] + "…"

    return text


def invalid_response(
    response: httpx.Response, reason: str, *, provider: str
) -> ProviderError:
    """Return the ``INVALID_RESPONSE`` error for an unusable *response*."""
    return ProviderError(
        ErrorCode.INVALID_RESPONSE,
        f"unexpected response from {where(response)}: {reason}",
        provider=provider,
    )
