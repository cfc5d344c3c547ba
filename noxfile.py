"""Every routine task: `nox` runs lint, typecheck, tests and the demo."""

from __future__ import annotations

from pathlib import Path

import nox


nox.options.sessions = ["lint", "typecheck", "tests", "demo"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PLUGINS = [
    "plugins/dso-example",
    "plugins/dso-market",
    "plugins/dso-otel",
    "plugins/dso-prometheus",
    "plugins/dso-redis",
]
LINTED = ["dso", "plugins", "tests", "benchmarks", "noxfile.py"]


def install_project(session: nox.Session, *extras: str) -> None:
    """Install dso (with *extras*) and the first-party plugins, editable.

    With the ``test`` extra, each plugin's own ``test`` extra comes too
    (dso-otel's tests need the OpenTelemetry SDK, its code only the API).
    """
    core = "." if not extras else f".[{','.join(extras)}]"
    session.install("-e", core)
    for plugin in PLUGINS:
        session.install("-e", f"{plugin}[test]" if "test" in extras else plugin)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the core's and the plugins' test suites."""
    install_project(session, "test")
    session.run(
        "pytest",
        "tests",
        *(f"{plugin}/tests" for plugin in PLUGINS),
        *session.posargs,
    )


@nox.session
def thorough(session: nox.Session) -> None:
    """Run the property-based tests with at least 50,000 examples each."""
    install_project(session, "test")
    session.run(
        "pytest",
        "tests/test_breaker.py",
        "tests/test_codec.py",
        "tests/test_keys.py",
        "tests/test_merge_laws.py",
        "plugins/dso-redis/tests/test_envelope.py",
        "tests/test_rate_limits.py",
        "tests/test_retries.py",
        "--hypothesis-profile=thorough",
        *session.posargs,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install("ruff>=0.8", "flake8>=7", "flake8-async>=24.5")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)
    # flake8-async's trio rules, beyond the subset ruff carries. Left out:
    # ASYNC109, since the strategies take `timeout` by design and turn it
    # into a cancel scope; ASYNC127, which asks for an httpx fork, while
    # this project builds on httpx itself.
    session.run(
        "flake8",
        "--select=ASYNC1,ASYNC2,ASYNC3,ASYNC4",
        "--extend-ignore=ASYNC109,ASYNC127",
        "--startable-in-context-manager=serve_replay,serve_ops",
        "dso",
        "plugins",
        "tests",
    )


@nox.session
def typecheck(session: nox.Session) -> None:
    """Run mypy --strict on the library and the plugins."""
    install_project(session, "test")
    session.install("mypy>=1.13")
    session.run("mypy", "--strict", "dso", *(f"{plugin}/src" for plugin in PLUGINS))


@nox.session
def demo(session: nox.Session) -> None:
    """Fetch real recorded payloads through the replay server, end to end."""
    install_project(session)
    session.run("python", "plugins/dso-market/demo/run.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks; each prints its ratio to a same-run baseline.

    bench_redis starts its own redis-server (the Debian package), and says
    it skipped itself when the program is not installed.
    """
    install_project(session)
    session.install(
        "pybreaker>=1.4",
        "tornado>=6.4",
        "purgatory>=3.0",
        "aiodataloader>=0.4.3",
        "cashews>=7.0",
        "aiocache>=0.12",
    )
    for script in sorted(Path("benchmarks").glob("bench_*.py")):
        session.run("python", str(script))
