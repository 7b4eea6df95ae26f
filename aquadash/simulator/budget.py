"""Zuora's request limits per tenant, from its "Rate limits" guide
(https://developer.zuora.com/docs/guides/rate-limits/): requests are counted per tenant per
minute, hour and day, sign-ins (AUTH) apart from the rest (API). Every answer states the window
closest to running out in `ratelimit-limit`, `ratelimit-remaining` and `ratelimit-reset`; a
request over a limit is answered 429.
"""

import math
import threading
from dataclasses import dataclass

from aquadash.simulator.responses import Response, v1_error

WINDOWS = (60, 3600, 86400)  # seconds: Zuora's RPM, RPH and RPD
# API requests (everything but sign-ins) per minute, hour and day, by tenant type.
TENANT_TYPES = {
    "production": (50_000, 2_250_000, 27_000_000),  # also Central Sandbox
    "developer_sandbox": (12_500, 25_000, 50_000),
    "api_sandbox": (2_500, 5_000, 10_000),
}
SIGN_INS = (2_000, 67_500, 810_000)  # AUTH requests, the same for every tenant type


@dataclass
class _Window:
    seconds: int
    quota: int
    started: float = 0.0
    used: int = 0

    def remaining(self, now: float) -> int:
        self._roll(now)
        return max(0, self.quota - self.used)

    def reset(self, now: float) -> int:
        self._roll(now)
        return max(1, math.ceil(self.started + self.seconds - now))

    def _roll(self, now: float) -> None:
        if now >= self.started + self.seconds:  # a fixed window, from its first request
            self.started, self.used = now, 0


class Budget:
    """One class of requests' limits, counted on the simulator's clock. Thread-safe."""

    def __init__(self, quotas: dict[int, int]) -> None:
        self._lock = threading.Lock()
        self._windows = [_Window(seconds, quota) for seconds, quota in sorted(quotas.items())]

    def spend(self, now: float) -> tuple[bool, list[tuple[str, str]]]:
        """Count one request if the limits allow it; whether they did, and the headers."""
        with self._lock:
            spent = [w for w in self._windows if w.remaining(now) == 0]
            if not spent:
                for window in self._windows:
                    window.used += 1
            # Closest to running out: the smallest share left, the longer window on a tie.
            closest = (
                spent[-1]
                if spent
                else min(self._windows, key=lambda w: (w.remaining(now) / w.quota, -w.seconds))
            )
            policies = ", ".join(f"{w.quota};w={w.seconds}" for w in self._windows)
            headers = [
                ("ratelimit-limit", f"{closest.quota}, {policies}"),
                ("ratelimit-remaining", str(closest.remaining(now))),
                ("ratelimit-reset", str(closest.reset(now))),
            ]
            return not spent, headers

    def describe(self, now: float) -> list[dict[str, int]]:
        with self._lock:
            return [
                {"window": w.seconds, "limit": w.quota, "remaining": w.remaining(now)}
                for w in self._windows
            ]


def quotas(tenant_type: str, limits: dict | None = None) -> dict[int, int]:
    """The API quotas of a tenant type, with `limits` ({seconds: quota}) put over them."""
    if tenant_type not in TENANT_TYPES:
        raise ValueError(f"tenant_type must be one of {sorted(TENANT_TYPES)}.")
    chosen = dict(zip(WINDOWS, TENANT_TYPES[tenant_type], strict=True))
    for seconds, quota in (limits or {}).items():
        if int(seconds) not in WINDOWS or int(quota) < 1:
            raise ValueError("limits maps 60, 3600 or 86400 seconds to a quota of at least 1.")
        chosen[int(seconds)] = int(quota)
    return chosen


def refused(headers: list[tuple[str, str]]) -> Response:
    """Zuora's 429 with the limit's headers, and Retry-After when the window resets."""
    reset = dict(headers)["ratelimit-reset"]
    return v1_error(
        429, 50000070, "Too many requests: the tenant's rate limit is used up.",
        [*headers, ("Retry-After", reset)],
    )  # fmt: skip
