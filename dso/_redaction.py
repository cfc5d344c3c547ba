"""Removing secrets from URLs, messages and logs before they are shown."""

from __future__ import annotations

import logging
import re
import urllib.parse


_SECRET_NAME = re.compile(r"key|token|secret|password|passwd|auth|sig", re.IGNORECASE)

REDACTED = "***"
"""What a secret is replaced with."""


def redact_url(url: str) -> str:
    """Return *url* with its password and secret-looking query values hidden.

    ``https://user:pw@host/q?apikey=K&symbol=IBM`` becomes
    ``https://user:***@host/q?apikey=***&symbol=IBM``. Text that is not a
    URL comes back unchanged.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        # urllib refuses some URLs (a stray bracket in the host); they must
        # not keep their secrets for that.
        return _redact_unparsed(url)

    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{REDACTED}@{host}"

    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        query = "&".join(
            f"{name}={REDACTED if _SECRET_NAME.search(name) else value}"
            for name, value in pairs
        )

    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


_USERINFO_PASSWORD = re.compile(r"(?P<user>//[^/?#@:]*):[^/?#@]*@")
_SECRET_QUERY_VALUE = re.compile(
    r"(?P<name>[?&][^=&#]*(?:key|token|secret|password|passwd|auth|sig)[^=&#]*=)"
    r"[^&#]*",
    re.IGNORECASE,
)


def _redact_unparsed(url: str) -> str:
    url = _USERINFO_PASSWORD.sub(rf"\g<user>:{REDACTED}@", url)
    return _SECRET_QUERY_VALUE.sub(rf"\g<name>{REDACTED}", url)


_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_ASSIGNED_SECRET = re.compile(
    r"(?P<name>\b[\w-]*(?:key|token|secret|password|passwd|authorization)\b)"
    r"(?P<sep>['\"]?\s*[:=]\s*['\"]?)"
    r"(?P<scheme>(?:bearer|basic|token)\s+)?"
    r"(?P<value>[^\s,;'\"&)}\]]+)",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    """Return *text* with URLs redacted and ``name=secret`` values hidden.

    Covers what logs and messages carry: URLs (see `redact_url`), headers
    such as ``Authorization: Bearer T``, and assignments such as
    ``api_key='K'`` or ``"token": "T"``.
    """
    text = _URL.sub(lambda match: redact_url(match.group()), text)
    return _ASSIGNED_SECRET.sub(_hide_value, text)


def _hide_value(match: re.Match[str]) -> str:
    if match["value"] == REDACTED:
        return match.group()

    scheme = match["scheme"] or ""
    return f"{match['name']}{match['sep']}{scheme}{REDACTED}"


class RedactingFilter(logging.Filter):
    """A logging filter that hides secrets in messages and tracebacks.

    The orchestrator puts one on the ``dso`` and ``httpx`` loggers while it
    is open, since httpx logs every request's full URL, query-string API
    keys included.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite *record*'s message and traceback text; never drop it."""
        try:
            message = record.getMessage()
        except Exception:
            # A filter that raises breaks the caller's log call; a handler
            # would show the raw arguments instead. Show them redacted.
            message = f"{record.msg} (arguments: {record.args!r})"
            record.msg, record.args = message, None

        redacted = redact_text(message)
        if redacted != message:
            record.msg = redacted
            record.args = None

        if record.exc_info and not record.exc_text:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact_text(formatted)

        return True
