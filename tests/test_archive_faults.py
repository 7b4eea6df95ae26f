"""The archive when things go wrong: a record count that does not match, a transfer cut short,
a store that is down, files purged before the copy, a worker killed mid-copy; and its bounds,
the size limit and expiry. Zuora is the simulator over HTTP; the store is the filesystem."""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from aquadash import archive
from aquadash import simulator as sim
from aquadash.models import ArchivePolicy, KeptFile, KeptJob, Tenant
from tests.archive_helpers import (
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
from tests.conftest import database_url, start_django


def storage_at(settings: object, location: Path) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "archive": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": location},
        },
    }


@pytest.fixture(autouse=True)
def archive_on_disk(settings: object, tmp_path: Path) -> Path:
    storage_at(settings, tmp_path / "archive")
    return tmp_path / "archive"


@pytest.fixture
def client(simulator_tenant: Tenant, make_user: object) -> Client:
    client = Client()
    client.force_login(make_user("finance", groups=simulator_tenant.groups.all()))
    return client


def kept_asked(client: Client, tenant: Tenant, simulator: sim.Simulator, **job: object):
    """A new job of the simulator, opened and Keep these files pressed (the copy is queued)."""
    job_id = simulator.add_job(**job)
    raw = open_job(client, tenant, job_id)
    press_keep(client, tenant, job_id)
    return job_id, raw


def test_a_record_count_mismatch_is_retried_then_shown_in_red_and_never_kept(
    client, simulator_tenant, simulator
):
    job_id, raw = kept_asked(client, simulator_tenant, simulator, records=3)
    file_id = raw["batches"][0]["fileId"]
    simulator.add_fault(
        "file_body", path=f"/v1/files/{file_id}", times=None, body="Id,Name\n1,a\n2,b\n"
    )

    run_worker()
    assert kept(simulator_tenant, job_id).status == KeptJob.Status.COPYING  # tried again later
    for _ in range(archive.ATTEMPTS):
        run_worker()

    job = kept(simulator_tenant, job_id)
    assert job.status == KeptJob.Status.FAILED
    assert "RECORD COUNT MISMATCH" in job.detail
    assert not KeptFile.objects.filter(status=KeptFile.Status.KEPT).exists()
    assert stored_keys() == []
    page = card(client, simulator_tenant, job_id)
    assert 'class="error strong">Could not be copied' in page
    assert "Kept by aquadash" not in page


def test_a_transfer_cut_short_is_not_kept_and_is_copied_again(client, simulator_tenant, simulator):
    job_id, raw = kept_asked(client, simulator_tenant, simulator, records=500)
    file_id = raw["batches"][0]["fileId"]
    simulator.add_fault("truncated", path=f"/v1/files/{file_id}", times=1)

    run_worker()
    job = kept(simulator_tenant, job_id)
    assert job.status == KeptJob.Status.COPYING
    assert "broke off" in job.detail or "ended" in job.detail
    assert "Trying again at" in card(client, simulator_tenant, job_id)
    assert stored_keys() == []  # the half file is gone

    run_worker()

    (kept_file,) = kept(simulator_tenant, job_id).files.all()
    assert kept(simulator_tenant, job_id).status == KeptJob.Status.KEPT
    assert kept_file.sha256 == sha256(zuora_bytes(simulator, file_id))
    assert stored_keys() == [kept_file.key]


def test_a_store_that_is_down_is_retried_with_back_off_and_shown(
    client, simulator_tenant, simulator, settings, tmp_path
):
    (tmp_path / "not-a-folder").write_text("a file where the archive's folder should be")
    storage_at(settings, tmp_path / "not-a-folder" / "archive")
    job_id, _ = kept_asked(client, simulator_tenant, simulator, records=5)

    run_worker()
    first = kept(simulator_tenant, job_id)
    run_worker()
    second = kept(simulator_tenant, job_id)

    assert (first.attempts, second.attempts) == (1, 2)
    assert "The archive store failed" in second.detail
    assert "Trying again at" in card(client, simulator_tenant, job_id)
    storage_at(settings, tmp_path / "archive")  # the store is back

    run_worker()

    assert kept(simulator_tenant, job_id).status == KeptJob.Status.KEPT


def test_files_purged_at_zuora_before_the_copy_are_reported_as_could_not_be_kept(
    client, simulator_tenant, simulator
):
    job_id, _ = kept_asked(client, simulator_tenant, simulator, records=5)
    simulator.forget_job(job_id)

    run_worker()

    job = kept(simulator_tenant, job_id)
    assert job.status == KeptJob.Status.PURGED
    assert "Could not be kept" in card(client, simulator_tenant, job_id)


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_copy_leaves_no_half_file_kept_and_the_copy_starts_again(
    client, simulator_tenant, simulator, tmp_path
):
    job_id, raw = kept_asked(client, simulator_tenant, simulator, records=20_000)
    file_id = raw["batches"][0]["fileId"]
    pk = kept(simulator_tenant, job_id).pk
    # A worker in another process takes the copy from the queue and is killed (SIGKILL:
    # nothing of it runs after) once part of the file is in the store; the queue still holds
    # the task as running.
    killed = start_django(
        DATABASE_URL=database_url(),
        AQUADASH_ARCHIVE_URL=f"file://{tmp_path / 'archive'}",
        ZUORA_EXTRA_HOSTS=f"127.0.0.1:{simulator.url.rsplit(':', 1)[1]}",
        then=(
            "import os, signal\n"
            "from aquadash import archive\n"
            "take, seen = archive._Measured._take, []\n"
            "def dying(self, chunk):\n"
            "    seen.append(chunk)\n"
            "    if len(seen) == 3: os.kill(os.getpid(), signal.SIGKILL)\n"
            "    take(self, chunk)\n"
            "archive._Measured._take = dying\n"
            "from django.core.management import call_command\n"
            "call_command('db_worker', '--batch', '--no-startup-delay', '--no-reload')\n"
        ),
    )
    assert killed.returncode == -9, killed.stderr
    (half,) = KeptFile.objects.filter(kept_job_id=pk)
    assert half.status == KeptFile.Status.COPYING
    assert stored_keys() == [half.key]
    run_worker()  # nothing to do: the queue says a worker is on it
    assert KeptFile.objects.get(kept_job_id=pk).status == KeptFile.Status.COPYING
    assert (
        0 < os.path.getsize(tmp_path / "archive" / half.key) < len(zuora_bytes(simulator, file_id))
    )

    KeptJob.objects.filter(pk=pk).update(claimed_at=timezone.now() - timedelta(minutes=11))
    card(client, simulator_tenant, job_id)  # a look at the job notices the copy stalled
    run_worker()

    (whole,) = KeptFile.objects.filter(kept_job_id=pk)
    assert kept(simulator_tenant, job_id).status == KeptJob.Status.KEPT
    assert whole.sha256 == sha256(zuora_bytes(simulator, file_id))
    assert stored_keys() == [whole.key]  # the half file was removed


def test_a_copy_in_progress_is_not_started_twice(client, simulator_tenant, simulator):
    job_id, _ = kept_asked(client, simulator_tenant, simulator, records=5)
    KeptJob.objects.filter(job_id=job_id).update(claimed_at=timezone.now())

    run_worker()  # another worker is copying it and said so just now

    assert not KeptFile.objects.filter(status=KeptFile.Status.KEPT).exists()


# --- Bounds ---------------------------------------------------------------------------------


def test_at_the_tenants_limit_new_archiving_stops_with_a_warning_to_admins(
    client, simulator_tenant, simulator, make_user
):
    first, _ = kept_asked(client, simulator_tenant, simulator, records=500)
    run_worker()
    used = archive.kept_bytes(simulator_tenant)
    ArchivePolicy.objects.filter(tenant=simulator_tenant).update(max_gb=used / 1e9)

    second, _ = kept_asked(client, simulator_tenant, simulator, records=5)

    assert kept(simulator_tenant, second).status == KeptJob.Status.FULL
    assert kept(simulator_tenant, first).status == KeptJob.Status.KEPT  # nothing deleted
    assert "archive is full" in card(client, simulator_tenant, second)
    admin = Client()
    admin.force_login(make_user("root", superuser=True))
    page = admin.get("/admin/aquadash/archivepolicy/").content.decode()
    assert "FULL: new archiving stopped" in page
    assert "nothing more is kept until files expire" in page


def test_the_admin_shows_each_tenants_kept_jobs_bytes_and_oldest_date(
    client, simulator_tenant, simulator, make_user
):
    job_id, _ = kept_asked(client, simulator_tenant, simulator, records=50)
    run_worker()
    admin = Client()
    admin.force_login(make_user("root", superuser=True))

    page = admin.get("/admin/aquadash/archivepolicy/").content.decode()

    assert f"{kept(simulator_tenant, job_id).kept_at:%Y-%m-%d}" in page
    assert '<td class="field-kept_jobs">1</td>' in page


def test_expiry_removes_the_files_and_records_it(client, simulator_tenant, simulator):
    job_id, raw = kept_asked(client, simulator_tenant, simulator, records=5)
    run_worker()
    job = kept(simulator_tenant, job_id)

    assert archive.expire_due(today=job.kept_until) == 0  # kept until that day, inclusive
    assert archive.expire_due(today=job.kept_until + timedelta(days=1)) == 1

    job = kept(simulator_tenant, job_id)
    assert job.status == KeptJob.Status.EXPIRED and job.expired_at
    assert "files removed" in job.detail
    assert stored_keys() == []
    asked = file_gets(simulator)
    file_id = raw["batches"][0]["fileId"]
    body(client.get(f"/t/{simulator_tenant.slug}/jobs/{job_id}/files/{file_id}"))
    assert file_gets(simulator) == asked + 1  # from Zuora again


def test_kept_jobs_cannot_be_deleted_in_the_admin(client, simulator_tenant, simulator, make_user):
    job_id, _ = kept_asked(client, simulator_tenant, simulator, records=5)
    run_worker()
    admin = Client()
    admin.force_login(make_user("root", superuser=True))
    pk = kept(simulator_tenant, job_id).pk

    response = admin.post(f"/admin/aquadash/keptjob/{pk}/delete/", {"post": "yes"})

    assert response.status_code == 403
    assert kept(simulator_tenant, job_id).status == KeptJob.Status.KEPT


def test_the_worker_removes_a_kept_job_the_day_after_its_date(client, simulator_tenant, simulator):
    job_id, _ = kept_asked(client, simulator_tenant, simulator, records=5)
    run_worker()
    job = kept(simulator_tenant, job_id)
    KeptJob.objects.filter(pk=job.pk).update(kept_until=timezone.localdate() - timedelta(days=1))

    run_worker()  # the expiry queued when the job was kept falls due

    assert kept(simulator_tenant, job_id).status == KeptJob.Status.EXPIRED
    assert stored_keys() == []


def test_the_admin_shows_a_kept_jobs_files_with_their_hashes(
    client, simulator_tenant, simulator, make_user
):
    job_id, _ = kept_asked(client, simulator_tenant, simulator, records=5)
    run_worker()
    admin = Client()
    admin.force_login(make_user("root", superuser=True))
    job = kept(simulator_tenant, job_id)

    page = admin.get(f"/admin/aquadash/keptjob/{job.pk}/change/").content.decode()

    assert job.files.get().sha256 in page
    assert admin.get("/admin/aquadash/archivepolicy/add/").status_code == 200


def test_a_copy_that_failed_can_be_tried_again_once_the_store_is_back(
    client, simulator_tenant, simulator, settings, tmp_path
):
    (tmp_path / "not-a-folder").write_text("a file where the archive's folder should be")
    storage_at(settings, tmp_path / "not-a-folder" / "archive")
    job_id, _ = kept_asked(client, simulator_tenant, simulator, records=5)
    for _ in range(archive.ATTEMPTS):
        run_worker()
    assert kept(simulator_tenant, job_id).status == KeptJob.Status.FAILED
    assert "Try again" in card(client, simulator_tenant, job_id)
    storage_at(settings, tmp_path / "archive")

    press_keep(client, simulator_tenant, job_id)  # the same button, now "Try again"
    run_worker()

    assert kept(simulator_tenant, job_id).status == KeptJob.Status.KEPT
