"""Demo traffic for ``dso serve --demo-traffic``: the dashboard moves.

Keys are fetched over and over through providers pointed at a replay
server of recorded responses, and the replay server is told to fail one
provider now and then, so that breakers open and alerts come and go.
"""

from __future__ import annotations

import itertools
import random
from typing import TYPE_CHECKING

import trio

from ._errors import ConfigError


if TYPE_CHECKING:
    from ._orchestrator import Orchestrator
    from .testing import ReplayServer


def demo_keys(demo: object) -> dict[str, list[str]]:
    """Return the keys of a configuration's ``[demo]`` table, by namespace.

    Raises:
        ConfigError: The table is missing or not ``keys = {ns = [...]}``.
    """
    keys = demo.get("keys") if isinstance(demo, dict) else None
    if not isinstance(keys, dict) or not keys:
        raise ConfigError(
            "--demo-traffic: the configuration needs a [demo] table with "
            'keys = {namespace = ["KEY", ...]}'
        )

    for namespace, names in keys.items():
        if not isinstance(names, list) or not all(isinstance(k, str) for k in names):
            raise ConfigError(f"demo.keys.{namespace}: expected a list of strings")

        if not names:
            raise ConfigError(f"demo.keys.{namespace}: no keys")

    return keys


OUTAGE_EVERY = 20
"""Demo rounds from one outage to the next; each lasts half of that."""


async def demo_traffic(
    server: ReplayServer, keys: dict[str, list[str]], orchestrator: Orchestrator
) -> None:
    """Fetch *keys* until cancelled, with an outage now and then.

    Every half second one key of each namespace is fetched, some after
    being invalidated; every `OUTAGE_EVERY` rounds one provider answers
    503 for half of them.

    Args:
        server: The replay server the providers call, for the outages.
        keys: The keys to fetch, by namespace.
        orchestrator: What fetches them.
    """
    from .testing import Fault

    # A fixed seed: every demo run moves the same way.
    chance = random.Random(7)
    providers = sorted(orchestrator.config.providers)
    for round_ in itertools.count():
        if round_ % OUTAGE_EVERY == 0:
            server.clear_faults()
        elif providers and round_ % OUTAGE_EVERY == OUTAGE_EVERY // 2:
            server.inject(chance.choice(providers), Fault.status_code(503))

        for namespace, names in keys.items():
            key = chance.choice(names)
            # Some refetching keeps the providers busy and the hit rate real.
            if chance.random() < 0.3:
                await orchestrator.invalidate(namespace, key)

            await orchestrator.fetch_with_fallback(
                key, namespace=namespace, allow_stale=True
            )

        await trio.sleep(0.5)
