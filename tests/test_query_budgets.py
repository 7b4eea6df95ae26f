"""What a page costs the database: the budgets issue 9 sets, on SQLite and on PostgreSQL.

A stored job page is at most five queries with one write (its lookup row), a poll at most four
with none, and the home page at most five however many tenants there are.
"""

import re

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from aquadash import simulator as sim
from aquadash.models import Download, Tenant

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
