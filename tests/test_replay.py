from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import httpx
import pytest
import trio
import trio.testing

import dso.testing
from dso._errors import ConfigError
from dso.testing import (
    Fault,
    ReplayRequest,
    ReplayServer,
    Route,
    find_fixtures_dir,
    load_routes,
    open_replay_server,
)


QUOTE = Route("tiingo", "/iex/AAPL", "tiingo/iex_quote_AAPL_market_hours.json")
QUOTES = Route(
    "tiingo",
    "/iex/",
    "tiingo/iex_quotes_MSFT_AAPL_after_close.json",
    query={"tickers": "msft,aapl"},
)
SYMBOL_LIMIT = Route(
    "tiingo",
    "/tiingo/daily/AAPL/prices",
    "tiingo/daily_prices_monthly_symbol_limit_http200.txt",
    content_type="text/plain",
)
NOT_FOUND = Route(
    "yahoo",
    "/v10/finance/quoteSummary/QQQ,",
    "yahoo/quoteSummary_v10_not_found_404.json",
    status=404,
)
ROUTES = [QUOTE, QUOTES, SYMBOL_LIMIT, NOT_FOUND]


@pytest.fixture
async def server(fixtures_dir: Path) -> AsyncIterator[ReplayServer]:
    async with open_replay_server(ROUTES, fixtures_dir) as server:
        yield server


@pytest.fixture
async def client(server: ReplayServer) -> AsyncIterator[httpx.AsyncClient]:
    # The timeout is each request's deadline: no test waits forever.
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client


def _served(response: httpx.Response) -> tuple[int, str, bytes]:
    return response.status_code, response.headers["content-type"], response.content


@pytest.mark.parametrize(
    ("url", "route"),
    [
        ("/tiingo/iex/AAPL", QUOTE),
        ("/yahoo/v10/finance/quoteSummary/QQQ%2C?modules=assetProfile", NOT_FOUND),
        ("/tiingo/tiingo/daily/AAPL/prices?token=0000", SYMBOL_LIMIT),
    ],
)
async def test_serves_the_recorded_bytes_status_and_content_type(
    client: httpx.AsyncClient, fixtures_dir: Path, url: str, route: Route
) -> None:
    """A matched request gets the recording verbatim, as the route says."""
    recorded = (fixtures_dir / route.file).read_bytes()

    response = await client.get(url)

    expected = (route.status, route.content_type, recorded, str(len(recorded)))
    actual = (*_served(response), response.headers["content-length"])
    assert expected == actual


async def test_query_values_match_as_case_insensitive_sets(
    client: httpx.AsyncClient, fixtures_dir: Path
) -> None:
    """Required query values match in any order and case, among other items."""
    recorded = (fixtures_dir / QUOTES.file).read_bytes()

    response = await client.get("/tiingo/iex/?token=0000&tickers=AAPL,Msft")

    assert (200, recorded) == (response.status_code, response.content)


@pytest.mark.parametrize(
    "url",
    [
        "/tiingo/iex/?tickers=msft",
        "/tiingo/iex/?tickers=msft,aapl,ibm",
        "/tiingo/iex/",
        "/tiingo/iex/aapl",
        "/yahoo/iex/AAPL",
    ],
)
async def test_a_request_that_matches_no_route_gets_404(
    client: httpx.AsyncClient, server: ReplayServer, url: str
) -> None:
    """A request no route matches gets 404 and counts as unmatched."""
    response = await client.get(url)

    expected = (404, "text/plain; charset=utf-8", 1)
    actual = (
        response.status_code,
        response.headers["content-type"],
        server.statistics().unmatched,
    )
    assert expected == actual


async def test_the_404_body_names_what_was_asked_for_but_no_secret(
    client: httpx.AsyncClient,
) -> None:
    """The 404 body gives provider, path and query, a token's value hidden."""
    response = await client.get("/tiingo/iex/?tickers=msft,ibm&token=secret-key")

    expected = "no recording for tiingo /iex/?tickers=msft,ibm&token=***"
    assert expected == response.text


async def test_the_method_must_match(client: httpx.AsyncClient) -> None:
    """A route answers only its method."""
    response = await client.post("/tiingo/iex/AAPL")

    expected = 404
    assert expected == response.status_code


async def test_the_route_with_more_query_items_wins(fixtures_dir: Path) -> None:
    """Of two routes that match, the one requiring more query items answers."""
    general = attrs.evolve(QUOTE, file=SYMBOL_LIMIT.file)
    specific = attrs.evolve(QUOTE, query={"format": "json"})
    recorded = (fixtures_dir / QUOTE.file).read_bytes()

    async with (
        open_replay_server([general, specific], fixtures_dir) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        response = await client.get("/tiingo/iex/AAPL?format=JSON")

    assert recorded == response.content


async def test_requests_are_recorded_with_their_query(
    client: httpx.AsyncClient, server: ReplayServer
) -> None:
    """Every provider request is listed, so tests can count provider calls."""
    await client.get("/tiingo/iex/AAPL?token=abc&token=secret-key")
    await client.get("/yahoo/v7/finance/quote%20x")

    expected = [
        ReplayRequest("tiingo", "GET", "/iex/AAPL", {"token": "secret-key"}),
        ReplayRequest("yahoo", "GET", "/v7/finance/quote x", {}),
    ]
    assert expected == server.requests


def test_a_request_record_does_not_show_query_values() -> None:
    """Query values may be API keys, so the record's repr leaves them out."""
    request = ReplayRequest("tiingo", "GET", "/iex/AAPL", {"token": "secret-key"})

    shown = repr(request)

    assert ("token" in shown, "secret-key" in shown) == (True, False)


async def test_a_keep_alive_connection_carries_many_requests(
    client: httpx.AsyncClient, server: ReplayServer
) -> None:
    """Requests one after another share one pooled connection."""
    for _ in range(3):
        await client.get("/tiingo/iex/AAPL")
    await trio.testing.wait_all_tasks_blocked()

    statistics = server.statistics()

    expected = (3, 1)
    assert expected == (statistics.requests_served, statistics.connections_open)


async def test_a_latency_fault_delays_the_recording(
    autojump_clock: trio.testing.MockClock,
    client: httpx.AsyncClient,
    server: ReplayServer,
    fixtures_dir: Path,
) -> None:
    """A latency fault waits its seconds, then serves the recording."""
    server.inject("tiingo", Fault.latency(30))
    recorded = (fixtures_dir / QUOTE.file).read_bytes()
    started = trio.current_time()

    with trio.fail_after(45):
        response = await client.get("/tiingo/iex/AAPL", timeout=40)

    waited = trio.current_time() - started
    expected: tuple[object, ...] = (200, recorded, pytest.approx(30))
    assert expected == (response.status_code, response.content, waited)


async def test_a_status_fault_answers_its_status(
    client: httpx.AsyncClient, server: ReplayServer
) -> None:
    """A status fault answers its status with a short text, for its provider."""
    server.inject("tiingo", Fault.status_code(503))

    faulted = await client.get("/tiingo/iex/AAPL")
    other = await client.get("/yahoo/v10/finance/quoteSummary/QQQ,")

    expected = (503, "text/plain; charset=utf-8", 404, 1)
    actual = (
        faulted.status_code,
        faulted.headers["content-type"],
        other.status_code,
        server.statistics().faults_applied,
    )
    assert expected == actual


async def test_a_rate_limit_fault_answers_429_with_retry_after(
    client: httpx.AsyncClient, server: ReplayServer
) -> None:
    """A rate-limit fault answers 429 and says when to come back."""
    server.inject("tiingo", Fault.rate_limit(retry_after="30"))

    response = await client.get("/tiingo/iex/AAPL")

    expected = (429, "30")
    assert expected == (response.status_code, response.headers["retry-after"])


async def test_a_hang_fault_never_answers(
    autojump_clock: trio.testing.MockClock,
    client: httpx.AsyncClient,
    server: ReplayServer,
) -> None:
    """A hung request times out, and the server lets go when the client does."""
    server.inject("tiingo", Fault.hang())

    with trio.fail_after(60), pytest.raises(httpx.ReadTimeout):
        await client.get("/tiingo/iex/AAPL", timeout=30)
    await trio.testing.wait_all_tasks_blocked()

    expected = 0
    assert expected == server.statistics().connections_open


async def test_a_drop_fault_closes_the_connection_without_answer(
    client: httpx.AsyncClient, server: ReplayServer
) -> None:
    """A dropped request is a transport error; the server serves on."""
    server.inject("tiingo", Fault.drop(), path="/iex/AAPL")

    with pytest.raises(httpx.RemoteProtocolError, match="without sending"):
        await client.get("/tiingo/iex/AAPL")
    after = await client.get("/tiingo/tiingo/daily/AAPL/prices")

    expected = 200
    assert expected == after.status_code


async def test_a_fault_for_a_path_spares_other_paths(
    client: httpx.AsyncClient, server: ReplayServer
) -> None:
    """A fault injected for one path leaves the provider's other paths alone."""
    server.inject("tiingo", Fault.status_code(500), path="/iex/AAPL")

    faulted = await client.get("/tiingo/iex/AAPL")
    spared = await client.get("/tiingo/tiingo/daily/AAPL/prices")

    expected = (500, 200)
    assert expected == (faulted.status_code, spared.status_code)


async def test_a_fault_for_every_provider_and_its_clearing(
    client: httpx.AsyncClient, server: ReplayServer
) -> None:
    """A fault for "*" reaches every provider until the faults are cleared."""
    server.inject("*", Fault.status_code(502))

    tiingo = await client.get("/tiingo/iex/AAPL")
    yahoo = await client.get("/yahoo/v10/finance/quoteSummary/QQQ,")
    server.clear_faults()
    cleared = await client.get("/tiingo/iex/AAPL")

    expected = (502, 502, 200)
    assert expected == (tiingo.status_code, yahoo.status_code, cleared.status_code)


async def test_faults_can_be_set_and_cleared_from_outside(
    client: httpx.AsyncClient,
) -> None:
    """The control endpoint sets a fault, as another process would, and clears it."""
    fault = {
        "provider": "tiingo",
        "path": None,
        "kind": "status",
        "status": 503,
        "seconds": 0,
        "retry_after": None,
    }

    set_answer = await client.post("/_replay/faults", json=fault)
    faulted = await client.get("/tiingo/iex/AAPL")
    clear_answer = await client.delete("/_replay/faults")
    cleared = await client.get("/tiingo/iex/AAPL")

    expected = (200, 503, 200, 200)
    actual = (
        set_answer.status_code,
        faulted.status_code,
        clear_answer.status_code,
        cleared.status_code,
    )
    assert expected == actual


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"provider": "tiingo", "kind": "explode"}, "kind"),
        ({"provider": "tiingo", "kind": "latency", "seconds": "2"}, "seconds"),
        ({"provider": "tiingo", "kind": "status", "status": 99}, "status"),
        ({"provider": "tiingo", "kind": "hang", "colour": "red"}, "colour"),
        ({"kind": "drop"}, "provider"),
        ({"provider": "tiingo", "kind": "drop", "path": "iex"}, "path"),
    ],
)
async def test_a_bad_control_request_is_refused_naming_the_field(
    client: httpx.AsyncClient, server: ReplayServer, body: object, named: str
) -> None:
    """A malformed fault is refused with 400, and no fault is set."""
    response = await client.post("/_replay/faults", json=body)
    after = await client.get("/tiingo/iex/AAPL")

    expected = (400, True, 200)
    actual = (response.status_code, response.text.startswith(named), after.status_code)
    assert expected == actual


async def test_a_malformed_request_gets_400_and_the_server_serves_on(
    client: httpx.AsyncClient, server: ReplayServer
) -> None:
    """Garbage and abandoned requests neither crash the server nor stop it."""
    host, port = server.url.removeprefix("http://").split(":")
    async with await trio.open_tcp_stream(host, int(port)) as abandoned:
        await abandoned.send_all(b"GET /tiingo/iex/AAPL HTTP/1.1\r\nHost: x")
    async with await trio.open_tcp_stream(host, int(port)) as garbage:
        await garbage.send_all(b"NOT HTTP AT ALL\r\n\r\n")
        refused = await garbage.receive_some(1024)

    after = await client.get("/tiingo/iex/AAPL")

    expected = (b"HTTP/1.1 400 ", 200)
    assert expected == (refused[:13], after.status_code)


async def test_leaving_the_block_ends_hung_requests(fixtures_dir: Path) -> None:
    """Closing the server ends a hung request at once, as a transport error."""
    failures: list[type[Exception]] = []

    async def hang_on(client: httpx.AsyncClient, url: str) -> None:
        try:
            await client.get(url)
        except httpx.TransportError as exc:
            failures.append(type(exc))

    with trio.fail_after(10):
        # Left in reverse order: the server closes while the client waits.
        async with (
            httpx.AsyncClient(timeout=None) as client,
            trio.open_nursery() as nursery,
            open_replay_server(ROUTES, fixtures_dir) as server,
        ):
            server.inject("*", Fault.hang())
            # The client outlives the server on purpose.
            url = f"{server.url}/tiingo/iex/AAPL"
            nursery.start_soon(hang_on, client, url)  # noqa: ASYNC111
            await trio.testing.wait_all_tasks_blocked()

    assert [httpx.RemoteProtocolError] == failures


async def test_a_missing_fixture_file_fails_at_start(tmp_path: Path) -> None:
    """A route whose file does not exist stops the server before it serves."""
    with pytest.raises(FileNotFoundError):
        async with open_replay_server([QUOTE], tmp_path):
            pass


def test_base_url_puts_the_provider_under_the_server() -> None:
    """A provider's base URL is the server's URL and the provider's name."""
    server = ReplayServer("http://127.0.0.1:8000", [], {})

    expected = "http://127.0.0.1:8000/tiingo"
    assert expected == server.base_url("tiingo")


def test_routes_load_from_toml(tmp_path: Path) -> None:
    """A route file gives the routes it lists, in order, with defaults."""
    path = tmp_path / "routes.toml"
    path.write_text(
        """
        [[routes]]
        provider = "tiingo"
        path = "/iex/AAPL"
        file = "tiingo/iex_quote_AAPL_market_hours.json"

        [[routes]]
        provider = "yahoo"
        path = "/v10/finance/quoteSummary/QQQ,"
        file = "yahoo/quoteSummary_v10_not_found_404.json"
        status = 429
        content_type = "application/json;charset=utf-8"
        method = "POST"
        query = { modules = "assetProfile" }
        headers = { Retry-After = "30" }
        """
    )

    routes = load_routes(path)

    expected = [
        QUOTE,
        Route(
            "yahoo",
            "/v10/finance/quoteSummary/QQQ,",
            "yahoo/quoteSummary_v10_not_found_404.json",
            status=429,
            content_type="application/json;charset=utf-8",
            method="POST",
            query={"modules": "assetProfile"},
            headers={"Retry-After": "30"},
        ),
    ]
    assert expected == routes


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("status", '"ok"', "routes[1].status: expected an integer, got 'ok'"),
        ("status", "42", "routes[1].status: expected 200 to 599, got 42"),
        ("colour", "1", "routes[1].colour: unknown field"),
        ("path", '"iex/AAPL"', "routes[1].path: must start with '/'"),
        ("path", '"/iex?t=AAPL"', "routes[1].path: must not hold a query"),
        ("method", '"get"', "routes[1].method: not an HTTP method"),
        ("file", '"/etc/passwd"', "routes[1].file: must be relative"),
        ("provider", '"_replay"', "routes[1].provider: not a usable provider"),
        ("query", "{ pageSize = 1 }", "routes[1].query.pageSize: expected strings"),
        ("headers", '{ Content-Length = "9" }', "routes[1].headers.Content-Length"),
    ],
)
def test_a_bad_route_file_names_the_route_and_field(
    tmp_path: Path, field: str, value: str, message: str
) -> None:
    """A bad route fails with a ConfigError naming its index and field."""
    good = {"provider": '"tiingo"', "path": '"/iex/AAPL"', "file": '"a.json"'}
    bad = {**good, field: value}
    path = tmp_path / "routes.toml"
    path.write_text(f"[[routes]]\n{_toml_lines(good)}\n[[routes]]\n{_toml_lines(bad)}")

    with pytest.raises(ConfigError) as raised:
        load_routes(path)

    assert message in str(raised.value)


def _toml_lines(table: dict[str, str]) -> str:
    return "".join(f"{key} = {value}\n" for key, value in table.items())


def test_a_route_without_a_file_is_refused(tmp_path: Path) -> None:
    """A route missing a required field is named in the error."""
    path = tmp_path / "routes.toml"
    path.write_text('[[routes]]\nprovider = "tiingo"\npath = "/iex/AAPL"\n')

    with pytest.raises(ConfigError, match=r"routes\[0\]\.file: missing"):
        load_routes(path)


async def test_a_route_file_with_recordings_serves_beside_fixture_routes(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    """Routes with their own recordings and fixture routes share one server."""
    recorded = "tiingo/daily_prices_unknown_ticker_404.json"
    body = (fixtures_dir / recorded).read_bytes()
    (tmp_path / "plugin" / "recordings" / "tiingo").mkdir(parents=True)
    (tmp_path / "plugin" / "recordings" / recorded).write_bytes(body)
    route_file = tmp_path / "plugin" / "routes.toml"
    route_file.write_text(
        'recordings = "recordings"\n'
        "[[routes]]\n"
        'provider = "shipped"\n'
        'path = "/tiingo/daily/BADTICKER/prices"\n'
        f'file = "{recorded}"\n'
        "status = 404\n"
    )
    routes = [QUOTE, *load_routes(route_file)]

    with trio.fail_after(10):
        async with (
            open_replay_server(routes, fixtures_dir) as server,
            httpx.AsyncClient(base_url=server.url) as client,
        ):
            shipped = await client.get("/shipped/tiingo/daily/BADTICKER/prices")
            quote = await client.get("/tiingo/iex/AAPL")

    expected = [
        (404, body),
        (200, (fixtures_dir / QUOTE.file).read_bytes()),
    ]
    assert expected == [
        (shipped.status_code, shipped.content),
        (quote.status_code, quote.content),
    ]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("1", "recordings: expected a folder name, got 1"),
        ('""', "recordings: expected a folder name, got ''"),
        ('"missing"', "recordings: not a folder"),
        ('"routes.toml"', "recordings: not a folder"),
    ],
)
def test_a_bad_recordings_folder_names_the_key_and_file(
    tmp_path: Path, value: str, problem: str
) -> None:
    """A recordings value that is no folder fails naming the key and file."""
    path = tmp_path / "routes.toml"
    good = {"provider": '"tiingo"', "path": '"/iex/AAPL"', "file": '"a.json"'}
    path.write_text(f"recordings = {value}\n[[routes]]\n{_toml_lines(good)}")

    with pytest.raises(ConfigError) as raised:
        load_routes(path)

    message = str(raised.value)
    assert (True, True) == (message.startswith(f"{path}: "), problem in message)


def test_the_fixtures_folder_can_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DSO_FIXTURES names the fixtures folder."""
    monkeypatch.setenv("DSO_FIXTURES", str(tmp_path))

    assert tmp_path == find_fixtures_dir()


def test_an_explicit_fixtures_folder_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder passed in wins over DSO_FIXTURES."""
    monkeypatch.setenv("DSO_FIXTURES", str(tmp_path / "elsewhere"))

    assert tmp_path == find_fixtures_dir(tmp_path)


def test_a_missing_explicit_fixtures_folder_is_an_error(tmp_path: Path) -> None:
    """A named folder that does not exist is reported, not skipped."""
    with pytest.raises(FileNotFoundError, match="not a folder of fixtures"):
        find_fixtures_dir(tmp_path / "missing")


def test_the_fixtures_folder_is_found_beside_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a setting, shared/fixtures beside an ancestor is found."""
    fixtures = tmp_path / "shared" / "fixtures"
    fixtures.mkdir(parents=True)
    (fixtures / "SOURCES.md").write_text("# sources\n")
    unmarked = tmp_path / "p" / "shared" / "fixtures"
    unmarked.mkdir(parents=True)
    checkout = tmp_path / "p" / "tests"
    checkout.mkdir()
    monkeypatch.delenv("DSO_FIXTURES", raising=False)
    monkeypatch.chdir(checkout)

    assert fixtures == find_fixtures_dir()


def test_the_public_names_are_listed_and_sorted() -> None:
    """__all__ lists every public name of dso.testing, sorted."""
    public = {name for name in vars(dso.testing) if not name.startswith("_")}
    lazy = {name for name in dso.testing._LAZY if getattr(dso.testing, name)}

    assert sorted(public | lazy) == dso.testing.__all__


def test_faults_from_the_constructors() -> None:
    """The constructors make the faults their names say."""
    expected = [
        Fault("latency", seconds=2.5),
        Fault("status", status=500),
        Fault("rate_limit", status=429, retry_after="30"),
        Fault("hang"),
        Fault("drop"),
    ]

    actual = [
        Fault.latency(2.5),
        Fault.status_code(500),
        Fault.rate_limit(retry_after="30"),
        Fault.hang(),
        Fault.drop(),
    ]

    assert expected == actual
