"""What a page costs the database: the budgets issue 9 sets, on SQLite and on PostgreSQL.

A stored job page is at most five queries with one write (its lookup row), a poll at most four
with none, and the home page at most five however many tenants there are. A file aquadash keeps
is sent after six queries with one write (the Download row), and finished in one transaction.
"""

import re

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from aquadash import simulator as sim
from aquadash.models import AuditEvent, Download, KeptFile, Tenant
from tests.archive_helpers import body, open_job, press_keep, run_worker

HTMX = {"HTTP_HX_REQUEST": "true"}


def writes(queries: CaptureQueriesContext) -> list[str]:
    """The tables a request wrote to, in order."""
    found = []
    for query in queries.captured_queries:
        match = re.match(r'\s*(INSERT INTO|UPDATE|DELETE FROM) "(\w+)"', query["sql"])
        if match:
            found.append(f"{match[1]} {match[2]}")
    return found


def tables_read(queries: CaptureQueriesContext) -> str:
    return " ".join(query["sql"] for query in queries.captured_queries)


@pytest.fixture
def client(finance_client: Client) -> Client:
    """Signed in as a member of the simulator tenant's group, not as a superuser."""
    return finance_client


def job_url(tenant: Tenant, job_id: str) -> str:
    return f"/t/{tenant.slug}/jobs/{job_id}/"


def test_a_stored_job_page_costs_six_queries_and_writes_only_its_lookup_row(
    client, simulator_tenant
):
    url = job_url(simulator_tenant, sim.ZIP_JOB_ID)  # completed, with files and counts to show
    client.get(url)
    file_id = client.get(url + "raw.json").json()["batches"][0]["fileId"]
    b"".join(client.get(f"{url}files/{file_id}").streaming_content)
    assert "records verified" in client.get(url).content.decode()

    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200

    # The sixth: the other tenants the person may see that stored the same job ID ("also in").
    assert len(queries) <= 6, tables_read(queries)
    assert writes(queries) == ["INSERT INTO aquadash_lookup"]


def test_a_poll_costs_four_queries_and_writes_nothing(client, simulator_tenant):
    url = job_url(simulator_tenant, sim.RUNNING_JOB_ID)  # one batch done, with its file
    assert "Download .csv" in client.get(url).content.decode()

    with CaptureQueriesContext(connection) as queries:
        assert client.get(url, **HTMX).status_code == 200

    assert len(queries) <= 4, tables_read(queries)
    assert writes(queries) == []


def test_neither_the_job_page_nor_its_polls_read_the_download_trail(client, simulator_tenant):
    url = job_url(simulator_tenant, sim.RUNNING_JOB_ID)
    client.get(url)

    with CaptureQueriesContext(connection) as queries:
        client.get(url)
        client.get(url, **HTMX)

    assert Download._meta.db_table not in tables_read(queries)


@pytest.mark.parametrize("tenants", [1, 12])
def test_the_home_page_costs_five_queries_however_many_tenants(
    client, simulator_tenant, make_tenant, tenants
):
    group = simulator_tenant.groups.get()
    for n in range(tenants - 1):
        make_tenant(f"tenant-{n}", groups=[group])
    client.get(job_url(simulator_tenant, sim.ZIP_JOB_ID))
    client.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID))

    with CaptureQueriesContext(connection) as queries:
        html = client.get("/").content.decode()

    assert len(queries) <= 5, tables_read(queries)
    # Both forms list every tenant; the lookup offers "Any tenant" too, when there are several.
    assert html.count('<option value="') == 2 * tenants + (tenants > 1)
    assert "Zipped extract" in html


def test_a_lookup_submitted_from_the_home_page_checks_the_tenant_within_budget(
    client, simulator_tenant
):
    Group.objects.create(name="unrelated")

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/", {"tenant": simulator_tenant.slug, "job": sim.ZIP_JOB_ID})

    assert response.status_code == 302
    assert response["Location"] == job_url(simulator_tenant, sim.ZIP_JOB_ID)
    assert len(queries) <= 5, tables_read(queries)


# Committed, as in production: the download's last writes happen when the server closes the
# file it sent, after the test client's request has ended.
@pytest.mark.django_db(transaction=True)
def test_a_kept_file_costs_six_queries_to_start_and_one_transaction_to_finish(
    client, simulator_tenant, simulator, settings, tmp_path
):
    settings.STORAGES = {
        **settings.STORAGES,
        "archive": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "archive"},
        },
    }
    job_id = simulator.add_job(records=50, segments=3)
    segment = open_job(client, simulator_tenant, job_id)["batches"][0]["segments"][1]
    press_keep(client, simulator_tenant, job_id)
    run_worker()
    url = f"{job_url(simulator_tenant, job_id)}files/{segment}"

    with CaptureQueriesContext(connection) as started:
        response = client.get(url)
    with CaptureQueriesContext(connection) as finished:
        body(response)
        response.close()

    # The session, the user, the tenant check, the stored job, the Download row and the file's
    # kept copy as the download starts; nothing asks Zuora.
    assert len(started) <= 6, tables_read(started)
    assert writes(started) == ["INSERT INTO aquadash_download"]
    assert KeptFile._meta.db_table in tables_read(started)
    # As it ends: the Download row and its audit event (one transaction: four on SQLite).
    assert writes(finished) == ["UPDATE aquadash_download", "INSERT INTO aquadash_auditevent"]
    assert len(finished) <= 4, tables_read(finished)
    download = Download.objects.get(file_id=segment)
    assert (download.outcome, download.from_archive) == (Download.Outcome.COMPLETE, True)
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.DOWNLOAD, target__contains=segment)
