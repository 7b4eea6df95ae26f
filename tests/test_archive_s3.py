"""The archive on an S3-compatible store: a real S3 API server on loopback (moto in server
mode, started here on an ephemeral port), configured through AQUADASH_ARCHIVE_URL as in
production, with boto3 and django-storages talking to it over HTTP."""

import hashlib
import io
import secrets
import socket
import zipfile
from collections.abc import Iterator

import boto3
import pytest
from django.test import Client

from aquadash.models import KeptJob, Tenant
from aquadash.settings import archive_storage
from tests.archive_helpers import (
    body,
    card,
    file_gets,
    kept,
    open_job,
    press_keep,
    run_worker,
    zuora_bytes,
)

moto_server = pytest.importorskip("moto.server", reason="moto[server] is in requirements.txt")

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing-key", "AWS_SECRET_ACCESS_KEY": "testing-secret"}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 API server on 127.0.0.1, on a port the system chose."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint: str, settings: object, monkeypatch: pytest.MonkeyPatch) -> object:
    """A new bucket; the archive set to s3://<bucket>/kept-files as an operator would."""
    for name, value in {
        **CREDENTIALS,
        "AWS_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_S3_ADDRESSING_STYLE": "path",
    }.items():
        monkeypatch.setenv(name, value)
    name = f"aquadash-{secrets.token_hex(4)}"
    s3 = boto3.resource("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=name)
    settings.STORAGES = {**settings.STORAGES, "archive": archive_storage(f"s3://{name}/kept-files")}
    return s3.Bucket(name)


@pytest.fixture
def client(simulator_tenant: Tenant, make_user: object) -> Client:
    client = Client()
    client.force_login(make_user("finance", groups=simulator_tenant.groups.all()))
    return client


def test_kept_files_go_to_the_bucket_under_random_keys_with_their_hash(
    client, simulator_tenant, simulator, bucket
):
    job_id = simulator.add_job(records=120, segments=2, name="Quarter close")
    raw = open_job(client, simulator_tenant, job_id)
    press_keep(client, simulator_tenant, job_id)
    run_worker()

    job = kept(simulator_tenant, job_id)
    assert job.status == KeptJob.Status.KEPT
    objects = {each.key: each for each in bucket.objects.all()}
    assert sorted(objects) == sorted(f"kept-files/{each.key}" for each in job.files.all())
    for each in job.files.all():
        stored = objects[f"kept-files/{each.key}"].get()["Body"].read()
        assert hashlib.sha256(stored).hexdigest() == each.sha256
        assert stored == zuora_bytes(simulator, each.file_id)
        assert "Quarter" not in each.key and job_id not in each.key
    assert sorted(each.file_id for each in job.files.all()) == sorted(raw["batches"][0]["segments"])


def test_a_kept_job_downloads_from_the_bucket_after_zuora_purged_it(
    client, simulator_tenant, simulator, bucket
):
    job_id = simulator.add_job(records=60, segments=3)
    raw = open_job(client, simulator_tenant, job_id)
    press_keep(client, simulator_tenant, job_id)
    run_worker()
    expected = [zuora_bytes(simulator, segment) for segment in raw["batches"][0]["segments"]]
    simulator.forget_job(job_id)
    asked = file_gets(simulator)
    base = f"/t/{simulator_tenant.slug}/jobs/{job_id}"

    parts = [body(client.get(f"{base}/files/{each}")) for each in raw["batches"][0]["segments"]]
    joined = body(client.get(f"{base}/batches/{raw['batches'][0]['batchId']}/download"))
    with zipfile.ZipFile(io.BytesIO(body(client.get(f"{base}/download.zip")))) as job_zip:
        zipped = job_zip.read(job_zip.namelist()[0])

    assert parts == expected
    assert joined == zipped and joined.count(b"\n") == 61
    assert file_gets(simulator) == asked  # Zuora was not asked


def test_a_store_that_does_not_answer_is_retried_and_shown_then_kept(
    client, simulator_tenant, simulator, bucket, settings, monkeypatch, s3_endpoint
):
    with socket.socket() as probe:  # a port nothing listens on: the store is down
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", f"http://127.0.0.1:{closed}")
    settings.STORAGES = {
        **settings.STORAGES,
        "archive": archive_storage(f"s3://{bucket.name}/kept-files"),
    }
    job_id = simulator.add_job(records=10)
    open_job(client, simulator_tenant, job_id)
    press_keep(client, simulator_tenant, job_id)

    run_worker()

    assert kept(simulator_tenant, job_id).status == KeptJob.Status.COPYING
    assert "The archive store failed" in card(client, simulator_tenant, job_id)
    assert list(bucket.objects.all()) == []
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", s3_endpoint)
    settings.STORAGES = {
        **settings.STORAGES,
        "archive": archive_storage(f"s3://{bucket.name}/kept-files"),
    }

    run_worker()

    assert kept(simulator_tenant, job_id).status == KeptJob.Status.KEPT
    assert len(list(bucket.objects.all())) == 1
