"""Removing secrets from URLs before they are shown anywhere."""

from __future__ import annotations

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
        return url

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
