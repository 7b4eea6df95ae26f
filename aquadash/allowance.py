"""Zuora's API allowance for each tenant, and how often pages and watches spend it.

Zuora limits each tenant's requests per minute, hour and day, for all the customer's
integrations together (https://developer.zuora.com/docs/guides/rate-limits/: an API Sandbox
tenant has 5,000 an hour and 10,000 a day). The client reports the RateLimit headers of every
answer; the latest is kept here, in the shared cache so that every server and worker sees it,
until its window resets.

A running job is asked about every tenth of the time it has run, from AQUADASH_POLL_SECONDS up
to AQUADASH_POLL_MAX_SECONDS: a job that has run for an hour will not end in the next five
seconds. Below AQUADASH_RATE_RESERVE percent of the allowance, pages and watches ask at the
longest interval; with nothing left, not before the allowance resets. A person's own lookup or
Refresh is never slowed (jobs.fetch_job).
"""

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from aquadash import zuora
from aquadash.shared_cache import shared_cache

if TYPE_CHECKING:
    from aquadash.models import Tenant

WINDOWS = {60: "this minute", 3600: "this hour", 86400: "in this 24-hour window"}
UNKNOWN_RESET = 3600  # seconds a figure is kept when Zuora did not say when its window resets


@dataclass(frozen=True)
class Left:
    """The tenant's allowance as Zuora last stated it."""

    limit: int
    remaining: int
    window_seconds: int | None
    resets_at: float  # time.time() when the window starts afresh: the figure is kept until then

    def __str__(self) -> str:
        """As "3,412 of 5,000 left this hour"."""
        return f"{self.remaining:,} of {self.limit:,} left {WINDOWS.get(self.window_seconds, '')}"

    @property
    def is_low(self) -> bool:
        return self.remaining * 100 < self.limit * settings.AQUADASH_RATE_RESERVE

    @property
    def seconds_to_reset(self) -> int:
        return max(0, math.ceil(self.resets_at - time.time()))


def _key(tenant_pk: int, sign_in: bool) -> str:
    # Sign-ins have limits of their own (Zuora's AUTH requests), apart from the API's.
    return f"allowance:v1:{tenant_pk}:{'auth' if sign_in else 'api'}"


def recorder(tenant_pk: int) -> Callable[[zuora.Allowance], None]:
    """What the tenant's `zuora.Connection` calls with each answer's allowance."""
    return functools.partial(remember, tenant_pk)


def remember(tenant_pk: int, allowance: zuora.Allowance) -> None:
    # The latest answer wins, even if another server's answer was a moment newer: the figure
    # is a guide for pacing, and the next answer corrects it.
    lasts = UNKNOWN_RESET if allowance.reset_seconds is None else allowance.reset_seconds
    left = Left(
        limit=allowance.limit,
        remaining=allowance.remaining,
        window_seconds=allowance.window_seconds,
        resets_at=time.time() + lasts,
    )
    shared_cache.set(_key(tenant_pk, allowance.sign_in), left, timeout=max(1, lasts))


def latest(tenant_pk: int, *, sign_in: bool = False) -> Left | None:
    """The tenant's allowance as Zuora last stated it, None when no answer since its reset."""
    return shared_cache.get(_key(tenant_pk, sign_in))


def summary(tenant_pk: int) -> str:
    """The allowance in a sentence, for the Test connection result; "" when unknown."""
    if left := latest(tenant_pk):
        return f"Zuora's API allowance: {left}."
    if left := latest(tenant_pk, sign_in=True):
        return f"Zuora's allowance of sign-ins: {left}."
    return ""


def job_age(job: zuora.Job | None) -> timedelta:
    """How long the job has run: from its start time to now; zero when Zuora has not said."""
    if job is None or job.start_time is None:
        return timedelta(0)
    return max(timedelta(0), timezone.now() - job.start_time)


def _longest() -> int:
    return max(settings.AQUADASH_POLL_SECONDS, settings.AQUADASH_POLL_MAX_SECONDS)


def pace(tenant: "Tenant", job: zuora.Job | None) -> int:
    """Seconds between the checks pages and watches make of a running job: a tenth of its
    age within the poll settings; the longest below the reserve; at zero, until the reset."""
    age = job_age(job).total_seconds()
    seconds = min(_longest(), max(settings.AQUADASH_POLL_SECONDS, int(age / 10)))
    left = latest(tenant.pk)
    if left is not None and left.remaining == 0:
        seconds = max(seconds, left.seconds_to_reset)
    elif left is not None and left.is_low:
        seconds = _longest()
    return seconds


def notice(tenant: "Tenant") -> str:
    """What a job page says when the tenant's allowance is slowing its checks; "" if not."""
    left = latest(tenant.pk)
    if left is None or not left.is_low:
        return ""
    if left.remaining == 0:
        minutes = max(1, math.ceil(left.seconds_to_reset / 60))
        return (
            f"Zuora's API allowance for this tenant is used up ({left}); aquadash checks again "
            f"when it resets, in {minutes} minute{'s' if minutes != 1 else ''}."
        )
    return f"Zuora's API allowance for this tenant is low ({left}); checking {every(_longest())}."


def every(seconds: int) -> str:
    """ "every minute", "every 2 minutes", "every 45 seconds"."""
    if seconds == 60:
        return "every minute"
    if seconds % 60 == 0:
        return f"every {seconds // 60} minutes"
    return f"every {seconds} seconds"
