"""Faults the replay server injects instead of, or before, a recording."""

from __future__ import annotations

import json
import math
from typing import Any, Literal, Self, get_args

import attrs


FaultKind = Literal["latency", "status", "rate_limit", "hang", "drop"]

ANY_PROVIDER = "*"
"""The provider name that makes a fault apply to every provider."""

_KINDS = frozenset(get_args(FaultKind))

_FAULT_OPTIONS = ("seconds", "status", "retry_after")

_CONTROL_KEYS = frozenset({"provider", "path", "kind", *_FAULT_OPTIONS})


def _kind(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in _KINDS:
        expected = ", ".join(sorted(_KINDS))
        raise ValueError(f"kind: expected one of {expected}, got {value!r}")


def _seconds(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"seconds: expected a number, got {value!r}")

    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"seconds: expected a finite number >= 0, got {value!r}")


def _status(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"status: expected an integer, got {value!r}")

    if not 200 <= value <= 599:
        raise ValueError(f"status: expected 200 to 599, got {value}")


def _retry_after(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return

    if not isinstance(value, str):
        raise TypeError(f"retry_after: expected a string, got {value!r}")

    if not value or not value.isprintable() or value != value.strip():
        raise ValueError(f"retry_after: not a valid header value: {value!r}")


def _default_status(fault: Fault) -> int:
    return 429 if fault.kind == "rate_limit" else 503


@attrs.frozen
class Fault:
    """A misbehaviour the replay server shows for some requests.

    Build one with the class methods: `Fault.latency`, `Fault.status_code`,
    `Fault.rate_limit`, `Fault.hang` and `Fault.drop`.

    Attributes:
        kind: ``"latency"`` waits *seconds*, then answers as usual;
            ``"status"`` answers *status* with a short ``text/plain``
            body; ``"rate_limit"`` answers *status* (429 unless given)
            with a ``Retry-After`` header when *retry_after* is set;
            ``"hang"`` never answers, until the client goes away or the
            server closes; ``"drop"`` closes the connection without any
            answer.
        seconds: The added delay of a latency fault.
        status: The status a status or rate-limit fault answers.
        retry_after: The ``Retry-After`` value of a rate-limit fault.
    """

    kind: FaultKind = attrs.field(validator=_kind)
    seconds: float = attrs.field(default=0.0, validator=_seconds)
    status: int = attrs.field(
        default=attrs.Factory(_default_status, takes_self=True), validator=_status
    )
    retry_after: str | None = attrs.field(default=None, validator=_retry_after)

    @classmethod
    def latency(cls, seconds: float) -> Self:
        """Return a fault that delays the recorded answer by *seconds*."""
        return cls("latency", seconds=seconds)

    @classmethod
    def status_code(cls, status: int = 503) -> Self:
        """Return a fault that answers *status* instead of the recording."""
        return cls("status", status=status)

    @classmethod
    def rate_limit(cls, retry_after: str | None = None) -> Self:
        """Return a fault that answers 429, with *retry_after* if given.

        Args:
            retry_after: The ``Retry-After`` header's value: seconds
                (``"30"``) or an HTTP date.
        """
        return cls("rate_limit", retry_after=retry_after)

    @classmethod
    def hang(cls) -> Self:
        """Return a fault that never answers."""
        return cls("hang")

    @classmethod
    def drop(cls) -> Self:
        """Return a fault that closes the connection without an answer."""
        return cls("drop")


@attrs.frozen
class FaultRule:
    """A fault and the requests it applies to (from the control endpoint).

    Attributes:
        provider: The provider, or ``"*"`` for all of them.
        path: The path under the provider prefix, or ``None`` for all.
        fault: The fault to apply.
    """

    provider: str
    path: str | None
    fault: Fault


def rule_from_json(body: bytes) -> FaultRule:
    """Return the fault rule a control request's JSON body describes.

    The body looks like ``{"provider": "tiingo", "path": null,
    "kind": "status", "status": 503, "seconds": 0, "retry_after": null}``;
    only ``provider`` and ``kind`` are required.

    Raises:
        ValueError: The body is not such an object; the message names the
            bad field.
    """
    try:
        data = json.loads(body)
    except ValueError:
        raise ValueError("expected a JSON object") from None

    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")

    unknown = sorted(set(data) - _CONTROL_KEYS)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown field")

    return FaultRule(_provider_of(data), _path_of(data), _fault_of(data))


def _provider_of(data: dict[str, Any]) -> str:
    provider = data.get("provider")
    if not isinstance(provider, str) or not provider or "/" in provider:
        raise ValueError(f"provider: expected a provider name, got {provider!r}")

    return provider


def _path_of(data: dict[str, Any]) -> str | None:
    path = data.get("path")
    if path is not None and not (isinstance(path, str) and path.startswith("/")):
        raise ValueError(f"path: expected null or a path from '/', got {path!r}")

    return path


def _fault_of(data: dict[str, Any]) -> Fault:
    # A null stands for "the default": clients send every field, used or not.
    kind: Any = data.get("kind")
    options = {
        name: data[name] for name in _FAULT_OPTIONS if data.get(name) is not None
    }
    try:
        return Fault(kind, **options)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
