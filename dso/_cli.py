"""The ``dso`` command: fetch, list plugins, replay, serve and show health."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import logging
import math
import os
import sys
import tomllib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import cattrs
import httpx
import trio
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from ._config import TIERED, Config
from ._demo_traffic import demo_keys, demo_traffic
from ._errors import ConfigError, DsoError
from ._ops_app import MIN_REFRESH
from ._ops_server import serve_ops
from ._ops_views import health_view, stats_view
from ._orchestrator import Orchestrator, open_orchestrator
from ._plugins import Offered, Plugins, load_plugins
from ._progress import BatchProgress
from ._redaction import redact_text, redact_url
from ._results import FetchResult


CONFIG_ENV = "DSO_CONFIG"
"""Names the configuration file when ``--config`` is not given."""

_DEFAULT_CONFIG = "dso.toml"

REPLAY_URL_PLACEHOLDER = "${REPLAY_URL}"
"""Stands for the replay server's URL in a config served with --demo-traffic."""

PROGRESS_FROM = 20
"""Batches of at least this many keys show a progress bar."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dso`` command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    # stamina logs every retry it schedules, with no detail; the table
    # lists each retry with its reason, so those lines are only noise here.
    logging.getLogger("stamina").setLevel(logging.ERROR)
    console = Console(highlight=False)
    try:
        status: int = args.run(args, console)
    except (DsoError, LookupError, ValueError, TypeError, OSError) as exc:
        console.print(Text(f"dso: {_describe(exc)}", style="red"))
        return 2
    except KeyboardInterrupt:
        return 130

    return status


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"

    return str(exc)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dso", description="Fetch data from outside APIs, the careful way."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    fetch = commands.add_parser(
        "fetch",
        help="fetch keys and print a table",
        description=(
            "Fetch KEYs through the cache and the providers. By default each "
            "key goes through the providers in order until one answers "
            "(fallback); --merge asks them all and merges the answers; "
            "--batch fetches all keys with one provider in as few calls as "
            "it allows. Stale data is served when every provider fails, "
            "unless --no-stale. Exits 0 when every key has data, 1 when some "
            "have none, 2 on an error."
        ),
    )
    fetch.add_argument("keys", nargs="+", metavar="KEY", help="what to fetch")
    fetch.add_argument(
        "-n", "--namespace", required=True, help="the kind of data (quotes, news...)"
    )
    fetch.add_argument(
        "-p",
        "--providers",
        help=(
            "comma-separated provider names, in order (default: the "
            "namespace's); with --batch the first is the batch provider and "
            "the others are per-key fallbacks"
        ),
    )
    mode = fetch.add_mutually_exclusive_group()
    mode.add_argument("--merge", action="store_true", help="merge all providers")
    mode.add_argument("--batch", action="store_true", help="fetch the keys as a batch")
    fetch.add_argument(
        "--min-providers",
        type=int,
        help="with --merge: successes needed (default: the namespace's)",
    )
    fetch.add_argument("--tier", help="the TTL row to judge freshness by")
    fetch.add_argument("--timeout", type=float, help="seconds the whole fetch may take")
    fetch.add_argument("--no-stale", action="store_true", help="never serve stale data")
    _add_config_option(fetch)
    fetch.add_argument("--report", type=Path, help="also write the results as JSON")
    fetch.set_defaults(run=_run_fetch)

    plugins = commands.add_parser(
        "plugins", help="list the providers, backends and namespaces plugins offer"
    )
    _add_config_option(plugins)
    plugins.set_defaults(run=_run_plugins)

    replay = commands.add_parser(
        "replay",
        help="serve recorded provider responses on loopback",
        description=(
            "Serve recorded responses over HTTP until interrupted: "
            "URL/<provider>/<path> answers with the recording its route "
            "names. Faults are set from outside with POST /_replay/faults "
            '(JSON: {"provider": "tiingo" or "*", "kind": "status", '
            '"status": 503}; kinds: latency, status, rate_limit, hang, drop) '
            "and cleared with DELETE /_replay/faults."
        ),
    )
    replay.add_argument(
        "--routes",
        type=Path,
        action="append",
        default=[],
        help="a route file (repeatable; default: every installed plugin's)",
    )
    replay.add_argument(
        "--fixtures",
        type=Path,
        help="the recordings folder (default: $DSO_FIXTURES or ../shared/fixtures)",
    )
    replay.add_argument("--host", default="127.0.0.1", help="address to listen on")
    replay.add_argument(
        "--port", type=_port, default=0, help="port to listen on (0: any free port)"
    )
    replay.add_argument("--url-file", type=Path, help="also write the URL here")
    _add_config_option(replay)
    replay.set_defaults(run=_run_replay)
    _add_ops_commands(commands)
    return parser


def _add_ops_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve /health, /stats, /metrics and a live dashboard",
        description=(
            "Open an orchestrator from the configuration and serve its "
            "operator endpoints until interrupted: / (a live dashboard), "
            "/health (JSON, 503 while failing), /stats (JSON) and /metrics "
            "(Prometheus text, with dso-prometheus installed). With "
            "--demo-traffic, a replay server of the installed plugins' "
            f"recordings starts too, {REPLAY_URL_PLACEHOLDER} in the "
            "configuration stands for its URL, and the keys of its [demo] "
            'table (e.g. keys = {quotes = ["AAPL"]}) are fetched over and '
            "over, with outages injected now and then, so that the "
            "dashboard moves."
        ),
    )
    _add_config_option(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument(
        "--port", type=_port, default=8000, help="port to listen on (0: any free port)"
    )
    serve.add_argument(
        "--refresh", type=_refresh, default=2.0, help="dashboard refresh, in seconds"
    )
    serve.add_argument(
        "--demo-traffic",
        action="store_true",
        help="replay recorded responses and fetch the [demo] keys continuously",
    )
    serve.add_argument(
        "--fixtures",
        type=Path,
        help="with --demo-traffic: the recordings folder (default: as dso replay)",
    )
    serve.add_argument("--url-file", type=Path, help="also write the URL here")
    serve.set_defaults(run=_run_serve)

    for name, about, run in (
        ("health", "print the overall status, providers and alerts", _run_health),
        ("stats", "print hit rates, provider figures and latencies", _run_stats),
    ):
        command = commands.add_parser(
            name,
            help=about,
            description=(
                f"{about[0].upper()}{about[1:]}: of a running dso serve "
                "(--url), or of an orchestrator opened from the configuration "
                "(after running the providers' health checks with --check)."
                + (" Exits 1 while failing." if name == "health" else "")
            ),
        )
        _add_config_option(command)
        source = command.add_mutually_exclusive_group()
        source.add_argument("--url", help="a running dso serve (http://host:port)")
        source.add_argument(
            "--check", action="store_true", help="run the providers' health checks"
        )
        command.set_defaults(run=run)


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0 to 65535)")

    return port


def _refresh(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None

    if not MIN_REFRESH <= seconds < math.inf:
        raise argparse.ArgumentTypeError(
            f"{text} is not a number of seconds from {MIN_REFRESH} up"
        )

    return seconds


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        help=f"TOML configuration (default: ${CONFIG_ENV} or ./{_DEFAULT_CONFIG})",
    )


def _load_cli_config(path: Path | None) -> Config:
    """Read the configuration, with the command line's own defaults.

    The command line keeps its cache in a SQLite file unless the file says
    otherwise, so that a second run is served from the first one's cache.
    """
    path, data = _read_config_data(path)
    return _config_from(path, data)


def _config_path(path: Path | None) -> Path | None:
    if path is None and CONFIG_ENV in os.environ:
        path = Path(os.environ[CONFIG_ENV])

    if path is None:
        path = Path(_DEFAULT_CONFIG)
        if not path.exists():
            return None

    return path


def _read_config_data(
    path: Path | None, replacements: dict[str, str] | None = None
) -> tuple[Path | None, dict[str, Any]]:
    path = _config_path(path)
    if path is None:
        return None, {}

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None

    for old, new in (replacements or {}).items():
        text = text.replace(old, new)

    try:
        return path, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _config_from(path: Path | None, data: dict[str, Any]) -> Config:
    try:
        return Config.from_dict(_with_cli_defaults(data))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path else str(exc)) from None


def _with_cli_defaults(data: dict[str, Any]) -> dict[str, Any]:
    cache = data.setdefault("cache", {})
    if isinstance(cache, dict) and "backend" not in cache:
        cache["backend"] = "sqlite"
        cache.setdefault("path", str(_default_cache_path()))

    return data


def _default_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dso" / "cache.sqlite3"


def _run_fetch(args: argparse.Namespace, console: Console) -> int:
    if args.min_providers is not None and not args.merge:
        raise ValueError("--min-providers only applies with --merge")

    if args.report is not None and not args.report.parent.is_dir():
        raise ValueError(f"--report: no folder {args.report.parent}")

    config = _load_cli_config(args.config)
    results, statistics = trio.run(_fetch, config, args, console)
    summarize = _summarizer(load_plugins(config.plugins), args.namespace)

    console.print(_results_table(results, args.namespace, summarize))
    console.print(_summary_line(results, statistics), soft_wrap=True)
    if args.report is not None:
        _write_report(args.report, results, statistics)

    return 0 if all(result.ok for result in results) else 1


async def _fetch(
    config: Config, args: argparse.Namespace, console: Console
) -> tuple[list[FetchResult[Any]], Any]:
    providers = args.providers.split(",") if args.providers else None
    keys = len(dict.fromkeys(args.keys))
    long_batch = args.batch and keys >= PROGRESS_FROM
    with Progress(console=console, transient=True, disable=not long_batch) as progress:
        sink = BatchProgress(progress, args.namespace, keys)
        sinks = [sink] if long_batch else []
        async with open_orchestrator(config, sinks=sinks) as orchestrator:
            results = await _fetch_with(orchestrator, args, providers)
            sink.finish()
            return results, orchestrator.statistics()


async def _fetch_with(
    orchestrator: Orchestrator, args: argparse.Namespace, providers: list[str] | None
) -> list[FetchResult[Any]]:
    common: dict[str, Any] = {
        "namespace": args.namespace,
        "tier": args.tier,
        "allow_stale": not args.no_stale,
    }
    if args.timeout is not None:
        common["timeout"] = args.timeout

    if args.batch:
        provider = providers[0] if providers else None
        fallbacks = providers[1:] if providers else ()
        batch = await orchestrator.batch_fetch(
            args.keys, provider, fallback_providers=fallbacks, **common
        )
        return list(batch.values())

    results = []
    for key in dict.fromkeys(args.keys):
        if args.merge:
            result = await orchestrator.fetch_with_merge(
                key, providers, min_providers=args.min_providers, **common
            )
        else:
            result = await orchestrator.fetch_with_fallback(key, providers, **common)

        results.append(result)

    return results


def _summarizer(plugins: Plugins, namespace: str) -> Callable[[Any], str]:
    offered = plugins.namespaces().get(namespace)
    if offered is not None and offered.item.summarize is not None:
        summarize: Callable[[Any], str] = offered.item.summarize
        return summarize

    return _summarize


def _results_table(
    results: Sequence[FetchResult[Any]],
    namespace: str,
    summarize: Callable[[Any], str],
) -> Table:
    table = Table(title=f"dso fetch: {namespace}", title_justify="left")
    for column in ("key", "value", "source", "cache", "age", "errors"):
        table.add_column(column, overflow="fold")

    # Keys, values and messages come from outside: Text cells show them
    # as they are, never as rich markup.
    for result in results:
        if result.ok:
            value = Text(summarize(result.data))
        else:
            value = Text("no data", style="red")

        table.add_row(
            Text(result.key),
            value,
            Text(result.source or "-"),
            _cache_state(result),
            "-" if result.age is None else f"{result.age:.0f}s",
            Text("\n".join(_error_lines(result))),
        )

    return table


def _error_lines(result: FetchResult[Any]) -> list[str]:
    lines = []
    for attempt in result.errors:
        if attempt.code is None:
            continue

        detail = f" ({attempt.message})" if attempt.message else ""
        again = f", retry {attempt.retry}" if attempt.retry else ""
        lines.append(f"{attempt.provider}{again}: {attempt.code.name}{detail}")

    return lines


def _cache_state(result: FetchResult[Any]) -> Text:
    if result.stale:
        return Text("stale", style="yellow")

    if result.cached:
        return Text("hit")

    if result.partial:
        return Text("partial")

    return Text("fresh" if result.ok else "-")


def _summarize(value: object) -> str:
    if attrs.has(type(value)):
        fields = attrs.asdict(value, recurse=False)  # type: ignore[arg-type]
        shown = [f"{name}={item}" for name, item in fields.items() if item is not None]
        return _shorten(" ".join(shown))

    if isinstance(value, list | tuple):
        first = _summarize(value[0]) if value else ""
        return _shorten(f"{len(value)} items" + (f"; first: {first}" if first else ""))

    return _shorten(repr(value))


def _shorten(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _summary_line(results: Sequence[FetchResult[Any]], statistics: Any) -> str:
    hits = sum(1 for result in results if result.cached and not result.stale)
    stale = sum(1 for result in results if result.stale)
    failed = sum(1 for result in results if not result.ok)
    fetched = len(results) - hits - stale - failed
    calls = ", ".join(
        f"{name} {count}" for name, count in statistics.provider_calls.items() if count
    )
    keys = "1 key" if len(results) == 1 else f"{len(results)} keys"
    return (
        f"{keys}: {hits} from cache, {fetched} fetched, "
        f"{stale} stale, {failed} without data; "
        f"provider calls: {calls or 'none'}"
    )


_REPORT_CONVERTER = cattrs.Converter()
_REPORT_CONVERTER.register_unstructure_hook(dt.datetime, dt.datetime.isoformat)
_REPORT_CONVERTER.register_unstructure_hook(dt.date, dt.date.isoformat)


def _write_report(
    path: Path, results: Sequence[FetchResult[Any]], statistics: Any
) -> None:
    report = {
        "results": [_REPORT_CONVERTER.unstructure(result) for result in results],
        "statistics": _REPORT_CONVERTER.unstructure(statistics),
    }
    path.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")


def _run_plugins(args: argparse.Namespace, console: Console) -> int:
    config = _load_cli_config(args.config)
    plugins = load_plugins(config.plugins)
    console.print(_plugins_table(plugins))
    return 0


def _plugins_table(plugins: Plugins) -> Table:
    table = Table(title="dso plugins", title_justify="left")
    # Names are what a configuration spells and distributions what pip
    # installs: never cut short. The whole fits in 80 columns, the width a
    # pipe or a log gets; a description, where there is one, folds on a
    # line of its own under the name.
    for column in ("kind", "name", "distribution", "version", "plugin"):
        table.add_column(column, no_wrap=column != "name", overflow="fold")

    groups = [
        ("provider", plugins.provider_factories()),
        ("cache", _cache_backends(plugins)),
        ("namespace", plugins.namespaces()),
    ]
    for kind, offered in groups:
        for name in sorted(offered):
            plugin = offered[name].plugin
            about = getattr(offered[name].item, "description", "")
            label = Text(name)
            if about:
                label.append("\n" + about, style="dim")

            table.add_row(
                kind,
                label,
                Text(plugin.distribution),
                Text(plugin.version),
                Text(plugin.name),
            )

    return table


def _cache_backends(plugins: Plugins) -> dict[str, Offered]:
    # The tiered backend is no factory of its own: the orchestrator builds
    # it from two that are. Listed as the built-in plugin's, with memory.
    backends = plugins.cache_backends()
    memory = backends.get("memory")
    if memory is not None and TIERED not in backends:
        about = SimpleNamespace(
            description="two backends stacked: [cache.l1] read first, then [cache.l2]"
        )
        backends[TIERED] = Offered(TIERED, about, memory.plugin)

    return backends


def _run_replay(args: argparse.Namespace, console: Console) -> int:
    from .testing import find_fixtures_dir, load_routes, open_replay_server

    config = _load_cli_config(args.config)
    route_files = args.routes or load_plugins(config.plugins).replay_routes()
    if not route_files:
        raise ConfigError("no route files: pass --routes or install a plugin")

    routes = [route for path in route_files for route in load_routes(path)]
    fixtures = find_fixtures_dir(args.fixtures)

    async def run() -> None:
        async with open_replay_server(
            routes, fixtures, host=args.host, port=args.port
        ) as server:
            console.print(f"replaying {len(routes)} routes from {fixtures}")
            console.print(f"listening on {server.url}")
            if args.url_file is not None:
                args.url_file.write_text(server.url, encoding="utf-8")

            await trio.sleep_forever()

    trio.run(run)
    return 0


def _run_serve(args: argparse.Namespace, console: Console) -> int:
    if args.refresh <= 0:
        raise ValueError(f"--refresh must be positive, not {args.refresh}")

    if importlib.util.find_spec("hypercorn") is None:
        raise ConfigError(
            "dso serve needs hypercorn: install dso with its serve extra"
            " (pip install -e '.[serve]' from a dso checkout)"
        )

    try:
        if args.demo_traffic:
            trio.run(_serve_demo, args, console)
        else:
            trio.run(_serve, _load_cli_config(args.config), args, console)
    except BaseExceptionGroup as group:
        raise _alone(group) from None

    return 0


def _alone(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """Return the one error nurseries wrapped in groups, or the group."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]

    return error


async def _serve(
    config: Config,
    args: argparse.Namespace,
    console: Console,
    traffic: Callable[[Orchestrator], Awaitable[None]] | None = None,
) -> None:
    serve = partial(serve_ops, refresh_every=args.refresh)
    async with (
        open_orchestrator(config) as orchestrator,
        trio.open_nursery() as nursery,
    ):
        url = await nursery.start(serve, orchestrator, args.host, args.port)
        if args.url_file is not None:
            args.url_file.write_text(url, encoding="utf-8")

        console.print(f"serving {url}: / /health /stats /metrics")

        if traffic is not None:
            nursery.start_soon(traffic, orchestrator)


async def _serve_demo(args: argparse.Namespace, console: Console) -> None:
    from .testing import find_fixtures_dir, load_routes, open_replay_server

    _, plain = _read_config_data(args.config)
    plugins = load_plugins(_config_from(None, _without_demo(plain)).plugins)
    routes = [route for path in plugins.replay_routes() for route in load_routes(path)]
    if not routes:
        raise ConfigError("--demo-traffic: no installed plugin has recordings")

    fixtures = find_fixtures_dir(args.fixtures)
    async with open_replay_server(routes, fixtures) as server:
        path, data = _read_config_data(
            args.config, {REPLAY_URL_PLACEHOLDER: server.url}
        )
        keys = demo_keys(data.pop("demo", None))
        config = _config_from(path, data)
        console.print(f"replaying {len(routes)} recordings at {server.url}")
        await _serve(config, args, console, partial(demo_traffic, server, keys))


def _without_demo(data: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in data.items() if name != "demo"}


def _run_health(args: argparse.Namespace, console: Console) -> int:
    health = _read_view(args, "health")
    with _answer_checked(args, "health"):
        console.print(health_view(health))
        return 1 if health["status"] == "failing" else 0


def _run_stats(args: argparse.Namespace, console: Console) -> int:
    stats = _read_view(args, "stats")
    with _answer_checked(args, "stats"):
        console.print(stats_view(stats))
        return 0


@contextmanager
def _answer_checked(args: argparse.Namespace, what: str) -> Iterator[None]:
    # Whatever answers at --url may not be dso serve: its JSON then lacks
    # what the view reads, which deserves better than a bare KeyError.
    try:
        yield
    except (LookupError, TypeError, AttributeError) as exc:
        if args.url is None:
            raise

        raise ConfigError(
            f"--url {redact_url(args.url)}: /{what} is not dso serve's answer"
            f" ({type(exc).__name__}: {exc})"
        ) from None


def _read_view(args: argparse.Namespace, what: str) -> dict[str, Any]:
    if args.url is not None:
        return _fetch_view(args.url, what)

    return trio.run(_open_view, _load_cli_config(args.config), what, args.check)


def _fetch_view(url: str, what: str) -> dict[str, Any]:
    # The URL may carry a password or a token (a proxy in front of dso
    # serve); errors show it redacted.
    shown = redact_url(url)
    try:
        where = _view_url(url, what)
    except httpx.InvalidURL:
        raise ConfigError(f"--url {shown}: not a URL") from None

    try:
        response = httpx.get(where, timeout=10)
    except httpx.HTTPError as exc:
        raise ConfigError(f"--url {shown}: {redact_text(str(exc))}") from None

    # /health answers 503 while failing, with the verdict as usual.
    if response.status_code not in (200, 503):
        raise ConfigError(f"--url {shown}: /{what} answered {response.status_code}")

    try:
        data: dict[str, Any] = response.json()
    except ValueError:
        raise ConfigError(f"--url {shown}: /{what} did not answer JSON") from None

    return data


def _view_url(url: str, what: str) -> httpx.URL:
    # The view goes after the path (dso serve may sit under a prefix behind
    # a proxy), not after a query string.
    base = httpx.URL(url)
    return base.copy_with(path=f"{base.path.rstrip('/')}/{what}")


async def _open_view(config: Config, what: str, check: bool) -> dict[str, Any]:
    async with open_orchestrator(config) as orchestrator:
        if check:
            await orchestrator.check_providers()

        if what == "health":
            return orchestrator.health().to_dict()

        return orchestrator.stats().to_dict()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
