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
from dso_market import NewsArticle
from dso_market._benzinga import FACTORIES, BenzingaNews, classify_error


SECRET = "SECRET-KEY-123"

EDT = dt.timezone(dt.timedelta(hours=-4))

ARTICLE_1 = (
    "https://www.benzinga.com/24/02/37267436/great-ai-inference-suprise-"
    "nvidia-declares-ai-tipping-point-japans-nikkei-crosses-34-year-high"
)
ARTICLE_2 = (
    "https://www.benzinga.com/news/earnings/24/02/37266611/whats-going-on-"
    "with-key-nvidia-supplier-taiwan-semi-stock-thursday"
)
ARTICLE_3 = (
    "https://www.benzinga.com/news/24/02/37262169/is-apple-pencil-set-to-get-"
    "its-biggest-upgrade-ever-new-patent-reveals-interchangeable-sleeves"
)
ARTICLE_19 = (
    "https://www.benzinga.com/news/24/02/37235901/apple-introduces-apple-sports"
)
ARTICLE_20 = (
    "https://www.benzinga.com/news/24/02/37234514/famous-iphone-hacker-says-"
    "he-is-not-switching-back-to-apples-device-over-its-app-store-tantrum"
)


def context(
    http: httpx.AsyncClient, server: ReplayServer, **options: Any
) -> ProviderContext:
    settings = ProviderSettings(
        name="benzinga",
        base_url=server.base_url("benzinga"),
        api_key=SECRET,
        options=options,
    )
    return ProviderContext(http=http, settings=settings, namespace="news")


async def news(
    key: str, http: httpx.AsyncClient, server: ReplayServer, **options: Any
) -> tuple[NewsArticle, ...]:
    ctx = context(http, server, **options)
    return await BenzingaNews(ctx.settings).fetch(key, ctx)


async def news_error(
    key: str, http: httpx.AsyncClient, server: ReplayServer
) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await news(key, http, server)

    return caught.value


@pytest.fixture
async def html_wall() -> AsyncIterator[ReplayServer]:
    """A Benzinga hidden behind a recorded bot-wall HTML page, sent with 200."""
    route = Route(
        provider="benzinga",
        path="/api/v2/news",
        file="marketwatch/quote_page_datadome_captcha_401.html",
        content_type="text/html",
    )
    async with open_replay_server([route], find_fixtures_dir()) as server:
        yield server


async def test_only_articles_tagging_the_ticker_are_kept(
    http: httpx.AsyncClient, replay: ReplayServer
) -> None:
    """Of the AAPL,MSFT page, a request for AAPL keeps the articles tagging AAPL."""
    expected = [ARTICLE_1, ARTICLE_3, ARTICLE_19, ARTICLE_20]

    articles = await news("AAPL", http, replay)

    assert expected == [article.url for article in articles]


async def test_the_filter_follows_the_requested_ticker(
    http: httpx.AsyncClient, replay: ReplayServer
) -> None:
    """The same page asked for msft keeps the articles tagging MSFT."""
    expected = [ARTICLE_1, ARTICLE_2, ARTICLE_20]

    articles = await news("msft", http, replay)

    assert expected == [article.url for article in articles]


async def test_article_fields_are_mapped_to_the_model(
    http: httpx.AsyncClient, replay: ReplayServer
) -> None:
    """A recorded article becomes a NewsArticle, its teaser's entities decoded."""
    expected = NewsArticle(
        url=ARTICLE_3,
        title=(
            "Is Apple Pencil Set To Get Its Biggest Upgrade Ever? New Patent "
            "Reveals Interchangeable Sleeves"
        ),
        published_at=dt.datetime(2024, 2, 22, 10, 33, 17, tzinfo=EDT),
        source="Benzinga",
        summary=(
            "Apple's new application with the US Patent and Trademark Office "
            "shows that it is contemplating a significant upgrade to the Apple "
            "Pencil."
        ),
        symbols=("AAPL",),
        provider="benzinga",
    )

    articles = await news("AAPL", http, replay)

    assert expected == articles[1]


async def test_teaser_loses_its_trailing_blank_lines(
    http: httpx.AsyncClient, replay: ReplayServer
) -> None:
    """A teaser ending in blank lines is stripped to its text."""
    articles = await news("AAPL", http, replay)

    assert "To gain an edge, this is what you need to know today." == (
        articles[0].summary
    )


async def test_all_tagged_symbols_are_kept_as_tagged(
    http: httpx.AsyncClient, replay: ReplayServer
) -> None:
    """An article keeps every symbol it tags, non-equities like $BTC included."""
    expected = (
        "$BTC",
        "AAPL",
        "AMZN",
        "GLD",
        "GOOG",
        "META",
        "MSFT",
        "NVDA",
        "QQQ",
        "SLV",
        "SPY",
        "TSLA",
        "USO",
    )

    articles = await news("AAPL", http, replay)

    assert expected == articles[0].symbols


async def test_rfc_2822_dates_keep_their_stated_offset(
    http: httpx.AsyncClient, replay: ReplayServer
) -> None:
    """Publication times keep the -0400 Benzinga states, as aware datetimes."""
    expected = [
        "2024-02-22T13:42:04-04:00",
        "2024-02-22T10:33:17-04:00",
        "2024-02-21T10:01:00-04:00",
        "2024-02-21T09:17:07-04:00",
    ]

    articles = await news("AAPL", http, replay)

    assert expected == [article.published_at.isoformat() for article in articles]


async def test_page_size_bounds_the_answer(
    http: httpx.AsyncClient, replay: ReplayServer
) -> None:
    """No more articles than the page size are returned, newest first."""
    articles = await news("AAPL", http, replay, page_size=2)

    assert [ARTICLE_1, ARTICLE_3] == [article.url for article in articles]


async def test_request_asks_for_json_with_the_token_in_the_query(
    replay: ReplayServer,
    recording_http: httpx.AsyncClient,
    sent_requests: list[httpx.Request],
) -> None:
    """The token goes in the query, as Benzinga wants, with accept: JSON."""
    await news("aapl", recording_http, replay)

    (request,) = sent_requests
    expected = (
        "application/json",
        {
            "tickers": "AAPL",
            "pageSize": "20",
            "displayOutput": "full",
            "sort": "created:desc",
            "token": SECRET,
        },
        "/benzinga/api/v2/news",
    )
    actual = (request.headers["accept"], dict(request.url.params), request.url.path)
    assert expected == actual


def test_access_denied_list_is_auth() -> None:
    """Benzinga's 401 list of "Access denied" messages is an AUTH error."""
    request = httpx.Request(
        "GET", f"https://api.benzinga.com/api/v2/news?token={SECRET}"
    )
    response = httpx.Response(
        401, json=['Access denied for user 0 "anonymous"'], request=request
    )

    error = classify_error(response, provider="benzinga")

    assert (ErrorCode.AUTH, False) == (error.code, SECRET in str(error))


async def test_a_ticker_without_recording_is_not_found(
    http: httpx.AsyncClient, replay: ReplayServer
) -> None:
    """The replay server's plain-text 404 for an unrecorded ticker is NOT_FOUND."""
    error = await news_error("IBM", http, replay)

    assert ErrorCode.NOT_FOUND == error.code


async def test_html_instead_of_json_is_an_invalid_response(
    http: httpx.AsyncClient, html_wall: ReplayServer
) -> None:
    """An HTML page sent with 200 where JSON was expected is INVALID_RESPONSE."""
    error = await news_error("AAPL", http, html_wall)

    assert ErrorCode.INVALID_RESPONSE == error.code


@pytest.mark.parametrize(
    "fault", [Fault.status_code(503), Fault.drop()], ids=["503", "dropped"]
)
async def test_server_that_cannot_answer_is_unavailable(
    fault: Fault, http: httpx.AsyncClient, replay: ReplayServer
) -> None:
    """A 503 or a dropped connection is UNAVAILABLE, and its error hides the token.

    The token travels in the query, so the URL must stay out of the message.
    """
    replay.inject("benzinga", fault)

    error = await news_error("AAPL", http, replay)

    expected = (ErrorCode.UNAVAILABLE, False, False)
    assert expected == (error.code, SECRET in str(error), SECRET in repr(error))


async def test_hung_answer_is_a_timeout(
    replay: ReplayServer, autojump_clock: trio.testing.MockClock
) -> None:
    """An answer that never comes is a TIMEOUT once the client gives up."""
    replay.inject("benzinga", Fault.hang())

    async with httpx.AsyncClient(timeout=2.0) as http:
        with trio.fail_after(10):
            error = await news_error("AAPL", http, replay)

    assert ErrorCode.TIMEOUT == error.code


@pytest.mark.parametrize("page_size", [0, 101, "20"])
def test_invalid_page_size_is_a_config_error(page_size: object) -> None:
    """A page size that is not a whole number from 1 to 100 is refused."""
    settings = ProviderSettings(name="bz", options={"page_size": page_size})

    with pytest.raises(ConfigError, match=r"providers\.bz\.options\.page_size"):
        BenzingaNews(settings)


def test_factories_name_the_news_provider() -> None:
    """The module's factories build the Benzinga news provider."""
    assert {"benzinga": BenzingaNews} == dict(FACTORIES)
