"""Zuora's API allowance: read from every answer, kept per tenant, shown to admins, and spent
slowly: checks of a running job slow as it ages and when the allowance runs low."""

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
import requests
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from requests.structures import CaseInsensitiveDict

from aquadash import allowance, job_facts, jobs, watching, zuora
from aquadash import simulator as sim
from aquadash.models import Tenant, Watch
from aquadash.shared_cache import shared_cache
from aquadash.simulator.catalogue import ACCOUNTS

HTMX = {"HTTP_HX_REQUEST": "true"}
SANDBOX_LIMITS = "5000, 2500;w=60, 5000;w=3600, 10000;w=86400"
# A job as Zuora describes one; tests give it the start time they need.
RUNNING = {"id": sim.RUNNING_JOB_ID, "status": "executing", "batches": []}


@pytest.fixture
def client(finance_client: Client) -> Client:
    return finance_client


def job_url(tenant: Tenant, job_id: str) -> str:
    return f"/t/{tenant.slug}/jobs/{job_id}/"


def job_gets(simulator: sim.Simulator, job_id: str) -> int:
    return simulator.count(method="GET", path_prefix=f"/v1/batch-query/jobs/{job_id}")


def started(ago: timedelta) -> zuora.Job:
    job = zuora.parse_job(RUNNING, track_id="")
    return replace(job, start_time=timezone.now() - ago)


def spend(simulator: sim.Simulator, requests_made: int) -> None:
    """Spend some of the tenant's allowance, as the customer's other integrations do."""
    for _ in range(requests_made):
        requests.get(
            f"{simulator.url}/v1/batch-query/jobs/{sim.MULTI_BATCH_JOB_ID}",
            auth=(sim.DEMO_USERNAME, sim.DEMO_PASSWORD),
            timeout=5,
        )


@pytest.fixture
def old_job(simulator: sim.Simulator, sim_clock) -> str:
    """A job submitted three hours ago and still running."""
    simulator.batch_seconds = 24 * 3600
    sim_clock.advance(-3 * 3600)
    answer = requests.post(
        f"{simulator.url}/v1/batch-query/",
        json={"format": "csv", "version": "1.1", "queries": [{"query": ACCOUNTS}]},
        auth=(sim.DEMO_USERNAME, sim.DEMO_PASSWORD),
        timeout=5,
    )
    sim_clock.advance(3 * 3600)
    return answer.json()["id"]


# --- Reading the allowance ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "names",
    [
        ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"),
        ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"),
        ("RATELIMIT-LIMIT", "Ratelimit-Remaining", "rateLimit-reset"),
    ],
)
def test_the_allowance_is_read_from_headers_in_any_case(names):
    headers = CaseInsensitiveDict(dict(zip(names, (SANDBOX_LIMITS, "3412", "1200"), strict=True)))

    assert zuora.client.read_allowance(headers) == zuora.Allowance(
        limit=5000, remaining=3412, reset_seconds=1200, window_seconds=3600
    )


def test_the_allowance_names_the_window_its_limit_belongs_to():
    headers = CaseInsensitiveDict(
        {"ratelimit-limit": SANDBOX_LIMITS.replace("5000", "2500", 1), "ratelimit-remaining": "9"}
    )

    assert zuora.client.read_allowance(headers).window_seconds == 60


def test_an_answer_without_the_headers_has_no_allowance():
    assert zuora.client.read_allowance(CaseInsensitiveDict({"ratelimit-remaining": "3"})) is None


def test_every_answer_about_a_job_keeps_the_tenants_allowance(simulator, simulator_tenant):
    simulator.set_budget("api_sandbox")

    jobs.fetch_job(simulator_tenant, sim.MULTI_BATCH_JOB_ID, user=None)

    left = allowance.latest(simulator_tenant.pk)
    assert (left.limit, left.remaining, left.window_seconds) == (2500, 2499, 60)


def test_a_file_answer_keeps_the_allowance_too(simulator, simulator_tenant):
    simulator.set_budget("production", {3600: 100})
    job = jobs.fetch_job(simulator_tenant, sim.DOC_FILEID_JOB_ID, user=None).job

    zuora.open_file(simulator_tenant.zuora_connection(), file_id=job.batches[0].file_ids[0]).close()

    assert str(allowance.latest(simulator_tenant.pk)) == "98 of 100 left this hour"


def test_sign_ins_are_kept_apart_from_the_api_allowance(simulator, simulator_tenant):
    simulator_tenant.check_connection()

    assert allowance.latest(simulator_tenant.pk) is None
    assert str(allowance.latest(simulator_tenant.pk, sign_in=True)) == (
        "1,999 of 2,000 left this minute"
    )


def test_each_tenant_keeps_its_own_allowance(simulator_tenant, make_tenant):
    other = make_tenant("other")

    allowance.remember(simulator_tenant.pk, zuora.Allowance(5000, 3412, 1200, 3600))
    allowance.remember(other.pk, zuora.Allowance(10000, 12, 60, 86400))

    assert str(allowance.latest(simulator_tenant.pk)) == "3,412 of 5,000 left this hour"
    assert str(allowance.latest(other.pk)) == "12 of 10,000 left in this 24-hour window"


# --- Shown to admins ---------------------------------------------------------------------------


def test_the_tenant_list_shows_the_allowance_left(admin_client, simulator_tenant):
    allowance.remember(simulator_tenant.pk, zuora.Allowance(5000, 3412, 1200, 3600))

    page = admin_client.get(reverse("admin:aquadash_tenant_changelist")).content.decode()

    assert "3,412 of 5,000 left this hour" in page


def test_test_connection_shows_the_api_allowance_left(admin_client, simulator, simulator_tenant):
    simulator.set_budget("api_sandbox", {3600: 2000})
    jobs.fetch_job(simulator_tenant, sim.MULTI_BATCH_JOB_ID, user=None)
    url = reverse("admin:aquadash_tenant_test_connection", args=[simulator_tenant.pk])

    response = admin_client.post(url, follow=True)

    assert [str(m) for m in response.context["messages"]] == [
        "Sim: Zuora issued an OAuth token for these credentials. Zuora's API allowance: "
        "1,999 of 2,000 left this hour."
    ]


# --- Pacing by the job's age -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ago", "seconds"),
    [
        (timedelta(seconds=20), 5),  # a tenth is 2 s: never below AQUADASH_POLL_SECONDS
        (timedelta(minutes=5), 30),
        (timedelta(minutes=9), 54),
        (timedelta(hours=3), 60),  # never above AQUADASH_POLL_MAX_SECONDS
    ],
)
def test_checks_slow_to_a_tenth_of_the_jobs_age(simulator_tenant, ago, seconds):
    assert allowance.pace(simulator_tenant, started(ago)) == seconds


def test_the_longest_interval_is_a_setting(simulator_tenant, settings):
    settings.AQUADASH_POLL_MAX_SECONDS = 300

    assert allowance.pace(simulator_tenant, started(timedelta(hours=3))) == 300


def test_a_job_zuora_gives_no_start_time_is_checked_at_the_shortest_interval(simulator_tenant):
    assert allowance.pace(simulator_tenant, zuora.parse_job(RUNNING, track_id="")) == 5


def test_an_old_jobs_page_polls_every_minute(client, simulator_tenant, old_job):
    page = client.get(job_url(simulator_tenant, old_job)).content.decode()

    assert 'data-poll="60"' in page


def test_an_old_jobs_poll_is_served_the_shared_answer_for_its_whole_interval(
    client, simulator, simulator_tenant, old_job
):
    client.get(job_url(simulator_tenant, old_job))
    answer_is_ten_seconds_old(simulator_tenant, old_job)

    client.get(job_url(simulator_tenant, old_job), **HTMX)

    assert job_gets(simulator, old_job) == 1


def test_a_persons_own_lookup_is_not_slowed(client, simulator, simulator_tenant, old_job):
    client.get(job_url(simulator_tenant, old_job))
    answer_is_ten_seconds_old(simulator_tenant, old_job)

    client.get(job_url(simulator_tenant, old_job))

    assert job_gets(simulator, old_job) == 2


def test_a_refresh_is_not_slowed(client, simulator, simulator_tenant, old_job):
    client.get(job_url(simulator_tenant, old_job))
    answer_is_ten_seconds_old(simulator_tenant, old_job)

    client.post(job_url(simulator_tenant, old_job))

    assert job_gets(simulator, old_job) == 2


def watcher(tenant: Tenant, make_user: Callable[..., User]) -> User:
    return make_user("watcher", groups=tenant.groups.all())


def answer_is_ten_seconds_old(tenant: Tenant, job_id: str) -> None:
    """Ten seconds pass: longer than AQUADASH_POLL_SECONDS, shorter than an old job's pace."""
    key = jobs.shared_key(tenant, job_id)
    cached = shared_cache.get(key)
    shared_cache.set(key, replace(cached, at=cached.at - 10, until=cached.until - 10))
    shared_cache.delete(key + ":lock")


def test_a_watch_of_an_old_job_is_next_checked_a_minute_later(simulator_tenant, old_job, make_user):
    watching.watch(simulator_tenant, old_job, watcher(simulator_tenant, make_user), link="/")

    watching.check_watches.call()

    due = Watch.objects.get().next_check_at
    assert due >= timezone.now() + timedelta(seconds=55)


def test_a_retry_after_longer_than_the_pace_is_still_waited_for(simulator_tenant):
    slowed = zuora.RateLimited("Zuora is limiting requests.", retry_after=300)

    assert job_facts.poll_seconds(simulator_tenant, started(timedelta(hours=3)), 1, slowed) == 300


def test_the_back_off_after_failures_still_applies_to_a_young_job(simulator_tenant):
    assert job_facts.poll_seconds(simulator_tenant, started(timedelta(seconds=20)), 3) == 40


# --- The reserve -------------------------------------------------------------------------------


def test_below_the_reserve_pages_poll_at_the_longest_interval_and_say_so(
    client, simulator, simulator_tenant
):
    simulator.set_budget("production", {3600: 10})
    spend(simulator, 8)  # the page's own lookup is the 9th: 1 of 10 left

    page = client.get(job_url(simulator_tenant, sim.RUNNING_JOB_ID)).content.decode()

    assert 'data-poll="60"' in page
    assert (
        "Zuora&#x27;s API allowance for this tenant is low (1 of 10 left this hour); checking "
        "every minute." in page
    )


def test_above_the_reserve_nothing_is_said(client, simulator, simulator_tenant):
    simulator.set_budget("production", {3600: 10})
    spend(simulator, 7)  # 2 of 10 left: exactly the 20 % reserve

    page = client.get(job_url(simulator_tenant, sim.RUNNING_JOB_ID)).content.decode()

    assert 'data-poll="5"' in page
    assert "allowance for this tenant" not in page


def test_below_the_reserve_watches_wait_the_longest_interval(
    simulator, simulator_tenant, make_user
):
    due = next_check_with_allowance_spent(simulator, simulator_tenant, make_user, spent=8)

    assert due >= timezone.now() + timedelta(seconds=55)


def test_with_nothing_left_pages_wait_for_the_reset(client, simulator, simulator_tenant):
    simulator.set_budget("production", {3600: 10})
    spend(simulator, 9)  # the page's own lookup takes the last one

    page = client.get(job_url(simulator_tenant, sim.RUNNING_JOB_ID)).content.decode()

    assert 'data-poll="3600"' in page
    assert "is used up (0 of 10 left this hour); aquadash checks again when it resets, in 60" in (
        page
    )


def test_with_nothing_left_watches_wait_for_the_reset(simulator, simulator_tenant, make_user):
    due = next_check_with_allowance_spent(simulator, simulator_tenant, make_user, spent=9)

    assert due >= timezone.now() + timedelta(minutes=59)


def next_check_with_allowance_spent(
    simulator: sim.Simulator, tenant: Tenant, make_user: Callable[..., User], *, spent: int
) -> datetime:
    """When a watch of the running job is next checked, once `spent` of 10 requests an hour
    are gone and its first check took one more."""
    simulator.set_budget("production", {3600: 10})
    spend(simulator, spent)
    watching.watch(tenant, sim.RUNNING_JOB_ID, watcher(tenant, make_user), link="/")
    watching.check_watches.call()
    return Watch.objects.get().next_check_at
