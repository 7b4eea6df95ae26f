"""The cache shared by every app server (Redis in production), used only to save work.

When Redis is down, pages must still work: each process falls back to a cache of its own, so
requests within one process still share answers and locks, and each server asks Zuora at most
once per interval for itself. Every such failure is logged.
"""

import logging
from typing import Any

from django.core.cache import cache
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

    def delete(self, key: str) -> None:
        try:
            cache.delete(key)
        except Exception:
            logger.warning("Shared cache unavailable: deleting %s locally", key, exc_info=True)
            self.local.delete(key)


shared_cache = SharedCache()
