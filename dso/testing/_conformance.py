"""The conformance kit: a ready test suite for any provider package.

A provider package subclasses `ProviderConformance` in one of its test
modules, says how to build its provider and which recordings to serve,
and pytest collects the inherited rules as that class's tests. Every rule
talks to the provider over real loopback sockets, through the replay
server, with faults injected as each rule needs.

This module imports pytest only inside the rules, so that `dso.testing`
stays importable where pytest is not installed (``dso replay`` uses it).
"""

from __future__ import annotations

import inspect
import logging
import os
import types
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import httpx
import trio
import trio.testing

from .._config import ProviderSettings
from .._errors import ErrorCode, ProviderError
from .._provider import BatchProvider, Provider, ProviderContext
from ._faults import Fault
from ._fixtures import find_fixtures_dir
from ._replay import ReplayServer, open_replay_server
from ._routes import Route, load_routes


if TYPE_CHECKING:
    import pytest


API_KEY = "dso-conformance-SECRET-4f1c9a"
"""The API key every rule configures; it must never be shown anywhere."""

DEFAULT_STATUS_CODES: Mapping[int, ErrorCode] = types.MappingProxyType(
    {
        401: ErrorCode.AUTH,
        403: ErrorCode.AUTH,
        404: ErrorCode.NOT_FOUND,
        429: ErrorCode.RATE_LIMIT,
        500: ErrorCode.UNAVAILABLE,
        502: ErrorCode.UNAVAILABLE,
        503: ErrorCode.UNAVAILABLE,
    }
)
"""The code each HTTP status must become, unless a kit says otherwise."""

RULE_DEADLINE = 60.0
"""Seconds (on the autojump clock) a rule may take before it fails."""

CLIENT_TIMEOUT = 5.0
"""The HTTP client's timeout in the rule about client timeouts."""

CALL_DEADLINE = 10.0
"""Seconds from the start of a call to its deadline in the deadline rule."""

# The HTTP client's own request log shows each URL as sent, and some APIs
# take their key in the query string; that is the application's logging
# policy to set, not something a provider can change.
_CLIENT_LOGGERS = ("httpx", "httpcore")

_REQUIRED = ("replay_provider", "routes", "good_keys", "missing_key")

_SECRET_SCENARIOS = (
    "success",
    "not-found",
    "http-401",
    "http-429",
    "http-503",
    "dropped",
    "refused",
    "client-timeout",
)


class ProviderConformance:
    """The conformance suite; subclass it as ``Test...`` to run it.

    Set the class attributes below; pytest then runs every rule as a test
    of the subclass. The ``dso`` pytest plugin (installed with dso) marks
    the rules as trio tests, so they run whether or not the project sets
    ``trio_mode``; they need pytest-trio.

    Required attributes:
        factory: Builds the provider from its `ProviderSettings` (a
            class or a function; or override `make_provider`).
        replay_provider: The ``provider`` of the recordings' routes: the
            first path segment of the base URL the provider is given.
        routes: Route files (TOML) or `Route` objects.
        good_keys: Keys whose recordings hold data.
        missing_key: A key the provider must answer with NOT_FOUND (with a
            recording of the API's answer, or none: the replay server then
            answers 404).

    Optional attributes:
        batch_keys: Keys with a recorded batch answer, for providers with
            ``fetch_batch``; *good_keys* when not set. A batch of them
            plus *missing_key* must be recorded too.
        fixtures_dir: The folder the routes' relative files are relative
            to; `find_fixtures_dir` when not set. Not needed when every
            route file sets ``recordings`` (see `load_routes`).
        options: The provider's ``options`` setting.
        namespace: The namespace the calls are made for.
        needs_api_key: Whether the provider refuses to call without a key;
            if so, a call without one must be AUTH and reach no server.
        value_type: The type every value must have.
        status_codes: The code each injected HTTP status must become;
            extend the default with ``{**ProviderConformance.status_codes,
            403: ErrorCode.RATE_LIMIT}`` for an API whose statuses differ.
        api_key: The API key the provider is configured with; no error,
            repr or log record may show it.
    """

    factory: ClassVar[Callable[[ProviderSettings], Provider]]
    replay_provider: ClassVar[str]
    routes: ClassVar[Sequence[str | os.PathLike[str] | Route]]
    good_keys: ClassVar[Sequence[str]]
    missing_key: ClassVar[str]

    batch_keys: ClassVar[Sequence[str] | None] = None
    fixtures_dir: ClassVar[str | os.PathLike[str] | None] = None
    options: ClassVar[Mapping[str, Any]] = types.MappingProxyType({})
    namespace: ClassVar[str] = "conformance"
    needs_api_key: ClassVar[bool] = False
    value_type: ClassVar[type | None] = None
    status_codes: ClassVar[Mapping[int, ErrorCode]] = DEFAULT_STATUS_CODES
    api_key: ClassVar[str] = API_KEY

    def make_provider(self, settings: ProviderSettings) -> Provider:
        """Return the provider under test, built from *settings*."""
        return type(self).factory(settings)

    def key_of(self, value: Any) -> str | None:
        """Return the key *value* is the answer for, or ``None`` if unknown.

        Override it so that the kit can check that every value belongs to
        the key it was returned for; keys compare without regard to case.
        """
        return None

    @property
    def provider_name(self) -> str:
        """The name the provider is configured with."""
        return f"conformance-{self.replay_provider}"

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize the rules by this kit's statuses and scenarios."""
        if "status" in metafunc.fixturenames:
            statuses = sorted(self.status_codes.items())
            metafunc.parametrize(
                ("status", "code"),
                statuses,
                ids=[f"{status}-{code.name}" for status, code in statuses],
            )

        if "scenario" in metafunc.fixturenames:
            metafunc.parametrize("scenario", _SECRET_SCENARIOS)

        if "cancel_by" in metafunc.fixturenames:
            metafunc.parametrize("cancel_by", ["deadline", "cancel"])

    def skip_reason(self, rule: str) -> str | None:
        """Return why *rule* does not apply to this provider, if it does not.

        The ``dso`` pytest plugin skips such rules when it collects them.
        """
        if rule == "test_missing_api_key_is_auth_without_a_call":
            return None if self.needs_api_key else "needs_api_key is not set"

        if rule.startswith("test_batch_") and rule != "test_batch_size_is_sane":
            provider = self.make_provider(self._settings("http://127.0.0.1:9"))
            if not isinstance(provider, BatchProvider):
                return "the provider has no fetch_batch"

        return None

    # The protocol.

    async def test_name_is_the_configured_name(self) -> None:
        """The provider is named as configured: results and config agree."""
        provider = self.make_provider(self._settings("http://127.0.0.1:9"))

        name = getattr(provider, "name", None)

        _require(
            name == self.provider_name,
            f"`name` should be the configured name {self.provider_name!r}, "
            f"got {name!r}",
        )

    async def test_methods_are_coroutines(self) -> None:
        """``fetch``, and ``fetch_batch``/``health_check`` if any, are async."""
        provider = self.make_provider(self._settings("http://127.0.0.1:9"))

        for method in ("fetch", "fetch_batch", "health_check"):
            found = getattr(provider, method, None)
            if found is None and method != "fetch":
                continue

            _require(
                inspect.iscoroutinefunction(found),
                f"`{method}` should be an `async def` method, got {found!r}",
            )

    async def test_batch_size_is_sane(self) -> None:
        """A batching provider has a whole ``max_batch_size`` of 1 or more."""
        provider = self.make_provider(self._settings("http://127.0.0.1:9"))

        batches = hasattr(provider, "fetch_batch")
        size = getattr(provider, "max_batch_size", None)

        if not batches:
            _require(
                size is None,
                "`max_batch_size` is set but there is no `fetch_batch`",
            )
            return

        _require(
            isinstance(size, int) and not isinstance(size, bool) and size >= 1,
            f"`max_batch_size` should be a whole number >= 1, got {size!r}",
        )

    # Answers.

    async def test_good_keys_are_fetched(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """Every good key gets a value, which belongs to that key."""
        async with self._open_bench() as bench:
            values = {key: await bench.fetch(key) for key in self.good_keys}

        for key, value in values.items():
            self._require_value_for(key, value, "fetch")

    async def test_missing_key_is_not_found(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A key the API does not know is NOT_FOUND, not a value or a crash."""
        async with self._open_bench() as bench:
            error = await bench.fetch_error(self.missing_key)

        _require_code(ErrorCode.NOT_FOUND, error, f"fetching {self.missing_key!r}")

    # HTTP errors and transport failures.

    async def test_status_maps_to_code(
        self, autojump_clock: trio.testing.MockClock, status: int, code: ErrorCode
    ) -> None:
        """Each HTTP error status becomes the code it means."""
        async with self._open_bench() as bench:
            bench.server.inject(self.replay_provider, Fault.status_code(status))
            error = await bench.fetch_error(self.good_keys[0])

        _require_code(code, error, f"an HTTP {status} answer")

    # TODO: the HTTP-date form of Retry-After is not checked: it counts from
    # wall time, which the autojump clock does not move, so the seconds to
    # expect would depend on how long the rule took.
    async def test_retry_after_is_kept(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A 429 with ``Retry-After: 30`` is RATE_LIMIT with ``retry_after=30``."""
        async with self._open_bench() as bench:
            bench.server.inject(self.replay_provider, Fault.rate_limit("30"))
            error = await bench.fetch_error(self.good_keys[0])

        _require_code(ErrorCode.RATE_LIMIT, error, "a 429 with Retry-After: 30")
        _require(
            error.retry_after == 30.0,
            f"a 429 with Retry-After: 30 should give retry_after=30.0, "
            f"got {error.retry_after!r}",
        )

    async def test_refused_connection_is_unavailable(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A refused connection is UNAVAILABLE."""
        base_url = f"{await _refusing_url()}/{self.replay_provider}"
        async with self._open_bench(base_url=base_url) as bench:
            error = await bench.fetch_error(self.good_keys[0])

        _require_code(ErrorCode.UNAVAILABLE, error, "a refused connection")

    async def test_dropped_connection_is_unavailable(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A connection closed without an answer is UNAVAILABLE."""
        async with self._open_bench() as bench:
            bench.server.inject(self.replay_provider, Fault.drop())
            error = await bench.fetch_error(self.good_keys[0])

        _require_code(ErrorCode.UNAVAILABLE, error, "a dropped connection")

    async def test_client_timeout_is_timeout(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A server that never answers is TIMEOUT once the HTTP client gives up."""
        async with self._open_bench(timeout=CLIENT_TIMEOUT) as bench:
            bench.server.inject(self.replay_provider, Fault.hang())
            error = await bench.fetch_error(self.good_keys[0])

        _require_code(ErrorCode.TIMEOUT, error, "the HTTP client's timeout")

    # Cancellation.

    async def test_cancellation_is_not_swallowed(
        self, autojump_clock: trio.testing.MockClock, cancel_by: str
    ) -> None:
        """A call cancelled by its deadline or its caller raises Cancelled.

        At the deadline a provider that watches ``ctx.deadline`` itself may
        raise TIMEOUT instead: the orchestrator records the same.
        """
        async with self._open_bench() as bench:
            bench.server.inject(self.replay_provider, Fault.hang())
            outcome = await bench.fetch_cancelled(self.good_keys[0], cancel_by)

        allowed = {"cancelled"}
        if cancel_by == "deadline":
            allowed.add("raised TIMEOUT")

        _require(
            outcome in allowed,
            f"a call cancelled by its {cancel_by} should let trio.Cancelled "
            f"through, but it {outcome}",
        )

    # Secrets.

    async def test_secret_stays_out_of_errors_and_logs(
        self,
        autojump_clock: trio.testing.MockClock,
        caplog: pytest.LogCaptureFixture,
        scenario: str,
    ) -> None:
        """The API key is in no error, cause, repr or log record."""
        caplog.set_level(logging.DEBUG)
        async with self._open_scenario(scenario) as bench:
            error = await bench.fetch_outcome(self.good_keys[0], self.missing_key)

        shown = [repr(bench.provider), str(bench.provider)]
        shown += _shown_by_error(error)
        shown += [
            _shown_by_record(record)
            for record in caplog.records
            if not record.name.startswith(_CLIENT_LOGGERS)
        ]
        leaks = [text for text in shown if self.api_key in text]
        _require(not leaks, f"the API key shows ({scenario}): {_excerpts(leaks)}")

    async def test_missing_api_key_is_auth_without_a_call(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """Without a key, a provider that needs one is AUTH and calls no one."""
        async with self._open_bench(with_key=False) as bench:
            error = await bench.fetch_error(self.good_keys[0])
            sent = bench.server.statistics().requests_served

        _require_code(ErrorCode.AUTH, error, "a call without an API key")
        _require(sent == 0, f"a call without an API key sent {sent} request(s)")

    # Batches.

    async def test_batch_is_matched_by_key(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A batch's values are matched by key, whatever the order asked."""
        keys = self._batch_keys()
        async with self._open_bench() as bench:
            forward = await bench.fetch_batch(keys)
            backward = await bench.fetch_batch(keys[::-1])

        self._require_batch(keys, forward)
        _require(
            forward == backward,
            f"asking for {keys[::-1]} instead of {keys} changed the answers: "
            f"values are matched by position, not by key",
        )

    async def test_batch_ignores_duplicate_keys(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A batch with a key asked twice answers as if asked once."""
        keys = self._batch_keys()
        twice = [*keys, keys[0]]
        async with self._open_bench() as bench:
            once = await bench.fetch_batch(keys)
            doubled = await bench.fetch_batch(twice)

        _require(
            once == doubled,
            f"asking for {twice} should answer as {keys} does, got "
            f"{sorted(doubled)} instead of {sorted(once)}",
        )

    async def test_batch_leaves_out_missing_keys(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A key the API does not know is absent from the batch, not an error."""
        keys = [*self._batch_keys(), self.missing_key]
        async with self._open_bench() as bench:
            found = await bench.fetch_batch(keys)

        _require(
            self.missing_key not in found,
            f"the batch answered the missing key {self.missing_key!r} with "
            f"{found.get(self.missing_key)!r}; leave it out",
        )
        self._require_batch(keys[:-1], found)

    async def test_batch_failure_fails_the_whole_call(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A batch the API refuses raises, rather than answering nothing."""
        keys = self._batch_keys()
        async with self._open_bench() as bench:
            bench.server.inject(self.replay_provider, Fault.status_code(503))
            error = await bench.fetch_batch_error(keys)

        _require_code(ErrorCode.UNAVAILABLE, error, "a batch answered HTTP 503")

    # Helpers of the rules.

    def _settings(self, base_url: str, *, with_key: bool = True) -> ProviderSettings:
        return ProviderSettings(
            name=self.provider_name,
            type=self.replay_provider,
            base_url=base_url,
            api_key=self.api_key if with_key else None,
            options=dict(self.options),
        )

    def _batch_keys(self) -> list[str]:
        return list(self.batch_keys or self.good_keys)

    def _require_value_for(self, key: str, value: object, how: str) -> None:
        _require(value is not None, f"{how} returned None for {key!r}")
        if self.value_type is not None:
            _require(
                isinstance(value, self.value_type),
                f"{how} returned a {type(value).__name__} for {key!r}, "
                f"expected a {self.value_type.__name__}",
            )

        owner = self.key_of(value)
        _require(
            owner is None or str(owner).casefold() == key.casefold(),
            f"{how} returned the value of {owner!r} for {key!r}",
        )

    def _require_batch(self, keys: Sequence[str], found: Mapping[str, object]) -> None:
        extra = sorted(set(found) - set(keys))
        _require(not extra, f"a batch of {list(keys)} answered other keys: {extra}")
        for key in keys:
            _require(key in found, f"a batch of {list(keys)} left out {key!r}")
            self._require_value_for(key, found[key], "fetch_batch")

    @asynccontextmanager
    async def _open_bench(
        self,
        *,
        base_url: str | None = None,
        with_key: bool = True,
        timeout: float | None = None,
    ) -> AsyncIterator[_Bench]:
        routes = _load(self.routes)
        # A plugin that ships its recordings has no fixtures folder nearby.
        relative = any(not os.path.isabs(route.file) for route in routes)
        fixtures = find_fixtures_dir(self.fixtures_dir) if relative else os.curdir
        # The server reads its files in a worker thread, and the autojump
        # clock jumps while it waits: the deadline starts once it listens.
        async with (
            open_replay_server(routes, fixtures) as server,
            httpx.AsyncClient(timeout=timeout) as http,
        ):
            url = base_url or server.base_url(self.replay_provider)
            settings = self._settings(url, with_key=with_key)
            provider = self.make_provider(settings)
            ctx = ProviderContext(http, settings, self.namespace)
            # The caller's block runs inside this scope, after the yield.
            with trio.fail_after(RULE_DEADLINE):  # noqa: ASYNC100
                yield _Bench(server, http, provider, ctx)

    @asynccontextmanager
    async def _open_scenario(self, scenario: str) -> AsyncIterator[_Bench]:
        faults = {
            "http-401": Fault.status_code(401),
            "http-429": Fault.rate_limit("30"),
            "http-503": Fault.status_code(503),
            "dropped": Fault.drop(),
            "client-timeout": Fault.hang(),
        }
        base_url = None
        if scenario == "refused":
            base_url = f"{await _refusing_url()}/{self.replay_provider}"

        timeout = CLIENT_TIMEOUT if scenario == "client-timeout" else None
        async with self._open_bench(base_url=base_url, timeout=timeout) as bench:
            fault = faults.get(scenario)
            if fault is not None:
                bench.server.inject(self.replay_provider, fault)

            bench.missing = scenario == "not-found"
            yield bench


@attrs.define
class _Bench:
    """A provider under test, wired to a running replay server."""

    server: ReplayServer
    http: httpx.AsyncClient
    provider: Provider
    ctx: ProviderContext
    missing: bool = False

    async def fetch(self, key: str) -> object:
        return await self.provider.fetch(key, self.ctx)

    async def fetch_error(self, key: str) -> ProviderError:
        try:
            value = await self.provider.fetch(key, self.ctx)
        except ProviderError as exc:
            return exc

        raise AssertionError(
            f"fetching {key!r} should fail, but returned {_short(value)}"
        )

    async def fetch_outcome(self, key: str, missing_key: str) -> BaseException | None:
        try:
            await self.provider.fetch(missing_key if self.missing else key, self.ctx)
        except Exception as exc:
            return exc

        return None

    async def fetch_batch(self, keys: Sequence[str]) -> Mapping[str, object]:
        assert isinstance(self.provider, BatchProvider)
        return await self.provider.fetch_batch(keys, self.ctx)

    async def fetch_batch_error(self, keys: Sequence[str]) -> ProviderError:
        try:
            found = await self.fetch_batch(keys)
        except ProviderError as exc:
            return exc

        raise AssertionError(
            f"a failed batch of {list(keys)} should raise, but returned {_short(found)}"
        )

    async def fetch_cancelled(self, key: str, cancel_by: str) -> str:
        """Return how a call cancelled while the server hangs ended."""
        deadline = trio.current_time() + CALL_DEADLINE
        self.ctx = attrs.evolve(self.ctx, deadline=deadline)
        outcome = ["cancelled"]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._fetch_until, key, deadline, outcome)
            if cancel_by == "cancel":
                # Once every task waits, the request is at the hanging server.
                await trio.testing.wait_all_tasks_blocked()
                nursery.cancel_scope.cancel()

        return outcome[0]

    async def _fetch_until(self, key: str, deadline: float, outcome: list[str]) -> None:
        with trio.move_on_at(deadline):
            try:
                await self.provider.fetch(key, self.ctx)
            except ProviderError as exc:
                outcome[0] = f"raised {exc.code.name}"
            else:
                outcome[0] = "returned a value"


async def _refusing_url() -> str:
    # A port that was free a moment ago refuses connections: nothing
    # listens there, and the kernel answers at once.
    sock = trio.socket.socket()
    with sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    return f"http://127.0.0.1:{port}"


def _load(routes: Sequence[str | os.PathLike[str] | Route]) -> list[Route]:
    loaded: list[Route] = []
    for item in routes:
        loaded += [item] if isinstance(item, Route) else load_routes(item)

    return loaded


def check_declaration(cls: type[ProviderConformance]) -> None:
    """Raise `TypeError` naming the first attribute *cls* lacks or got wrong."""
    missing = [name for name in _REQUIRED if not hasattr(cls, name)]
    overridden = cls.make_provider is not ProviderConformance.make_provider
    if not hasattr(cls, "factory") and not overridden:
        missing.insert(0, "factory")

    if missing:
        raise TypeError(f"{cls.__name__}: set `{missing[0]}` (see ProviderConformance)")

    for name in ("good_keys", "batch_keys"):
        keys = getattr(cls, name)
        if name == "batch_keys" and keys is None:
            continue

        if (
            isinstance(keys, str)
            or not keys
            or not all(isinstance(key, str) for key in keys)
        ):
            raise TypeError(
                f"{cls.__name__}.{name}: expected a non-empty sequence of keys, "
                f"got {keys!r}"
            )


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _require_code(expected: ErrorCode, error: ProviderError, what: str) -> None:
    _require(
        error.code is expected,
        f"{what} should be {expected.name}, got {error.code.name}: {error}",
    )


def _shown_by_error(error: BaseException | None) -> list[str]:
    shown = []
    for exc in _chain(error):
        shown += [str(exc), repr(exc), *(str(arg) for arg in exc.args)]
        # Notes print with every traceback of the error.
        shown += [str(note) for note in getattr(exc, "__notes__", ())]

    return shown


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _shown_by_record(record: logging.LogRecord) -> str:
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        text += " ".join(_shown_by_error(record.exc_info[1]))

    return text


def _excerpts(texts: list[str]) -> str:
    return "; ".join(_short(text) for text in texts[:3])


def _short(value: object) -> str:
    text = repr(value)
    width = 160
    return text if len(text) <= width else text[:width] + "…"
