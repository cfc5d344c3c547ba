"""What limits and retries add to a provider call, against the same call without.

Every fetch misses the cache (fresh for 0 s) and calls a fake provider that
answers at once, so the time is the miss path: cache read, shared call,
guarded attempt, cache write. Three configurations, measured in the same
run, one after the other:

- baseline: retries off and no limits, the path before limits existed;
- default: retries on (the default), no limits; a first try that works
  never enters stamina, so this should cost next to nothing;
- limited: retries on, a rate limit and a quota, both far from spent, so
  every call takes a token and counts against the quota.

Then the cost of a retry itself: a provider failing once before answering,
with stamina's testing mode on so that no time is spent waiting.
Each is the best of five interleaved runs. Prints µs per call and the ratios to the
baseline.
"""

from __future__ import annotations

import time
from typing import Any

import stamina
import trio

import dso
from dso.testing import FakeProvider


CALLS = 20_000
KEYS = [f"K{index}" for index in range(CALLS)]


def config(settings: dict[str, Any]) -> dso.Config:
    return dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {"quotes": {"ttl": {"fresh": 0, "stale": 0}}},
            "providers": {"bench": settings},
        }
    )


BASELINE = {"retries": {"enabled": False}}
DEFAULT: dict[str, Any] = {}
LIMITED = {"rate_limit": "1000000/second", "quota": "1000000000/day"}

ROUNDS: dict[str, tuple[dict[str, Any], bool]] = {
    "baseline": (BASELINE, False),
    "default (retries on)": (DEFAULT, False),
    "rate limit + quota": (LIMITED, False),
    "one retry per call, no waits": (DEFAULT, True),
}


async def per_call(settings: dict[str, Any], fail_first: bool) -> float:
    provider = FakeProvider("bench", dict.fromkeys(KEYS, 1.0))
    if fail_first:
        down = dso.ProviderError(dso.ErrorCode.UNAVAILABLE, "down")
        for key in KEYS:
            provider.script(key, down)

    async with dso.open_orchestrator(config(settings), providers=[provider]) as orch:
        start = time.perf_counter()
        for key in KEYS:
            await orch.fetch_with_fallback(key, ["bench"], namespace="quotes")
        return (time.perf_counter() - start) / CALLS


def main() -> None:
    # stamina logs every scheduled retry; 20,000 lines would drown the table.
    stamina.instrumentation.set_on_retry_hooks([])
    runs: dict[str, list[float]] = {name: [] for name in ROUNDS}
    # Interleaved rounds, best of each: the machine is shared, and a burst
    # of load should hit every configuration alike.
    for _ in range(5):
        for name, (settings, fail_first) in ROUNDS.items():
            with stamina.set_testing(fail_first, attempts=2):
                runs[name].append(trio.run(per_call, settings, fail_first))

    best = {name: min(times) for name, times in runs.items()}
    baseline = best["baseline"]
    for name, seconds in best.items():
        ratio = seconds / baseline
        print(f"{name:34} {seconds * 1e6:8.1f} µs/call  {ratio:5.2f}x baseline")


if __name__ == "__main__":
    main()
