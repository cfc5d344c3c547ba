"""The main job, end to end: dso fetching real recorded payloads.

Starts ``dso replay`` on the recorded responses in ``../shared/fixtures``
(or ``$DSO_FIXTURES``), writes a configuration pointing every provider at
it with a SQLite cache, then runs ``dso fetch`` as separate processes to
show, on real payloads: a batch with an unknown symbol, the second run
served from the SQLite cache, a fallback from a failing primary, a merge
of fundamentals, a partial news merge, Alpha Vantage's rate-limit note
classified and not cached, a SEC filing summary, and stale data served
when every provider fails.

Exits with status 1 if any of these does not happen as described.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


DSO = [sys.executable, "-m", "dso"]

NOTE = """\
The values come from real responses recorded at different times (Tiingo's
single quote in July 2020, its batch after a close, Yahoo's in 2022...), so
the same symbol shows different prices from different providers. The tier
"realtime" has a freshness of 0 seconds: a fetch with --tier realtime never
takes the cache as fresh, so it always asks the providers first."""
Report = dict[str, Any]
Check = tuple[str, Callable[[Report], bool]]


class Demo:
    """Runs the scenarios against one replay server and one cache file."""

    def __init__(self, workdir: Path, replay_url: str) -> None:
        self.workdir = workdir
        self.replay_url = replay_url
        self.config = workdir / "dso.toml"
        self.config.write_text(demo_config(replay_url, workdir / "cache.sqlite3"))
        self.failures: list[str] = []
        self.runs = 0

    def scenario(
        self,
        title: str,
        arguments: Sequence[str],
        checks: Sequence[Check],
        *,
        faults: Sequence[dict[str, Any]] = (),
    ) -> Report:
        """Run ``dso fetch`` with *arguments* under *faults*, then check it."""
        print(f"\n=== {title}", flush=True)
        self.set_faults(faults)
        for fault in faults:
            print(
                f"    (replay server fault: {fault['provider']} -> {fault_text(fault)})"
            )

        self.runs += 1
        report_path = self.workdir / f"report-{self.runs}.json"
        command = [*DSO, "fetch", *arguments, "--config", str(self.config)]
        command += ["--report", str(report_path)]
        print("$ dso fetch " + " ".join(arguments) + " -c dso.toml", flush=True)
        completed = subprocess.run(command, check=False)
        if completed.returncode not in (0, 1) or not report_path.exists():
            self.fail(title, f"dso fetch exited with {completed.returncode}")
            return {}

        report = json.loads(report_path.read_text())
        for description, check in checks:
            self.check(title, description, report, check)

        return report

    def check(
        self,
        title: str,
        description: str,
        report: Report,
        check: Callable[[Report], bool],
    ) -> None:
        """Print one check's verdict and remember failures."""
        try:
            passed = bool(check(report))
        except (KeyError, IndexError, TypeError) as exc:
            passed = False
            description += f" (could not check: {exc!r})"

        print(f"    {'ok  ' if passed else 'FAIL'} {description}")
        if not passed:
            self.fail(title, description)

    def fail(self, title: str, description: str) -> None:
        """Remember a failed expectation."""
        self.failures.append(f"{title}: {description}")

    def set_faults(self, faults: Sequence[dict[str, Any]]) -> None:
        """Replace the replay server's faults with *faults*."""
        self._control("DELETE", None)
        for fault in faults:
            self._control("POST", fault)

    def _control(self, method: str, body: dict[str, Any] | None) -> None:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.replay_url}/_replay/faults",
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


def main() -> int:
    """Run every scenario; return 0 if all happened as described."""
    with tempfile.TemporaryDirectory(prefix="dso-demo-") as tmp:
        workdir = Path(tmp)
        print("$ dso plugins", flush=True)
        subprocess.run([*DSO, "plugins"], check=True)

        replay, url = start_replay(workdir)
        try:
            demo = Demo(workdir, url)
            print(f"\nThe replay server listens on {url}. Every command below")
            print(f"uses this configuration ({demo.config}):")
            print(demo.config.read_text())
            print(NOTE)
            run_scenarios(demo)
        finally:
            replay.terminate()
            replay.wait(timeout=10)

    print()
    if demo.failures:
        print(f"{len(demo.failures)} expectation(s) not met:")
        for failure in demo.failures:
            print(f"  - {failure}")
        return 1

    print(f"All {demo.runs} scenarios behaved as described.")
    return 0


def run_scenarios(demo: Demo) -> None:
    """The scenarios, in an order where each builds on the cache so far."""
    portfolio = ["AAPL", "MSFT", "NONEXIST", "AAPL"]
    demo.scenario(
        "A portfolio batch: one Tiingo call, the unknown symbol reported per key",
        [*portfolio, "-n", "quotes", "--batch", "-p", "tiingo"],
        [
            ("three distinct keys", lambda r: keys(r) == ["AAPL", "MSFT", "NONEXIST"]),
            (
                "AAPL and MSFT fetched from tiingo",
                lambda r: sources(r)[:2] == ["tiingo"] * 2,
            ),
            (
                "NONEXIST is a per-key NOT_FOUND",
                lambda r: codes(r, "NONEXIST") == ["not_found"],
            ),
            ("one provider call", lambda r: calls(r) == {"tiingo": 1}),
        ],
    )
    demo.scenario(
        "The same batch in a new process: served from the SQLite cache",
        [*portfolio, "-n", "quotes", "--batch", "-p", "tiingo"],
        [
            ("AAPL and MSFT are cache hits", lambda r: cached(r)[:2] == [True, True]),
            (
                "one provider call, for the symbol the cache lacks",
                lambda r: calls(r) == {"tiingo": 1} and not cached(r)[2],
            ),
        ],
    )
    demo.scenario(
        "A quote falls back from a failing Tiingo to Yahoo (--tier realtime skips "
        "the cached quote)",
        ["AAPL", "-n", "quotes", "--tier", "realtime"],
        [
            ("answered by yahoo", lambda r: sources(r) == ["yahoo"]),
            (
                "tiingo's failure is listed, with its two retries",
                lambda r: codes(r, "AAPL") == ["unavailable"] * 3,
            ),
            ("a real price", lambda r: result(r, "AAPL")["data"]["price"] > 0),
        ],
        faults=[{"provider": "tiingo", "kind": "status", "status": 503}],
    )
    demo.scenario(
        "Fundamentals merged from Alpha Vantage and Yahoo",
        ["AAPL", "-n", "fundamentals", "--merge"],
        [
            (
                "both providers answered",
                lambda r: (
                    result(r, "AAPL")["sources"]
                    == ["alpha_vantage_overview", "yahoo_summary"]
                ),
            ),
            ("not partial", lambda r: not result(r, "AAPL")["partial"]),
            (
                "Alpha Vantage, named first, wins where both have a field",
                lambda r: (
                    result(r, "AAPL")["data"]["exchange"] == "NASDAQ"
                    and result(r, "AAPL")["data"]["sector"] == "TECHNOLOGY"
                ),
            ),
        ],
    )
    demo.scenario(
        "News merged across NewsAPI and Benzinga (no NewsAPI answer for AAPL was "
        "recorded, so the replay server says 404 and the merge is partial)",
        ["AAPL", "-n", "news", "--merge", "--min-providers", "1"],
        [
            ("marked partial", lambda r: result(r, "AAPL")["partial"]),
            (
                "articles from benzinga",
                lambda r: result(r, "AAPL")["sources"] == ["benzinga"],
            ),
            (
                "newsapi's 404 is a NOT_FOUND",
                lambda r: codes(r, "AAPL") == ["not_found"],
            ),
        ],
    )
    runs = [
        ("first", "Alpha Vantage was called"),
        ("second", "called again: the note was not cached"),
    ]
    for run, called in runs:
        demo.scenario(
            f"Alpha Vantage's rate-limit note, sent with HTTP 200 ({run} run)",
            ["TSLA", "-n", "quotes", "-p", "alpha_vantage", "--no-stale"],
            [
                ("no data", lambda r: result(r, "TSLA")["data"] is None),
                ("classified RATE_LIMIT", lambda r: codes(r, "TSLA") == ["rate_limit"]),
                (called, lambda r: calls(r) == {"alpha_vantage": 1}),
            ],
        )
    demo.scenario(
        "A SEC filing summary from EDGAR's submissions",
        ["1835632", "-n", "filings"],
        [
            ("found", lambda r: result(r, "1835632")["source"] == "sec_edgar"),
            (
                "Marvell's filings",
                lambda r: "Marvell" in result(r, "1835632")["data"]["name"],
            ),
        ],
    )
    demo.scenario(
        "Every provider down: the last quote is served, marked stale",
        ["AAPL", "-n", "quotes", "--tier", "realtime"],
        [
            ("served from the cache", lambda r: sources(r) == ["cache"]),
            ("marked stale", lambda r: result(r, "AAPL")["stale"]),
            (
                "both failures listed, each provider tried three times",
                lambda r: codes(r, "AAPL") == ["unavailable"] * 6,
            ),
        ],
        faults=[{"provider": "*", "kind": "status", "status": 503}],
    )
    demo.set_faults([])


def start_replay(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``dso replay`` on a free port; return it and its URL."""
    url_file = workdir / "replay-url"
    command = [*DSO, "replay", "--port", "0", "--url-file", str(url_file)]
    print("$ dso replay --port 0", flush=True)
    replay = subprocess.Popen(command)
    deadline = time.monotonic() + 30
    while not url_file.exists() or not url_file.read_text():
        if replay.poll() is not None or time.monotonic() > deadline:
            replay.kill()
            raise SystemExit("the replay server did not start")
        time.sleep(0.05)

    return replay, url_file.read_text().strip()


def demo_config(url: str, cache_path: Path) -> str:
    """Return the demo's configuration: every provider on the replay server."""
    return f"""
timeout = 30

[cache]
backend = "sqlite"
path = "{cache_path}"

[providers.tiingo]
base_url = "{url}/tiingo"
api_key = "demo-tiingo-key"
timeout = 5

[providers.yahoo]
base_url = "{url}/yahoo"
timeout = 5

[providers.yahoo_summary]
base_url = "{url}/yahoo"

[providers.alpha_vantage]
base_url = "{url}/alpha_vantage"
api_key = "demo-av-key"

[providers.alpha_vantage_overview]
base_url = "{url}/alpha_vantage"
api_key = "demo-av-key"

[providers.newsapi]
base_url = "{url}/newsapi"
api_key = "demo-newsapi-key"

[providers.benzinga]
base_url = "{url}/benzinga"
api_key = "demo-benzinga-key"

[providers.sec_edgar]
base_url = "{url}/sec_edgar"
options = {{ user_agent = "dso demo dso-demo@example.org" }}

[namespaces.quotes]
providers = ["tiingo", "yahoo"]
ttl = {{ fresh = 60, stale = 86400, tiers = {{ realtime = 0 }} }}

[namespaces.fundamentals]
providers = ["alpha_vantage_overview", "yahoo_summary"]
ttl = {{ fresh = 86400, stale = 604800 }}

[namespaces.news]
providers = ["newsapi", "benzinga"]
ttl = {{ fresh = 300, stale = 86400 }}

[namespaces.filings]
providers = ["sec_edgar"]
ttl = {{ fresh = 3600, stale = 604800 }}
"""


def fault_text(fault: dict[str, Any]) -> str:
    """Describe a fault in a few words."""
    if fault["kind"] == "status":
        return f"HTTP {fault['status']}"

    return str(fault["kind"])


def result(report: Report, key: str) -> dict[str, Any]:
    """Return the result for *key* in a report."""
    return next(item for item in report["results"] if item["key"] == key)


def keys(report: Report) -> list[str]:
    """Return the keys of a report, in order."""
    return [item["key"] for item in report["results"]]


def sources(report: Report) -> list[str]:
    """Return each result's source."""
    return [item["source"] for item in report["results"]]


def cached(report: Report) -> list[bool]:
    """Return whether each result came from the cache."""
    return [item["cached"] for item in report["results"]]


def codes(report: Report, key: str) -> list[str]:
    """Return the error codes of *key*'s failed attempts."""
    return [a["code"] for a in result(report, key)["attempts"] if a["code"] is not None]


def calls(report: Report) -> dict[str, int]:
    """Return the provider calls made in the run, without the zeros."""
    made = report["statistics"]["provider_calls"]
    return {name: count for name, count in made.items() if count}


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
