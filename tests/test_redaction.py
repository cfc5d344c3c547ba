"""Secrets never show: URLs in reprs, keys in config errors."""

import logging

import pytest
import trio

import dso
from dso._redaction import redact_text, redact_url
from dso.testing import FakeProvider


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://u:pw@host/x", "https://u:***@host/x"),
        (
            "https://host/query?function=OVERVIEW&apikey=K1&symbol=IBM",
            "https://host/query?function=OVERVIEW&apikey=***&symbol=IBM",
        ),
        (
            "https://host/news?token=T&tickers=AAPL",
            "https://host/news?token=***&tickers=AAPL",
        ),
        ("https://host/plain", "https://host/plain"),
    ],
)
def test_url_secrets_are_hidden(url: str, expected: str) -> None:
    """Passwords and secret-looking query values are replaced."""
    assert expected == redact_url(url)


def test_settings_repr_hides_key_and_url_password() -> None:
    """A provider's settings never show its key or a password in its URL."""
    config = dso.Config.from_dict(
        {
            "providers": {
                "p": {"api_key": "KEY-123", "base_url": "https://u:hunter2@h/x"}
            }
        }
    )

    shown = repr(config)

    assert "KEY-123" not in shown
    assert "hunter2" not in shown
    assert "https://u:***@h/x" in shown


def test_a_bad_api_key_value_is_not_echoed() -> None:
    """A config error about an api_key names the field but not the value."""
    with pytest.raises(dso.ConfigError) as info:
        dso.Config.from_dict({"providers": {"p": {"api_key": 12345678}}})

    assert "providers.p.api_key: expected a string" == str(info.value)


def test_cache_options_repr_hides_url_passwords_and_secrets() -> None:
    """A cache backend's options never show a URL's password or a secret."""
    config = dso.Config.from_dict(
        {
            "cache": {
                "backend": "redis",
                "options": {"url": "redis://u:hunter2@h:6379/0", "password": "pw-9"},
            }
        }
    )

    shown = repr(config)

    assert "hunter2" not in shown
    assert "pw-9" not in shown
    assert "redis://u:***@h:6379/0" in shown


@pytest.mark.parametrize(
    "text",
    [
        "https://u:hunter2@[::1/x?apikey=K-42",
        "see [redis://:hunter2@cache.internal:6379?token=K-42]",
        "redis://:hunter2@host]:6379/0?password=K-42",
    ],
)
def test_secrets_in_urls_python_cannot_parse_are_hidden(text: str) -> None:
    """A URL urllib refuses (stray brackets) still loses its secrets."""
    shown = redact_text(text)

    assert ("hunter2" in shown, "K-42" in shown) == (False, False)


def test_the_filter_survives_a_log_call_with_bad_arguments(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A malformed log call neither raises through the filter nor leaks."""
    logger = logging.getLogger("dso.test-redaction")
    redacting = dso.RedactingFilter()
    logger.addFilter(redacting)
    try:
        logger.warning("calling %d", "https://h/q?apikey=K-42")
    finally:
        logger.removeFilter(redacting)

    shown = [record.getMessage() for record in caplog.records]
    assert ["calling %d (arguments: ('https://h/q?apikey=***',))"] == shown


async def test_a_provider_message_with_a_secret_is_redacted_in_attempts() -> None:
    """A careless provider's URL with its key is hidden in the result's attempts."""
    leaky = FakeProvider("leaky")
    message = "HTTP 500 from https://h/q?apikey=K-42 (Authorization: Bearer T-42)"
    leaky.fail_all(dso.ProviderError(dso.ErrorCode.NOT_FOUND, message))
    config = dso.Config.from_dict({"plugins": {"autoload": False}})

    with trio.fail_after(60):
        async with dso.open_orchestrator(
            config, providers=[leaky], namespaces=[dso.Namespace("quotes")]
        ) as orch:
            result = await orch.fetch_with_fallback("A", ["leaky"], namespace="quotes")

    expected = "HTTP 500 from https://h/q?apikey=*** (Authorization: Bearer ***)"
    assert [expected] == [attempt.message for attempt in result.attempts]
