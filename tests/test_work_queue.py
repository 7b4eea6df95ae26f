"""The work queue: /jobs/ across the tenants a person may see, /t/<tenant>/jobs/ for one."""

import importlib
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from aquadash import simulator as sim
from aquadash import zuora
from aquadash.jobs import queue_columns
from aquadash.models import JobSnapshot

NOW = timezone.now()


def stored(tenant, n: int, **fields) -> JobSnapshot:
    values = {
        "job_id": f"{n:032x}",
        "name": f"Nightly export {n}",
        "status": "completed",
        "is_final": True,
        "raw": {},
        "last_fetched_at": NOW,
        "started_at": NOW - timedelta(hours=n),
    }
    return JobSnapshot.objects.create(tenant=tenant, **values | fields)


def names(html: str) -> list[str]:
    return re.findall(r">(Nightly export \d+)</a>", html)


def job(batches: list[tuple[str, int | None]], start: str = "2026-11-29 08:00:00") -> zuora.Job:
    raw = {
        "id": "a" * 32,
        "status": "completed",
        "startTime": start,
        "batches": [
            {"batchId": f"{n:032x}", "status": status, "recordCount": records}
            for n, (status, records) in enumerate(batches)
        ],
    }
    return zuora.parse_job(raw, zone=ZoneInfo("America/Los_Angeles"))


def test_a_looked_up_job_gets_its_start_records_and_batches_as_columns(
    finance_client, simulator_tenant
):
    finance_client.get(f"/t/sim/jobs/{sim.MULTI_BATCH_JOB_ID}/")

    snapshot = simulator_tenant.jobs.get(job_id=sim.MULTI_BATCH_JOB_ID)
    parsed = snapshot.job()
    assert snapshot.started_at == parsed.start_time is not None
    assert snapshot.total_records == sum(b.record_count or 0 for b in parsed.batches) > 0
    assert snapshot.batches_done == snapshot.batches_total == len(parsed.batches) > 1


def test_run_time_runs_from_the_start_until_every_batch_was_first_seen_finished():
    timeline = {
        f"{0:032x}": {"executing": "2026-11-29T16:01:00Z", "completed": "2026-11-29T16:03:00Z"},
        f"{1:032x}": {"pending": "2026-11-29T16:01:00Z", "completed": "2026-11-29T16:05:30Z"},
    }

    columns = queue_columns(job([("completed", 5), ("completed", 7)]), timeline)

    assert columns["run_seconds"] == 5 * 60 + 30  # 08:00 in Los Angeles is 16:00 UTC
    assert (columns["total_records"], columns["batches_done"], columns["batches_total"]) == (
        12,
        2,
        2,
    )


def test_a_job_first_seen_finished_has_no_run_time():
    timeline = {f"{0:032x}": {"completed": "2026-11-29T18:00:00+00:00"}}

    assert queue_columns(job([("completed", 5)]), timeline)["run_seconds"] is None


def test_a_running_job_has_no_run_time_and_counts_only_finished_batches():
    timeline = {f"{0:032x}": {"completed": "2026-11-29T16:03:00+00:00"},
                f"{1:032x}": {"executing": "2026-11-29T16:01:00+00:00"}}  # fmt: skip

    columns = queue_columns(job([("completed", 5), ("executing", None)]), timeline)

    assert columns["run_seconds"] is None
    assert (columns["batches_done"], columns["batches_total"]) == (1, 2)


@pytest.mark.parametrize(
    ("start", "utc"),
    [
        ("2026-11-29 08:00:00", "2026-11-29T16:00:00"),  # naive: Los Angeles time
        ("2026-11-29T08:00:00+0100", "2026-11-29T07:00:00"),  # dateTimeUtc's form
    ],
)
def test_the_migration_fills_the_columns_of_stored_jobs_in_the_tenants_zone(
    simulator_tenant, start, utc
):
    snapshot = stored(simulator_tenant, 1, started_at=None, raw=job([("completed", 4)], start).raw)
    migration = importlib.import_module("aquadash.migrations.0012_job_queue_columns")

    migration.fill_queue_columns(apps, None)

    snapshot.refresh_from_db()
    assert snapshot.started_at == datetime.fromisoformat(utc).replace(tzinfo=UTC)
    assert (snapshot.total_records, snapshot.batches_done, snapshot.batches_total) == (4, 1, 1)


def test_the_work_queue_lists_every_visible_tenant_each_time_in_its_zone(
    finance_client, simulator_tenant, make_tenant
):
    berlin = make_tenant("berlin", time_zone="Europe/Berlin", groups=simulator_tenant.groups.all())
    stored(simulator_tenant, 1)
    stored(berlin, 2)

    html = finance_client.get("/jobs/").content.decode()

    assert names(html) == ["Nightly export 1", "Nightly export 2"]
    assert re.search(r"\d\d:\d\d:\d\d P[SD]T", html) and re.search(r"\d\d:\d\d:\d\d CES?T", html)


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("name", [1, 2, 3]),
        ("-started", [1, 2, 3]),
        ("started", [3, 2, 1]),
        ("run", [2, 1, 3]),
        ("-records", [3, 1, 2]),
        ("batches", [2, 3, 1]),
        ("-checked", [3, 1, 2]),
        ("status", [2, 1, 3]),
    ],
)
def test_the_work_queue_sorts_by_each_column(finance_client, simulator_tenant, sort, order):
    stored(simulator_tenant, 1, run_seconds=60, total_records=50, batches_done=3, batches_total=3)
    stored(simulator_tenant, 2, run_seconds=10, total_records=5, batches_done=1, batches_total=3,
           last_fetched_at=NOW - timedelta(1), status="cancelled")  # fmt: skip
    stored(simulator_tenant, 3, total_records=500, batches_done=2, batches_total=2,
           last_fetched_at=NOW + timedelta(1), status="error")  # fmt: skip

    html = finance_client.get("/jobs/", {"sort": sort}).content.decode()

    assert names(html) == [f"Nightly export {n}" for n in order]


@pytest.mark.parametrize("sort", ["-started", "started"])
def test_jobs_without_a_start_time_come_last_in_both_start_orders_over_all_dates(
    finance_client, simulator_tenant, make_tenant, sort
):
    acme = make_tenant("acme", groups=simulator_tenant.groups.all())
    stored(simulator_tenant, 1, started_at=None)
    stored(acme, 2)
    stored(simulator_tenant, 3)

    html = finance_client.get("/jobs/", {"sort": sort, "start": ""}).content.decode()

    assert names(html)[-1] == "Nightly export 1"


def test_the_work_queue_lists_and_counts_only_the_tenants_a_person_may_see(
    finance_client, simulator_tenant, make_tenant
):
    make_tenant("acme", groups=simulator_tenant.groups.all())
    hidden = make_tenant("hidden")
    stored(simulator_tenant, 1)
    for n in range(2, 5):
        stored(hidden, n, started_at=NOW)  # newer: first on the page if it leaked

    html = finance_client.get("/jobs/").content.decode()

    assert names(html) == ["Nightly export 1"]
    assert re.search(r"\b1 job\b", html) and "4 jobs" not in html


def test_the_work_queue_sorts_by_tenant(finance_client, simulator_tenant, make_tenant):
    stored(simulator_tenant, 1)
    stored(make_tenant("acme", groups=simulator_tenant.groups.all()), 2)

    html = finance_client.get("/jobs/", {"sort": "tenant"}).content.decode()

    assert names(html) == ["Nightly export 2", "Nightly export 1"]  # Acme before Sim


def test_the_work_queue_shows_the_last_seven_days_unless_asked_for_all(
    finance_client, simulator_tenant
):
    stored(simulator_tenant, 1)
    stored(simulator_tenant, 2, started_at=NOW - timedelta(days=8))

    assert names(finance_client.get("/jobs/").content.decode()) == ["Nightly export 1"]
    assert len(names(finance_client.get("/jobs/", {"start": ""}).content.decode())) == 2


def test_the_work_queue_filters_by_tenant_status_dates_and_text(
    finance_client, simulator_tenant, make_tenant
):
    acme = make_tenant("acme", groups=simulator_tenant.groups.all())
    stored(simulator_tenant, 1)
    stored(acme, 2, status="error")
    stored(simulator_tenant, 3, started_at=NOW - timedelta(days=3))
    today = timezone.localdate()

    def shown(**params: str) -> list[str]:
        return names(finance_client.get("/jobs/", params).content.decode())

    assert shown(tenant="acme") == ["Nightly export 2"]
    assert shown(status="error") == ["Nightly export 2"]
    assert shown(end=str(today - timedelta(days=2))) == ["Nightly export 3"]
    assert shown(q="export 3") == ["Nightly export 3"]
    assert shown(q=f"{2:032x}") == ["Nightly export 2"]


def test_a_short_id_prefix_asks_for_eight_characters(finance_client, simulator_tenant):
    html = finance_client.get("/jobs/", {"q": "2c9081"}).content.decode()

    assert "type at least 8 characters" in html


def test_the_work_queue_refuses_nobody_but_lists_nothing_for_a_user_without_tenants(
    outsider_client, simulator_tenant
):
    stored(simulator_tenant, 1)

    response = outsider_client.get("/jobs/")

    assert response.status_code == 200 and names(response.content.decode()) == []


def test_the_work_queue_is_paged(finance_client, simulator_tenant):
    for n in range(1, 53):
        stored(simulator_tenant, n, started_at=NOW - timedelta(minutes=n))

    html = finance_client.get("/jobs/", {"page": 2}).content.decode()

    assert names(html) == ["Nightly export 51", "Nightly export 52"]
    assert "Page 2 of 2" in html


def test_pages_of_all_dates_stay_of_all_dates(finance_client, simulator_tenant):
    for n in range(1, 53):
        stored(simulator_tenant, n, started_at=NOW - timedelta(days=n))

    html = finance_client.get("/jobs/", {"start": ""}).content.decode()

    next_page = re.search(r'href="\?([^"]*page=2)"', html)[1].replace("&amp;", "&")
    assert len(names(finance_client.get(f"/jobs/?{next_page}").content.decode())) == 2


def test_the_work_queues_first_page_costs_at_most_five_queries(
    finance_client, simulator_tenant, make_tenant
):
    for slug in ("acme", "globex"):
        tenant = make_tenant(slug, groups=simulator_tenant.groups.all())
        for n in range(30):
            stored(tenant, n)
    finance_client.get("/jobs/")

    with CaptureQueriesContext(connection) as queries:
        assert finance_client.get("/jobs/").status_code == 200

    assert len(queries) <= 5, [q["sql"] for q in queries]


def test_the_csv_carries_each_tenants_times_in_its_own_zone(
    finance_client, simulator_tenant, make_tenant
):
    berlin = make_tenant("berlin", time_zone="Europe/Berlin", groups=simulator_tenant.groups.all())
    stored(simulator_tenant, 1)
    stored(berlin, 2)

    response = finance_client.get("/jobs/", {"format": "csv"})
    lines = b"".join(response.streaming_content).decode().splitlines()

    assert lines[0].startswith("\ufeffTenant,Job ID,Name,Status,Started,")
    assert "Last fetched by" in lines[0] and "last_fetched_by" not in lines[0]
    started = [line.split(",")[4] for line in lines[1:]]
    assert re.search(r"-0[78]:00$", started[0]) and re.search(r"\+0[12]:00$", started[1])
