"""rediss:// URLs: TLS to a real redis-server, certificates verified."""

import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
import trio

import dso
from dso import CacheEntry
from dso_redis import RedisCacheError, open_redis_cache
from dso_redis.testing import open_redis_server


DEADLINE = 10

STORED = CacheEntry(b"v", 1_000.0, 1_060.0)


@attrs.frozen
class TlsServer:
    port: int
    ca_file: Path


async def openssl(*arguments: str | Path, cwd: Path) -> None:
    await trio.run_process(
        ["openssl", *map(str, arguments)], cwd=cwd, capture_stdout=True
    )


async def make_certificates(directory: Path) -> None:
    """A throwaway CA, and a certificate it signed for localhost."""
    await openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=dso test CA",
        cwd=directory,
    )  # fmt: skip
    await openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
        "-out", "server.csr", "-subj", "/CN=localhost",
        cwd=directory,
    )  # fmt: skip
    await trio.Path(directory / "names.cnf").write_text(
        "subjectAltName=DNS:localhost\n"
    )
    await openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "1", "-out", "server.pem",
        "-extfile", "names.cnf",
        cwd=directory,
    )  # fmt: skip


async def free_port() -> int:
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]

    return port


@pytest.fixture
async def tls_server(
    tmp_path: Path, redis_server_program: str
) -> AsyncIterator[TlsServer]:
    """A redis-server that also speaks TLS, with a certificate for localhost."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl program is not installed")

    await make_certificates(tmp_path)
    port = await free_port()
    arguments = ["--tls-port", str(port), "--tls-auth-clients", "no"]
    arguments += ["--tls-cert-file", str(tmp_path / "server.pem")]
    arguments += ["--tls-key-file", str(tmp_path / "server.key")]
    arguments += ["--tls-ca-cert-file", str(tmp_path / "ca.pem")]
    try:
        async with open_redis_server(tmp_path, arguments=arguments):
            yield TlsServer(port, tmp_path / "ca.pem")
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"openssl failed: {exc.stderr!r}")


def causes(error: BaseException | None) -> list[type[BaseException]]:
    """The kinds of *error* and of every error it was raised from."""
    found = []
    while error is not None:
        found.append(type(error))
        error = error.__cause__ or error.__context__

    return found


def settings(url: str, **options: object) -> dso.CacheSettings:
    return dso.CacheSettings(backend="redis", options={"url": url, **options})


async def test_a_rediss_url_talks_tls_to_a_trusted_server(
    tls_server: TlsServer,
) -> None:
    """With its CA given as ca_file, the TLS server stores and serves entries."""
    url = f"rediss://localhost:{tls_server.port}/0"
    with trio.fail_after(DEADLINE):
        async with open_redis_cache(
            settings(url, ca_file=str(tls_server.ca_file)), lambda: 1_000.0
        ) as cache:
            await cache.set("k", STORED)

            found = await cache.get("k")

    assert STORED == found


async def test_an_untrusted_certificate_is_refused(tls_server: TlsServer) -> None:
    """Without the CA, the server's certificate fails verification: an error."""
    url = f"rediss://localhost:{tls_server.port}/0"
    with trio.fail_after(DEADLINE):
        async with open_redis_cache(settings(url), lambda: 1_000.0) as cache:
            with pytest.raises(RedisCacheError) as info:
                await cache.get("k")

    assert ssl.SSLCertVerificationError in causes(info.value)


async def test_a_certificate_for_another_name_is_refused(
    tls_server: TlsServer,
) -> None:
    """A certificate for localhost does not pass for 127.0.0.1."""
    url = f"rediss://127.0.0.1:{tls_server.port}/0"
    with trio.fail_after(DEADLINE):
        async with open_redis_cache(
            settings(url, ca_file=str(tls_server.ca_file)), lambda: 1_000.0
        ) as cache:
            with pytest.raises(RedisCacheError) as info:
                await cache.get("k")

    assert ssl.SSLCertVerificationError in causes(info.value)
