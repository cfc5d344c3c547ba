"""The dso command line: exit statuses and messages a person can act on."""

from pathlib import Path

import pytest

import dso
from dso._cli import _error_lines, main


def test_bad_config_field_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad field in the config file exits 2 with the field's path."""
    config = tmp_path / "dso.toml"
    config.write_text('[providers.tiingo]\ntimeout = "fast"\n')

    status = main(["fetch", "AAPL", "-n", "quotes", "--config", str(config)])

    assert 2 == status
    assert 'providers.tiingo.timeout: expected a number, got "fast"' in (
        capsys.readouterr().out.replace("\n", " ")
    )


def test_unknown_namespace_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Asking for a namespace nobody declares exits 2 and names it."""
    config = tmp_path / "dso.toml"
    config.write_text(f'[cache]\nbackend = "sqlite"\npath = "{tmp_path / "c"}"\n')

    status = main(["fetch", "AAPL", "-n", "quotse", "--config", str(config)])

    assert 2 == status
    assert "unknown namespace 'quotse'" in capsys.readouterr().out


def test_plugins_lists_builtin_backends(capsys: pytest.CaptureFixture[str]) -> None:
    """The plugins command shows the built-in backends with their distribution."""
    status = main(["plugins"])

    output = capsys.readouterr().out
    assert 0 == status
    assert "sqlite" in output
    assert "dso-market" in output


def test_plugins_lists_the_tiered_backend(capsys: pytest.CaptureFixture[str]) -> None:
    """The tiered backend, built from two others, is listed with the built-ins."""
    status = main(["plugins"])

    rows = [line for line in capsys.readouterr().out.splitlines() if "tiered" in line]
    assert 0 == status
    assert 1 == len(rows)
    assert "dso " in rows[0]


def test_the_errors_column_marks_retries() -> None:
    """A provider tried again shows which try each line is."""
    down = dso.ErrorCode.UNAVAILABLE
    attempts = tuple(
        dso.Attempt("tiingo", down, "HTTP 503", retry=retry) for retry in range(3)
    )
    result: dso.FetchResult[object] = dso.FetchResult(
        "AAPL", "quotes", attempts=attempts
    )

    expected = [
        "tiingo: UNAVAILABLE (HTTP 503)",
        "tiingo, retry 1: UNAVAILABLE (HTTP 503)",
        "tiingo, retry 2: UNAVAILABLE (HTTP 503)",
    ]
    assert expected == _error_lines(result)
