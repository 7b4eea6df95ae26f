"""A job's start time in every form Zuora writes it, and what aquadash counts from it.

Zuora writes startTime in the tenant's local time without a zone, unless the job was submitted
with dateTimeUtc (as Stitch/tap-zuora submits every job): then in UTC with an offset,
"2021-01-18T17:13:48+0000" in guardian/support-frontend's captured answer.
"""

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from django.utils import timezone

from aquadash import notifications, zuora
from aquadash import simulator as sim
from aquadash.models import Watch

PACIFIC = ZoneInfo("America/Los_Angeles")
CAPTURED = datetime(2021, 1, 18, 17, 13, 48, tzinfo=UTC)  # the captured job's start
CAPTURED_JOB_ID = "2c92c0f977091c5c0177167d05f77d7c"


def started(written: object) -> dict:
    return {"id": CAPTURED_JOB_ID, "status": "completed", "startTime": written, "batches": []}


@pytest.mark.parametrize(
    "written",
    [
        "2021-01-18 09:13:48",  # the tenant's local time, as Zuora writes it by default
        "2021-01-18T09:13:48",
        "2021-01-18T17:13:48+0000",  # dateTimeUtc, as captured
        "2021-01-18T17:13:48Z",
        "2021-01-18T09:13:48-08:00",
        "2021-01-18T17:13:48.000+00:00",
    ],
)
def test_every_form_of_start_time_is_one_moment_in_the_tenants_zone(written):
    job = zuora.parse_job(started(written), zone=PACIFIC)

    assert job.start_time == CAPTURED
    assert job.start_time.utcoffset() == timedelta(hours=-8)  # Los Angeles in January


def test_fractional_seconds_are_kept():
    job = zuora.parse_job(started("2021-01-18T17:13:48.279+00:00"), zone=PACIFIC)

    assert job.start_time == CAPTURED + timedelta(milliseconds=279)


@pytest.mark.parametrize(
    "written",
    [
        "2021-02-30 10:00:00",
        "2021-01-18",
        "18/01/2021 17:13:48",
        "2021-01-18T17:13:48+25:00",
        "2021-01-18 17:13:48 PST",
        1611000000,
    ],
)
def test_a_start_time_in_no_form_of_zuoras_makes_the_answer_unreadable(written):
    with pytest.raises(zuora.UnreadableResponse, match="'startTime' is not a date and time"):
        zuora.parse_job(started(written), zone=PACIFIC)


def test_the_simulator_writes_utc_with_an_offset_only_for_jobs_submitted_with_date_time_utc(
    simulator, sim_clock
):
    def start_of(body: dict) -> str:
        auth = (sim.DEMO_USERNAME, sim.DEMO_PASSWORD)
        post = requests.post(simulator.url + "/v1/batch-query/", json=body, auth=auth, timeout=5)
        url = f"{simulator.url}/v1/batch-query/jobs/{post.json()['id']}"
        return requests.get(url, auth=auth, timeout=5).json()["startTime"]

    query = {"queries": [{"query": "select Id from Account", "type": "zoqlexport"}]}
    moment = datetime.fromtimestamp(sim_clock(), UTC).replace(microsecond=0)

    assert start_of(query | {"dateTimeUtc": "true"}) == moment.strftime("%Y-%m-%dT%H:%M:%S+0000")
    assert start_of(query | {"dateTimeUtc": True}) == moment.strftime("%Y-%m-%dT%H:%M:%S+0000")
    local = moment.astimezone(ZoneInfo(simulator.timezone))
    assert start_of(query) == local.strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize(
    ("job_id", "minutes_ago"), [(sim.UTC_TIMES_JOB_ID, 90), (sim.NOTES_JOB_ID, 120)]
)
def test_the_job_page_shows_the_start_and_deletion_in_the_tenants_zone_either_way(
    finance_client, simulator_tenant, sim_clock, job_id, minutes_ago
):
    page = finance_client.get(f"/t/sim/jobs/{job_id}/").content.decode()

    start = datetime.fromtimestamp(sim_clock() - minutes_ago * 60, PACIFIC).replace(microsecond=0)
    assert f'<time datetime="{start.isoformat()}">' in page
    assert start.strftime("%Y-%m-%d %H:%M:%S %Z") in page
    deleted_on = (start + timedelta(days=180)).strftime("%Y-%m-%d")
    assert f"Deleted by Zuora on {deleted_on}" in page


def test_the_end_message_counts_the_run_from_a_utc_start(simulator_tenant):
    simulator_tenant.jobs.create(
        job_id=CAPTURED_JOB_ID,
        status="completed",
        is_final=True,
        raw=started("2021-01-18T17:13:48+0000"),
        last_fetched_at=timezone.now(),
    )
    watch = Watch(
        tenant=simulator_tenant,
        job_id=CAPTURED_JOB_ID,
        link="http://testserver/",
        end=Watch.End.FINAL,
        ended_at=CAPTURED + timedelta(minutes=95),
    )

    _, body = notifications.compose(watch, simulator_tenant.jobs.get())

    assert "\nRan for: about 1\xa0hour, 35\xa0minutes\n" in body


def test_a_running_job_submitted_with_date_time_utc_has_run_for_seconds_not_hours(
    finance_client, simulator_tenant, simulator
):
    # East of UTC, a UTC time read as the tenant's local time would be 9 hours in the past.
    simulator_tenant.time_zone = "Asia/Tokyo"
    simulator_tenant.save()
    body = {"queries": [{"query": "select Id from Account"}], "dateTimeUtc": "true"}
    auth = (sim.DEMO_USERNAME, sim.DEMO_PASSWORD)
    job = requests.post(simulator.url + "/v1/batch-query/", json=body, auth=auth, timeout=5)

    page = finance_client.get(f"/t/sim/jobs/{job.json()['id']}/").content.decode()

    assert re.search(r"<dt>Waiting for</dt><dd>\d+ seconds?</dd>", page)
