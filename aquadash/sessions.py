"""Sessions kept in the database and read through the shared cache (with REDIS_URL).

Django's cached_db store fails a request when the cache is down; ours then simply works from
the database, like everything else that uses the shared cache.
"""

import logging
from typing import Any

from django.contrib.sessions.backends import cached_db

logger = logging.getLogger(__name__)


class _CacheOrNothing:
    """The session store's cache, with every failure logged and taken as a miss."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self.cache.get(key, default)
        except Exception:
            logger.warning("Session cache unavailable: reading the database", exc_info=True)
            return default

    def set(self, key: str, value: Any, timeout: float | None = None) -> None:
        try:
            self.cache.set(key, value, timeout)
        except Exception:
            logger.warning("Session cache unavailable: not caching a session", exc_info=True)

    def delete(self, key: str) -> None:
        try:
            self.cache.delete(key)
        except Exception:
            logger.warning("Session cache unavailable: not uncaching a session", exc_info=True)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None


class SessionStore(cached_db.SessionStore):
    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._cache = _CacheOrNothing(self._cache)
