"""The same job ID in two tenants: each person sees only their own tenant's job, on every page,
fragment, file, export and JSON view that shows a job.

Zuora job IDs are unique only within a tenant's Zuora, so two tenants can hold one ID with
different contents. Here both do: each tenant's copy has its own name, query, batches, files,
previous run, watchers and downloads, each marked with the tenant's name. Every view is asked
by the member of each tenant for their own tenant (they see their copy and nothing of the
other's) and for the other tenant (a 404 showing nothing of it).
"""

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from aquadash import api
from aquadash import simulator as sim
from aquadash.models import Download, JobSnapshot, Lookup, Tenant, Watch
from tests.test_access import url_patterns

JOB_ID = "5ab1e0000000000000000000000000a1"
PREVIOUS_ID = "5ab1e0000000000000000000000000a0"
BATCH_ID = "5ab1e0000000000000000000000000b1"
HTMX = {"HTTP_HX_REQUEST": "true"}


@dataclass
class Side:
    """One tenant's copy of the job, and the member who may see that tenant."""

    tenant: Tenant
    client: Client
    marker: str  # in its job's name, batch names, query, previous run, watcher and downloader
    raw: dict  # the job as stored
    files: dict[str, bytes]  # its result files, by ID, as Zuora serves them
    token: str = ""  # the member's API token, made for both tenants before losing the other

    def url(self, template: str, tenant: Tenant | None = None) -> str:
        ids = self.raw["batches"][0]
        return template.format(
            t=f"/t/{(tenant or self.tenant).slug}",
            api=f"/api/v1/tenants/{(tenant or self.tenant).slug}",
            job=JOB_ID,
            batch=BATCH_ID,
            file=ids["segments"][0],
        )


def zuoras_answer(simulator: sim.Simulator, job_id: str) -> dict:
    response = requests.get(
        f"{simulator.url}/v1/batch-query/jobs/{job_id}",
        auth=(sim.DEMO_USERNAME, sim.DEMO_PASSWORD),
        timeout=10,
    )
    assert response.status_code == 200
    return response.json()


def side(
    simulator: sim.Simulator,
    tenant: Tenant,
    make_user: Callable[..., User],
    *,
    records: int,
) -> Side:
    marker = f"{tenant.slug}only"
    made = simulator.add_job(
        records=records,
        segments=2,
        name=f"{marker} nightly",
        query=f"select Id from Account where Name = '{marker}'",
    )
    raw = zuoras_answer(simulator, made)
    files = {
        file_id: requests.get(
            f"{simulator.url}/v1/files/{file_id}",
            auth=(sim.DEMO_USERNAME, sim.DEMO_PASSWORD),
            timeout=10,
        ).content
        for file_id in raw["batches"][0]["segments"]
    }
    now = timezone.now()
    started = now - timedelta(hours=1)
    raw |= {"id": JOB_ID, "version": "1.1", "partner": "acme", "project": "a0B5f00000Session"}
    raw["startTime"] = started.strftime("%Y-%m-%dT%H:%M:%S+0000")
    raw["batches"][0] |= {"batchId": BATCH_ID, "name": f"{marker} accounts"}
    previous = {**raw, "id": PREVIOUS_ID, "name": f"{marker} previous run"}
    previous["startTime"] = (started - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    for job_id, stored in ((PREVIOUS_ID, previous), (JOB_ID, raw)):
        JobSnapshot.objects.create(
            tenant=tenant,
            job_id=job_id,
            name=stored["name"],
            status="completed",
            is_final=True,
            raw=stored,
            last_fetched_at=now,
        )
    member = make_user(f"{tenant.slug}-member", groups=tenant.groups.all())
    watcher = make_user(f"{marker}-watcher", groups=tenant.groups.all())
    Watch.objects.create(
        tenant=tenant,
        job_id=JOB_ID,
        user=watcher,
        link=f"http://testserver/t/{tenant.slug}/jobs/{JOB_ID}/",
        expires_at=now + timedelta(hours=1),
        next_check_at=now + timedelta(hours=1),
    )
    downloader = make_user(f"{marker}-downloader", groups=tenant.groups.all())
    Download.start(downloader, tenant, JOB_ID, kind=Download.Kind.JOB)
    client = Client()
    client.force_login(member)
    return Side(tenant, client, marker, raw, files)


@pytest.fixture
def sides(
    simulator: sim.Simulator,
    simulator_tenant: Tenant,
    make_tenant: Callable[..., Tenant],
    make_user: Callable[..., User],
) -> tuple[Side, Side]:
    """Tenants "sim" and "globex", both on the simulator, each holding JOB_ID its own way;
    each member has also looked the job up in the other tenant, before losing access to it."""
    globex = make_tenant(
        "globex",
        secret=sim.DEMO_CLIENT_SECRET,
        environment="custom",
        base_url=simulator.url,
        identity=sim.DEMO_CLIENT_ID,
        groups=[Group.objects.create(name="Globex staff")],
    )
    one = side(simulator, simulator_tenant, make_user, records=3)
    two = side(simulator, globex, make_user, records=7)
    for me, other in ((one, two), (two, one)):
        user = User.objects.get(username=f"{me.tenant.slug}-member")
        Lookup.objects.create(user=user, tenant=other.tenant, job_id=JOB_ID, job_name=other.marker)
        Lookup.objects.create(user=user, tenant=me.tenant, job_id=JOB_ID, job_name=me.marker)
        me.token = api.issue(user, name="both", tenants=[me.tenant, other.tenant], days=1)[1]
    return one, two


def shows(response: object, own: Side, other: Side, what: str) -> None:
    """The response shows `own`'s copy of what `what` names, and nothing of `other`'s."""
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert response.status_code == 200, f"{what}: {response.status_code}"
    if what == "file":
        assert body in own.files.values()
    elif what == "segments":
        assert body.decode().splitlines() == own.raw["batches"][0]["segments"]
    elif what in ("joined", "preview"):
        first_record = own.files[own.raw["batches"][0]["segments"][0]].decode().splitlines()[1]
        assert first_record in body.decode()
    elif what == "zip":
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            [member] = archive.namelist()
            assert own.marker in member
            records = archive.read(member).decode().splitlines()[1:]
        assert records == [
            record for file in own.files.values() for record in file.decode().splitlines()[1:]
        ]
    elif what != "kept":  # the card shows nothing of the job until it is kept
        assert own.marker in body.decode(), what
    assert other.marker.encode() not in body, what


# Every view that shows something of a stored job: (its URL, how to ask, what it shows).
TENANT_VIEWS = [
    ("{t}/jobs/?start=", {}, "page"),  # of any date: these stored jobs have no start column
    ("{t}/jobs/?start=&format=csv", {}, "page"),
    ("{t}/jobs/{job}/", {}, "page"),
    ("{t}/jobs/{job}/", HTMX, "page"),  # the poll fragment
    ("{t}/jobs/{job}/downloads/", HTMX, "page"),
    ("{t}/jobs/{job}/downloads/", {}, "page"),
    ("{t}/jobs/{job}/watch/", HTMX, "page"),
    ("{t}/jobs/{job}/watch/", {}, "page"),
    ("{t}/jobs/{job}/compare/", HTMX, "page"),
    ("{t}/jobs/{job}/compare/", {}, "page"),
    ("{t}/jobs/{job}/archive/", HTMX, "kept"),  # the kept-files card
    ("{t}/jobs/{job}/archive/", {}, "page"),
    ("{t}/jobs/{job}/raw.json", {}, "page"),
    ("{t}/jobs/{job}/batches/{batch}/segments/", {}, "page"),
    ("{t}/jobs/{job}/batches/{batch}/query.txt", {}, "page"),
    ("{t}/jobs/{job}/batches/{batch}/segments.txt", {}, "segments"),
    ("{t}/jobs/{job}/batches/{batch}/download", {}, "joined"),
    ("{t}/jobs/{job}/files/{file}", {}, "file"),
    ("{t}/jobs/{job}/files/{file}/preview", HTMX, "preview"),
    ("{t}/jobs/{job}/download.zip", {}, "zip"),
]


@pytest.mark.parametrize(("template", "headers", "what"), TENANT_VIEWS)
def test_each_member_sees_only_their_own_tenants_copy_of_a_job(sides, template, headers, what):
    for own, other in (sides, sides[::-1]):
        shows(own.client.get(own.url(template), **headers), own, other, what)

        theirs = own.client.get(other.url(template, other.tenant), **headers)
        assert theirs.status_code == 404, template
        assert other.marker.encode() not in theirs.content


# The same through the API, with each member's token.
API_VIEWS = [
    ("{api}/jobs/{job}", "page"),
    ("{api}/jobs/{job}/batches/{batch}/download", "joined"),
    ("{api}/jobs/{job}/files/{file}", "file"),
    ("{api}/jobs/{job}/download.zip", "zip"),
]


@pytest.mark.parametrize(("template", "what"), API_VIEWS)
def test_each_token_reads_only_its_owners_tenants_copy_of_a_job(sides, template, what):
    for own, other in (sides, sides[::-1]):
        auth = {"HTTP_AUTHORIZATION": f"Bearer {own.token}"}
        shows(Client().get(own.url(template), **auth), own, other, what)

        theirs = Client().get(other.url(template, other.tenant), **auth)
        assert theirs.status_code == 404, template
        assert other.marker.encode() not in theirs.content


def test_find_answers_from_the_stored_copy_of_ones_own_tenant(sides):
    for own, _ in (sides, sides[::-1]):
        response = own.client.get(f"/find/{JOB_ID}/")

        assert response.status_code == 302
        assert urlsplit(response["Location"]).path == f"/t/{own.tenant.slug}/jobs/{JOB_ID}/"


@pytest.mark.parametrize("query", ["?start=", "?start=&format=csv", "?start=&tenant=globex"])
def test_the_work_queue_lists_only_ones_own_tenants_jobs(sides, query):
    for own, other in (sides, sides[::-1]):
        shows(own.client.get(f"/jobs/{query}"), own, other, "page")


def test_recent_lookups_on_home_name_only_ones_own_tenants_jobs(sides):
    for own, other in (sides, sides[::-1]):
        shows(own.client.get("/"), own, other, "page")


def test_every_tenant_url_is_checked_here():
    names = {name for route, name, _ in url_patterns() if "tenant_slug" in route}
    checked = {
        "tenant_jobs", "job", "job_downloads", "job_watch", "job_compare", "job_raw",
        "batch_segments", "batch_query", "segments_text", "batch_download", "file",
        "file_preview", "job_download", "job_archive",
        "api_job", "api_batch_download", "api_file", "api_job_download",
    }  # fmt: skip
    # last_completed shows no stored job: it asks the tenant's own Zuora (tested in test_jobs).
    assert names - checked == {"last_completed"}
