"""The archive of result files on the filesystem (the default): what is kept, how, and every
download served from it after Zuora purged the files, against the simulator over HTTP."""

import io
import socket
import zipfile

import openpyxl
import pytest
import requests
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from aquadash import archive
from aquadash import simulator as sim
from aquadash.models import (
    ArchivePolicy,
    AuditEvent,
    Download,
    Grant,
    JobSnapshot,
    KeptFile,
    KeptJob,
    Role,
    Tenant,
)
from aquadash.simulator import serve
from tests.archive_helpers import (
    AUTH,
    HTMX,
    body,
    card,
    file_gets,
    kept,
    open_job,
    press_keep,
    run_worker,
    sha256,
    stored_keys,
    zuora_bytes,
)
from tests.watching.conftest import time_passes


@pytest.fixture(autouse=True)
def archive_on_disk(settings: object, tmp_path: object) -> object:
    """The archive's storage, the filesystem default, in a folder of the test's own."""
    settings.STORAGES = {
        **settings.STORAGES,
        "archive": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "archive"},
        },
    }
    return tmp_path / "archive"


@pytest.fixture
def client(simulator_tenant: Tenant, make_user: object) -> Client:
    client = Client()
    client.force_login(make_user("finance", groups=simulator_tenant.groups.all()))
    return client


def kept_and_purged(client: Client, tenant: Tenant, simulator: sim.Simulator, **job: object):
    """A job of the simulator, kept by pressing the button, then purged by Zuora. Returns its
    ID and Zuora's job JSON."""
    job_id = simulator.add_job(**job)
    raw = open_job(client, tenant, job_id)
    press_keep(client, tenant, job_id)
    run_worker()
    assert kept(tenant, job_id).status == KeptJob.Status.KEPT
    simulator.forget_job(job_id)
    return job_id, raw


def test_a_kept_job_page_estimates_its_downloads_from_the_kept_files(
    client, simulator_tenant, simulator
):
    job_id = simulator.add_job(records=250, segments=3)
    open_job(client, simulator_tenant, job_id)
    press_keep(client, simulator_tenant, job_id)
    run_worker()
    largest = max(kept(simulator_tenant, job_id).files.all(), key=lambda each: each.size)

    snapshot = JobSnapshot.objects.get(tenant=simulator_tenant, job_id=job_id)

    assert (snapshot.sample_bytes, snapshot.sample_records) == (largest.size, largest.records)
    page = client.get(f"/t/{simulator_tenant.slug}/jobs/{job_id}/").content.decode()
    assert "size not known yet" not in page and "250 records in 3 segments · about" in page


def test_a_viewer_may_see_what_is_kept_but_not_keep(client, simulator_tenant, simulator, make_user):
    job_id = simulator.add_job(records=20)
    open_job(client, simulator_tenant, job_id)
    Grant.objects.filter(tenant=simulator_tenant).update(role=Role.VIEWER)
    viewer = Client()
    viewer.force_login(make_user("viewer", groups=simulator_tenant.groups.all()))

    refused = viewer.post(f"/t/{simulator_tenant.slug}/jobs/{job_id}/archive/", **HTMX)

    assert refused.status_code == 404
    assert not KeptJob.objects.exists()
    assert "Keep these files" not in card(viewer, simulator_tenant, job_id)


# --- How it is kept -------------------------------------------------------------------------


def test_keep_these_files_copies_every_segment_with_its_size_hash_and_records(
    client, simulator_tenant, simulator
):
    job_id = simulator.add_job(records=250, segments=3)
    raw = open_job(client, simulator_tenant, job_id)

    assert "Keep these files" in card(client, simulator_tenant, job_id)
    press_keep(client, simulator_tenant, job_id)
    run_worker()

    job = kept(simulator_tenant, job_id)
    assert job.status == KeptJob.Status.KEPT
    files = {each.file_id: each for each in job.files.all()}
    segments = raw["batches"][0]["segments"]
    assert sorted(files) == sorted(segments)
    for segment in segments:
        data = zuora_bytes(simulator, segment)
        assert files[segment].size == len(data)
        assert files[segment].sha256 == sha256(data)
    assert sum(each.records for each in files.values()) == 250
    assert f"Kept by aquadash until {job.kept_until:%Y-%m-%d}" in card(
        client, simulator_tenant, job_id
    )


def test_keys_are_random_and_the_store_holds_only_what_the_storage_api_wrote(
    client, simulator_tenant, simulator
):
    job_id = simulator.add_job(records=30, segments=2, name="Payroll secrets")
    open_job(client, simulator_tenant, job_id)
    press_keep(client, simulator_tenant, job_id)
    run_worker()

    keys = sorted(each.key for each in kept(simulator_tenant, job_id).files.all())
    assert sorted(stored_keys()) == keys
    for key in keys:
        assert "Payroll" not in key and job_id not in key
        assert len(key.rsplit("/", 1)[-1]) == 32  # 128 random bits


def test_an_encrypted_result_is_kept_as_it_is(client, simulator_tenant, simulator):
    open_job(client, simulator_tenant, sim.PGP_JOB_ID)
    press_keep(client, simulator_tenant, sim.PGP_JOB_ID)
    run_worker()

    (kept_file,) = kept(simulator_tenant, sim.PGP_JOB_ID).files.all()
    assert kept_file.sha256 == sha256(zuora_bytes(simulator, kept_file.file_id))
    assert kept_file.records is None  # nothing aquadash can count in it


@pytest.mark.parametrize("file_format", ["GZIP", "ZIP"])
def test_compressed_results_are_kept_as_zuora_made_them_and_counted_inside(
    client, simulator_tenant, simulator, file_format
):
    job_id = simulator.add_job(records=40, segments=2, file_format=file_format)
    open_job(client, simulator_tenant, job_id)
    press_keep(client, simulator_tenant, job_id)
    run_worker()

    files = list(kept(simulator_tenant, job_id).files.all())
    assert sum(each.records for each in files) == 40
    for each in files:
        assert each.sha256 == sha256(zuora_bytes(simulator, each.file_id))


# --- What is kept: the tenant's policy ---------------------------------------------------------


def policy(tenant: Tenant, keep: str, **fields: object) -> None:
    ArchivePolicy.objects.update_or_create(tenant=tenant, defaults={"keep": keep, **fields})


def test_nothing_is_kept_by_default(client, simulator_tenant, simulator):
    open_job(client, simulator_tenant, sim.MULTI_BATCH_JOB_ID)

    assert not KeptJob.objects.exists()


def test_a_tenant_that_keeps_everything_keeps_each_completed_job_aquadash_sees(
    client, simulator_tenant, simulator
):
    policy(simulator_tenant, ArchivePolicy.Keep.ALL)

    open_job(client, simulator_tenant, sim.MULTI_BATCH_JOB_ID)
    open_job(client, simulator_tenant, sim.ABORTED_JOB_ID)
    run_worker()

    assert kept(simulator_tenant, sim.MULTI_BATCH_JOB_ID).status == KeptJob.Status.KEPT
    assert kept(simulator_tenant, sim.MULTI_BATCH_JOB_ID).reason == KeptJob.Reason.ALL
    assert not KeptJob.objects.filter(job_id=sim.ABORTED_JOB_ID).exists()  # not completed


def test_a_kept_session_keeps_its_jobs_and_no_others(client, simulator_tenant, simulator):
    policy(
        simulator_tenant,
        ArchivePolicy.Keep.SESSIONS,
        sessions=f"{sim.DEMO_PARTNER}/{sim.DEMO_PROJECT}\n",
    )

    open_job(client, simulator_tenant, sim.INCREMENTAL_JOB_ID)
    open_job(client, simulator_tenant, sim.DOC_SEGMENTS_JOB_ID)  # salesforce's session

    assert kept(simulator_tenant, sim.INCREMENTAL_JOB_ID).reason == KeptJob.Reason.SESSION
    assert not KeptJob.objects.filter(job_id=sim.DOC_SEGMENTS_JOB_ID).exists()


def test_a_tenant_that_keeps_watched_jobs_keeps_one_when_its_watch_sees_it_end(
    client, simulator_tenant, simulator, sim_clock
):
    policy(simulator_tenant, ArchivePolicy.Keep.WATCHED)
    open_job(client, simulator_tenant, sim.RUNNING_JOB_ID)
    open_job(client, simulator_tenant, sim.MULTI_BATCH_JOB_ID)  # not watched
    client.post(f"/t/{simulator_tenant.slug}/jobs/{sim.RUNNING_JOB_ID}/watch/", {"action": "watch"})
    sim_clock.advance(3600)
    time_passes()

    run_worker()  # the watch round sees the job end; the copy follows

    assert kept(simulator_tenant, sim.RUNNING_JOB_ID).status == KeptJob.Status.KEPT
    assert not KeptJob.objects.filter(job_id=sim.MULTI_BATCH_JOB_ID).exists()


def test_only_a_completed_job_whose_files_zuora_still_has_can_be_kept(
    client, simulator_tenant, simulator
):
    open_job(client, simulator_tenant, sim.PURGED_FILES_JOB_ID)
    open_job(client, simulator_tenant, sim.ABORTED_JOB_ID)

    for job_id in (sim.PURGED_FILES_JOB_ID, sim.ABORTED_JOB_ID):
        assert "Keep these files" not in card(client, simulator_tenant, job_id)
        press_keep(client, simulator_tenant, job_id)
    assert not KeptJob.objects.exists()


def test_someone_who_may_not_see_the_tenant_cannot_keep_its_jobs(
    client, simulator_tenant, simulator, outsider_client
):
    open_job(client, simulator_tenant, sim.MULTI_BATCH_JOB_ID)

    url = f"/t/{simulator_tenant.slug}/jobs/{sim.MULTI_BATCH_JOB_ID}/archive/"
    assert outsider_client.post(url).status_code == 404
    assert not KeptJob.objects.exists()


# --- Served from the archive ----------------------------------------------------------------


def test_every_download_of_a_kept_job_works_after_zuora_purged_it(
    client, simulator_tenant, simulator
):
    job_id, raw = kept_and_purged(client, simulator_tenant, simulator, records=90, segments=3)
    batch = raw["batches"][0]
    segments = batch["segments"]
    base = f"/t/{simulator_tenant.slug}/jobs/{job_id}"
    parts = [body(client.get(f"{base}/files/{segment}")) for segment in segments]
    assert sha256(parts[1]) == KeptFile.objects.get(file_id=segments[1]).sha256

    joined = body(client.get(f"{base}/batches/{batch['batchId']}/download"))
    assert joined.count(b"\n") == 91  # one header, every record
    excel = body(client.get(f"{base}/batches/{batch['batchId']}/download?as=excel"))
    assert excel.startswith(b"\xef\xbb\xbf")
    workbook = openpyxl.load_workbook(
        io.BytesIO(body(client.get(f"{base}/batches/{batch['batchId']}/download?as=xlsx")))
    )
    assert workbook.active.max_row == 91
    with zipfile.ZipFile(io.BytesIO(body(client.get(f"{base}/download.zip")))) as job_zip:
        (member,) = job_zip.namelist()
        assert job_zip.read(member) == joined
    preview = client.get(f"{base}/files/{segments[0]}/preview", **HTMX)
    assert preview.status_code == 200 and "error" not in preview.context

    assert Download.objects.filter(outcome=Download.Outcome.COMPLETE).count() == 8
    assert not Download.objects.filter(from_archive=False).exists()


def test_a_kept_job_is_served_from_the_archive_before_the_purge_without_asking_zuora(
    client, simulator_tenant, simulator
):
    job_id = simulator.add_job(records=20)
    file_id = open_job(client, simulator_tenant, job_id)["batches"][0]["fileId"]
    press_keep(client, simulator_tenant, job_id)
    run_worker()
    asked = file_gets(simulator)

    data = body(client.get(f"/t/{simulator_tenant.slug}/jobs/{job_id}/files/{file_id}"))

    assert data == zuora_bytes(simulator, file_id)
    assert file_gets(simulator) == asked + 1  # only the test's own look, above


def test_the_record_count_check_runs_on_archived_files(client, simulator_tenant, simulator):
    job_id, raw = kept_and_purged(client, simulator_tenant, simulator, records=33)
    batch = raw["batches"][0]

    response = client.get(
        f"/t/{simulator_tenant.slug}/jobs/{job_id}/batches/{batch['batchId']}/download"
    )
    body(response)

    download = Download.objects.latest("started_at")
    assert (download.outcome, download.records_counted) == (Download.Outcome.COMPLETE, 33)


def test_the_audit_trail_says_from_the_archive(client, simulator_tenant, simulator):
    job_id, raw = kept_and_purged(client, simulator_tenant, simulator, records=5)

    body(
        client.get(f"/t/{simulator_tenant.slug}/jobs/{job_id}/files/{raw['batches'][0]['fileId']}")
    )

    event = AuditEvent.objects.filter(kind=AuditEvent.Kind.DOWNLOAD).latest("at")
    assert "from the archive" in event.detail
    trail = client.get(f"/t/{simulator_tenant.slug}/jobs/{job_id}/downloads/").content.decode()
    assert "from the archive" in trail


def test_a_kept_job_is_not_offered_as_probably_purged(
    client, simulator_tenant, simulator, settings
):
    job_id, _ = kept_and_purged(client, simulator_tenant, simulator, records=5)
    settings.AQUADASH_FILE_RETENTION_DAYS = 0  # Zuora's retention of its files is over

    page = client.get(f"/t/{simulator_tenant.slug}/jobs/{job_id}/").content.decode()

    assert "Probably purged by Zuora" not in page
    assert "Result files have probably been deleted" not in page
    assert "Zuora has probably deleted its copies of the result files" in page
    assert "aquadash serves its own" in page


def test_a_file_the_archive_does_not_keep_is_still_asked_of_zuora(
    client, simulator_tenant, simulator
):
    file_id = open_job(client, simulator_tenant, sim.MULTI_BATCH_JOB_ID)["batches"][0]["fileId"]

    response = client.get(
        f"/t/{simulator_tenant.slug}/jobs/{sim.MULTI_BATCH_JOB_ID}/files/{file_id}"
    )

    assert body(response) == zuora_bytes(simulator, file_id)
    assert not Download.objects.filter(from_archive=True).exists()


def test_another_tenants_kept_file_is_never_served(
    client, simulator_tenant, simulator, make_tenant, make_user
):
    job_id, raw = kept_and_purged(client, simulator_tenant, simulator, records=5)
    other = make_tenant("other")
    file_id = raw["batches"][0]["fileId"]

    assert archive.open_kept(other, file_id) is None


# --- The demo -------------------------------------------------------------------------------


def test_the_demo_keeps_the_job_whose_files_the_simulator_purged(db, settings, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.DEBUG = True
    settings.ZUORA_EXTRA_HOSTS = frozenset({("127.0.0.1", port)})
    monkeypatch.setenv("AQUADASH_SIMULATOR_URL", f"http://127.0.0.1:{port}")

    call_command("setup_demo", "--kept-job", stdout=io.StringIO())

    demo = Tenant.objects.get(slug="demo")
    assert archive.serves(demo, sim.PURGED_FILES_JOB_ID)
    client = Client()
    client.force_login(User.objects.get(username="demo"))
    with serve(sim.Simulator(), port=port) as running:  # the simulator `make run` starts
        file_id = JobSnapshot.objects.get(job_id=sim.PURGED_FILES_JOB_ID).raw["batches"][0][
            "fileId"
        ]
        purged = requests.get(f"{running.url}/v1/files/{file_id}", auth=AUTH, timeout=10)
        response = client.get(f"/t/demo/jobs/{sim.PURGED_FILES_JOB_ID}/files/{file_id}")
        assert purged.status_code == 404
        assert sha256(body(response)) == KeptFile.objects.get(file_id=file_id).sha256
        assert "Kept by aquadash until" in card(client, demo, sim.PURGED_FILES_JOB_ID)


def test_a_kept_batch_file_downloaded_whole_is_checked_against_zuoras_count(
    client, simulator_tenant, simulator
):
    job_id, raw = kept_and_purged(client, simulator_tenant, simulator, records=44)
    batch = raw["batches"][0]

    data = body(client.get(f"/t/{simulator_tenant.slug}/jobs/{job_id}/files/{batch['fileId']}"))

    download = Download.objects.latest("started_at")
    assert (download.outcome, download.records_counted) == (Download.Outcome.COMPLETE, 44)
    assert download.bytes_sent == len(data)
    snapshot = JobSnapshot.objects.get(job_id=job_id)
    assert snapshot.record_counts[batch["batchId"]]["counted"] == 44


# Committed, as in production: closing a response ends the request, which closes database
# connections left inside a transaction, such as a test's.
@pytest.mark.django_db(transaction=True)
def test_a_browser_that_leaves_a_kept_file_early_is_recorded_as_cancelled(
    client, simulator_tenant, simulator
):
    job_id, raw = kept_and_purged(client, simulator_tenant, simulator, records=5000)
    response = client.get(
        f"/t/{simulator_tenant.slug}/jobs/{job_id}/files/{raw['batches'][0]['fileId']}"
    )

    next(iter(response.streaming_content))
    response.close()

    download = Download.objects.latest("started_at")
    assert download.outcome == Download.Outcome.CANCELLED
    assert 0 < download.bytes_sent < KeptFile.objects.get().size
