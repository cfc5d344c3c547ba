"""A provider that follows every rule of the conformance kit, and broken ones.

The kit's own tests run the kit against each of them; every broken one
breaks one rule, which the kit must catch. They read Tiingo's IEX
recordings, the smallest real API with batches.
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import httpx
import trio

from dso import (
    ErrorCode,
    ProviderContext,
    ProviderError,
    ProviderSettings,
    check_response,
    error_from_http,
)
from dso.testing import Route


ROUTES = [
    Route("tiingo", "/iex/AAPL", "tiingo/iex_quote_AAPL_market_hours.json"),
    Route("tiingo", "/iex/NONEXIST", "tiingo/iex_quote_unknown_ticker_empty_list.json"),
    Route(
        "tiingo",
        "/iex/",
        "tiingo/iex_quotes_MSFT_AAPL_after_close.json",
        query={"tickers": "msft,aapl"},
    ),
    Route(
        "tiingo",
        "/iex/",
        "tiingo/iex_quotes_MSFT_AAPL_after_close.json",
        query={"tickers": "msft,aapl,nonexist"},
    ),
]

logger = logging.getLogger("conformance_providers")


@attrs.frozen
class Price:
    symbol: str
    price: float | None


class GoodPrices:
    """Follows every rule."""

    max_batch_size = 10

    def __init__(self, settings: ProviderSettings) -> None:
        self._settings = settings

    @property
    def name(self) -> str:
        return self._settings.name

    async def fetch(self, key: str, ctx: ProviderContext) -> Any:
        prices = await self._get(ctx, f"/iex/{key.upper()}", None)
        for price in prices:
            if price.symbol == key.upper():
                return price

        raise ProviderError(ErrorCode.NOT_FOUND, f"no {key}", provider=self.name)

    async def fetch_batch(
        self, keys: Sequence[str], ctx: ProviderContext
    ) -> Mapping[str, Any]:
        tickers = ",".join(dict.fromkeys(key.upper() for key in keys))
        prices = await self._get(ctx, "/iex/", {"tickers": tickers})
        by_symbol = {price.symbol: price for price in prices}
        return {key: by_symbol[key.upper()] for key in keys if key.upper() in by_symbol}

    async def health_check(self, ctx: ProviderContext) -> None:
        await self.fetch("AAPL", ctx)

    async def _get(
        self, ctx: ProviderContext, path: str, params: Mapping[str, str] | None
    ) -> list[Price]:
        token = ctx.settings.api_key
        if not token:
            raise ProviderError(ErrorCode.AUTH, "no token", provider=self.name)

        response = await self._send(ctx, path, params, token)
        self._check(response, token)
        return [
            Price(item["ticker"].upper(), item["tngoLast"]) for item in response.json()
        ]

    async def _send(
        self,
        ctx: ProviderContext,
        path: str,
        params: Mapping[str, str] | None,
        token: str,
    ) -> httpx.Response:
        url = f"{ctx.settings.base_url}{path}"
        headers = {"Authorization": f"Token {token}"} if token else {}
        try:
            return await ctx.http.get(url, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: httpx.HTTPError) -> ProviderError:
        return error_from_http(exc, provider=self.name)

    def _check(self, response: httpx.Response, token: str) -> None:
        check_response(response, provider=self.name)


class HardCodedName(GoodPrices):
    """Answers to a name of its own, not the configured one."""

    @property
    def name(self) -> str:
        return "tiingo"


class SyncHealthCheck(GoodPrices):
    """Has a health check that is not a coroutine."""

    def health_check(self, ctx: ProviderContext) -> None:  # type: ignore[override]
        pass


class ZeroBatchSize(GoodPrices):
    """Batches, with a batch size of none."""

    max_batch_size = 0


class RawDict(GoodPrices):
    """Returns the API's JSON object instead of its own type."""

    async def fetch(self, key: str, ctx: ProviderContext) -> Any:
        price = await super().fetch(key, ctx)
        return attrs.asdict(price)


class NoneForMissing(GoodPrices):
    """Answers an unknown key with None."""

    async def fetch(self, key: str, ctx: ProviderContext) -> Any:
        prices = await self._get(ctx, f"/iex/{key.upper()}", None)
        return next((price for price in prices if price.symbol == key.upper()), None)


class AuthAsUnavailable(GoodPrices):
    """Calls every failure status UNAVAILABLE but the ones it knows."""

    def _check(self, response: httpx.Response, token: str) -> None:
        if response.status_code in {401, 403}:
            raise ProviderError(ErrorCode.UNAVAILABLE, "refused", provider=self.name)

        super()._check(response, token)


class ForgetsRetryAfter(GoodPrices):
    """Drops the Retry-After of a 429."""

    def _check(self, response: httpx.Response, token: str) -> None:
        if response.status_code == 429:
            raise ProviderError(ErrorCode.RATE_LIMIT, "slow down", provider=self.name)

        super()._check(response, token)


class RefusedAsTimeout(GoodPrices):
    """Calls a refused connection a timeout."""

    def _translate(self, exc: httpx.HTTPError) -> ProviderError:
        if isinstance(exc, httpx.ConnectError):
            return ProviderError(ErrorCode.TIMEOUT, "no answer", provider=self.name)

        return super()._translate(exc)


class DroppedAsInvalid(GoodPrices):
    """Calls a dropped connection an invalid response."""

    def _translate(self, exc: httpx.HTTPError) -> ProviderError:
        if isinstance(exc, httpx.RemoteProtocolError):
            return ProviderError(ErrorCode.INVALID_RESPONSE, "odd", provider=self.name)

        return super()._translate(exc)


class TimeoutAsUnavailable(GoodPrices):
    """Calls the HTTP client's timeout UNAVAILABLE."""

    def _translate(self, exc: httpx.HTTPError) -> ProviderError:
        if isinstance(exc, httpx.TimeoutException):
            return ProviderError(ErrorCode.UNAVAILABLE, "slow", provider=self.name)

        return super()._translate(exc)


class SwallowsCancelled(GoodPrices):
    """Turns its cancellation into a TIMEOUT error, even its caller's."""

    async def fetch(self, key: str, ctx: ProviderContext) -> Any:
        try:
            return await super().fetch(key, ctx)
        except trio.Cancelled:
            # The very mistake the kit must catch.
            raise ProviderError(  # noqa: B904, ASYNC104
                ErrorCode.TIMEOUT, "cancelled", provider=self.name
            )


class CancelledAsUnavailable(GoodPrices):
    """Turns its cancellation into an UNAVAILABLE error."""

    async def fetch(self, key: str, ctx: ProviderContext) -> Any:
        try:
            return await super().fetch(key, ctx)
        except trio.Cancelled:
            # The very mistake the kit must catch.
            raise ProviderError(  # noqa: B904, ASYNC104
                ErrorCode.UNAVAILABLE, "cancelled", provider=self.name
            )


class KeyInErrors(GoodPrices):
    """Puts the URL it called, token and all, in its errors."""

    def _check(self, response: httpx.Response, token: str) -> None:
        if not response.is_success:
            error = error_from_http(response, provider=self.name)
            message = f"{error.message} for {response.url}?token={token}"
            raise ProviderError(
                error.code, message, retry_after=error.retry_after, provider=self.name
            )


class KeyInNotes(GoodPrices):
    """Notes the URL it called, token and all, on its errors."""

    def _check(self, response: httpx.Response, token: str) -> None:
        try:
            check_response(response, provider=self.name)
        except ProviderError as error:
            # Notes print with every traceback.
            error.add_note(f"called {response.url} with token {token}")
            raise


class LogsKey(GoodPrices):
    """Logs its token on every call."""

    async def fetch(self, key: str, ctx: ProviderContext) -> Any:
        logger.debug("fetching %s with token %s", key, ctx.settings.api_key)
        return await super().fetch(key, ctx)


class CallsWithoutKey(GoodPrices):
    """Calls the API even when no token is configured."""

    async def _get(
        self, ctx: ProviderContext, path: str, params: Mapping[str, str] | None
    ) -> list[Price]:
        response = await self._send(ctx, path, params, "")
        self._check(response, "")
        return [
            Price(item["ticker"].upper(), item["tngoLast"]) for item in response.json()
        ]


class PositionalBatch(GoodPrices):
    """Matches a batch's answers to the keys by position."""

    async def fetch_batch(
        self, keys: Sequence[str], ctx: ProviderContext
    ) -> Mapping[str, Any]:
        tickers = ",".join(key.upper() for key in keys)
        prices = await self._get(ctx, "/iex/", {"tickers": tickers})
        return dict(zip(keys, prices, strict=False))


class DuplicatesCrash(GoodPrices):
    """Refuses a batch that names a key twice."""

    async def fetch_batch(
        self, keys: Sequence[str], ctx: ProviderContext
    ) -> Mapping[str, Any]:
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate keys")

        return await super().fetch_batch(keys, ctx)


class MissingAsNone(GoodPrices):
    """Answers a batch's unknown keys with None."""

    async def fetch_batch(
        self, keys: Sequence[str], ctx: ProviderContext
    ) -> Mapping[str, Any]:
        found = await super().fetch_batch(keys, ctx)
        return {key: found.get(key) for key in keys}


class BatchErrorAsEmpty(GoodPrices):
    """Answers a failed batch with nothing."""

    async def fetch_batch(
        self, keys: Sequence[str], ctx: ProviderContext
    ) -> Mapping[str, Any]:
        try:
            return await super().fetch_batch(keys, ctx)
        except ProviderError:
            return {}


class StatusBlind(GoodPrices):
    """Calls every failure status an invalid response."""

    def _check(self, response: httpx.Response, token: str) -> None:
        if not response.is_success:
            raise ProviderError(
                ErrorCode.INVALID_RESPONSE, "not data", provider=self.name
            )


class SinglePrices:
    """Follows every rule, one key at a time: it has no ``fetch_batch``."""

    def __init__(self, settings: ProviderSettings) -> None:
        self._prices = GoodPrices(settings)

    @property
    def name(self) -> str:
        return self._prices.name

    async def fetch(self, key: str, ctx: ProviderContext) -> Any:
        return await self._prices.fetch(key, ctx)
