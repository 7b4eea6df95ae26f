"""The cache shared by every app server (Redis in production), used only to save work.

When Redis is down, pages must still work: reads find nothing, writes are skipped and locks are
granted, so each server simply asks Zuora itself. Every such failure is logged.
"""

import logging
from typing import Any

from django.core.cache import cache

logger = logging.getLogger(__name__)


class SharedCache:
    """The part of Django's cache API aquadash uses, never raising when the cache is down."""

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return cache.get(key, default)
        except Exception:
            logger.warning("Shared cache unavailable: reading %s skipped", key, exc_info=True)
            return default

    def set(self, key: str, value: Any, timeout: float | None = None) -> None:
        try:
            cache.set(key, value, timeout)
        except Exception:
            logger.warning("Shared cache unavailable: storing %s skipped", key, exc_info=True)

    def add(self, key: str, value: Any, timeout: float | None = None) -> bool:
        """Set unless present; True means the caller holds the key (and so the lock)."""
        try:
            return cache.add(key, value, timeout)
        except Exception:
            logger.warning("Shared cache unavailable: lock %s granted", key, exc_info=True)
            return True

    def delete(self, key: str) -> None:
        try:
            cache.delete(key)
        except Exception:
            logger.warning("Shared cache unavailable: deleting %s skipped", key, exc_info=True)


shared_cache = SharedCache()
