"""A Redis cache backend for dso, shared by every process of an application.

Installing this distribution offers the ``redis`` backend through the
``dso`` entry point::

    [cache]
    backend = "redis"

    [cache.options]
    url = "redis://user:password@localhost:6379/0"
"""

from ._backend import RedisCache as RedisCache
from ._backend import RedisCacheStatistics as RedisCacheStatistics
from ._backend import open_redis_cache as open_redis_cache
from ._errors import RedisCacheError as RedisCacheError


__all__ = [
    "RedisCache",
    "RedisCacheError",
    "RedisCacheStatistics",
    "open_redis_cache",
]
