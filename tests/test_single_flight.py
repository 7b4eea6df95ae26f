"""One call to Zuora per job per poll interval, however many people and servers ask: the
single flight of jobs.fetch_job, seen through the job pages."""

import threading
import time
import types

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from aquadash import jobs
from aquadash import simulator as sim
from aquadash.models import JobSnapshot, Lookup
from tests.conftest import FakeClock
from tests.test_job_views import HTMX, REDIS_DOWN, job_gets, job_url, next_interval, polls
from tests.test_query_budgets import writes


def test_a_final_job_is_served_from_storage_without_calling_zuora(
    finance_client, simulator_tenant, simulator
):
    url = job_url(simulator_tenant, sim.DOC_FILEID_JOB_ID)
    finance_client.get(url)
    next_interval()

    for _ in range(5):
        assert finance_client.get(url).status_code == 200
        assert finance_client.get(url, **HTMX).status_code == 200

    assert job_gets(simulator, sim.DOC_FILEID_JOB_ID) == 1


def test_refresh_from_zuora_asks_again_for_a_final_job(finance_client, simulator_tenant, simulator):
    url = job_url(simulator_tenant, sim.DOC_FILEID_JOB_ID)
    finance_client.get(url)
    next_interval()

    response = finance_client.post(url)

    assert response.status_code == 302 and response["Location"] == url
    assert job_gets(simulator, sim.DOC_FILEID_JOB_ID) == 2


def test_refresh_clicks_within_one_interval_share_one_call_to_zuora(
    finance_client, simulator_tenant, simulator
):
    url = job_url(simulator_tenant, sim.DOC_FILEID_JOB_ID)
    finance_client.get(url)
    next_interval()

    for _ in range(10):
        assert finance_client.post(url).status_code == 302

    assert job_gets(simulator, sim.DOC_FILEID_JOB_ID) == 2


def test_refresh_waits_out_zuoras_retry_after(finance_client, simulator_tenant, simulator):
    url = job_url(simulator_tenant, sim.DOC_FILEID_JOB_ID)
    finance_client.get(url)
    next_interval()
    simulator.add_fault("rate_limited", job_id=sim.DOC_FILEID_JOB_ID, seconds=600, times=None)

    pages = [finance_client.post(url) for _ in range(10)]

    assert job_gets(simulator, sim.DOC_FILEID_JOB_ID) == 2  # the first view and one refresh
    assert all(page.status_code == 200 for page in pages)
    assert "Zuora is limiting requests" in pages[-1].content.decode()


@pytest.mark.django_db(transaction=True)
def test_forty_refresh_clicks_at_once_cost_one_call_to_zuora(
    simulator_tenant, make_user, simulator
):
    user = make_user("clicker", groups=simulator_tenant.groups.all())
    url = job_url(simulator_tenant, sim.RUNNING_JOB_ID)

    statuses = at_once([user] * 40, lambda client: client.post(url))

    assert statuses == [302] * 40
    assert job_gets(simulator, sim.RUNNING_JOB_ID) == 1


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """How long each request waited for another's answer, on a fake clock that each of the
    waiter's sleeps moves on (so nothing really sleeps); one entry per request."""
    clock = FakeClock(1_000.0)
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        clock.advance(seconds)
        if waited:
            waited[-1] += seconds

    monkeypatch.setattr(
        jobs, "time", types.SimpleNamespace(time=time.time, monotonic=clock, sleep=sleep)
    )
    return waited


def test_a_wait_for_another_requests_answer_is_short(finance_client, simulator_tenant, waits):
    url = job_url(simulator_tenant, sim.RUNNING_JOB_ID)
    finance_client.get(url)
    next_interval()
    # Slow Zuora calls, under way
    cache.add(jobs.shared_key(simulator_tenant, sim.RUNNING_JOB_ID) + ":lock", 1, 30)
    cache.add(jobs.shared_key(simulator_tenant, sim.SUBMITTED_JOB_ID) + ":lock", 1, 30)

    waits.append(0.0)
    page = finance_client.get(url)
    waits.append(0.0)
    nothing_yet = finance_client.get(job_url(simulator_tenant, sim.SUBMITTED_JOB_ID))

    assert page.status_code == 200 and "refreshing…" in page.content.decode()
    assert waits[0] == 0  # something to show: no wait at all
    assert nothing_yet.status_code == 504
    assert "still asking" in nothing_yet.content.decode()
    assert 1.9 < waits[1] < 2.1  # README: AQUADASH_WAIT_SECONDS, 2 by default (and one check)


def test_a_retry_after_of_centuries_is_taken_as_an_hour(
    finance_client, simulator_tenant, simulator
):
    simulator.add_fault("rate_limited", seconds=99999999999999999)

    response = finance_client.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID))

    assert response.status_code == 503
    assert response["Retry-After"] == "3600"


def test_polls_within_one_interval_share_one_call_to_zuora(
    finance_client, simulator_tenant, simulator
):
    url = job_url(simulator_tenant, sim.RUNNING_JOB_ID)

    for _ in range(10):
        assert polls(finance_client.get(url, **HTMX).content.decode())

    assert job_gets(simulator, sim.RUNNING_JOB_ID) == 1


def test_zuora_saying_the_same_again_rewrites_only_when_it_was_asked(
    finance_client, simulator_tenant, simulator
):
    url = job_url(simulator_tenant, sim.RUNNING_JOB_ID)
    finance_client.get(url)
    first = JobSnapshot.objects.get(job_id=sim.RUNNING_JOB_ID)
    next_interval()

    with CaptureQueriesContext(connection) as queries:
        finance_client.get(url, **HTMX)

    again = JobSnapshot.objects.get(job_id=sim.RUNNING_JOB_ID)
    assert job_gets(simulator, sim.RUNNING_JOB_ID) == 2
    assert again.raw == first.raw and again.last_fetched_at > first.last_fetched_at
    assert again.track_id != first.track_id
    writes = [q["sql"] for q in queries if q["sql"].startswith(("UPDATE", "INSERT"))]
    # The tenant's last contact may be noted too (at most once a minute; next_interval clears
    # the cache that paces it): test_tenant_admin tests that.
    writes = [sql for sql in writes if not sql.startswith('UPDATE "aquadash_tenant"')]
    assert len(writes) == 1 and writes[0].startswith('UPDATE "aquadash_jobsnapshot"')
    assert '"raw"' not in writes[0]  # the job's JSON is not written again


def test_while_another_server_asks_zuora_the_last_known_state_is_served(
    finance_client, simulator_tenant, simulator
):
    url = job_url(simulator_tenant, sim.RUNNING_JOB_ID)
    finance_client.get(url)
    next_interval()
    cache.add(jobs.shared_key(simulator_tenant, sim.RUNNING_JOB_ID) + ":lock", 1, 30)

    response = finance_client.get(url, **HTMX)

    assert response.status_code == 200 and polls(response.content.decode())
    assert job_gets(simulator, sim.RUNNING_JOB_ID) == 1


def at_once(people: list, request) -> list[int]:
    """The status of one request per person, all sent at the same moment from threads."""
    statuses = []
    start = threading.Barrier(len(people), timeout=30)

    def one(person) -> None:
        try:
            client = Client()
            client.force_login(person)
            start.wait()
            statuses.append(request(client).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=one, args=(person,)) for person in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


@pytest.mark.django_db(transaction=True)
def test_many_concurrent_watchers_cause_one_call_to_zuora(simulator_tenant, make_user, simulator):
    watcher = make_user("watcher", groups=simulator_tenant.groups.all())
    url = job_url(simulator_tenant, sim.RUNNING_JOB_ID)

    statuses = at_once([watcher] * 12, lambda client: client.get(url, **HTMX))

    assert statuses == [200] * 12
    assert job_gets(simulator, sim.RUNNING_JOB_ID) == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_people_opening_a_running_job_at_once_all_see_it(
    simulator_tenant, make_user, simulator
):
    people = [make_user(f"person{n}", groups=simulator_tenant.groups.all()) for n in range(20)]
    url = job_url(simulator_tenant, sim.RUNNING_JOB_ID)

    statuses = at_once(people, lambda client: client.get(url))

    assert statuses == [200] * 20
    assert job_gets(simulator, sim.RUNNING_JOB_ID) == 1
    assert Lookup.objects.count() == 20


def test_a_request_served_another_requests_answer_does_not_store_it_again(
    finance_client, simulator_tenant
):
    finance_client.get(job_url(simulator_tenant, sim.RUNNING_JOB_ID))
    cached = cache.get(jobs.shared_key(simulator_tenant, sim.RUNNING_JOB_ID))

    # As a request does that read no stored job, then waited while another stored it.
    with CaptureQueriesContext(connection) as queries:
        state = jobs._state_from_cache(simulator_tenant, cached, None)

    assert state.snapshot.job_id == sim.RUNNING_JOB_ID
    assert writes(queries) == []


def test_with_the_shared_cache_down_pages_still_work(finance_client, simulator_tenant, settings):
    settings.CACHES = REDIS_DOWN

    page = finance_client.get(job_url(simulator_tenant, sim.RUNNING_JOB_ID))
    poll = finance_client.get(job_url(simulator_tenant, sim.RUNNING_JOB_ID), **HTMX)

    assert page.status_code == poll.status_code == 200
    assert polls(poll.content.decode())


def test_with_the_shared_cache_down_each_process_still_asks_zuora_once_per_interval(
    finance_client, simulator_tenant, simulator, settings
):
    settings.CACHES = REDIS_DOWN
    url = job_url(simulator_tenant, sim.RUNNING_JOB_ID)

    for _ in range(5):
        assert polls(finance_client.get(url, **HTMX).content.decode())

    assert job_gets(simulator, sim.RUNNING_JOB_ID) == 1


def test_sessions_cached_in_a_redis_that_is_down_come_from_the_database(
    simulator_tenant, make_user, settings
):
    settings.SESSION_ENGINE = "aquadash.sessions"  # as with REDIS_URL
    settings.CACHES = REDIS_DOWN
    client = Client()
    client.force_login(make_user("finance", groups=simulator_tenant.groups.all()))

    page = client.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID))
    again = client.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID))

    assert page.status_code == again.status_code == 200
