"""The Zuora simulator, spoken to over real HTTP with plain requests (never our client)."""

import base64
import csv
import gzip
import hashlib
import io
import json
import re
import zipfile
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from aquadash.simulator import (
    ABORTED_JOB_ID,
    CANCELLED_JOB_ID,
    CATALOGUE,
    DELETED_NOT_ALLOWED_JOB_ID,
    DELETED_SECTION_JOB_ID,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PARTNER,
    DEMO_PASSWORD,
    DEMO_PROJECT,
    DEMO_USERNAME,
    DOC_FILEID_JOB_ID,
    DOC_SEGMENTS_JOB_ID,
    ERROR_JOB_ID,
    EXPIRED_JOB_ID,
    FIFTY_BATCHES_JOB_ID,
    FULL_LOAD_JOB_ID,
    GZIP_JOB_ID,
    INCREMENTAL_JOB_ID,
    MANY_SEGMENTS_JOB_ID,
    MULTI_BATCH_JOB_ID,
    NOTES_JOB_ID,
    NUMERIC_VERSION_JOB_ID,
    PGP_JOB_ID,
    PURGED_FILES_JOB_ID,
    RUNNING_JOB_ID,
    SUBMITTED_JOB_ID,
    ZIP_JOB_ID,
    Simulator,
)
from tests.conftest import imports_of, wait_until

AUTH = (DEMO_USERNAME, DEMO_PASSWORD)
TIMEOUT = 5
JOB_STATUSES = {"submitted", "executing", "completed", "error", "aborted", "cancelled"}
BATCH_STATUSES = {
    "submitted",
    "pending",
    "executing",
    "completed",
    "aborted",
    "cancelled",
    "deleted_notallowed",
}
# sha256 of Zuora's two documented "Get Job Results" responses, as published.
DOC_SHA256 = {
    DOC_FILEID_JOB_ID: "a5cdc337062abb91b36d6b7669303162e617536165f59dee4f755e24ada0a57f",
    DOC_SEGMENTS_JOB_ID: "714ba206343b40ba01008f175ac38f14b1326636ab555297735e4c2021711a17",
}


def get(sim: Simulator, path: str, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("auth", AUTH)
    kwargs.setdefault("timeout", TIMEOUT)
    return requests.get(sim.url + path, **kwargs)


def job_response(sim: Simulator, job_id: str, **kwargs: Any) -> requests.Response:
    return get(sim, f"/v1/batch-query/jobs/{job_id}", **kwargs)


def job(sim: Simulator, job_id: str) -> dict[str, Any]:
    response = job_response(sim, job_id)
    assert response.status_code == 200
    return response.json()


def submit(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(sim.url + "/v1/batch-query/", json=body, auth=AUTH, timeout=TIMEOUT)
    assert response.status_code == 200
    return response.json()


def token(sim: Simulator, secret: str = DEMO_CLIENT_SECRET) -> requests.Response:
    form = {
        "client_id": DEMO_CLIENT_ID,
        "client_secret": secret,
        "grant_type": "client_credentials",
    }
    return requests.post(sim.url + "/oauth/token", data=form, timeout=TIMEOUT)


def csv_rows(data: bytes) -> list[str]:
    return data.decode().splitlines()


def query(name: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "query": text, "type": "zoqlexport", **extra}


# Authentication


def test_token_is_issued_to_the_demo_client(simulator):
    response = token(simulator)

    body = response.json()
    assert response.status_code == 200
    assert len(body["access_token"]) == 32
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3599
    assert {"scope", "jti"} <= body.keys()


def test_token_opens_the_api(simulator):
    access = token(simulator).json()["access_token"]

    response = job_response(simulator, MULTI_BATCH_JOB_ID, auth=None,
                            headers={"Authorization": f"Bearer {access}"})  # fmt: skip

    assert response.status_code == 200


def test_wrong_client_secret_gets_401(simulator):
    response = token(simulator, secret="wrong")

    assert response.status_code == 401
    assert response.json()["success"] is False


def test_token_expires_with_the_clock(simulator, sim_clock):
    headers = {"Authorization": f"Bearer {token(simulator).json()['access_token']}"}
    sim_clock.advance(3600)

    response = job_response(simulator, MULTI_BATCH_JOB_ID, auth=None, headers=headers)

    assert response.status_code == 401


def test_expired_tokens_are_refused(simulator):
    headers = {"Authorization": f"Bearer {token(simulator).json()['access_token']}"}

    simulator.expire_tokens()

    assert (
        job_response(simulator, MULTI_BATCH_JOB_ID, auth=None, headers=headers).status_code == 401
    )


def test_api_access_key_headers_authenticate(simulator):
    headers = {"apiAccessKeyId": DEMO_USERNAME, "apiSecretAccessKey": DEMO_PASSWORD}

    response = job_response(simulator, MULTI_BATCH_JOB_ID, auth=None, headers=headers)

    assert response.status_code == 200


@pytest.mark.parametrize(
    "credentials",
    [
        {"auth": None},
        {"auth": (DEMO_USERNAME, "wrong")},
        {"auth": None, "headers": {"Authorization": "Bearer 0123456789abcdef0123456789abcdef"}},
    ],
)
def test_bad_or_missing_credentials_get_401(simulator, credentials):
    response = job_response(simulator, MULTI_BATCH_JOB_ID, **credentials)

    assert response.status_code == 401
    body = response.json()
    assert body["success"] is False
    assert body["reasons"][0]["code"] == 90000011
    assert body["processId"]


def test_request_id_is_sent_and_track_id_echoed(simulator):
    response = job_response(simulator, MULTI_BATCH_JOB_ID, headers={"Zuora-Track-Id": "t-42"})

    assert response.headers["Zuora-Request-Id"]
    assert response.headers["Zuora-Track-Id"] == "t-42"


# The catalogue


@pytest.mark.parametrize("job_id", [DOC_FILEID_JOB_ID, DOC_SEGMENTS_JOB_ID])
def test_documentation_examples_are_served_byte_for_byte(simulator, job_id):
    response = job_response(simulator, job_id)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert hashlib.sha256(response.content).hexdigest() == DOC_SHA256[job_id]


@pytest.mark.parametrize("job_id", [j for j in CATALOGUE if j != EXPIRED_JOB_ID])
def test_every_catalogue_job_has_zuoras_shape(simulator, job_id):
    body = job(simulator, job_id)

    assert body["id"] == job_id
    assert body["status"] in JOB_STATUSES
    assert body["format"] in {"CSV", "GZIP", "ZIP"}
    assert body["encrypted"] in {"none", "pgp"}
    # The tenant's local time, or UTC with an offset for a job submitted with dateTimeUtc.
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d( \d\d:\d\d:\d\d|T\d\d:\d\d:\d\d\+0000)", body["startTime"]
    )
    for batch in body["batches"]:
        assert len(batch["batchId"]) == 32
        assert batch["status"] in BATCH_STATUSES
        assert {"name", "query", "recordCount"} <= batch.keys()
        if batch["status"] == "completed":
            assert ("fileId" in batch) != ("segments" in batch)


def test_multi_batch_job_mixes_types_and_leaves_fields_out(simulator):
    batches = job(simulator, MULTI_BATCH_JOB_ID)["batches"]

    assert len(batches) == 4
    assert {batch["batchType"] for batch in batches} == {"zoql", "zoqlexport"}
    assert any("full" not in batch for batch in batches)
    assert any("apiVersion" not in batch for batch in batches)


def test_aborted_job_has_a_batch_message(simulator):
    body = job(simulator, ABORTED_JOB_ID)

    assert body["status"] == "aborted"
    assert [b["status"] for b in body["batches"]] == ["completed", "aborted"]
    assert body["batches"][1]["message"]


def test_error_job_has_error_code_and_message(simulator):
    body = job(simulator, ERROR_JOB_ID)

    assert body["status"] == "error"
    assert body["errorCode"] == "90029"
    assert body["message"]


def test_cancelled_job_keeps_a_submitted_batch(simulator):
    body = job(simulator, CANCELLED_JOB_ID)

    assert body["status"] == "cancelled"
    assert [b["status"] for b in body["batches"]] == ["completed", "submitted"]


def test_submitted_job_stays_submitted(simulator, sim_clock):
    sim_clock.advance(3600)

    body = job(simulator, SUBMITTED_JOB_ID)

    assert body["status"] == "submitted"
    assert {b["status"] for b in body["batches"]} == {"pending"}


def test_full_load_is_segmented(simulator):
    body = job(simulator, FULL_LOAD_JOB_ID)

    assert (body["partner"], body["project"]) == (DEMO_PARTNER, DEMO_PROJECT)
    big, small = body["batches"]
    assert big["recordCount"] == 3_000_000
    assert len(big["segments"]) == 6
    assert len(small["segments"]) == 1
    assert big["full"] is True


def test_many_segments_job_has_2000_segments(simulator):
    batch = job(simulator, MANY_SEGMENTS_JOB_ID)["batches"][0]

    assert len(batch["segments"]) == 2000
    assert len(set(batch["segments"])) == 2000


def test_incremental_job_echoes_stateful_fields(simulator):
    body = job(simulator, INCREMENTAL_JOB_ID)

    assert isinstance(body["incrementalTime"], int)
    assert body["offset"] == 600
    assert {b["full"] for b in body["batches"]} == {False}
    assert body["batches"][1]["deleted"] == {"column": "IsDeleted", "format": "Boolean"}
    assert all("fileId" in b for b in body["batches"])


def test_deleted_section_job_echoes_it(simulator):
    batch = job(simulator, DELETED_SECTION_JOB_ID)["batches"][0]

    assert batch["deleted"]["forceExport"] is True
    assert "full" not in batch
    assert "apiVersion" not in batch


def test_numeric_version_and_string_record_count(simulator):
    body = job(simulator, NUMERIC_VERSION_JOB_ID)

    assert body["version"] == 1
    assert body["batches"][0]["recordCount"] == "1234"


def test_deleted_notallowed_batch(simulator):
    body = job(simulator, DELETED_NOT_ALLOWED_JOB_ID)

    assert body["batches"][0]["status"] == "deleted_notallowed"
    assert "deleted records" in body["batches"][0]["message"]


def test_fifty_batches(simulator):
    assert len(job(simulator, FIFTY_BATCHES_JOB_ID)["batches"]) == 50


def test_expired_job_is_unknown(simulator):
    assert job_response(simulator, EXPIRED_JOB_ID).status_code == 404


def test_catalogue_is_listed_over_http(simulator):
    listed = requests.get(simulator.url + "/_simulator/catalogue", timeout=TIMEOUT).json()

    assert listed == CATALOGUE


# Jobs moving with the clock


def test_running_job_starts_at_first_get_and_then_stays_completed(simulator, sim_clock):
    first = job(simulator, RUNNING_JOB_ID)
    assert first["status"] == "executing"
    assert [b["status"] for b in first["batches"]][:2] == ["completed", "executing"]

    sim_clock.advance(4 * simulator.batch_seconds)
    assert job(simulator, RUNNING_JOB_ID)["status"] == "completed"

    sim_clock.advance(3600)
    assert job(simulator, RUNNING_JOB_ID)["status"] == "completed"


def test_post_answers_a_submitted_job(simulator):
    body = submit(
        simulator,
        {"format": "gzip", "version": "1.1", "name": "Mine", "encrypted": "none",
         "queries": [query("Accounts", "select Id, Name from Account", apiVersion="60.0")]},
    )  # fmt: skip

    assert len(body["id"]) == 32
    assert (body["status"], body["format"], body["name"]) == ("submitted", "GZIP", "Mine")
    assert "startTime" not in body
    [batch] = body["batches"]
    assert batch["status"] == batch["localizedStatus"] == "pending"
    assert batch["recordCount"] == 0
    assert (batch["batchType"], batch["apiVersion"]) == ("zoqlexport", "60.0")


def test_submitted_job_runs_batch_by_batch(simulator, sim_clock):
    job_id = submit(
        simulator,
        {"queries": [query("A", "select Id from Account"), query("B", "select Id from Invoice")]},
    )["id"]
    step = simulator.batch_seconds

    assert job(simulator, job_id)["status"] == "submitted"
    sim_clock.advance(step)
    assert [b["status"] for b in job(simulator, job_id)["batches"]] == ["executing", "pending"]
    sim_clock.advance(step)
    middle = job(simulator, job_id)
    assert middle["status"] == "executing"
    assert [b["status"] for b in middle["batches"]] == ["completed", "executing"]
    assert "fileId" in middle["batches"][0]
    sim_clock.advance(step)
    done = job(simulator, job_id)
    assert done["status"] == "completed"
    file_id = done["batches"][1]["fileId"]
    rows = csv_rows(get(simulator, f"/v1/files/{file_id}").content)
    assert len(rows) - 1 == done["batches"][1]["recordCount"]


def test_second_stateful_run_of_a_query_is_incremental(simulator, sim_clock):
    request = {"version": "1.1", "partner": "p1", "project": "proj1",
               "queries": [query("A", "select Id from Account")]}  # fmt: skip
    first = submit(simulator, request)
    sim_clock.advance(10 * simulator.batch_seconds)

    second = submit(simulator, request)
    sim_clock.advance(10 * simulator.batch_seconds)

    assert first["batches"][0]["full"] is True
    assert "segments" in job(simulator, first["id"])["batches"][0]
    assert second["batches"][0]["full"] is False
    assert "fileId" in job(simulator, second["id"])["batches"][0]


def test_incremental_time_is_echoed_as_epoch_millis(simulator):
    body = submit(
        simulator,
        {"version": "1.1", "partner": "p", "project": "q", "incrementalTime": "2026-01-02 03:04:05",
         "queries": [query("A", "select Id from Account")]},
    )  # fmt: skip

    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=ZoneInfo("America/Los_Angeles"))
    assert body["incrementalTime"] == int(moment.timestamp() * 1000)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"queries": [query(f"Q{n}", "select Id from Account") for n in range(51)]}, "90004"),
        ({"queries": []}, "90016"),
        ({"queries": [query("A", "drop table Account")]}, "90005"),
        ({"queries": [query("A", "select Id from Account", deleted={"column": "D"})]}, "90012"),
        ({"notifyUrl": "x" * 5000, "queries": [query("A", "select Id from Account")]}, "90014"),
        (
            {
                "version": "1.1",
                "partner": "p",
                "project": "q",
                "queries": [query("A", "select Id from AccountingPeriod", deleted={"column": "D"})],
            },
            "90017",
        ),
    ],
)
def test_invalid_submissions_get_aqua_error_codes(simulator, body, code):
    answer = submit(simulator, body)

    assert answer["errorCode"] == code
    assert answer["message"]


def test_malformed_json_submission_is_400(simulator):
    response = requests.post(
        simulator.url + "/v1/batch-query", data=b"{", auth=AUTH, timeout=TIMEOUT
    )

    assert response.status_code == 400
    assert response.json()["success"] is False


# Cancel and last completed


def test_cancel_stops_unfinished_batches(simulator):
    job(simulator, RUNNING_JOB_ID)

    response = requests.delete(
        f"{simulator.url}/v1/batch-query/jobs/{RUNNING_JOB_ID}", auth=AUTH, timeout=TIMEOUT
    )

    body = response.json()
    assert body["status"] == "cancelled"
    assert [b["status"] for b in body["batches"]] == ["completed"] + ["cancelled"] * 4
    assert job(simulator, RUNNING_JOB_ID)["status"] == "cancelled"


def test_cancel_of_a_finished_job_is_90003(simulator):
    response = requests.delete(
        f"{simulator.url}/v1/batch-query/jobs/{MULTI_BATCH_JOB_ID}", auth=AUTH, timeout=TIMEOUT
    )

    assert response.json()["errorCode"] == "90003"


def test_last_completed_job_of_the_demo_session(simulator):
    response = get(simulator, f"/v1/batch-query/jobs/partner/{DEMO_PARTNER}/project/{DEMO_PROJECT}")

    assert response.json()["id"] == INCREMENTAL_JOB_ID


def test_last_completed_of_the_documented_session_is_served_verbatim(simulator):
    response = get(simulator, "/v1/batch-query/jobs/partner/salesforce/project/00170000011K3Ub")

    assert hashlib.sha256(response.content).hexdigest() == DOC_SHA256[DOC_SEGMENTS_JOB_ID]


def test_last_completed_of_an_unknown_project_is_unknown(simulator):
    response = get(simulator, f"/v1/batch-query/jobs/partner/{DEMO_PARTNER}/project/nothing")

    assert response.status_code == 404


def test_last_completed_of_an_unknown_partner_is_error_90019_with_http_200(simulator):
    response = get(simulator, "/v1/batch-query/jobs/partner/nobody/project/nothing")

    assert response.status_code == 200
    assert response.json()["errorCode"] == "90019"


# Unknown and forgotten jobs


def test_unknown_job_is_404_with_a_v1_body_by_default(simulator):
    response = job_response(simulator, "0" * 32)

    assert response.status_code == 404
    assert response.json()["reasons"][0]["code"] == 50000040


def test_unknown_job_can_be_200_with_error_code_90002(simulator):
    simulator.unknown_job = "200"

    response = job_response(simulator, EXPIRED_JOB_ID)

    assert response.status_code == 200
    assert response.json()["errorCode"] == "90002"


def test_forgotten_job_becomes_unknown_with_its_files(simulator):
    file_id = job(simulator, MULTI_BATCH_JOB_ID)["batches"][0]["fileId"]

    simulator.forget_job(MULTI_BATCH_JOB_ID)

    assert job_response(simulator, MULTI_BATCH_JOB_ID).status_code == 404
    assert get(simulator, f"/v1/files/{file_id}").status_code == 404


def test_job_can_be_forgotten_over_http(simulator):
    url = f"{simulator.url}/_simulator/jobs/{GZIP_JOB_ID}/forget"

    assert requests.post(url, timeout=TIMEOUT).json() == {"forgotten": True}
    assert job_response(simulator, GZIP_JOB_ID).status_code == 404


def test_jobs_expire_after_180_days(simulator, sim_clock):
    sim_clock.advance(181 * 24 * 3600)

    assert job_response(simulator, MULTI_BATCH_JOB_ID).status_code == 404


# Files


def test_csv_has_a_header_and_record_count_rows(simulator):
    batch = job(simulator, MULTI_BATCH_JOB_ID)["batches"][0]

    response = get(simulator, f"/v1/files/{batch['fileId']}")

    rows = csv_rows(response.content)
    assert response.headers["Content-Type"] == "text/csv"
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert (
        rows[0] == "Account: Id,Account: Name,Account: Balance,Account: Status,Account: UpdatedDate"
    )
    assert len(rows) - 1 == batch["recordCount"] == 1250


def test_singular_file_path_serves_the_same_bytes(simulator):
    file_id = job(simulator, MULTI_BATCH_JOB_ID)["batches"][2]["fileId"]

    assert (
        get(simulator, f"/v1/file/{file_id}").content
        == get(simulator, f"/v1/files/{file_id}").content
    )


def test_documented_file_id_is_downloadable(simulator):
    rows = csv_rows(get(simulator, "/v1/files/402881824835bb2a01483c19f8190259").content)

    assert len(rows) == 1 + 1
    assert rows[0].startswith("Accounting Period: Id,")


def test_empty_batch_file_has_only_the_header(simulator):
    file_id = job(simulator, MULTI_BATCH_JOB_ID)["batches"][3]["fileId"]

    assert len(csv_rows(get(simulator, f"/v1/files/{file_id}").content)) == 1


def test_deleted_column_flags_some_incremental_rows(simulator):
    batch = job(simulator, INCREMENTAL_JOB_ID)["batches"][1]

    rows = csv_rows(get(simulator, f"/v1/files/{batch['fileId']}").content)

    assert rows[0].startswith("Account: Id,")
    assert rows[0].endswith(",IsDeleted")
    assert {row.rsplit(",", 1)[1] for row in rows[1:]} == {"true", "false"}
    assert len(rows) - 1 == batch["recordCount"]


def test_gzip_file_decodes_to_the_csv(simulator):
    batch = job(simulator, GZIP_JOB_ID)["batches"][0]

    response = get(simulator, f"/v1/files/{batch['fileId']}")

    assert response.headers["Content-Type"] == "application/gzip"
    assert len(csv_rows(gzip.decompress(response.content))) - 1 == batch["recordCount"]


def test_zip_file_holds_one_csv(simulator):
    batch = job(simulator, ZIP_JOB_ID)["batches"][0]

    response = get(simulator, f"/v1/files/{batch['fileId']}")

    archive = zipfile.ZipFile(io.BytesIO(response.content))
    [name] = archive.namelist()
    assert name.endswith(".csv")
    assert len(csv_rows(archive.read(name))) - 1 == batch["recordCount"]


def test_pgp_file_is_armored_and_not_plain_csv(simulator):
    file_id = job(simulator, PGP_JOB_ID)["batches"][0]["fileId"]

    response = get(simulator, f"/v1/files/{file_id}")

    text = response.content.decode()
    assert text.startswith("-----BEGIN PGP MESSAGE-----\n")
    assert text.endswith("-----END PGP MESSAGE-----\n")
    assert "Account: Id" not in text
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert base64.b64decode("".join(text.split("\n\n", 1)[1].splitlines()[:-1]))


def test_segments_hold_consecutive_slices(simulator):
    segments = job(simulator, FULL_LOAD_JOB_ID)["batches"][0]["segments"]

    with get(simulator, f"/v1/files/{segments[2]}", stream=True) as response:
        lines = response.iter_lines(chunk_size=4096)
        header, first = next(lines), next(lines)

    assert header.startswith(b"InvoiceItem.Id,Invoice.InvoiceNumber,")  # query labels
    assert first.split(b",")[0].endswith(b"%020x" % 1_000_000)  # row numbers start at 2 x 500,000


def test_small_segment_holds_all_rows(simulator):
    batch = job(simulator, FULL_LOAD_JOB_ID)["batches"][1]

    response = get(simulator, f"/v1/files/{batch['segments'][0]}")

    assert len(csv_rows(response.content)) - 1 == batch["recordCount"] == 12_345


def test_last_of_2000_segments_is_served_lazily(simulator):
    last = job(simulator, MANY_SEGMENTS_JOB_ID)["batches"][0]["segments"][-1]

    with get(simulator, f"/v1/files/{last}", stream=True) as response:
        assert response.status_code == 200
        assert int(response.headers["Content-Length"]) > 0


def test_tricky_cells_are_quoted_and_counted_by_a_csv_reader(simulator):
    batch = job(simulator, NOTES_JOB_ID)["batches"][0]

    response = get(simulator, f"/v1/files/{batch['fileId']}")

    rows = list(csv.reader(io.StringIO(response.content.decode(), newline="")))
    assert len(rows) - 1 == batch["recordCount"] == 240
    assert int(response.headers["Content-Length"]) == len(response.content)
    header, first = rows[0], rows[1]
    assert dict(zip(header, first, strict=True)) == {
        "Account: Id": first[0],
        "Account: AccountNumber": "00000000",
        "Account: Name": "Name 0000000000",
        "Account: Notes": 'Café n°00000000, "first" line\nsecond line',
        "Account: Balance": "1000.00",
        "Account: Reference": "100000000000000000",
        "Account: CreatedDate": "2015-01-01 00:00:00",
        "Account: EffectiveDate": "2015-01-01",
    }


def test_a_job_of_any_size_is_made_on_request(simulator):
    job_id = requests.post(
        f"{simulator.url}/_simulator/jobs", json={"records": 1234}, timeout=TIMEOUT
    ).json()["id"]
    batch = job(simulator, job_id)["batches"][0]

    rows = csv_rows(get(simulator, f"/v1/files/{batch['fileId']}").content)

    assert len(rows) - 1 == batch["recordCount"] == 1234


def test_a_job_of_a_billion_bytes_costs_nothing_until_it_streams(simulator):
    job_id = simulator.add_job(size=1_000_000_000)
    batch = job(simulator, job_id)["batches"][0]

    with get(simulator, f"/v1/files/{batch['fileId']}", stream=True) as response:
        length = int(response.headers["Content-Length"])
        first = next(response.iter_content(65536))

    assert 0.99e9 < length <= 1e9
    assert first.startswith(b"Account: Id,")


def test_a_sized_job_can_be_split_into_compressed_segments(simulator):
    job_id = simulator.add_job(records=25, segments=3, file_format="gzip")
    batch = job(simulator, job_id)["batches"][0]

    counts = [
        len(csv_rows(gzip.decompress(get(simulator, f"/v1/files/{segment}").content))) - 1
        for segment in batch["segments"]
    ]

    assert counts == [9, 9, 7]


def test_a_file_over_2047_mb_is_refused_as_zuora_does(simulator):
    job_id = simulator.add_job(records=30_000_000)
    file_id = job(simulator, job_id)["batches"][0]["fileId"]

    response = get(simulator, f"/v1/files/{file_id}")

    assert response.status_code == 403
    assert response.text == "<security:max-object-size>2047MB</security:max-object-size>"


def test_purged_files_are_404_while_the_job_stays(simulator):
    body = job(simulator, PURGED_FILES_JOB_ID)

    response = get(simulator, f"/v1/files/{body['batches'][0]['fileId']}")

    assert response.status_code == 404
    assert response.json()["reasons"][0]["message"]


def test_files_of_unfinished_batches_are_404(simulator, sim_clock):
    job(simulator, RUNNING_JOB_ID)
    sim_clock.advance(4 * simulator.batch_seconds)
    file_id = job(simulator, RUNNING_JOB_ID)["batches"][-1]["fileId"]
    assert get(simulator, f"/v1/files/{file_id}").status_code == 200

    sim_clock.advance(-simulator.batch_seconds)  # back to before the last batch finished

    assert get(simulator, f"/v1/files/{file_id}").status_code == 404


# Faults


def test_rate_limited_answers_429_with_retry_after_then_recovers(simulator):
    simulator.add_fault("rate_limited", seconds=2)

    limited = job_response(simulator, MULTI_BATCH_JOB_ID)
    after = job_response(simulator, MULTI_BATCH_JOB_ID)

    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert limited.headers["ratelimit-reset"] == "2"
    assert {"ratelimit-limit", "ratelimit-remaining"} <= set(limited.headers.keys())
    assert limited.json()["reasons"][0]["code"] % 100 == 70
    assert after.status_code == 200


def test_rate_limited_can_send_only_ratelimit_reset(simulator):
    simulator.add_fault("rate_limited", retry_after=False)

    response = job_response(simulator, MULTI_BATCH_JOB_ID)

    assert "Retry-After" not in response.headers
    assert response.headers["ratelimit-reset"] == "1"


@pytest.mark.parametrize(
    ("kind", "status", "content_type"),
    [
        ("server_error", 500, "application/json"),
        ("bad_gateway", 502, "text/html"),
        ("unavailable", 503, "application/json"),
        ("gateway_timeout", 504, "text/html"),
        ("html", 200, "text/html"),
        ("unauthorized", 401, "application/json"),
    ],
)
def test_status_faults(simulator, kind, status, content_type):
    simulator.add_fault(kind)

    response = job_response(simulator, MULTI_BATCH_JOB_ID)

    assert response.status_code == status
    assert response.headers["Content-Type"].startswith(content_type)


def test_invalid_json_fault(simulator):
    simulator.add_fault("invalid_json")

    response = job_response(simulator, MULTI_BATCH_JOB_ID)

    assert response.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        response.json()


def test_wrong_shape_fault(simulator):
    simulator.add_fault("wrong_shape")

    body = job(simulator, MULTI_BATCH_JOB_ID)

    assert (body["status"], body["batches"]) == (123, "x")


def test_success_false_fault(simulator):
    simulator.add_fault("success_false")

    response = job_response(simulator, MULTI_BATCH_JOB_ID)

    assert response.status_code == 200
    assert response.json()["success"] is False
    assert response.json()["reasons"][0]["code"] == 90000011


def test_redirect_fault(simulator):
    simulator.add_fault("redirect", location="http://169.254.169.254/latest/")

    response = job_response(simulator, MULTI_BATCH_JOB_ID, allow_redirects=False)

    assert response.status_code == 302
    assert response.headers["Location"] == "http://169.254.169.254/latest/"


def test_oversize_fault_streams_a_big_valid_body(simulator):
    simulator.add_fault("oversize", bytes=1_000_000)

    response = job_response(simulator, MULTI_BATCH_JOB_ID)

    assert len(response.content) == 1_000_000
    assert json.loads(response.content)["status"] == "completed"


def test_oversize_fault_can_be_a_small_gzip_that_inflates(simulator):
    simulator.add_fault("oversize", bytes=5_000_000, gzip=True)

    with job_response(simulator, MULTI_BATCH_JOB_ID, stream=True) as response:
        packed = response.raw.read(decode_content=False)

    assert len(packed) < 100_000
    assert len(gzip.decompress(packed)) == 5_000_000


def test_truncated_fault_breaks_a_json_body(simulator):
    simulator.add_fault("truncated")

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        job_response(simulator, MULTI_BATCH_JOB_ID)


def test_truncated_fault_cuts_a_download_where_asked(simulator):
    file_id = job(simulator, MULTI_BATCH_JOB_ID)["batches"][1]["fileId"]
    simulator.add_fault("truncated", path="/v1/files/", send=4_000, declared=10_000)
    received = 0

    with get(simulator, f"/v1/files/{file_id}", stream=True) as response:
        assert response.headers["Content-Length"] == "10000"
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            for chunk in response.iter_content(1024):
                received += len(chunk)

    assert received <= 4_000
    assert simulator.requests[-1].bytes_sent == 4_000
    assert simulator.requests[-1].finished is False


def test_file_body_fault_serves_exactly_the_bytes_given(simulator):
    file_id = job(simulator, MULTI_BATCH_JOB_ID)["batches"][0]["fileId"]
    simulator.add_fault("file_body", path="/v1/files/", body=b"Id,Name\n1,a\x00b\n2")

    response = get(simulator, f"/v1/files/{file_id}")

    assert response.content == b"Id,Name\n1,a\x00b\n2"
    assert response.headers["Content-Type"] == "text/csv"


def test_a_client_that_hangs_up_is_noticed(simulator):
    job_id = simulator.add_job(size=200_000_000)
    file_id = job(simulator, job_id)["batches"][0]["fileId"]

    with get(simulator, f"/v1/files/{file_id}", stream=True) as response:
        next(response.iter_content(65536))
    record = simulator.requests[-1]
    wait_until(lambda: record.closed)

    assert record.closed is True
    assert record.finished is False
    assert record.bytes_sent < 100_000_000


def test_drop_fault_closes_without_an_answer_after_doing_the_work(simulator, sim_clock):
    simulator.add_fault("drop", path="/v1/batch-query")

    request = {"version": "1.1", "partner": "p", "project": "dropped",
               "queries": [query("A", "select Id from Account")]}  # fmt: skip

    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(simulator.url + "/v1/batch-query", json=request, auth=AUTH, timeout=TIMEOUT)

    assert simulator.count(method="POST", path_prefix="/v1/batch-query") == 1
    sim_clock.advance(3 * simulator.batch_seconds)
    assert get(simulator, "/v1/batch-query/jobs/partner/p/project/dropped").status_code == 200


def test_slow_fault_outlasts_a_short_client_timeout(simulator):
    simulator.add_fault("slow", seconds=1)

    with pytest.raises(requests.exceptions.ReadTimeout):
        job_response(simulator, MULTI_BATCH_JOB_ID, timeout=0.1)


def test_slow_fault_then_answers_normally(simulator):
    simulator.add_fault("slow", seconds=0.01)

    assert job_response(simulator, MULTI_BATCH_JOB_ID).status_code == 200


def test_fault_matches_only_its_job(simulator):
    simulator.add_fault("server_error", job_id=GZIP_JOB_ID)

    assert job_response(simulator, ZIP_JOB_ID).status_code == 200
    assert job_response(simulator, GZIP_JOB_ID).status_code == 500
    assert job_response(simulator, GZIP_JOB_ID).status_code == 200


def test_fault_times_and_forever(simulator):
    simulator.add_fault("unavailable", times=2)
    statuses = [job_response(simulator, ZIP_JOB_ID).status_code for _ in range(3)]
    simulator.add_fault("unavailable", times=None)
    forever = [job_response(simulator, ZIP_JOB_ID).status_code for _ in range(3)]

    assert statuses == [503, 503, 200]
    assert forever == [503, 503, 503]


def test_faults_over_http_and_reset(simulator):
    spec = {"kind": "rate_limited", "times": None, "seconds": 3}
    created = requests.post(simulator.url + "/_simulator/faults", json=spec, timeout=TIMEOUT)
    limited = job_response(simulator, ZIP_JOB_ID)

    requests.post(simulator.url + "/_simulator/reset", timeout=TIMEOUT)

    assert created.status_code == 201
    assert limited.headers["Retry-After"] == "3"
    assert job_response(simulator, ZIP_JOB_ID).status_code == 200


def test_unknown_fault_kind_is_refused(simulator):
    with pytest.raises(ValueError):
        simulator.add_fault("meteor")
    response = requests.post(
        simulator.url + "/_simulator/faults", json={"kind": "meteor"}, timeout=TIMEOUT
    )

    assert response.status_code == 400


# Counters


def test_requests_are_counted_by_method_path_and_job(simulator):
    token(simulator)
    job(simulator, ZIP_JOB_ID)
    job(simulator, ZIP_JOB_ID)
    job(simulator, GZIP_JOB_ID)

    assert simulator.count() == 4
    assert simulator.count(method="POST", path_prefix="/oauth/token") == 1
    assert simulator.count(job_id=ZIP_JOB_ID) == 2
    assert simulator.count(method="GET", path_prefix="/v1/batch-query/jobs/") == 3
    assert simulator.requests[-1].headers["Authorization"].startswith("Basic ")


def test_control_endpoints_are_not_counted_and_summary_is_served(simulator):
    job(simulator, ZIP_JOB_ID)

    summary = requests.get(simulator.url + "/_simulator/requests", timeout=TIMEOUT).json()

    assert summary["total"] == 1
    assert summary["endpoints"] == {"GET /v1/batch-query/jobs/{id}": 1}
    assert summary["jobs"] == {ZIP_JOB_ID: 1}
    assert simulator.count() == 1


def test_the_simulator_shares_no_code_with_the_client():
    """Two independent readings of Zuora's documentation that agree are evidence; one reading
    used twice is not. The simulator may import only itself from aquadash."""
    import aquadash.simulator

    for file, name in imports_of(aquadash.simulator):
        assert not name.startswith("aquadash") or name.startswith("aquadash.simulator"), (
            f"{file} imports {name}"
        )
