"""The batch timeline: when each batch was first seen in each status, and what the job page
makes of it."""

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.db import connections
from django.test import Client
from django.utils import timezone

from aquadash import jobs, zuora
from aquadash import simulator as sim
from aquadash.models import JobSnapshot

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def client(finance_client: Client) -> Client:
    return finance_client


@pytest.fixture
def clock(monkeypatch, sim_clock):
    """aquadash's clock (django.utils.timezone.now) and the simulator's, moved together."""
    now = [datetime.now(UTC)]
    monkeypatch.setattr(timezone, "now", lambda: now[0])

    def advance(seconds: float) -> None:
        now[0] += timedelta(seconds=seconds)
        sim_clock.advance(seconds)
        cache.clear()  # an interval passes: the shared answers are stale

    return advance


def row(page: str, name: str) -> str:
    """The timeline table's row of the batch `name`, as text."""
    table = page.split('class="timeline-table', 1)[1].split("</table>", 1)[0]
    cells = re.search(rf"<tr>\s*<td>{name} .*?</tr>", table, re.S)
    assert cells, f"no timeline row for {name}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cells[0])).strip()


def test_each_batch_is_timed_from_when_it_was_first_seen(
    client, simulator_tenant, simulator, clock
):
    step = simulator.batch_seconds  # the running job finishes a batch every `step` seconds
    url = f"/t/sim/jobs/{sim.RUNNING_JOB_ID}/"
    client.get(url)  # Account done, Invoice running, the rest pending
    clock(step)
    client.get(url, **HTMX)  # Invoice done, Payment running
    clock(step)
    page = client.get(url, **HTMX).content.decode()  # Payment done, Subscription running

    assert row(page, "Payment").endswith(f"{step:g} s")  # seen pending, running, then done
    assert "at least 8 s" in row(page, "Invoice")  # already running when first seen
    subscription = row(page, "Subscription")
    limit = (timezone.now() + timedelta(hours=3)).astimezone(simulator_tenant.zoneinfo)
    assert f"Zuora stops it by {limit:%H:%M}" in subscription
    assert "3-hour limit, error 90027" in subscription


def test_the_timeline_says_what_it_cannot_time_in_words(client, simulator_tenant, simulator, clock):
    step = simulator.batch_seconds
    url = f"/t/sim/jobs/{sim.RUNNING_JOB_ID}/"
    client.get(url)  # Account done, Invoice running, the rest pending
    clock(step)
    page = client.get(url, **HTMX).content.decode()  # Invoice done, Payment running

    assert row(page, "Account").endswith("— done before aquadash looked")
    assert "just started" in row(page, "Payment")
    assert re.search(r"Product .* waiting \d+ (min \d+ )?s so far", row(page, "Product"))


def test_a_status_keeps_the_time_it_was_first_seen(client, simulator_tenant, clock):
    url = f"/t/sim/jobs/{sim.RUNNING_JOB_ID}/"
    client.get(url)
    first = JobSnapshot.objects.get(job_id=sim.RUNNING_JOB_ID).timeline
    clock(1)  # still the same statuses

    client.post(url)

    assert JobSnapshot.objects.get(job_id=sim.RUNNING_JOB_ID).timeline == first


@pytest.mark.django_db(transaction=True)
def test_servers_storing_at_once_lose_no_status_and_record_each_once(simulator_tenant):
    raw = {
        "id": "2c92c0f96d8a3b1e016d8a00000001ff",
        "status": "executing",
        "batches": [
            {"batchId": f"{n:032x}", "name": f"B{n}", "query": "select Id from Account",
             "status": "pending"}
            for n in range(8)
        ],
    }  # fmt: skip
    jobs.store_job(simulator_tenant, zuora.parse_job(raw), user=None)
    start = threading.Barrier(8)

    def batch_seen_running(n: int) -> None:
        # Eight servers each learn that another batch started, at the same moment.
        answer = {**raw, "batches": [dict(b) for b in raw["batches"]]}
        answer["batches"][n]["status"] = "executing"
        start.wait()
        try:
            jobs.store_job(simulator_tenant, zuora.parse_job(answer), user=None)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=batch_seen_running, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    timeline = JobSnapshot.objects.get(job_id=raw["id"]).timeline
    assert all(set(timeline[f"{n:032x}"]) == {"pending", "executing"} for n in range(8))


def test_a_job_first_seen_done_has_no_timeline_to_show(client, simulator_tenant):
    page = client.get(f"/t/sim/jobs/{sim.MULTI_BATCH_JOB_ID}/").content.decode()

    assert JobSnapshot.objects.get(job_id=sim.MULTI_BATCH_JOB_ID).timeline  # recorded, though
    assert "Timeline" not in page
