"""A circuit breaker per tenant: when one tenant's Zuora keeps failing, stop asking it for a while.

After AQUADASH_BREAKER_FAILURES calls in a row fail with a timeout, a broken connection or a
5xx, the tenant's circuit opens for AQUADASH_BREAKER_SECONDS: pages answer at once from what is
stored instead of waiting on Zuora. Then one request, on whichever server, is let through as a
probe; its success closes the circuit, its failure opens it again. The state lives in the shared
cache, so every server sees it. A missing job, a rate limit or bad credentials are answers, not
failures of Zuora, and never open it.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings

from aquadash import zuora
from aquadash.shared_cache import shared_cache

if TYPE_CHECKING:
    from aquadash.models import Tenant


class CircuitOpen(zuora.ZuoraUnavailable):
    summary = "not asked: Zuora failing for this tenant"

    def __init__(self, message: str, *, retry_at: float | None = None, **kwargs: str) -> None:
        super().__init__(message, **kwargs)
        if retry_at is not None:
            self.retry_after = max(1, int(retry_at - now()))


def now() -> float:
    return time.time()


def _key(tenant: "Tenant") -> str:
    return f"breaker:{tenant.pk}:{tenant.base_url_resolved}"


def _state(key: str) -> dict:
    return shared_cache.get(key) or {"failures": 0, "open_until": 0.0}


def status(tenant: "Tenant") -> tuple[int, bool]:
    """(calls failed in a row, whether the circuit is open), as every server sees it now."""
    state = _state(_key(tenant))
    return state["failures"], bool(state["open_until"])


@contextmanager
def guarded(tenant: "Tenant") -> Iterator[None]:
    """Run a call to the tenant's Zuora, or raise CircuitOpen without making it."""
    key = _key(tenant)
    state = _state(key)
    if state["open_until"]:
        # Open: refuse until the time is up, then let exactly one probe through.
        probe_free = state["open_until"] <= now() and shared_cache.add(
            key + ":probe", 1, settings.AQUADASH_BREAKER_SECONDS
        )
        if not probe_free:
            retry_at = max(state["open_until"], now() + 1)
            when = datetime.fromtimestamp(retry_at, tenant.zoneinfo).strftime("%H:%M:%S %Z")
            raise CircuitOpen(
                f"Zuora is not answering for tenant {tenant.name}, so aquadash is not asking it "
                f"for a while; retrying at {when}. What is shown is what aquadash stored.",
                retry_at=retry_at,
            )
    try:
        yield
    except zuora.ZuoraUnavailable as exc:
        if not isinstance(exc, CircuitOpen):
            _failed(key, state)
        raise
    else:
        if state["failures"] or state["open_until"]:
            shared_cache.delete(key)
            shared_cache.delete(key + ":probe")


def _failed(key: str, state: dict) -> None:
    failures = state["failures"] + 1
    opens = failures >= settings.AQUADASH_BREAKER_FAILURES
    open_until = now() + settings.AQUADASH_BREAKER_SECONDS if opens else 0.0
    shared_cache.set(key, {"failures": failures, "open_until": open_until}, timeout=3600)
    shared_cache.delete(key + ":probe")
