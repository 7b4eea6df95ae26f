"""What operations watch: /metrics in Prometheus' text format, behind a read-only token.

Counters are counted where things happen: every request to Zuora (through the client's
`Connection.on_call`), single-flight waits (jobs.py), downloads (`Download.finish`) and every
request to aquadash itself. Under gunicorn's several processes, PROMETHEUS_MULTIPROC_DIR names
a directory where each process keeps its counters in a file of its own; /metrics, answered by
any one of them, adds them all up (prometheus_client's multiprocess mode). Without it (`make
run`, tests) the counters live in the process, in prometheus_client's default registry.

What is shared rather than counted (each tenant's API allowance and circuit breaker, how late
watched jobs and queued tasks are, the notifications by outcome) is read when /metrics is
asked, from the shared cache and the database: every server and worker writes there, so every
server reports the same.

Labels are bounded: tenants by slug, Zuora endpoints by template ("/v1/files/{id}"), views by
name, never a job or file ID.
"""

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime

from django.apps import apps
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError
from django.db.models import Count, Min, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_tasks_db.models import DBTaskResult, get_date_max
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from aquadash import allowance, breaker

logger = logging.getLogger(__name__)

ZUORA_CALLS = Counter(
    "aquadash_zuora_calls",
    "Requests sent to Zuora, retries and sign-ins included, by tenant, method, endpoint "
    "template and outcome: the HTTP status (429: rate limited), or timeout or unreachable.",
    ["tenant", "method", "endpoint", "outcome"],
)
SINGLE_FLIGHT = Counter(
    "aquadash_single_flight_waits",
    "Requests for a job that another request was already asking Zuora about, by tenant and "
    "outcome: answer (waited for its answer), gave_up (waited AQUADASH_WAIT_SECONDS in vain) "
    "or served (did not wait: shown the last known state).",
    ["tenant", "outcome"],
)
DOWNLOADS = Counter(
    "aquadash_downloads",
    "Downloads and previews of result data that ended, by tenant, kind and outcome.",
    ["tenant", "kind", "outcome"],
)
DOWNLOAD_BYTES = Counter(
    "aquadash_download_bytes",
    "Bytes of result data sent to browsers, counted as each download ends, by tenant and kind.",
    ["tenant", "kind"],
)
HTTP_REQUESTS = Counter(
    "aquadash_http_requests",
    "Requests answered by aquadash, by view name, method and status.",
    ["view", "method", "status"],
)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def zuora_calls(tenant_slug: str) -> Callable[[str, str, str], None]:
    """What a tenant's `zuora.Connection` calls with each request it sends."""

    def count(method: str, endpoint: str, outcome: str) -> None:
        ZUORA_CALLS.labels(tenant_slug, method, endpoint, outcome).inc()

    return count


def single_flight_wait(tenant_slug: str, outcome: str) -> None:
    SINGLE_FLIGHT.labels(tenant_slug, outcome).inc()


def download_ended(tenant_slug: str, kind: str, outcome: str, bytes_sent: int) -> None:
    DOWNLOADS.labels(tenant_slug, kind, outcome).inc()
    DOWNLOAD_BYTES.labels(tenant_slug, kind).inc(bytes_sent)


class CountRequests:
    """Counts every request by the name of the view that answered it (bounded, unlike paths)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        match = request.resolver_match
        view = (match.view_name or "unnamed") if match else "unmatched"
        method = request.method if request.method in METHODS else "other"
        HTTP_REQUESTS.labels(view, method, str(response.status_code)).inc()
        return response


class SharedState:
    """The gauges read at scrape time from the shared cache and the database. The models are
    looked up by name: models.py counts through this module, so this one cannot import it."""

    def describe(self) -> list[Metric]:
        # Nothing to check at registration: collecting needs the database, not there yet.
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._tenants()
            yield from self._watches()
        except DatabaseError:
            logger.warning("/metrics: the database did not answer; its gauges are left out")

    def _tenants(self) -> Iterator[Metric]:
        left = GaugeMetricFamily(
            "aquadash_zuora_allowance_remaining",
            "Requests left in the tenant's Zuora allowance as Zuora last stated it (api, or "
            "sign_in for the token calls' own limit), until its window resets.",
            labels=["tenant", "kind"],
        )
        limit = GaugeMetricFamily(
            "aquadash_zuora_allowance_limit",
            "The quota of the window closest to running out, as Zuora last stated it.",
            labels=["tenant", "kind"],
        )
        opened = GaugeMetricFamily(
            "aquadash_breaker_open",
            "1 while the tenant's circuit breaker is open (Zuora not asked, or one probe let "
            "through), 0 while closed.",
            labels=["tenant"],
        )
        failures = GaugeMetricFamily(
            "aquadash_breaker_failures",
            "Calls to the tenant's Zuora that failed in a row (timeouts, broken connections, 5xx).",
            labels=["tenant"],
        )
        for tenant in apps.get_model("aquadash", "Tenant").objects.order_by("slug"):
            for kind, sign_in in (("api", False), ("sign_in", True)):
                if latest := allowance.latest(tenant.pk, sign_in=sign_in):
                    left.add_metric([tenant.slug, kind], latest.remaining)
                    limit.add_metric([tenant.slug, kind], latest.limit)
            in_a_row, is_open = breaker.status(tenant)
            opened.add_metric([tenant.slug], int(is_open))
            failures.add_metric([tenant.slug], in_a_row)
        yield from (left, limit, opened, failures)

    def _watches(self) -> Iterator[Metric]:
        watch_model = apps.get_model("aquadash", "Watch")
        due = watch_model.objects.open().aggregate(at=Min("next_check_at"))["at"]
        lag = GaugeMetricFamily(
            "aquadash_watch_lag_seconds",
            "How long the most overdue watched job has waited past its check (0 when none is "
            "overdue): grows while no worker runs the rounds, or they fall behind.",
        )
        lag.add_metric([], _seconds_since(due))
        yield lag
        # A task queued to run now has run_after at the far future; one queued for later waits
        # from its run_after.
        ready = DBTaskResult.objects.ready().aggregate(
            now=Min("enqueued_at", filter=Q(run_after=get_date_max())),
            later=Min("run_after", filter=~Q(run_after=get_date_max())),
        )
        waiting = [at for at in ready.values() if at is not None]
        tasks = GaugeMetricFamily(
            "aquadash_task_queue_lag_seconds",
            "How long the oldest task ready to run (a watch round, a notification) has waited "
            "for a worker (0 when none waits).",
        )
        tasks.add_metric([], _seconds_since(min(waiting, default=None)))
        yield tasks
        deliveries = GaugeMetricFamily(
            "aquadash_deliveries",
            "Notifications of ended watches, by channel and outcome (pending, sending, sent, "
            "failed), as the database holds them.",
            labels=["channel", "outcome"],
        )
        rows = (
            apps.get_model("aquadash", "Delivery")
            .objects.order_by()
            .values_list("channel", "status")
            .annotate(count=Count("pk"))
        )
        for channel, status, count in rows:
            deliveries.add_metric([channel, status], count)
        yield deliveries


def _seconds_since(moment: datetime | None) -> float:
    return max(0.0, time.time() - moment.timestamp()) if moment else 0.0


SHARED_STATE = SharedState()
REGISTRY.register(SHARED_STATE)


def registry() -> CollectorRegistry:
    """Every process's counters (multiprocess mode) or this process's, and the shared state."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    # As prometheus_client's docs say: a registry made per scrape, reading every process's files.
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)
    combined.register(SHARED_STATE)
    return combined


def _digest(text: str) -> bytes:
    # Compared as digests, so neither the token's length nor its characters show in the timing.
    return hashlib.sha256(text.encode()).digest()


@login_not_required  # Prometheus has no session; the token below is its sign-in
@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Off (404) without AQUADASH_METRICS_TOKEN; else only with `Authorization: Bearer <it>`."""
    token = settings.AQUADASH_METRICS_TOKEN
    if not token:
        raise Http404("Metrics are off: AQUADASH_METRICS_TOKEN is not set.")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        _digest(given.strip()), _digest(token)
    ):
        response = HttpResponse(
            "The metrics need the token in AQUADASH_METRICS_TOKEN, as Authorization: Bearer.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="aquadash metrics"'
        return response
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
