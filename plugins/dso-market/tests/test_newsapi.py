import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import attrs
import httpx
import pytest
import trio

import dso_market
from dso import ConfigError, ErrorCode, ProviderContext, ProviderError, ProviderSettings
from dso.testing import (
    Fault,
    ReplayServer,
    Route,
    find_fixtures_dir,
    load_routes,
    open_replay_server,
)
from dso_market import NewsArticle
from dso_market._newsapi import (
    FACTORIES,
    NewsApiHeadlines,
    NewsApiSearch,
    classify_error,
)


SECRET = "SECRET-KEY-123"


def context(
    http: httpx.AsyncClient, server: ReplayServer, **options: Any
) -> ProviderContext:
    settings = ProviderSettings(
        name="newsapi",
        base_url=server.base_url("newsapi"),
        api_key=SECRET,
        options=options,
    )
    return ProviderContext(http=http, settings=settings, namespace="news")


async def search(
    key: str, http: httpx.AsyncClient, server: ReplayServer, **options: Any
) -> tuple[NewsArticle, ...]:
    ctx = context(http, server, **options)
    return await NewsApiSearch(ctx.settings).fetch(key, ctx)


async def headlines(
    key: str, http: httpx.AsyncClient, server: ReplayServer
) -> tuple[NewsArticle, ...]:
    ctx = context(http, server)
    return await NewsApiHeadlines(ctx.settings).fetch(key, ctx)


async def search_error(
    key: str, http: httpx.AsyncClient, server: ReplayServer
) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await search(key, http, server)

    return caught.value


def newsapi_routes() -> list[Route]:
    (path,) = [p for p in dso_market.replay_route_files() if p.stem == "newsapi"]
    return load_routes(path)


@pytest.fixture
async def plan_limited() -> AsyncIterator[ReplayServer]:
    """A NewsAPI that answers every search with the recorded 426 plan limit."""
    (route,) = [route for route in newsapi_routes() if route.status == 426]
    any_search = attrs.evolve(route, query={})
    async with open_replay_server([any_search], find_fixtures_dir()) as server:
        yield server


@pytest.fixture
async def html_wall() -> AsyncIterator[ReplayServer]:
    """A NewsAPI hidden behind a recorded bot-wall HTML page, sent with 200."""
    route = Route(
        provider="newsapi",
        path="/v2/everything",
        file="marketwatch/quote_page_datadome_captcha_401.html",
        content_type="text/html",
    )
    async with open_replay_server([route], find_fixtures_dir()) as server:
        yield server


async def test_search_returns_the_recorded_article(
    http: httpx.AsyncClient, replay: ReplayServer
) -> None:
    """A search answers the recorded article, its fields mapped to the model."""
    expected = (
        NewsArticle(
            url=(
                "https://www.theverge.com/2023/8/7/23822752/"
                "paypal-pyusd-stablecoin-cryptocurrency"
            ),
            title="PayPal launches PYUSD stablecoin backed by the US dollar",
            published_at=dt.datetime(2023, 8, 7, 14, 7, 51, tzinfo=dt.UTC),
            source="The Verge",
            summary=(
                "PayPal has launched a stablecoin called PayPal USD, starting "
                "today and “rolling out in the coming weeks.” The new "
                "stablecoin can be used for purchases and person-to-person "
                "payments."
            ),
            symbols=(),
            provider="newsapi",
        ),
    )

    actual = await search("bitcoin", http, replay)

    assert expected == actual


async def test_search_sends_the_key_in_a_header_only(
    replay: ReplayServer,
    recording_http: httpx.AsyncClient,
    sent_requests: list[httpx.Request],
) -> None:
    """The key goes in X-Api-Key, never in the query, with the search's params."""
    await search("bitcoin", recording_http, replay, page_size=5)

    (request,) = sent_requests
    expected = (
        SECRET,
        {"q": "bitcoin", "pageSize": "5", "sortBy": "publishedAt"},
        "/newsapi/v2/everything",
    )
    actual = (request.headers["X-Api-Key"], dict(request.url.params), request.url.path)
    assert expected == actual


async def test_headline_with_a_null_source_id_keeps_the_source_name(
    http: httpx.AsyncClient, replay: ReplayServer
) -> None:
    """A headline whose source has a null id is parsed, naming its source."""
    expected = (
        NewsArticle(
            url=(
                "https://www.thehindubusinessline.com/markets/share-market-nifty-"
                "sensex-live-updates-8-september-2023/article67281389.ece"
            ),
            title=(
                "Stock Market Live Updates: Sensex, Nifty extend gains; NTPC, "
                "L&T shine - BusinessLine"
            ),
            published_at=dt.datetime(2023, 9, 8, 6, 11, 15, tzinfo=dt.UTC),
            source="BusinessLine",
            summary=(
                "Stock Market today | Share Market Live Updates - Find here all "
                "the live updates related to Sensex, Nifty, BSE, NSE, share "
                "prices and Indian stock markets for 8th September 2023.BSE "
                "Sensex, NSE Nifty continued their winning momentum in early "
                "trade on Friday, s…"
            ),
            provider="newsapi",
        ),
    )

    actual = await headlines("in", http, replay)

    assert expected == actual


async def test_headlines_send_the_country_in_lower_case(
    replay: ReplayServer,
    recording_http: httpx.AsyncClient,
    sent_requests: list[httpx.Request],
) -> None:
    """A country key is sent in lower case, as NewsAPI's country codes are."""
    await headlines("IN", recording_http, replay)

    (request,) = sent_requests
    assert "in" == request.url.params["country"]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        # The recorded 401 apiKeyInvalid envelope.
        pytest.param("keyword", ErrorCode.AUTH, id="apiKeyInvalid"),
        # The replay server's plain-text 404 for an unrecorded query.
        pytest.param("AAPL", ErrorCode.NOT_FOUND, id="unrecorded-404"),
    ],
)
async def test_error_answers_are_classified_by_meaning(
    key: str, expected: ErrorCode, http: httpx.AsyncClient, replay: ReplayServer
) -> None:
    """An error envelope or a bare error status gets the code it means."""
    error = await search_error(key, http, replay)

    assert expected == error.code


async def test_errors_never_show_the_key(
    http: httpx.AsyncClient, replay: ReplayServer
) -> None:
    """Neither the message nor the repr of an error holds the API key."""
    error = await search_error("keyword", http, replay)

    assert (False, False) == (SECRET in str(error), SECRET in repr(error))


async def test_maximum_results_reached_is_an_invalid_call(
    http: httpx.AsyncClient, plan_limited: ReplayServer
) -> None:
    """The recorded 426 maximumResultsReached is INVALID_RESPONSE, not a pause.

    It refuses one page, not the provider: a RATE_LIMIT would pause NewsAPI
    for every caller.
    """
    error = await search_error("bitcoin", http, plan_limited)

    assert (ErrorCode.INVALID_RESPONSE, None) == (error.code, error.retry_after)


def test_rate_limited_envelope_is_a_rate_limit() -> None:
    """A rateLimited envelope is RATE_LIMIT, with the Retry-After it names."""
    request = httpx.Request("GET", "https://newsapi.org/v2/everything?q=x")
    response = httpx.Response(
        429,
        json={"status": "error", "code": "rateLimited"},
        headers={"Retry-After": "60"},
        request=request,
    )

    error = classify_error(response, provider="newsapi")

    assert (ErrorCode.RATE_LIMIT, 60.0) == (error.code, error.retry_after)


async def test_html_instead_of_json_is_an_invalid_response(
    http: httpx.AsyncClient, html_wall: ReplayServer
) -> None:
    """An HTML page sent with 200 where JSON was expected is INVALID_RESPONSE."""
    error = await search_error("bitcoin", http, html_wall)

    assert ErrorCode.INVALID_RESPONSE == error.code


@pytest.mark.parametrize(
    "fault", [Fault.status_code(503), Fault.drop()], ids=["503", "dropped"]
)
async def test_server_that_cannot_answer_is_unavailable(
    fault: Fault, http: httpx.AsyncClient, replay: ReplayServer
) -> None:
    """A 503 in place of the recording, or a dropped connection, is UNAVAILABLE."""
    replay.inject("newsapi", fault)

    error = await search_error("bitcoin", http, replay)

    assert ErrorCode.UNAVAILABLE == error.code


async def test_hung_answer_is_a_timeout(
    replay: ReplayServer, autojump_clock: trio.testing.MockClock
) -> None:
    """An answer that never comes is a TIMEOUT once the client gives up."""
    replay.inject("newsapi", Fault.hang())

    async with httpx.AsyncClient(timeout=2.0) as http:
        with trio.fail_after(10):
            error = await search_error("bitcoin", http, replay)

    assert ErrorCode.TIMEOUT == error.code


@pytest.mark.parametrize("page_size", [0, 101, "20", True])
def test_invalid_page_size_is_a_config_error(page_size: object) -> None:
    """A page size that is not a whole number from 1 to 100 is refused."""
    settings = ProviderSettings(name="news", options={"page_size": page_size})

    with pytest.raises(ConfigError, match=r"providers\.news\.options\.page_size"):
        NewsApiSearch(settings)


def test_factories_name_both_endpoints() -> None:
    """The module's factories build the search and headline providers."""
    expected = {"newsapi": NewsApiSearch, "newsapi_headlines": NewsApiHeadlines}

    actual = dict(FACTORIES)

    assert expected == actual
