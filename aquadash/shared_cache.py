"""The cache shared by every app server (Redis in production), used only to save work.

When Redis is down, pages must still work: each process falls back to a cache of its own, so
requests within one process still share answers and locks, and each server asks Zuora at most
once per interval for itself. Every such failure is logged.
"""

import logging
from typing import Any

from django.core.cache import cache
from django.core.cache.backends import redis
from django.core.cache.backends.locmem import LocMemCache

logger = logging.getLogger(__name__)


class SharedCache:
    """The part of Django's cache API aquadash uses, never raising when the cache is down."""

    def __init__(self) -> None:
        self.local = LocMemCache("aquadash-fallback", {"OPTIONS": {"MAX_ENTRIES": 10_000}})

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return cache.get(key, default)
        except Exception:
            logger.warning("Shared cache unavailable: reading %s locally", key, exc_info=True)
            return self.local.get(key, default)

    def set(self, key: str, value: Any, timeout: float | None = None) -> None:
        try:
            cache.set(key, value, timeout)
        except Exception:
            logger.warning("Shared cache unavailable: storing %s locally", key, exc_info=True)
            self.local.set(key, value, timeout)

    def add(self, key: str, value: Any, timeout: float | None = None) -> bool:
        """Set unless present; True means the caller holds the key (and so the lock)."""
        try:
            return cache.add(key, value, timeout)
        except Exception:
            logger.warning("Shared cache unavailable: lock %s taken locally", key, exc_info=True)
            return self.local.add(key, value, timeout)

    def count(self, key: str, timeout: float) -> int:
        """One more at `key`, a counter that lasts `timeout` seconds from its first count;
        returns the new total."""
        for store in (cache, self.local):
            try:
                store.add(key, 0, timeout)
                return store.incr(key)
            except ValueError:  # it expired between the two calls: this is the first count
                store.set(key, 1, timeout)
                return 1
            except Exception:
                logger.warning("Shared cache unavailable: counting %s locally", key, exc_info=True)
        return 1  # unreachable: the local cache does not fail

    def delete(self, key: str) -> None:
        try:
            cache.delete(key)
        except Exception:
            logger.warning("Shared cache unavailable: deleting %s locally", key, exc_info=True)
            self.local.delete(key)


shared_cache = SharedCache()


class _ReusedClients(redis.RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        if (client := self._clients.get(id(pool))) is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(redis.RedisCache):
    """Django's Redis cache, with one client per connection pool. Django makes a new redis.Redis
    for every call, and building one costs more than the call itself (about 0.4 ms, most of a
    cache read); a client is safe to share between threads, its pool hands out connections."""

    def __init__(self, server: str, params: dict) -> None:
        super().__init__(server, params)
        self._class = _ReusedClients
