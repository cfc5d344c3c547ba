"""`dso serve --demo-traffic` over the recordings: the counts move."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import trio


DEMO_CONFIG = Path(__file__).parents[1] / "demo" / "serve.toml"


async def test_demo_traffic_reaches_the_providers(tmp_path: Path) -> None:
    """Dso serve --demo-traffic serves stats that count calls to the recordings."""
    url_file = tmp_path / "url"
    command = [sys.executable, "-m", "dso", "serve", "-c", str(DEMO_CONFIG)]
    command += ["--demo-traffic", "--port", "0", "--url-file", str(url_file)]

    with trio.fail_after(60):
        process = await trio.lowlevel.open_process(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            await wait_for_line(process, b"serving http")
            stats = await wait_for_calls(url_file.read_text())
        finally:
            process.kill()
            with trio.move_on_after(10, shield=True):
                await process.wait()

    providers = ["benzinga", "newsapi", "tiingo", "yahoo"]
    assert providers == sorted(stats["providers"])
    assert {"news", "quotes"} <= set(stats["namespaces"])


async def wait_for_line(process: trio.Process, marker: bytes) -> None:
    """Read the process's output until a line has *marker*."""
    assert process.stdout is not None
    seen = b""
    while marker not in seen:
        chunk = await process.stdout.receive_some()
        assert chunk, f"dso serve ended before {marker!r}: {seen.decode()}"
        seen += chunk


async def wait_for_calls(url: str) -> dict[str, Any]:
    """Poll /stats until a provider has been called; return those stats."""
    async with httpx.AsyncClient(base_url=url) as client:
        while True:
            stats: dict[str, Any] = (await client.get("/stats")).json()
            if any(p["attempts"] for p in stats["providers"].values()):
                return stats

            await trio.sleep(0.1)
