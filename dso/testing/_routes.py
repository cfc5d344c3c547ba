"""Which recorded response answers which request.

A route file is TOML with one ``[[routes]]`` table per recording::

    [[routes]]
    provider = "tiingo"
    path = "/iex/AAPL"
    file = "tiingo/iex_quote_AAPL_market_hours.json"

    [[routes]]
    provider = "yahoo"
    path = "/v10/finance/quoteSummary/QQQ,"
    file = "yahoo/quoteSummary_v10_not_found_404.json"
    status = 404
    query = { modules = "assetProfile" }

Each ``file`` is relative to the fixtures folder the server is given,
unless the file sets ``recordings``, a folder relative to the route file
itself: a plugin then ships its recordings beside its routes::

    recordings = "recordings"
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import attrs

from .._errors import ConfigError


CONTROL_PROVIDER = "_replay"
"""The first path segment of the replay server's own endpoints."""

_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

# The server frames every body itself, so a route may not set these.
_FRAMING_HEADERS = frozenset({"content-length", "content-type", "transfer-encoding"})


class _FieldError(ValueError):
    """A validator's complaint about one field, which it names."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _text(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str):
        raise _FieldError(attribute.name, f"expected a string, got {value!r}")

    if not value or not value.isprintable():
        raise _FieldError(attribute.name, f"expected printable text, got {value!r}")


def _provider(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if "/" in value or value == CONTROL_PROVIDER:
        raise _FieldError(attribute.name, f"not a usable provider name: {value!r}")


def _absolute_path(
    instance: object, attribute: attrs.Attribute[Any], value: str
) -> None:
    if not value.startswith("/"):
        raise _FieldError(attribute.name, f"must start with '/', got {value!r}")

    if "?" in value:
        raise _FieldError(attribute.name, "must not hold a query; use `query`")


def _method(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    # Methods are case-sensitive (RFC 9110), and every standard one is
    # upper-case: a "get" route would never match.
    if not _HEADER_NAME.fullmatch(value) or value != value.upper():
        raise _FieldError(attribute.name, f"not an HTTP method: {value!r}")


def _status(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _FieldError(attribute.name, f"expected an integer, got {value!r}")

    if not 200 <= value <= 599:
        raise _FieldError(attribute.name, f"expected 200 to 599, got {value}")


def _string_table(
    instance: object, attribute: attrs.Attribute[Any], value: Any
) -> None:
    if not isinstance(value, Mapping):
        raise _FieldError(attribute.name, f"expected a table, got {value!r}")

    for name, item in value.items():
        if not isinstance(name, str) or not isinstance(item, str):
            problem = f"expected strings, got {name!r} = {item!r}"
            raise _FieldError(f"{attribute.name}.{name}", problem)


def _header_table(
    instance: object, attribute: attrs.Attribute[Any], value: Mapping[str, str]
) -> None:
    for name, item in value.items():
        where = f"{attribute.name}.{name}"
        if not _HEADER_NAME.fullmatch(name):
            raise _FieldError(where, "not a valid header name")

        if name.lower() in _FRAMING_HEADERS:
            raise _FieldError(where, "set by the server; use the route's fields")

        if not item.isprintable() or item != item.strip():
            raise _FieldError(where, f"not a valid header value: {item!r}")


@attrs.frozen
class Route:
    """One recorded response and the requests it answers.

    A request matches when its first path segment is *provider*, the rest
    of its path equals *path* (both percent-decoded), its method is
    *method*, and every item of *query* is among its query parameters.

    Attributes:
        provider: The first path segment of the server URL, such as
            ``"tiingo"``.
        path: The path under the provider prefix, such as ``"/iex/AAPL"``.
        file: The recorded body: relative to the fixtures folder, or an
            absolute path (as `load_routes` gives for a route file that
            sets ``recordings``).
        status: The HTTP status to answer with.
        content_type: The ``Content-Type`` to answer with.
        method: The HTTP method the route answers.
        query: Query parameters the request must carry. Values compare
            case-insensitively, and a comma-separated value as a set, so
            ``tickers = "aapl,msft"`` matches ``?tickers=MSFT,AAPL``.
        headers: Extra response headers, such as ``Retry-After``.
    """

    provider: str = attrs.field(validator=[_text, _provider])
    path: str = attrs.field(validator=[_text, _absolute_path])
    file: str = attrs.field(validator=_text)
    status: int = attrs.field(default=200, validator=_status)
    content_type: str = attrs.field(default="application/json", validator=_text)
    method: str = attrs.field(default="GET", validator=[_text, _method])
    query: Mapping[str, str] = attrs.field(factory=dict, validator=_string_table)
    headers: Mapping[str, str] = attrs.field(
        factory=dict, validator=[_string_table, _header_table]
    )


_ROUTE_FIELDS = frozenset(field.name for field in attrs.fields(Route))

_REQUIRED_FIELDS = ("provider", "path", "file")


def load_routes(path: str | os.PathLike[str]) -> list[Route]:
    """Read the routes of a TOML file of ``[[routes]]`` tables.

    Args:
        path: The route file.

    A route's ``file`` is relative: to the fixtures folder the server is
    given, or, when the route file sets ``recordings``, to that folder,
    which is relative to the route file; such routes come back with
    absolute ``file`` paths.

    Returns:
        The routes, in the order of the file.

    Raises:
        ConfigError: The file cannot be read, is not TOML, ``recordings``
            is not a folder, or a route is invalid; the message names the
            route's index and the field, as in
            ``routes[2].status: expected an integer, got 'ok'``.
    """
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None

    try:
        routes = _routes_from(document)
        if "recordings" not in document:
            return routes

        folder = _recordings_folder(Path(path), document["recordings"])
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None

    return [attrs.evolve(route, file=str(folder / route.file)) for route in routes]


def _recordings_folder(route_file: Path, value: Any) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"recordings: expected a folder name, got {value!r}")

    # Resolved, so that the files stay found whatever the server's folder.
    folder = (route_file.parent / value).resolve()
    if not folder.is_dir():
        raise ConfigError(f"recordings: not a folder: {folder}")

    return folder


def _routes_from(document: Mapping[str, Any]) -> list[Route]:
    unknown = sorted(set(document) - {"routes", "recordings"})
    if unknown:
        raise ConfigError(
            f"{unknown[0]}: unknown key; expected [[routes]] and `recordings`"
        )

    tables = document.get("routes")
    if not isinstance(tables, list):
        raise ConfigError("routes: expected an array of [[routes]] tables")

    return [_route_from(index, table) for index, table in enumerate(tables)]


def _route_from(index: int, table: Any) -> Route:
    where = f"routes[{index}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table, got {table!r}")

    unknown = sorted(set(table) - _ROUTE_FIELDS)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown field")

    missing = [name for name in _REQUIRED_FIELDS if name not in table]
    if missing:
        raise ConfigError(f"{where}.{missing[0]}: missing")

    try:
        route = Route(**table)
    except _FieldError as exc:
        raise ConfigError(f"{where}.{exc.field}: {exc.problem}") from None

    # Either spelling of an absolute path would escape the recordings'
    # folder, which the route file's reader chooses.
    file = route.file
    if PurePosixPath(file).is_absolute() or PureWindowsPath(file).is_absolute():
        raise ConfigError(f"{where}.file: must be relative, got {file!r}")

    return route


@attrs.frozen
class _Candidate:
    route: Route
    wanted: Mapping[str, frozenset[str]]


class RouteTable:
    """The routes of one server, arranged for matching requests."""

    def __init__(self, routes: Iterable[Route]) -> None:
        by_target: dict[tuple[str, str, str], list[_Candidate]] = {}
        for route in routes:
            target = (route.provider, route.method, route.path)
            wanted = {name: _value_set(value) for name, value in route.query.items()}
            by_target.setdefault(target, []).append(_Candidate(route, wanted))

        # Sorting is stable, so among equally specific routes the first
        # one listed wins.
        for candidates in by_target.values():
            candidates.sort(key=lambda candidate: -len(candidate.wanted))

        self._by_target = by_target

    def match(
        self,
        provider: str,
        method: str,
        path: str,
        query: Mapping[str, Sequence[str]],
    ) -> Route | None:
        """Return the most specific route for a request, if any.

        Args:
            provider: The request's first path segment, decoded.
            method: The request's method.
            path: The rest of the request's path, decoded.
            query: Every value sent for each query parameter.
        """
        for candidate in self._by_target.get((provider, method, path), []):
            if _query_matches(candidate.wanted, query):
                return candidate.route

        return None


def _query_matches(
    wanted: Mapping[str, frozenset[str]], query: Mapping[str, Sequence[str]]
) -> bool:
    return all(
        any(expected == _value_set(sent) for sent in query.get(name, ()))
        for name, expected in wanted.items()
    )


def _value_set(value: str) -> frozenset[str]:
    # Providers accept `tickers=aapl,msft` in any order and case.
    parts = (part.strip().casefold() for part in value.split(","))
    return frozenset(part for part in parts if part)
