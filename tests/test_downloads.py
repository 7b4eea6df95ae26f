"""Result files through the dashboard: downloads, joined batches, the job zip, Excel output,
preview, the record-count check, failures and the audit trail, against the simulator over HTTP."""

import csv
import io
import re
import zipfile
from datetime import datetime

import openpyxl
import pytest
import requests
from django.test import Client
from django.utils.http import content_disposition_header

from aquadash import simulator as sim
from aquadash.models import Download, JobSnapshot, Tenant
from tests.conftest import wait_until
from tests.test_job_views import stored_a_while_ago

HTMX = {"HTTP_HX_REQUEST": "true"}
AUTH = (sim.DEMO_USERNAME, sim.DEMO_PASSWORD)


@pytest.fixture
def client(simulator_tenant: Tenant, make_user) -> Client:
    """Signed in as a member of the simulator tenant's group."""
    client = Client()
    client.force_login(make_user("finance", groups=simulator_tenant.groups.all()))
    return client


def looked_up(client: Client, tenant: Tenant, job_id: str) -> dict:
    """Open the job's page, as a person does before downloading; returns Zuora's job JSON."""
    assert client.get(f"/t/{tenant.slug}/jobs/{job_id}/").status_code == 200
    return JobSnapshot.objects.get(tenant=tenant, job_id=job_id).raw


def file_url(tenant: Tenant, job_id: str, file_id: str, suffix: str = "") -> str:
    return f"/t/{tenant.slug}/jobs/{job_id}/files/{file_id}{suffix}"


def batch_url(tenant: Tenant, job_id: str, batch_id: str, suffix: str = "download") -> str:
    return f"/t/{tenant.slug}/jobs/{job_id}/batches/{batch_id}/{suffix}"


def from_zuora(simulator: sim.Simulator, file_id: str) -> requests.Response:
    response = requests.get(f"{simulator.url}/v1/files/{file_id}", auth=AUTH, timeout=10)
    assert response.status_code == 200
    return response


def body(response) -> bytes:
    assert response.status_code == 200, response.content[:500]
    return b"".join(response.streaming_content)


def file_gets(simulator: sim.Simulator) -> int:
    return simulator.count(method="GET", path_prefix="/v1/files/")


def counted(batch_id: str) -> int:
    """The records aquadash last counted in the batch's whole result."""
    (snapshot,) = JobSnapshot.objects.filter(record_counts__has_key=batch_id)
    return snapshot.record_counts[batch_id]["counted"]


def counts_checked() -> bool:
    return any(snapshot.record_counts for snapshot in JobSnapshot.objects.all())


def last_download() -> Download:
    return Download.objects.latest("started_at")


def records(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


# --- Downloading a file -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job_id", "filename", "content_type"),
    [
        (sim.MULTI_BATCH_JOB_ID, "Month-end-extract-Accounts.csv", "text/csv; charset=utf-8"),
        (sim.GZIP_JOB_ID, "Gzipped-invoice-items-InvoiceItems.csv.gz", "application/gzip"),
        (sim.ZIP_JOB_ID, "Zipped-extract-Accounts.zip", "application/zip"),
        (sim.PGP_JOB_ID, "Encrypted-accounts-Accounts.csv.pgp", "application/octet-stream"),
    ],
)
def test_a_file_downloads_byte_for_byte_as_zuora_serves_it(
    client, simulator_tenant, simulator, job_id, filename, content_type
):
    file_id = looked_up(client, simulator_tenant, job_id)["batches"][0]["fileId"]

    response = client.get(file_url(simulator_tenant, job_id, file_id))

    assert body(response) == from_zuora(simulator, file_id).content
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    assert response["Content-Type"] == content_type
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_file_zuora_labels_as_a_web_page_is_still_served_as_csv(
    client, simulator_tenant, simulator
):
    file_id = looked_up(client, simulator_tenant, sim.MULTI_BATCH_JOB_ID)["batches"][0]["fileId"]
    simulator.add_fault(
        "file_body", path="/v1/files/", body="<script>alert(1)</script>", content_type="text/html"
    )

    response = client.get(file_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID, file_id))

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment;")


def test_content_length_is_passed_on_when_zuora_gives_one(client, simulator_tenant, simulator):
    file_id = looked_up(client, simulator_tenant, sim.MULTI_BATCH_JOB_ID)["batches"][0]["fileId"]

    response = client.get(file_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID, file_id))

    assert int(response["Content-Length"]) == len(body(response))


def test_a_segment_downloads_as_a_numbered_part(client, simulator_tenant, simulator):
    job_id = simulator.add_job(records=36, segments=12)
    segments = looked_up(client, simulator_tenant, job_id)["batches"][0]["segments"]

    response = client.get(file_url(simulator_tenant, job_id, segments[2]))

    assert body(response) == from_zuora(simulator, segments[2]).content
    assert response["Content-Disposition"] == (
        'attachment; filename="Sized-export-Sized-export-part-003-of-012.csv"'
    )


def test_the_file_a_download_streams_is_made_while_it_is_sent(client, simulator_tenant, simulator):
    job_id = simulator.add_job(size=20_000_000)
    file_id = looked_up(client, simulator_tenant, job_id)["batches"][0]["fileId"]

    response = client.get(file_url(simulator_tenant, job_id, file_id))
    chunks = iter(response.streaming_content)
    first = next(chunks)
    sent_so_far = simulator.requests[-1].bytes_sent
    rest = sum(len(chunk) for chunk in chunks)

    assert len(first) <= 64 * 1024
    assert sent_so_far < 5_000_000  # Zuora's stream was not read ahead into memory
    assert len(first) + rest == int(response["Content-Length"])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Nightly\r\nSet-Cookie: a=b", "Nightly-Set-Cookie-a-b-Accounts.csv"),
        ('Say "hi"; ../../outside', "Say-hi-..-..-outside-Accounts.csv"),
        ("Ventes d'été 🌞", "Ventes-d'été-🌞-Accounts.csv"),
        ("x" * 500, "x" * 80 + "-Accounts.csv"),
        ("", f"aqua-job-{sim.MULTI_BATCH_JOB_ID}-Accounts.csv"),
    ],
)
def test_filenames_from_job_names_are_safe_in_the_header(
    client, simulator_tenant, simulator, name, expected
):
    raw = looked_up(client, simulator_tenant, sim.MULTI_BATCH_JOB_ID)
    raw["name"] = name
    JobSnapshot.objects.filter(job_id=sim.MULTI_BATCH_JOB_ID).update(raw=raw)

    response = client.get(
        file_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID, raw["batches"][0]["fileId"])
    )

    assert response["Content-Disposition"] == content_disposition_header(True, expected)
    assert "\n" not in response.serialize_headers().decode().replace("\r\n", "")
    assert "Set-Cookie" not in response.headers


# --- Only the job's own files, only for those allowed ---------------------------------------


def test_a_file_the_job_does_not_list_is_a_404_and_zuora_is_not_asked(
    client, simulator_tenant, simulator
):
    looked_up(client, simulator_tenant, sim.MULTI_BATCH_JOB_ID)
    other_jobs_file = from_zuora_job(simulator, sim.ZIP_JOB_ID)["batches"][0]["fileId"]
    before = file_gets(simulator)

    for file_id in [other_jobs_file, "0" * 32]:
        response = client.get(file_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID, file_id))
        assert response.status_code == 404
        preview = client.get(
            file_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID, file_id, "/preview")
        )
        assert preview.status_code == 404

    assert file_gets(simulator) == before


def test_another_tenants_user_gets_the_missing_job_404_and_zuora_is_not_asked(
    client, simulator_tenant, simulator, outsider_client
):
    raw = looked_up(client, simulator_tenant, sim.FULL_LOAD_JOB_ID)
    batch = raw["batches"][1]
    before = file_gets(simulator)

    for url in [
        file_url(simulator_tenant, sim.FULL_LOAD_JOB_ID, batch["segments"][0]),
        file_url(simulator_tenant, sim.FULL_LOAD_JOB_ID, batch["segments"][0], "/preview"),
        batch_url(simulator_tenant, sim.FULL_LOAD_JOB_ID, batch["batchId"]),
        batch_url(simulator_tenant, sim.FULL_LOAD_JOB_ID, batch["batchId"], "segments.txt"),
        f"/t/{simulator_tenant.slug}/jobs/{sim.FULL_LOAD_JOB_ID}/download.zip",
    ]:
        response = outsider_client.get(url)
        assert response.status_code == 404
        assert [t.name for t in response.templates][0] == "404.html"  # "no such tenant"

    assert file_gets(simulator) == before


def test_a_job_never_opened_has_no_downloads_yet(client, simulator_tenant, simulator):
    file_id = from_zuora_job(simulator, sim.MULTI_BATCH_JOB_ID)["batches"][0]["fileId"]

    response = client.get(file_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID, file_id))

    assert response.status_code == 404
    assert file_gets(simulator) == 0


def from_zuora_job(simulator: sim.Simulator, job_id: str) -> dict:
    url = f"{simulator.url}/v1/batch-query/jobs/{job_id}"
    return requests.get(url, auth=AUTH, timeout=10).json()


# --- A whole batch, a whole job -----------------------------------------------------------------


@pytest.mark.parametrize("file_format", ["CSV", "GZIP", "ZIP"])
def test_a_segmented_batch_downloads_as_one_csv_with_one_header(
    client, simulator_tenant, simulator, file_format
):
    job_id = simulator.add_job(records=25, segments=3, file_format=file_format)
    batch = looked_up(client, simulator_tenant, job_id)["batches"][0]

    response = client.get(batch_url(simulator_tenant, job_id, batch["batchId"]))

    rows = records(body(response))
    assert rows[0] == [
        "Account: Id",
        "Account: Name",
        "Account: Balance",
        "Account: Status",
        "Account: UpdatedDate",
    ]
    assert len(rows) == 1 + 25
    assert [row[1] for row in rows[1:]] == [f"Name {n:010d}" for n in range(25)]
    assert response["Content-Disposition"] == 'attachment; filename="Sized-export-Sized-export.csv"'
    assert counted(batch["batchId"]) == 25


def test_a_token_that_expires_between_segments_is_renewed_once(client, simulator_tenant, simulator):
    job_id = simulator.add_job(records=25, segments=3)
    batch = looked_up(client, simulator_tenant, job_id)["batches"][0]
    simulator.add_fault("unauthorized", job_id=batch["segments"][1])
    tokens = simulator.count(path_prefix="/oauth/token")

    rows = records(body(client.get(batch_url(simulator_tenant, job_id, batch["batchId"]))))

    assert len(rows) == 1 + 25
    assert simulator.count(path_prefix="/oauth/token") == tokens + 1


def test_an_encrypted_batch_is_not_joined_and_its_parts_are_offered(
    client, simulator_tenant, simulator
):
    job_id = simulator.add_job(records=25, segments=3, encrypted="pgp")
    batch = looked_up(client, simulator_tenant, job_id)["batches"][0]
    page = client.get(f"/t/{simulator_tenant.slug}/jobs/{job_id}/").content.decode()

    response = client.get(batch_url(simulator_tenant, job_id, batch["batchId"]))

    assert response.status_code == 409
    assert "PGP" in response.content.decode()
    assert "cannot be joined" in page
    assert all(file_url(simulator_tenant, job_id, segment) in page for segment in batch["segments"])
    assert (
        client.get(
            file_url(simulator_tenant, job_id, batch["segments"][0], "?as=excel")
        ).status_code
        == 404
    )


def test_a_whole_job_downloads_as_one_zip_of_csvs(client, simulator_tenant, simulator):
    raw = looked_up(client, simulator_tenant, sim.ZIP_JOB_ID)

    response = client.get(f"/t/{simulator_tenant.slug}/jobs/{sim.ZIP_JOB_ID}/download.zip")

    archive = zipfile.ZipFile(io.BytesIO(body(response)))
    assert archive.testzip() is None
    assert archive.namelist() == ["Zipped-extract-Accounts.csv", "Zipped-extract-Products.csv"]
    for name, batch in zip(archive.namelist(), raw["batches"], strict=True):
        assert len(records(archive.read(name))) == 1 + batch["recordCount"]
    assert response["Content-Disposition"] == 'attachment; filename="Zipped-extract.zip"'
    assert len(JobSnapshot.objects.get(job_id=sim.ZIP_JOB_ID).record_counts) == 2


def test_only_a_job_with_result_files_offers_them(client, simulator_tenant):
    with_files = client.get(f"/t/{simulator_tenant.slug}/jobs/{sim.ZIP_JOB_ID}/").content.decode()
    # Ended in error with its one batch never run: nothing to download.
    without = client.get(f"/t/{simulator_tenant.slug}/jobs/{sim.ERROR_JOB_ID}/").content.decode()

    for job_id, page, offered in [
        (sim.ZIP_JOB_ID, with_files, True),
        (sim.ERROR_JOB_ID, without, False),
    ]:
        assert ("Download all as zip" in page) is offered
        assert (f"/jobs/{job_id}/download.zip" in page) is offered
        assert (f"/jobs/{job_id}/downloads/" in page) is offered


def test_an_encrypted_jobs_zip_holds_its_parts_as_they_are(client, simulator_tenant, simulator):
    raw = looked_up(client, simulator_tenant, sim.PGP_JOB_ID)

    response = client.get(f"/t/{simulator_tenant.slug}/jobs/{sim.PGP_JOB_ID}/download.zip")

    archive = zipfile.ZipFile(io.BytesIO(body(response)))
    assert archive.namelist() == ["Encrypted-accounts-Accounts.csv.pgp"]
    file_id = raw["batches"][0]["fileId"]
    assert archive.read(archive.namelist()[0]) == from_zuora(simulator, file_id).content


# --- Excel ----------------------------------------------------------------------------------


def test_csv_for_excel_has_a_byte_order_mark_and_the_same_rows(client, simulator_tenant, simulator):
    file_id = looked_up(client, simulator_tenant, sim.NOTES_JOB_ID)["batches"][0]["fileId"]

    data = body(client.get(file_url(simulator_tenant, sim.NOTES_JOB_ID, file_id, "?as=excel")))

    assert data.startswith(b"\xef\xbb\xbf")
    assert data[3:] == from_zuora(simulator, file_id).content
    assert "Café" in data.decode("utf-8-sig")


def test_xlsx_opens_with_ids_as_text_numbers_as_numbers_and_dates_as_dates(
    client, simulator_tenant
):
    batch = looked_up(client, simulator_tenant, sim.NOTES_JOB_ID)["batches"][0]

    response = client.get(file_url(simulator_tenant, sim.NOTES_JOB_ID, batch["fileId"], "?as=xlsx"))

    data = body(response)
    assert int(response["Content-Length"]) == len(data)
    assert response["Content-Disposition"] == (
        'attachment; filename="Accounts-with-notes-Accounts.xlsx"'
    )
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    header = [cell.value for cell in sheet[1]]
    row = dict(zip(header, [cell.value for cell in sheet[3]], strict=True))
    assert isinstance(row["Account: Id"], str)
    assert row["Account: AccountNumber"] == "00000001"  # leading zeros kept
    assert row["Account: Notes"] == 'Café n°00000001, "first" line\nsecond line'
    assert row["Account: Balance"] == 1037.01
    assert row["Account: Reference"] == "100000000000000001"  # 18 digits stay text
    assert row["Account: CreatedDate"] == datetime(2016, 2, 2, 1, 0, 0)
    assert row["Account: EffectiveDate"] == datetime(2016, 2, 2)
    assert sheet.max_row == 1 + batch["recordCount"]
    assert counted(batch["batchId"]) == batch["recordCount"]


def test_a_whole_batch_can_be_had_as_xlsx(client, simulator_tenant, simulator):
    job_id = simulator.add_job(records=25, segments=3, file_format="GZIP")
    batch = looked_up(client, simulator_tenant, job_id)["batches"][0]

    data = body(client.get(batch_url(simulator_tenant, job_id, batch["batchId"]) + "?as=xlsx"))

    assert openpyxl.load_workbook(io.BytesIO(data)).active.max_row == 1 + 25


def test_over_excels_row_limit_the_page_says_why_there_is_no_xlsx(client, simulator_tenant):
    looked_up(client, simulator_tenant, sim.FULL_LOAD_JOB_ID)

    html = client.get(f"/t/{simulator_tenant.slug}/jobs/{sim.FULL_LOAD_JOB_ID}/").content.decode()

    assert "xlsx unavailable: over Excel's row limit" in html
    assert html.count("?as=xlsx") == 1  # only the 12,345-record batch offers it


# --- Preview --------------------------------------------------------------------------------


@pytest.mark.parametrize("job_id", [sim.MULTI_BATCH_JOB_ID, sim.GZIP_JOB_ID, sim.ZIP_JOB_ID])
def test_preview_shows_the_header_and_first_100_rows_of_each_format(
    client, simulator_tenant, job_id
):
    file_id = looked_up(client, simulator_tenant, job_id)["batches"][0]["fileId"]

    response = client.get(file_url(simulator_tenant, job_id, file_id, "/preview"), **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html  # a fragment for htmx
    assert "the first 100 records" in html
    assert html.count("<tr") == 1 + 100
    assert "Invoice Item: Id" in html or "Account: Id" in html


def test_preview_reads_only_what_it_shows_and_closes_zuoras_stream(
    client, simulator_tenant, simulator
):
    job_id = simulator.add_job(size=50_000_000)
    file_id = looked_up(client, simulator_tenant, job_id)["batches"][0]["fileId"]

    client.get(file_url(simulator_tenant, job_id, file_id, "/preview"), **HTMX)

    request = simulator.requests[-1]
    wait_until(lambda: request.closed)
    assert request.finished is False
    assert request.bytes_sent < 5_000_000


def test_preview_flags_rows_with_the_wrong_number_of_columns(client, simulator_tenant, simulator):
    file_id = looked_up(client, simulator_tenant, sim.MULTI_BATCH_JOB_ID)["batches"][0]["fileId"]
    simulator.add_fault("file_body", path="/v1/files/", body="Id,Name\n1,a\n2\n3,c,extra\n")

    html = client.get(
        file_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID, file_id, "/preview"), **HTMX
    ).content.decode()

    assert html.count('class="ragged"') == 2
    assert "2 rows with the wrong number of columns" in html
    assert "<td>extra</td>" in html


def test_preview_of_an_encrypted_result_explains_without_asking_zuora(
    client, simulator_tenant, simulator
):
    file_id = looked_up(client, simulator_tenant, sim.PGP_JOB_ID)["batches"][0]["fileId"]
    before = file_gets(simulator)

    html = client.get(
        file_url(simulator_tenant, sim.PGP_JOB_ID, file_id, "/preview"), **HTMX
    ).content.decode()

    assert "encrypted with the tenant's PGP key" in html.replace("&#x27;", "'")
    assert file_gets(simulator) == before


def test_preview_without_javascript_is_a_page(client, simulator_tenant):
    file_id = looked_up(client, simulator_tenant, sim.MULTI_BATCH_JOB_ID)["batches"][0]["fileId"]

    response = client.get(file_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID, file_id, "/preview"))

    assert response.status_code == 200
    assert "<html" in response.content.decode()


# --- Record counts --------------------------------------------------------------------------


def test_a_file_with_quoted_newlines_is_counted_and_verified(client, simulator_tenant):
    batch = looked_up(client, simulator_tenant, sim.NOTES_JOB_ID)["batches"][0]
    body(client.get(file_url(simulator_tenant, sim.NOTES_JOB_ID, batch["fileId"])))

    html = client.get(f"/t/{simulator_tenant.slug}/jobs/{sim.NOTES_JOB_ID}/").content.decode()

    assert last_download().records_counted == 240
    assert last_download().outcome == Download.Outcome.COMPLETE
    assert "✓ 240 records verified" in html


def test_a_count_shows_on_a_page_that_was_already_rendered(client, simulator_tenant):
    batch = looked_up(client, simulator_tenant, sim.NOTES_JOB_ID)["batches"][0]
    page = f"/t/{simulator_tenant.slug}/jobs/{sim.NOTES_JOB_ID}/"
    stored_a_while_ago(sim.NOTES_JOB_ID)
    assert "records verified" not in client.get(page).content.decode()  # the stored page, kept

    body(client.get(file_url(simulator_tenant, sim.NOTES_JOB_ID, batch["fileId"])))

    assert "✓ 240 records verified" in client.get(page).content.decode()


def test_counting_file_downloads_can_be_switched_off(client, simulator_tenant, settings):
    settings.AQUADASH_COUNT_RECORDS = False
    batch = looked_up(client, simulator_tenant, sim.NOTES_JOB_ID)["batches"][0]

    body(client.get(file_url(simulator_tenant, sim.NOTES_JOB_ID, batch["fileId"])))

    assert last_download().outcome == Download.Outcome.COMPLETE
    assert last_download().records_counted is None
    assert not counts_checked()


@pytest.mark.parametrize("job_id", [sim.GZIP_JOB_ID, sim.ZIP_JOB_ID])
def test_compressed_files_are_counted_as_they_pass_through(client, simulator_tenant, job_id):
    batch = looked_up(client, simulator_tenant, job_id)["batches"][0]

    body(client.get(file_url(simulator_tenant, job_id, batch["fileId"])))

    assert counted(batch["batchId"]) == batch["recordCount"]


def test_a_file_short_of_zuoras_record_count_is_a_loud_mismatch(
    client, simulator_tenant, simulator
):
    batch = looked_up(client, simulator_tenant, sim.MULTI_BATCH_JOB_ID)["batches"][0]
    simulator.add_fault("file_body", path="/v1/files/", body='Id,Name\n1,a\n2,"b\nc"\n3,d')

    body(client.get(file_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID, batch["fileId"])))
    html = client.get(f"/t/{simulator_tenant.slug}/jobs/{sim.MULTI_BATCH_JOB_ID}/").content

    assert last_download().outcome == Download.Outcome.MISMATCH
    assert (
        "RECORD COUNT MISMATCH:</strong> Zuora reported 1,250 records, the file holds 3."
        in html.decode()
    )


def test_a_segment_alone_is_counted_but_not_held_against_the_batch(
    client, simulator_tenant, simulator
):
    job_id = simulator.add_job(records=25, segments=3)
    segment = looked_up(client, simulator_tenant, job_id)["batches"][0]["segments"][0]

    body(client.get(file_url(simulator_tenant, job_id, segment)))

    assert last_download().records_counted == 9
    assert last_download().outcome == Download.Outcome.COMPLETE
    assert not counts_checked()


# --- Failures -------------------------------------------------------------------------------


def test_a_purged_file_is_a_404_that_says_to_rerun_the_query(client, simulator_tenant):
    file_id = looked_up(client, simulator_tenant, sim.PURGED_FILES_JOB_ID)["batches"][0]["fileId"]
    page = client.get(f"/t/{simulator_tenant.slug}/jobs/{sim.PURGED_FILES_JOB_ID}/").content

    response = client.get(file_url(simulator_tenant, sim.PURGED_FILES_JOB_ID, file_id))

    text = response.content.decode()
    assert response.status_code == 404
    assert "purges result files 3 days after the job completes" in text
    assert "Rerun the query" in text
    assert "<h1>Result file purged by Zuora</h1>" in text and "Back to the job" in text
    assert "Probably purged by Zuora" in page.decode()
    assert last_download().outcome == Download.Outcome.FAILED


def test_the_retention_warning_follows_the_setting(client, simulator_tenant, settings):
    settings.AQUADASH_FILE_RETENTION_DAYS = 7
    looked_up(client, simulator_tenant, sim.PURGED_FILES_JOB_ID)

    html = client.get(f"/t/{simulator_tenant.slug}/jobs/{sim.PURGED_FILES_JOB_ID}/").content

    assert "Probably purged by Zuora" not in html.decode()


def test_a_file_over_zuoras_size_limit_is_explained(client, simulator_tenant, simulator):
    job_id = simulator.add_job(records=30_000_000)
    file_id = looked_up(client, simulator_tenant, job_id)["batches"][0]["fileId"]

    response = client.get(file_url(simulator_tenant, job_id, file_id))

    assert response.status_code == 502
    assert "larger than 2,047 MB" in response.content.decode()


def test_a_download_zuora_cuts_short_does_not_end_cleanly(client, simulator_tenant, simulator):
    file_id = looked_up(client, simulator_tenant, sim.MULTI_BATCH_JOB_ID)["batches"][1]["fileId"]
    simulator.add_fault("truncated", path="/v1/files/", send=40_000)

    response = client.get(file_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID, file_id))
    received = bytearray()
    with pytest.raises(Exception, match="broke off"):
        for chunk in response.streaming_content:
            received += chunk

    assert len(received) <= 40_000 < int(response["Content-Length"])
    assert last_download().outcome == Download.Outcome.BROKEN
    assert last_download().bytes_sent == len(received)
    assert not counts_checked()


def test_a_gzip_cut_short_without_a_length_fails_before_its_end(
    client, simulator_tenant, simulator
):
    file_id = looked_up(client, simulator_tenant, sim.GZIP_JOB_ID)["batches"][0]["fileId"]
    whole = from_zuora(simulator, file_id).content
    simulator.add_fault(
        "file_body",
        path="/v1/files/",
        body=whole[: len(whole) // 2],
        content_type="application/gzip",
    )

    response = client.get(file_url(simulator_tenant, sim.GZIP_JOB_ID, file_id))

    with pytest.raises(Exception, match="ends before its end"):
        b"".join(response.streaming_content)
    assert last_download().outcome == Download.Outcome.BROKEN


# Committed, as in production: closing a response ends the request, which closes database
# connections left inside a transaction, such as a test's.
@pytest.mark.django_db(transaction=True)
def test_a_browser_that_walks_away_closes_zuoras_stream(client, simulator_tenant, simulator):
    job_id = simulator.add_job(size=100_000_000)
    file_id = looked_up(client, simulator_tenant, job_id)["batches"][0]["fileId"]

    response = client.get(file_url(simulator_tenant, job_id, file_id))
    next(iter(response.streaming_content))
    response.close()  # what a WSGI server does when the browser disconnects

    request = simulator.requests[-1]
    wait_until(lambda: request.closed)  # returns after 5 s either way: the asserts decide
    assert request.closed and not request.finished
    assert request.bytes_sent < 100_000_000 // 2
    assert last_download().outcome == Download.Outcome.CANCELLED


def test_a_segment_list_downloads_as_text(client, simulator_tenant):
    batch = looked_up(client, simulator_tenant, sim.FULL_LOAD_JOB_ID)["batches"][0]

    response = client.get(
        batch_url(simulator_tenant, sim.FULL_LOAD_JOB_ID, batch["batchId"], "segments.txt")
    )

    assert response.content.decode().splitlines() == batch["segments"]
    assert response["Content-Disposition"] == (
        'attachment; filename="Warehouse-full-load-InvoiceItem-segments.txt"'
    )


def test_a_batch_of_a_hundred_thousand_segments_pages_its_list_and_copies_every_id(
    client, simulator_tenant, simulator
):
    job_id = simulator.add_job(records=100_000, segments=100_000)
    batch = looked_up(client, simulator_tenant, job_id)["batches"][0]
    segments_page = batch_url(simulator_tenant, job_id, batch["batchId"], "segments/")

    first, last = (client.get(segments_page, {"page": n}).content.decode() for n in (1, 200))
    copy_from = re.search(r'data-copy-from="([^"]+)"', first)[1]
    every_id = client.get(copy_from).content.decode().splitlines()

    assert len(first) < 200_000 and len(last) < 200_000
    assert batch["segments"][0] in first and batch["segments"][-1] not in first
    assert batch["segments"][-1] in last and "Page 200 of 200" in last
    assert "Copy all 100,000 IDs" in first
    assert every_id == batch["segments"]


# --- The audit trail ------------------------------------------------------------------------


def test_every_download_and_preview_is_recorded_and_listed_below_the_job_page(
    client, simulator_tenant, make_user
):
    file_id = looked_up(client, simulator_tenant, sim.MULTI_BATCH_JOB_ID)["batches"][0]["fileId"]
    url = file_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID, file_id)
    size = len(body(client.get(url)))
    client.get(url + "/preview", **HTMX)
    job_page = f"/t/{simulator_tenant.slug}/jobs/{sim.MULTI_BATCH_JOB_ID}/"

    trail = f'hx-get="{job_page}downloads/" hx-trigger="load"'
    assert trail in client.get(job_page).content.decode()
    html = client.get(f"{job_page}downloads/", **HTMX).content

    download, preview = Download.objects.order_by("started_at")
    assert (download.username, download.kind, download.file_id) == ("finance", "file", file_id)
    assert (download.bytes_sent, download.records_counted) == (size, 1250)
    assert download.outcome == "complete" and download.finished_at is not None
    assert (preview.kind, preview.outcome) == ("preview", "complete")
    assert "Downloads of this job" in html.decode()
    assert html.decode().count('<td data-label="Who">finance</td>') == 2


def test_admins_read_the_download_trail_but_cannot_change_it(client, simulator_tenant, make_user):
    file_id = looked_up(client, simulator_tenant, sim.MULTI_BATCH_JOB_ID)["batches"][0]["fileId"]
    body(client.get(file_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID, file_id)))
    admin = Client()
    admin.force_login(make_user("root", superuser=True))
    download = last_download()

    listing = admin.get("/admin/aquadash/download/")
    change = admin.post(f"/admin/aquadash/download/{download.pk}/change/", {"outcome": "failed"})
    delete = admin.post(f"/admin/aquadash/download/{download.pk}/delete/", {"post": "yes"})

    assert listing.status_code == 200 and file_id in listing.content.decode()
    when = download.started_at.strftime("%Y-%m-%d %H:%M:%S")
    assert f"{when} UTC" in listing.content.decode()  # the admin says which zone its times are in
    assert change.status_code == 403 and delete.status_code == 403
    assert Download.objects.get(pk=download.pk).outcome == "complete"


# --- Large downloads ask first -----------------------------------------------------------------


def with_one_part_downloaded(client, tenant, simulator) -> tuple[str, dict]:
    """A job of 30 records in 3 segments whose first segment was downloaded: a known size."""
    job_id = simulator.add_job(records=30, segments=3)
    batch = looked_up(client, tenant, job_id)["batches"][0]
    body(client.get(file_url(tenant, job_id, batch["segments"][0])))
    return job_id, batch


def test_a_whole_batch_over_the_limit_asks_first_saying_what_is_known(
    client, simulator_tenant, simulator, settings
):
    settings.AQUADASH_CONFIRM_GB = 1e-9  # one byte
    job_id, batch = with_one_part_downloaded(client, simulator_tenant, simulator)
    asked = file_gets(simulator)

    response = client.get(batch_url(simulator_tenant, job_id, batch["batchId"]) + "?as=excel")

    page = re.sub(r"\s+", " ", response.content.decode())
    assert response.status_code == 200 and not response.streaming
    assert "30 records in 3 result files, about <strong>" in page
    assert "estimated from a file of this job downloaded before" in page
    assert (
        'href="/t/sim/jobs/{}/batches/{}/download?as=excel&amp;confirm=1"'.format(
            job_id, batch["batchId"]
        )
        in page
    )
    assert ">Download anyway</a>" in page
    assert file_gets(simulator) == asked  # nothing fetched from Zuora to ask


def test_download_anyway_downloads_the_whole_batch(client, simulator_tenant, simulator, settings):
    settings.AQUADASH_CONFIRM_GB = 1e-9
    job_id, batch = with_one_part_downloaded(client, simulator_tenant, simulator)

    response = client.get(batch_url(simulator_tenant, job_id, batch["batchId"]) + "?confirm=1")

    assert len(records(body(response))) == 1 + 30


def test_a_whole_batch_under_the_limit_downloads_without_asking(
    client, simulator_tenant, simulator
):
    job_id, batch = with_one_part_downloaded(client, simulator_tenant, simulator)

    response = client.get(batch_url(simulator_tenant, job_id, batch["batchId"]))

    assert len(records(body(response))) == 1 + 30


def test_a_job_zip_over_the_limit_asks_first(client, simulator_tenant, simulator, settings):
    settings.AQUADASH_CONFIRM_GB = 1e-9
    job_id, _ = with_one_part_downloaded(client, simulator_tenant, simulator)

    response = client.get(f"/t/sim/jobs/{job_id}/download.zip")

    assert response.status_code == 200 and not response.streaming
    assert f'href="/t/sim/jobs/{job_id}/download.zip?confirm=1"' in response.content.decode()
