"""Tools for testing with a real Redis.

`open_redis_server` starts a throwaway ``redis-server`` on a loopback
port, with persistence off, and stops it afterwards; tests can stop, kill,
pause and restart it in between::

    async with open_redis_server(tmp_path) as server:
        settings = dso.CacheSettings(backend="redis", options={"url": server.url})
        ...
        await server.restart()  # same port, empty
"""

from ._server import RedisServer as RedisServer
from ._server import find_redis_server as find_redis_server
from ._server import open_redis_server as open_redis_server


__all__ = ["RedisServer", "find_redis_server", "open_redis_server"]
