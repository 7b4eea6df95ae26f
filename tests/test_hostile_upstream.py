"""Whatever JSON Zuora (or something in its place) sends, the job page is a clear answer: never a
500, never more than 2 MB, and nothing stored that a database or a page cannot hold."""

import json
import uuid

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aquadash.models import JobSnapshot, Tenant

MAX_PAGE = 2 * 1024 * 1024
JSON = "application/json"


@pytest.fixture
def client(simulator_tenant: Tenant, make_user) -> Client:
    client = Client()
    client.force_login(make_user("finance", groups=simulator_tenant.groups.all()))
    return client


def served(simulator, job_id: str, body: str | bytes) -> None:
    """The simulator answers the next GET of this job with exactly `body`."""
    simulator.add_fault("file_body", job_id=job_id, body=body, content_type=JSON)


def job(job_id: str, **fields) -> dict:
    return {"id": job_id, "name": "Hostile", "status": "completed", "batches": [], **fields}


def batch(number: int, **fields) -> dict:
    return {
        "batchId": f"{number:032x}",
        "name": f"B{number}",
        "status": "completed",
        "query": "select Id from Account",
        **fields,
    }


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_numbers_json_does_not_allow_are_an_unreadable_answer(
    client, simulator_tenant, simulator, number
):
    job_id = uuid.uuid4().hex
    # In a place whose shape the client does not check: only the number itself is wrong.
    deleted = {"column": "IsDeleted", "format": 12345}
    body = json.dumps(job(job_id, batches=[batch(1, deleted=deleted)])).replace("12345", number)
    served(simulator, job_id, body)

    response = client.get(f"/t/{simulator_tenant.slug}/jobs/{job_id}/")

    assert response.status_code == 502
    assert "cannot read" in response.content.decode()
    assert not JobSnapshot.objects.filter(job_id=job_id).exists()


def test_half_a_unicode_pair_is_replaced_before_it_is_stored(client, simulator_tenant, simulator):
    job_id = uuid.uuid4().hex
    served(simulator, job_id, json.dumps(job(job_id, name="Bad \ud800 name")))

    response = client.get(f"/t/{simulator_tenant.slug}/jobs/{job_id}/")

    assert response.status_code == 200
    assert "Bad \ufffd name" in response.content.decode()
    assert JobSnapshot.objects.get(job_id=job_id).raw["name"] == "Bad \ufffd name"


def test_a_job_of_thousands_of_batches_is_shown_a_page_at_a_time(
    client, simulator_tenant, simulator
):
    job_id = uuid.uuid4().hex
    query = "select " + ", ".join(f"Field{n}" for n in range(40)) + " from Account"
    served(
        simulator,
        job_id,
        json.dumps(
            job(
                job_id,
                batches=[
                    batch(n, query=query, recordCount=n, fileId=f"{n:032x}") for n in range(5000)
                ],
            )
        ),
    )
    url = f"/t/{simulator_tenant.slug}/jobs/{job_id}/"

    first = client.get(url)
    last = client.get(url + "?page=50")

    assert first.status_code == last.status_code == 200
    assert len(first.content) < MAX_PAGE
    assert first.content.decode().count('<tbody class="batch">') == 100
    assert "Page 1 of 50" in first.content.decode()
    assert f"{4999:032x}" in last.content.decode()
    assert "5,000 completed of 5,000 · 12,497,500 records" in first.content.decode()


def test_a_huge_query_is_shortened_with_the_whole_text_one_click_away(
    client, simulator_tenant, simulator
):
    job_id = uuid.uuid4().hex
    query = "select Id from Account where Name in (" + "'x', " * 800_000 + "'y')"
    served(simulator, job_id, json.dumps(job(job_id, batches=[batch(1, query=query)])))

    page = client.get(f"/t/{simulator_tenant.slug}/jobs/{job_id}/")
    whole = client.get(f"/t/{simulator_tenant.slug}/jobs/{job_id}/batches/{1:032x}/query.txt")

    assert page.status_code == 200
    assert len(page.content) < MAX_PAGE
    assert f"The whole query ({len(query):,} characters)" in page.content.decode()
    assert whole.content.decode() == query
    assert whole["Content-Type"] == "text/plain; charset=utf-8"


def test_huge_names_and_messages_are_cut_for_the_page(client, simulator_tenant, simulator):
    job_id = uuid.uuid4().hex
    served(
        simulator,
        job_id,
        json.dumps(
            job(
                job_id,
                name="N" * 1_000_000,
                message="M" * 1_000_000,
                batches=[batch(1, name="B" * 1_000_000, message="E" * 1_000_000)],
            )
        ),
    )

    page = client.get(f"/t/{simulator_tenant.slug}/jobs/{job_id}/")

    assert page.status_code == 200
    assert len(page.content) < MAX_PAGE


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()  # NaN and infinities included
    | st.text(st.characters(codec=None) | st.sampled_from("\ud800\udfff\x00<\"'"), max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
JOB_FIELDS = [
    "name",
    "status",
    "version",
    "format",
    "encrypted",
    "partner",
    "project",
    "startTime",
    "incrementalTime",
    "offset",
    "errorCode",
    "message",
    "notifyUrl",
]
BATCH_FIELDS = [
    "name",
    "query",
    "status",
    "batchType",
    "apiVersion",
    "recordCount",
    "full",
    "fileId",
    "segments",
    "message",
    "deleted",
]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    job_fields=st.dictionaries(st.sampled_from(JOB_FIELDS), JSON_VALUES, max_size=5),
    batch_fields=st.lists(
        st.dictionaries(st.sampled_from(BATCH_FIELDS), JSON_VALUES, max_size=4), max_size=3
    ),
)
def test_any_json_is_a_page_or_a_clear_error(
    client, simulator_tenant, simulator, job_fields, batch_fields
):
    job_id = uuid.uuid4().hex
    document = job(job_id, **job_fields)
    document["batches"] = [batch(n) | fields for n, fields in enumerate(batch_fields)]
    served(simulator, job_id, json.dumps(document))

    response = client.get(f"/t/{simulator_tenant.slug}/jobs/{job_id}/")

    assert response.status_code in (200, 502)
    assert len(response.content) < MAX_PAGE
    response.content.decode()  # whole characters only
    if snapshot := JobSnapshot.objects.filter(job_id=job_id).first():
        json.dumps(snapshot.raw, allow_nan=False).encode()  # no NaN, no half characters


def test_deeply_nested_json_is_an_unreadable_answer(client, simulator_tenant, simulator):
    job_id = uuid.uuid4().hex
    nested = "[" * 100_000 + "]" * 100_000
    served(simulator, job_id, json.dumps(job(job_id)).replace("[]", nested))

    response = client.get(f"/t/{simulator_tenant.slug}/jobs/{job_id}/")

    assert response.status_code == 502
    assert "cannot read" in response.content.decode()


@pytest.mark.parametrize(
    "segment", ["../../v1/users", "2c92c0f9" * 3, "2c92c0f96b3a5e01016b3c1d2e3f4a5b?x=1"]
)
def test_a_segment_that_is_not_a_zuora_id_is_an_unreadable_answer(
    client, simulator_tenant, simulator, segment
):
    job_id = uuid.uuid4().hex
    segments = ["2c92c0f96b3a5e01016b3c1d2e3f4a5b", segment]
    served(simulator, job_id, json.dumps(job(job_id, batches=[batch(1, segments=segments)])))

    response = client.get(f"/t/{simulator_tenant.slug}/jobs/{job_id}/")

    assert response.status_code == 502
    assert "cannot read" in response.content.decode()
    assert not JobSnapshot.objects.filter(job_id=job_id).exists()
