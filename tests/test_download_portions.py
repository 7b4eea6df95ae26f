"""A portion of a joined batch download (its first records, some of its segments) and what
the job page knows of a joined download's size before it starts, against the simulator over
HTTP."""

import io
import re

import openpyxl
import pytest

from aquadash.models import AuditEvent, Download, JobSnapshot
from tests.conftest import wait_until
from tests.test_downloads import (
    batch_url,
    body,
    counts_checked,
    file_gets,
    file_url,
    last_download,
    looked_up,
    records,
)
from tests.test_job_views import stored_a_while_ago

NAMES = [f"Name {n:010d}" for n in range(30)]  # the simulator's records, in order


@pytest.fixture
def client(finance_client):
    """Signed in as a member of the simulator tenant's group."""
    return finance_client


@pytest.fixture
def batch(client, simulator_tenant, simulator) -> dict:
    """A batch of 30 records in 3 segments of 10, looked up; Zuora's JSON of it."""
    job_id = simulator.add_job(records=30, segments=3)
    return looked_up(client, simulator_tenant, job_id)["batches"][0] | {"jobId": job_id}


def portion_of(client, tenant, batch: dict, query: str):
    return client.get(batch_url(tenant, batch["jobId"], batch["batchId"]) + query)


def test_the_first_records_come_with_one_header_and_a_name_that_says_so(
    client,
    simulator_tenant,
    batch,
):
    response = portion_of(client, simulator_tenant, batch, "?first=12")

    rows = records(body(response))
    assert rows[0][0] == "Account: Id"
    assert [row[1] for row in rows[1:]] == NAMES[:12]
    assert response["Content-Disposition"] == (
        'attachment; filename="Sized-export-Sized-export-first-12.csv"'
    )


def test_the_first_records_stop_reading_zuora_once_written(
    client,
    simulator_tenant,
    simulator,
):
    job_id = simulator.add_job(size=40_000_000, segments=2)
    batch = looked_up(client, simulator_tenant, job_id)["batches"][0] | {"jobId": job_id}
    asked = file_gets(simulator)

    rows = records(body(portion_of(client, simulator_tenant, batch, "?first=10")))

    assert len(rows) == 1 + 10
    assert file_gets(simulator) == asked + 1  # the second segment was never asked for
    first_segment = simulator.requests[-1]
    wait_until(lambda: first_segment.closed, seconds=10)
    assert first_segment.closed and not first_segment.finished  # left unread, and closed


def test_segments_i_to_j_are_those_segments_joined(client, simulator_tenant, batch):
    response = portion_of(client, simulator_tenant, batch, "?from=2&to=3")

    rows = records(body(response))
    assert rows[0][0] == "Account: Id"
    assert [row[1] for row in rows[1:]] == NAMES[10:30]
    assert response["Content-Disposition"] == (
        'attachment; filename="Sized-export-Sized-export-segments-2-3.csv"'
    )


@pytest.mark.parametrize(
    ("query", "names", "filename"),
    [
        ("?first=5&as=excel", NAMES[:5], "Sized-export-Sized-export-first-5-excel.csv"),
        ("?from=3&to=3&as=excel", NAMES[20:], "Sized-export-Sized-export-segments-3-3-excel.csv"),
        ("?first=5&as=xlsx", NAMES[:5], "Sized-export-Sized-export-first-5.xlsx"),
        ("?from=1&to=2&as=xlsx", NAMES[:20], "Sized-export-Sized-export-segments-1-2.xlsx"),
    ],
)
def test_a_portion_comes_in_every_format_of_the_joined_download(
    client,
    simulator_tenant,
    batch,
    query,
    names,
    filename,
):
    response = portion_of(client, simulator_tenant, batch, query)

    data = body(response)
    if filename.endswith(".xlsx"):
        sheet = openpyxl.load_workbook(io.BytesIO(data)).active
        rows = [[str(cell) for cell in row] for row in sheet.iter_rows(values_only=True)]
        assert sheet.title == "Sized export"
    else:
        rows = records(data)
    assert rows[0][0] == "Account: Id"
    assert [row[1] for row in rows[1:]] == names
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'


def test_a_portion_is_no_record_count_mismatch_and_the_trail_says_which_part(
    client,
    simulator_tenant,
    batch,
):
    body(portion_of(client, simulator_tenant, batch, "?from=2&to=3&first=4"))

    download = last_download()
    assert download.outcome == Download.Outcome.COMPLETE
    assert download.records_counted == 4
    assert download.portion == "segments 2–3, first 4 records"
    assert not counts_checked()  # nothing held against Zuora's 30
    event = AuditEvent.objects.filter(kind=AuditEvent.Kind.DOWNLOAD).latest("at")
    assert "segments 2–3, first 4 records" in event.detail
    trail = client.get(f"/t/{simulator_tenant.slug}/jobs/{batch['jobId']}/downloads/")
    assert "whole batch, segments 2–3, first 4 records" in trail.content.decode()


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("?first=0", "“0” is not a number of records"),
        ("?first=ten", "“ten” is not a number of records"),
        ("?first=", "“nothing” is not a number of records"),
        ("?from=3&to=2", "Segment 3 comes after segment 2"),
        ("?from=2&to=4", "This batch has 3 segments, so there is no segment 4"),
        ("?from=0&to=2", "“0” is not a segment number"),
        ("?from=2", "Give both the first and the last segment"),
        ("?from=1.5&to=2", "“1.5” is not a segment number"),
    ],
)
def test_a_portion_the_batch_does_not_have_is_a_400_that_says_why(
    client,
    simulator_tenant,
    simulator,
    batch,
    query,
    says,
):
    asked = file_gets(simulator)

    response = portion_of(client, simulator_tenant, batch, query)

    assert response.status_code == 400
    page = response.content.decode()
    assert "<h1>Check the part to download</h1>" in page
    assert says in page
    assert file_gets(simulator) == asked


# --- What the page knows before a joined download ----------------------------------------


def job_page(client, tenant, job_id: str) -> str:
    return re.sub(r"\s+", " ", client.get(f"/t/{tenant.slug}/jobs/{job_id}/").content.decode())


def test_the_page_says_what_it_knows_of_a_joined_download_and_that_the_size_is_unknown(
    client,
    simulator_tenant,
    batch,
):
    page = job_page(client, simulator_tenant, batch["jobId"])

    assert (
        "Whole batch: 30 records in 3 segments · size not known yet: no file of this job has "
        "been downloaded whole" in page
    )
    assert "30 records in 3 files · size not known yet" in page  # beside the zip


def test_after_a_file_is_downloaded_the_page_estimates_the_size(
    client,
    simulator_tenant,
    simulator,
    batch,
    settings,
):
    stored_a_while_ago(batch["jobId"])  # a final job's page, kept rendered, and its batches
    assert "size not known yet" in job_page(client, simulator_tenant, batch["jobId"])
    settings.AQUADASH_CONFIRM_GB = 1e-9
    asked = simulator.count()

    segment = body(client.get(file_url(simulator_tenant, batch["jobId"], batch["segments"][0])))
    page = job_page(client, simulator_tenant, batch["jobId"])

    per_record = (len(segment) - len(segment.split(b"\n")[0]) - 1) / 10
    snapshot = JobSnapshot.objects.get(job_id=batch["jobId"])
    assert (snapshot.sample_bytes, snapshot.sample_records) == (len(segment), 10)
    assert re.search(r"Whole batch: 30 records in 3 segments · about [0-9.]+ KB, over", page)
    assert "aquadash asks first" in page
    assert per_record > 0 and simulator.count() == asked + 1  # the download alone asked Zuora


def test_a_joined_download_is_not_the_sample(client, simulator_tenant, batch):
    body(portion_of(client, simulator_tenant, batch, ""))

    snapshot = JobSnapshot.objects.get(job_id=batch["jobId"])
    assert snapshot.sample_bytes is None


def test_a_smaller_file_does_not_replace_the_sample(client, simulator_tenant, simulator):
    job_id = simulator.add_job(records=25, segments=3)  # segments of 9, 9 and 7 records
    segments = looked_up(client, simulator_tenant, job_id)["batches"][0]["segments"]
    first = body(client.get(file_url(simulator_tenant, job_id, segments[0])))
    body(client.get(file_url(simulator_tenant, job_id, segments[2])))

    snapshot = JobSnapshot.objects.get(job_id=job_id)
    assert (snapshot.sample_bytes, snapshot.sample_records) == (len(first), 9)


def test_the_large_download_page_offers_a_part_of_the_batch(
    client,
    simulator_tenant,
    batch,
    settings,
):
    body(client.get(file_url(simulator_tenant, batch["jobId"], batch["segments"][0])))
    settings.AQUADASH_CONFIRM_GB = 1e-9

    response = portion_of(client, simulator_tenant, batch, "?as=xlsx")

    page = re.sub(r"\s+", " ", response.content.decode())
    assert response.status_code == 200 and not response.streaming
    action = f'action="/t/sim/jobs/{batch["jobId"]}/batches/{batch["batchId"]}/download"'
    assert page.count(action) == 2
    assert 'name="first"' in page and 'name="from"' in page and 'name="to"' in page
    assert '<option value="xlsx" selected>' in page  # the format asked for stays chosen


def test_a_portion_above_the_limit_asks_too_and_below_it_downloads(
    client,
    simulator_tenant,
    batch,
    settings,
):
    segment = body(client.get(file_url(simulator_tenant, batch["jobId"], batch["segments"][0])))
    settings.AQUADASH_CONFIRM_GB = 2.5 * len(segment) / 1e9  # two segments and a half

    two = portion_of(client, simulator_tenant, batch, "?from=1&to=2")
    three = portion_of(client, simulator_tenant, batch, "?from=1&to=3")

    assert len(records(body(two))) == 1 + 20
    assert not three.streaming and "Download anyway" in three.content.decode()
