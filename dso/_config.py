"""Configuration: what a TOML file (or a dict) says, structured and checked.

A configuration file looks like this::

    [cache]
    backend = "sqlite"
    path = "dso-cache.sqlite3"

    [providers.tiingo]
    base_url = "https://api.tiingo.com"
    api_key_env = "TIINGO_API_KEY"
    timeout = 5

    [namespaces.quotes]
    providers = ["tiingo", "yahoo"]
    ttl = { fresh = 60, stale = 86400, tiers = { premium = 15 } }

An invalid file fails with one `ConfigError` whose message names the path
of every bad field, for example
``providers.tiingo.timeout: expected a number, got "fast"``.
"""

from __future__ import annotations

import os
import tomllib
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
from cattrs.cols import list_structure_factory
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn

from ._errors import ConfigError, ErrorCode
from ._quota import QuotaLimit
from ._rate import RateLimit
from ._redaction import REDACTED, redact_url


class _FieldError(ValueError):
    """A validator's complaint about one field, which it names."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _positive(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value > 0:
        raise _FieldError(attribute.name, f"must be greater than 0, got {value!r}")


def _not_negative(
    instance: object, attribute: attrs.Attribute[Any], value: Any
) -> None:
    if value is not None and not value >= 0:
        raise _FieldError(attribute.name, f"must not be negative, got {value!r}")


def _tiers_not_negative(
    instance: object, attribute: attrs.Attribute[Any], value: dict[str, float]
) -> None:
    for tier, seconds in value.items():
        if not seconds >= 0:
            raise _FieldError(
                f"{attribute.name}.{tier}", f"must not be negative, got {seconds!r}"
            )


_LONGEST_WINDOW = 86_400


def _window_span(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    # A time window keeps a bucket per second: a longer one would grow
    # without a useful bound, and an infinite one cannot be laid out.
    if value is not None and not 1 <= value <= _LONGEST_WINDOW:
        raise _FieldError(
            attribute.name,
            f"must be from 1 second to a day ({_LONGEST_WINDOW}), got {value!r}",
        )


def _positive_or_none(
    instance: object, attribute: attrs.Attribute[Any], value: Any
) -> None:
    if value is not None:
        _positive(instance, attribute, value)


def _share(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    # A rate written as a percentage (80 for 80 %) would silently turn its
    # alert off or on for good.
    if not 0 <= value <= 1:
        raise _FieldError(attribute.name, f"must be between 0 and 1, got {value!r}")


def _fraction(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not 0 < value <= 1:
        raise _FieldError(
            attribute.name, f"must be a fraction above 0 and at most 1, got {value!r}"
        )


def _error_codes(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    known = {
        code.value
        for code in ErrorCode
        if not code.skipped and code is not ErrorCode.CANCELLED
    }
    for index, name in enumerate(value):
        if name not in known:
            raise _FieldError(
                f"{attribute.name}.{index}",
                f"unknown error code {name!r}; known: {', '.join(sorted(known))}",
            )


@attrs.frozen
class BreakerSettings:
    """A provider's circuit breaker.

    Two trip models: ``consecutive`` opens the breaker after *threshold*
    failures in a row; ``rate`` opens it when, over a sliding window of
    calls (the last *window* calls, or the last *window_seconds* seconds),
    the share of failures reaches *failure_rate*, once *min_calls* calls
    have been seen. With *slow_after* set, either model also opens when the
    share of calls slower than that reaches *slow_rate* over the window.

    Attributes:
        trip: ``"consecutive"`` (the default) or ``"rate"``.
        threshold: Failures in a row that open the breaker (5).
        failure_rate: The rate model's share of failures that opens it (0.5).
        window: Calls the sliding window covers (20).
        window_seconds: Make the window cover this many seconds instead
            (from 1 to 86400).
        min_calls: Calls in the window before rates are judged (10).
        slow_after: Seconds after which a call counts as slow (off).
        slow_rate: The share of slow calls that opens the breaker (1.0).
        reset_after: Seconds the breaker stays open before trial calls (30).
        half_open_max_calls: Trial calls admitted at the same time while
            half-open; as many trial successes close the breaker (1).
        ignore: Error codes that count as neither success nor failure:
            they say nothing about the provider's health
            (``["not_found", "invalid_response"]``).
    """

    trip: Literal["consecutive", "rate"] = "consecutive"
    threshold: int = attrs.field(default=5, validator=_positive)
    failure_rate: float = attrs.field(default=0.5, validator=_fraction)
    window: int = attrs.field(default=20, validator=_positive)
    window_seconds: float | None = attrs.field(default=None, validator=_window_span)
    min_calls: int = attrs.field(default=10, validator=_positive)
    slow_after: float | None = attrs.field(default=None, validator=_not_negative)
    slow_rate: float = attrs.field(default=1.0, validator=_fraction)
    reset_after: float = attrs.field(default=30.0, validator=_positive)
    half_open_max_calls: int = attrs.field(default=1, validator=_positive)
    ignore: tuple[str, ...] = attrs.field(
        default=("not_found", "invalid_response"), validator=_error_codes
    )

    @property
    def ignored_codes(self) -> frozenset[ErrorCode]:
        """The codes in ``ignore``, as `ErrorCode` members."""
        return frozenset(ErrorCode(name) for name in self.ignore)


def _at_least_one(
    instance: object, attribute: attrs.Attribute[Any], value: Any
) -> None:
    if not value >= 1:
        raise _FieldError(attribute.name, f"must be at least 1, got {value!r}")


@attrs.frozen
class RetrySettings:
    """How a provider's transient failures are tried again.

    TIMEOUT and UNAVAILABLE (a dropped connection among them) are
    retried; nothing else is. The wait before retry *n* is drawn at
    random between 0 and ``min(wait_max, wait_initial * wait_exp_base **
    (n - 1))`` ("full jitter"), and a retry whose wait would not end
    before the call's deadline is not started.

    Attributes:
        enabled: Retry at all (``true``).
        attempts: Tries in all, the first one included (3: two retries).
        wait_initial: The backoff's ceiling before the first retry (0.1 s).
        wait_max: The largest ceiling (5 s).
        wait_exp_base: How fast the ceiling grows (2: it doubles).
    """

    enabled: bool = True
    attempts: int = attrs.field(default=3, validator=_positive)
    wait_initial: float = attrs.field(default=0.1, validator=_not_negative)
    wait_max: float = attrs.field(default=5.0, validator=_not_negative)
    wait_exp_base: float = attrs.field(default=2.0, validator=_at_least_one)


def _url_repr(url: str | None) -> str:
    return repr(url if url is None else redact_url(url))


def _options_repr(options: dict[str, Any]) -> str:
    return repr({name: _shown_option(name, value) for name, value in options.items()})


def _shown_option(name: str, value: object) -> object:
    # Options may hold a URL with a password (the redis backend's url) or
    # a secret under its own name; neither may show.
    if any(secret in name for secret in _SECRET_FIELDS):
        return REDACTED

    return redact_url(value) if isinstance(value, str) else value


@attrs.frozen
class ProviderSettings:
    """One provider's configuration section.

    Attributes:
        name: The provider's name, the key of its section.
        type: Which provider factory builds it; defaults to *name*.
        base_url: Where the provider's API lives; ``None`` lets the
            provider use its public default.
        api_key: The credential. Never shown in ``repr``, logs or errors.
        api_key_env: An environment variable to read the key from when
            ``api_key`` is not given.
        timeout: Seconds one attempt may take.
        max_concurrency: Calls to this provider in flight at once.
        breaker: The circuit breaker's settings.
        rate_limit: Calls allowed per period, as ``"5/minute"`` (also
            ``/second``, ``/hour``, ``/day``) or a number of calls per
            second; a call beyond it skips the provider (off).
        rate_limit_wait: Wait for the rate limit instead, as long as the
            wait ends before the call's deadline (``false``).
        quota: Calls allowed per UTC calendar day or month, as
            ``"500/day"`` or ``"10000/month"``; once used up, the
            provider is skipped until the next period (off).
        max_pause: The longest pause a ``Retry-After`` may impose, in
            seconds (3600).
        default_pause: The pause after a rate-limit error whose
            ``Retry-After`` is missing, negative or unreadable (60).
        retries: How transient failures are tried again.
        options: Anything else the provider understands.
    """

    name: str = ""
    type: str = ""
    base_url: str | None = attrs.field(default=None, repr=_url_repr)
    api_key: str | None = attrs.field(default=None, repr=False)
    api_key_env: str | None = None
    timeout: float = attrs.field(default=10.0, validator=_positive)
    max_concurrency: int = attrs.field(default=10, validator=_positive)
    breaker: BreakerSettings = BreakerSettings()
    rate_limit: RateLimit | None = None
    rate_limit_wait: bool = False
    quota: QuotaLimit | None = None
    max_pause: float = attrs.field(default=3600.0, validator=_not_negative)
    default_pause: float = attrs.field(default=60.0, validator=_not_negative)
    retries: RetrySettings = RetrySettings()
    options: dict[str, Any] = attrs.Factory(dict)

    @property
    def kind(self) -> str:
        """The provider factory's name."""
        return self.type or self.name


@attrs.frozen
class TtlSettings:
    """How long a namespace's entries stay fresh, and then stale.

    Attributes:
        fresh: Seconds an entry is served as fresh.
        stale: Seconds after that it may still be served as stale.
        partial: Freshness of a merge built from fewer than all
            providers; defaults to a quarter of *fresh*.
        tiers: Freshness by tier name, overriding *fresh*.
    """

    fresh: float = attrs.field(default=60.0, validator=_not_negative)
    stale: float = attrs.field(default=3600.0, validator=_not_negative)
    partial: float | None = attrs.field(default=None, validator=_not_negative)
    tiers: dict[str, float] = attrs.field(factory=dict, validator=_tiers_not_negative)


@attrs.frozen
class NamespaceSettings:
    """One namespace's configuration.

    Attributes:
        providers: The default provider chain, in order of preference.
        version: Part of every cache key; bumping it invalidates the
            namespace without a scan.
        ttl: Freshness and stale windows.
        min_providers: Successes a merge needs.
        hedge_after: Start the next provider of a fallback chain when the
            current one has not answered in this many seconds (off).
        revalidate_within: Serve an entry that stopped being fresh less
            than this many seconds ago at once, marked stale, and refresh
            it in the background (off).
        negative_ttl: Remember for this many seconds that every provider
            answered NOT_FOUND for a key, and answer NOT_FOUND from the
            cache meanwhile (off; 0 is off too).
    """

    providers: list[str] = attrs.Factory(list)
    version: int = 1
    ttl: TtlSettings = TtlSettings()
    min_providers: int = attrs.field(default=1, validator=_positive)
    hedge_after: float | None = attrs.field(default=None, validator=_not_negative)
    revalidate_within: float | None = attrs.field(default=None, validator=_not_negative)
    negative_ttl: float | None = attrs.field(default=None, validator=_not_negative)


TIERED = "tiered"
"""The name of the backend that stacks two others (``cache.l1``, ``cache.l2``)."""


def _tier(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        if instance.backend == TIERED:
            raise _FieldError(
                attribute.name, f"the {TIERED} backend needs this table of settings"
            )

        return

    if instance.backend != TIERED:
        raise _FieldError(
            attribute.name,
            f'only the {TIERED} backend has tiers; set backend = "tiered"',
        )

    if value.backend == TIERED:
        raise _FieldError(f"{attribute.name}.backend", "a tier cannot itself be tiered")


@attrs.frozen
class CacheSettings:
    """The cache backend.

    A ``tiered`` backend stacks two others, each configured by a table of
    these same settings: ``l1`` (usually ``memory``) in front of ``l2``
    (``sqlite``, or ``redis`` from its plugin). Each tier has its own
    timeout and breaker; the top level's ``prefix`` is the one used.

    Attributes:
        backend: The backend factory's name (``memory``, ``sqlite``,
            ``tiered`` or one a plugin provides).
        prefix: The first part of every cache key.
        max_entries: The memory backend's bound.
        path: The SQLite backend's database file.
        timeout: Seconds one cache operation may take; a read that takes
            longer is a miss, a write is skipped.
        breaker: The breaker in front of the backend, with the same
            defaults as a provider's: after 5 failures (errors or
            timeouts) in a row it is not asked for 30 seconds; reads are
            misses and writes are skipped meanwhile.
        l1: The ``tiered`` backend's first tier, asked first.
        l2: The ``tiered`` backend's second tier, asked for L1's misses.
        l1_ttl: Seconds an entry stays in L1 at most (never past its own
            expiry), so that changes made through L2 show soon; 0 keeps
            L1 empty.
        options: Anything else the backend understands.
    """

    backend: str = "memory"
    prefix: str = "dso"
    max_entries: int = attrs.field(default=10_000, validator=_positive)
    path: str | None = None
    timeout: float = attrs.field(default=2.0, validator=_positive)
    breaker: BreakerSettings = BreakerSettings()
    l1: CacheSettings | None = attrs.field(default=None, validator=_tier)
    l2: CacheSettings | None = attrs.field(default=None, validator=_tier)
    l1_ttl: float = attrs.field(default=60.0, validator=_not_negative)
    options: dict[str, Any] = attrs.field(factory=dict, repr=_options_repr)


@attrs.frozen
class PluginSettings:
    """Which plugins are loaded from entry points.

    Attributes:
        autoload: Load plugins advertised under the ``dso`` entry-point
            group. The ``DSO_PLUGINS`` environment variable overrides
            this: ``0`` switches autoloading off, a comma-separated list
            limits it to those entry-point or distribution names.
        only: When set, load only these entry-point or distribution names.
    """

    autoload: bool = True
    only: list[str] | None = None


def _key_mode(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in ("plain", "hash", "omit"):
        raise _FieldError(
            attribute.name, f"must be 'plain', 'hash' or 'omit', got {value!r}"
        )


_MAX_SALT = 64


def _salt_fits(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    # BLAKE2b takes a key of at most 64 bytes; a longer one would fail every
    # fetch that reports a key. The value is a secret: it is not shown.
    if len(value.encode()) > _MAX_SALT:
        raise _FieldError(attribute.name, f"must be at most {_MAX_SALT} bytes")


@attrs.frozen
class TelemetrySettings:
    """What telemetry events say, and how many may wait for slow sinks.

    Attributes:
        keys: How events show keys, which can be personal data:
            ``"plain"``, ``"hash"`` (a keyed BLAKE2 digest, the same for
            the same key and ``key_salt``) or ``"omit"``.
        key_salt: The secret mixed into key hashes, at most 64 bytes; with
            the same salt, hashes match across processes.
        buffer: Events that may wait for the sinks; beyond it, new events
            are dropped and counted rather than queued without bound.
    """

    keys: str = attrs.field(default="plain", validator=_key_mode)
    key_salt: str = attrs.field(default="", repr=False, validator=_salt_fits)
    buffer: int = attrs.field(default=10_000, validator=_positive)


@attrs.frozen
class HealthSettings:
    """The thresholds behind `Orchestrator.health` and its alerts.

    Rates are judged over the last ``window`` seconds, and only once
    ``min_samples`` lookups or calls have been seen there, so that one
    early miss raises no alarm. Thresholds are shares from 0 to 1 (0.8,
    not 80).

    Attributes:
        min_hit_rate: Alert when a namespace's cache hit rate is below.
        max_failure_rate: Alert when a provider's failure rate is above
            (NOT_FOUND and CANCELLED do not count as failures).
        max_stale_share: Alert when a namespace serves more stale values.
        max_quota_use: Alert when a provider has spent more of its quota.
        alert_on_open_breaker: Alert while any breaker is open.
        window: Seconds the rates cover (from 1 to 86400).
        min_samples: Lookups or calls needed before a rate is judged.
        check_every: Run the providers' ``health_check`` this often, in
            seconds, in the background; ``None`` only on demand.
        check_timeout: Seconds one ``health_check`` may take.
    """

    min_hit_rate: float = attrs.field(default=0.5, validator=_share)
    max_failure_rate: float = attrs.field(default=0.1, validator=_share)
    max_stale_share: float = attrs.field(default=0.05, validator=_share)
    max_quota_use: float = attrs.field(default=0.8, validator=_share)
    alert_on_open_breaker: bool = True
    window: float = attrs.field(default=300.0, validator=_window_span)
    min_samples: int = attrs.field(default=20, validator=_positive)
    check_every: float | None = attrs.field(default=None, validator=_positive_or_none)
    check_timeout: float = attrs.field(default=10.0, validator=_positive)


@attrs.frozen
class Config:
    """The whole configuration of an orchestrator.

    Attributes:
        providers: Provider sections by name.
        namespaces: Namespace sections by name.
        cache: The cache backend.
        plugins: Plugin loading.
        timeout: Default seconds a whole fetch may take (``None``: no
            limit beyond the per-attempt timeouts).
        user_agent: Sent by the shared HTTP client.
        finish_abandoned_calls: When every caller waiting on a shared
            provider call has left, let the call finish and fill the cache
            instead of cancelling it.
        telemetry: What events say about keys, and the sinks' buffer.
        health: Alert thresholds and provider health checks.
    """

    providers: dict[str, ProviderSettings] = attrs.Factory(dict)
    namespaces: dict[str, NamespaceSettings] = attrs.Factory(dict)
    cache: CacheSettings = CacheSettings()
    plugins: PluginSettings = PluginSettings()
    timeout: float | None = attrs.field(default=None, validator=_not_negative)
    user_agent: str = "dso/0.1 (trio data orchestration)"
    finish_abandoned_calls: bool = False
    telemetry: TelemetrySettings = TelemetrySettings()
    health: HealthSettings = HealthSettings()

    def provider_settings(self, name: str) -> ProviderSettings:
        """Return the section for provider *name*, or the defaults."""
        settings = self.providers.get(name)
        if settings is None:
            return ProviderSettings(name=name)

        return settings

    def namespace_settings(self, name: str) -> NamespaceSettings:
        """Return the section for namespace *name*, or the defaults."""
        return self.namespaces.get(name, NamespaceSettings())

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, environ: Mapping[str, str] | None = None
    ) -> Config:
        """Structure and check a configuration from plain data.

        Args:
            data: The parsed TOML (or equivalent) document.
            environ: Where ``api_key_env`` variables are looked up;
                defaults to the process environment.

        Raises:
            ConfigError: A field is missing, unknown or of the wrong type.
        """
        if not isinstance(data, Mapping):
            raise ConfigError("expected a table at the top level")

        try:
            config = _CONVERTER.structure(dict(data), cls)
        except Exception as exc:
            raise ConfigError(_describe(exc)) from None

        return config._with_names_and_keys(os.environ if environ is None else environ)

    def _with_names_and_keys(self, environ: Mapping[str, str]) -> Config:
        providers = {}
        for name, section in self.providers.items():
            api_key = section.api_key
            if api_key is None and section.api_key_env:
                api_key = environ.get(section.api_key_env)

            providers[name] = attrs.evolve(section, name=name, api_key=api_key)

        return attrs.evolve(self, providers=providers)


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> Config:
    """Read and check a TOML configuration file.

    Raises:
        ConfigError: The file cannot be read, is not TOML, or is invalid;
            the message names the file and the bad field.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None

    try:
        return Config.from_dict(data, environ=environ)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _strict(
    python_type: type, accepts: tuple[type, ...], expected: str
) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _: Any) -> Any:
        if isinstance(value, bool) and bool not in accepts:
            raise _BadValue(expected, value)

        if not isinstance(value, accepts):
            raise _BadValue(expected, value)

        return python_type(value)

    return structure


class _BadValue(ValueError):
    def __init__(self, expected: str, value: Any) -> None:
        shown = f'"{value}"' if isinstance(value, str) else repr(value)
        super().__init__(f"expected {expected}, got {shown}")


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(float, _strict(float, (int, float), "a number"))
    converter.register_structure_hook(int, _strict(int, (int,), "an integer"))
    converter.register_structure_hook(str, _strict(str, (str,), "a string"))
    converter.register_structure_hook(bool, _strict(bool, (bool,), "true or false"))
    converter.register_structure_hook_factory(_is_list, _only_lists)
    converter.register_structure_hook_factory(attrs.has, _only_tables)
    converter.register_structure_hook_func(_is_literal, _one_of)
    converter.register_structure_hook(RateLimit, _parsed(RateLimit.parse))
    converter.register_structure_hook(QuotaLimit, _parsed(QuotaLimit.parse))
    converter.register_structure_hook(
        CacheSettings, _tiers_first(_only_tables(CacheSettings, converter))
    )
    return converter


def _tiers_first(structure: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    # A tier is built before the table holding it, so a tiered tier would
    # complain of its own missing l1, sending the user the wrong way.
    def structure_tiers_first(value: Any, target: Any) -> Any:
        if isinstance(value, Mapping):
            if "l1_ttl" in value and value.get("backend") != TIERED:
                # Silently ignored, it would look like a working setting.
                raise _FieldError(
                    "l1_ttl",
                    f'only the {TIERED} backend has an L1; set backend = "tiered"',
                )

            for tier in ("l1", "l2"):
                settings = value.get(tier)
                if isinstance(settings, Mapping) and settings.get("backend") == TIERED:
                    raise _FieldError(
                        f"{tier}.backend", "a tier cannot itself be tiered"
                    )

        return structure(value, target)

    return structure_tiers_first


def _parsed(parse: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
    # Both parsers raise ValueError with the expected format, which the
    # error report shows next to the field's path.
    return lambda value, _: parse(value)


def _is_list(type_: Any) -> bool:
    return typing.get_origin(type_) in (list, tuple)


def _only_lists(type_: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    # cattrs would happily turn "tiingo" into ["t", "i", ...].
    as_tuple = typing.get_origin(type_) is tuple
    item_type = typing.get_args(type_)[0]
    structure_items = list_structure_factory(list[item_type], converter)  # type: ignore[valid-type]

    def structure(value: Any, target: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise _BadValue("a list", value)

        items = structure_items(value, list[item_type])  # type: ignore[valid-type]
        return tuple(items) if as_tuple else items

    return structure


def _is_literal(type_: Any) -> bool:
    return typing.get_origin(type_) is Literal


def _one_of(value: Any, type_: Any) -> Any:
    choices = typing.get_args(type_)
    if value not in choices:
        shown = ", ".join(repr(choice) for choice in choices)
        raise _BadValue(f"one of {shown}", value)

    return value


def _only_tables(type_: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    structure_fields = make_dict_structure_fn(type_, converter)

    def structure(value: Any, target: Any) -> Any:
        if not isinstance(value, Mapping):
            raise _BadValue("a table", value)

        return structure_fields(value, target)

    return structure


_CONVERTER = _make_converter()


def _describe(exc: BaseException) -> str:
    lines = cattrs.transform_error(exc, path="$", format_exception=_format_leaf)
    return "; ".join(_tidy_path(line) for line in lines)


def _format_leaf(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, ForbiddenExtraKeysError):
        return f"unknown field {', '.join(sorted(exc.extra_fields))}"

    if isinstance(exc, _FieldError):
        return f"{_FIELD_MARK}{exc.field}{_FIELD_MARK}{exc}"

    if isinstance(exc, KeyError):
        return "required field missing"

    if isinstance(exc, AttributeError):
        # cattrs reads a mapping's items(); anything else lacks them.
        return "expected a table"

    if isinstance(exc, ValueError | TypeError) and str(exc):
        return str(exc)

    return f"invalid value ({type(exc).__name__})"


_FIELD_MARK = "\x00"


_SECRET_FIELDS = ("api_key", "password", "token", "secret")


def _tidy_path(line: str) -> str:
    # cattrs writes "message @ $.providers['tiingo'].timeout"; we want the
    # dotted path a user would type in TOML, first.
    message, _, path = line.rpartition(" @ ")
    path = path.removeprefix("$").removeprefix(".")
    path = path.replace("['", ".").replace("']", "").replace("[", ".").replace("]", "")
    path = path.lstrip(".")
    if message.startswith(_FIELD_MARK):
        _, field, message = message.split(_FIELD_MARK, 2)
        path = f"{path}.{field}".lstrip(".")

    if any(secret in path.rpartition(".")[2] for secret in _SECRET_FIELDS):
        # Whatever was written there may be the secret itself.
        message = message.partition(", got ")[0]
    if not path:
        return message

    return f"{path}: {message}"
