"""What the archive's tests share: a person on the simulator tenant, keeping a job, running the
worker, and reading what the archive holds."""

import hashlib
from unittest import mock

import requests
from django.core.files.storage import storages
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from aquadash import simulator as sim
from aquadash.models import JobSnapshot, KeptJob, Tenant

HTMX = {"HTTP_HX_REQUEST": "true"}
AUTH = (sim.DEMO_USERNAME, sim.DEMO_PASSWORD)


def run_worker() -> None:
    """The real worker, in batch mode: runs every task that is due (retries waiting for later
    are made due first), then returns. The test's transaction stays open."""
    DBTaskResult.objects.filter(run_after__gt=timezone.now()).update(run_after=timezone.now())
    with mock.patch("django_tasks_db.management.commands.db_worker.close_old_connections"):
        call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)


def open_job(client: Client, tenant: Tenant, job_id: str) -> dict:
    assert client.get(f"/t/{tenant.slug}/jobs/{job_id}/").status_code == 200
    return JobSnapshot.objects.get(tenant=tenant, job_id=job_id).raw


def press_keep(client: Client, tenant: Tenant, job_id: str) -> str:
    response = client.post(f"/t/{tenant.slug}/jobs/{job_id}/archive/", **HTMX)
    assert response.status_code == 200
    return response.content.decode()


def card(client: Client, tenant: Tenant, job_id: str) -> str:
    response = client.get(f"/t/{tenant.slug}/jobs/{job_id}/archive/", **HTMX)
    assert response.status_code == 200
    return response.content.decode()


def kept(tenant: Tenant, job_id: str) -> KeptJob:
    return KeptJob.objects.get(tenant=tenant, job_id=job_id)


def zuora_bytes(simulator: sim.Simulator, file_id: str) -> bytes:
    response = requests.get(f"{simulator.url}/v1/files/{file_id}", auth=AUTH, timeout=30)
    assert response.status_code == 200
    return response.content


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_keys() -> list[str]:
    """Every file the archive's storage holds, by walking it through the storage API."""
    store = storages["archive"]

    def walk(folder: str) -> list[str]:
        folders, files = store.listdir(folder)
        found = [f"{folder}/{name}".lstrip("/") for name in files]
        for each in folders:
            found += walk(f"{folder}/{each}".lstrip("/"))
        return found

    try:
        return walk("")
    except FileNotFoundError:  # nothing stored yet: the folder is made by the first file
        return []


def file_gets(simulator: sim.Simulator) -> int:
    return simulator.count(method="GET", path_prefix="/v1/files/")


def body(response: object) -> bytes:
    assert response.status_code == 200, getattr(response, "content", b"")[:500]
    return b"".join(response.streaming_content)
