"""The redis backend's options, and a password that never shows."""

import logging
import traceback
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import trio

import dso
from dso import CacheEntry
from dso_redis import RedisCacheError, open_redis_cache
from dso_redis._options import RedisOptions, read_options
from dso_redis.testing import open_redis_server


DEADLINE = 10

PASSWORD = "s3cr3t:p@ss"
URL = f"redis://dso:{urllib.parse.quote(PASSWORD, safe='')}@cache.example:6380/2"


def settings(**options: Any) -> dso.CacheSettings:
    return dso.CacheSettings(backend="redis", options=options)


def test_the_url_gives_host_port_database_and_credentials() -> None:
    """Each part of the URL lands in its option; the password is unquoted."""
    expected = RedisOptions(
        url="redis://dso:***@cache.example:6380/2",
        host="cache.example",
        port=6380,
        db=2,
        username="dso",
        password=PASSWORD,
    )

    assert expected == read_options(settings(url=URL))


def test_the_defaults_fill_what_the_url_leaves_out() -> None:
    """Without port or path, Redis's port 6379 and database 0 are used."""
    expected = RedisOptions(url="rediss://h", host="h", port=6379, tls=True)

    assert expected == read_options(settings(url="rediss://h"))


def test_the_other_options_are_read() -> None:
    """connect_timeout, max_connections and ca_file come through."""
    options = read_options(
        settings(
            url="rediss://h", connect_timeout=3, max_connections=8, ca_file="/ca.pem"
        )
    )

    assert (3.0, 8, "/ca.pem") == (
        options.connect_timeout,
        options.max_connections,
        options.ca_file,
    )


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({}, "url"),
        ({"url": 6379}, "url"),
        ({"url": "http://h:6379"}, "url"),
        ({"url": "redis://"}, "url"),
        ({"url": "redis://h:99999"}, "url"),
        ({"url": "redis://h:port"}, "url"),
        ({"url": "redis://h/zero"}, "url"),
        ({"url": "redis://h/0?ssl_cert_reqs=none"}, "url"),
        ({"url": "redis://[::1"}, "url"),
        ({"url": "redis://h", "connect_timeout": 0}, "connect_timeout"),
        ({"url": "redis://h", "connect_timeout": -1}, "connect_timeout"),
        ({"url": "redis://h", "connect_timeout": "1"}, "connect_timeout"),
        ({"url": "redis://h", "connect_timeout": True}, "connect_timeout"),
        ({"url": "redis://h", "connect_timeout": float("nan")}, "connect_timeout"),
        ({"url": "redis://h", "max_connections": 0}, "max_connections"),
        ({"url": "redis://h", "max_connections": 1.5}, "max_connections"),
        ({"url": "redis://h", "max_connections": True}, "max_connections"),
        ({"url": "redis://h", "ca_file": "/ca.pem"}, "ca_file"),
        ({"url": "rediss://h", "ca_file": ""}, "ca_file"),
        ({"url": "redis://h", "pasword": "typo"}, "pasword"),
        ({"url": "redis://h", "max_bytes": 10}, "max_bytes"),
    ],
    ids=repr,
)
async def test_a_bad_option_is_a_config_error_naming_it(
    options: dict[str, Any], field: str
) -> None:
    """Opening with a bad option fails before any I/O, naming the option."""
    with pytest.raises(dso.ConfigError, match=rf"^cache\.options\.{field}: "):
        async with open_redis_cache(settings(**options), lambda: 0.0):
            pass


@pytest.mark.parametrize(
    "url",
    [
        f"redis://dso:{PASSWORD}@h:99999/0",
        f"http://dso:{PASSWORD}@h/0",
        f"redis://dso:{PASSWORD}@h/zero",
        f"redis://dso:{PASSWORD}@h/0?x=1",
        f"redis://dso:{PASSWORD}@[::1/0",
    ],
    ids=["port", "scheme", "database", "query", "brackets"],
)
def test_a_bad_url_error_hides_the_password(url: str) -> None:
    """The error about a bad URL shows it with its password hidden."""
    with pytest.raises(dso.ConfigError) as info:
        read_options(settings(url=url))

    assert PASSWORD not in str(info.value)


async def test_a_missing_ca_file_is_a_config_error(tmp_path: Path) -> None:
    """A CA file that cannot be read is named when the cache opens."""
    missing = tmp_path / "missing.pem"

    with pytest.raises(dso.ConfigError, match=r"^cache\.options\.ca_file: "):
        async with open_redis_cache(
            settings(url="rediss://h", ca_file=str(missing)), lambda: 0.0
        ):
            pass


def test_the_options_repr_hides_the_password() -> None:
    """The parsed options never show the password."""
    shown = repr(read_options(settings(url=URL)))

    assert "redis://dso:***@cache.example:6380/2" in shown
    assert PASSWORD not in shown


async def test_opening_does_not_connect() -> None:
    """A Redis that is not there does not stop the cache from opening."""
    with trio.fail_after(DEADLINE):
        async with open_redis_cache(settings(url="redis://127.0.0.1:1"), lambda: 0.0):
            pass


async def test_the_right_password_is_let_in(protected_url: str) -> None:
    """With the user and password of the URL, the cache works."""
    stored = CacheEntry(b"v", 1_000.0, 1_060.0)
    with trio.fail_after(DEADLINE):
        async with open_redis_cache(settings(url=protected_url), lambda: 1e3) as cache:
            await cache.set("k", stored)

            found = await cache.get("k")

    assert stored == found


async def test_a_password_without_a_user_is_the_default_users(
    tmp_path: Path, redis_server_program: str
) -> None:
    """redis://:password@host logs in as Redis's default user (requirepass)."""
    stored = CacheEntry(b"v", 1_000.0, 1_060.0)
    arguments = ["--requirepass", "only-a-password"]
    with trio.fail_after(DEADLINE):
        async with open_redis_server(tmp_path, arguments=arguments) as server:
            url = f"redis://:only-a-password@127.0.0.1:{server.port}/0"
            async with open_redis_cache(settings(url=url), lambda: 1e3) as cache:
                await cache.set("k", stored)

                found = await cache.get("k")

    assert stored == found


async def test_a_wrong_password_never_shows(
    protected_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Refused credentials raise and log without the password, in any form."""
    caplog.set_level(logging.DEBUG)
    wrong = "wr0ng-pa55w0rd"
    url = protected_url.replace(":hunter2-rEd1s@", f":{wrong}@")
    with trio.fail_after(DEADLINE):
        async with open_redis_cache(settings(url=url), lambda: 1e3) as cache:
            with pytest.raises(RedisCacheError) as info:
                await cache.get("k")

            shown = [repr(cache), str(info.value), repr(info.value)]

    shown += ["".join(traceback.format_exception(info.value)), caplog.text]
    assert [] == [text for text in shown if wrong in text]
    assert "AuthenticationFailureError" in str(info.value)


async def test_the_right_password_never_shows(
    protected_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """In use, the password is in no repr and no log line."""
    caplog.set_level(logging.DEBUG)
    password = urllib.parse.urlsplit(protected_url).password
    assert password
    with trio.fail_after(DEADLINE):
        async with open_redis_cache(settings(url=protected_url), lambda: 1e3) as cache:
            await cache.set("k", CacheEntry(b"v", 1_000.0, 1_060.0))
            await cache.get_many(["k", "j"])

            shown = [repr(cache), repr(settings(url=protected_url)), caplog.text]

    assert [] == [text for text in shown if password in text]
