"""The per-tenant circuit breaker: a failing Zuora is left alone, pages answer at once from what
is stored, and one probe at a time tests whether it is back."""

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client

from aquadash import breaker, jobs, zuora
from aquadash import simulator as sim
from aquadash.models import Tenant
from aquadash.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def every_poll_asks_zuora(settings):
    settings.AQUADASH_POLL_SECONDS = 0
    settings.AQUADASH_BREAKER_FAILURES = 3
    settings.AQUADASH_BREAKER_SECONDS = 60


@pytest.fixture
def clock(monkeypatch):
    class Clock:
        now = 1_900_000_000.0

    monkeypatch.setattr(breaker, "now", lambda: Clock.now)
    return Clock


@pytest.fixture
def client(simulator_tenant: Tenant, make_user) -> Client:
    client = Client()
    client.force_login(make_user("finance", groups=simulator_tenant.groups.all()))
    return client


def job_gets(simulator: sim.Simulator) -> int:
    return simulator.count(method="GET", path_prefix="/v1/batch-query/jobs/")


def poll(client: Client, tenant: Tenant, job_id: str = sim.RUNNING_JOB_ID):
    key = jobs.shared_key(tenant, job_id)
    cache.delete_many([key, key + ":lock"])
    return client.get(f"/t/{tenant.slug}/jobs/{job_id}/", **HTMX)


def test_repeated_failures_open_the_circuit_and_zuora_is_left_alone(
    client, simulator_tenant, simulator, clock
):
    client.get(f"/t/{simulator_tenant.slug}/jobs/{sim.RUNNING_JOB_ID}/")
    simulator.add_fault("server_error", times=None)
    for _ in range(3):
        poll(client, simulator_tenant)
    calls = job_gets(simulator)

    answers = [poll(client, simulator_tenant) for _ in range(5)]

    assert job_gets(simulator) == calls
    assert all(answer.status_code == 200 for answer in answers)
    assert "Zuora is not answering for tenant Sim" in answers[-1].content.decode()
    assert "retrying at" in answers[-1].content.decode()


def test_after_the_pause_one_probe_tests_zuora_and_success_closes(
    client, simulator_tenant, simulator, clock
):
    client.get(f"/t/{simulator_tenant.slug}/jobs/{sim.RUNNING_JOB_ID}/")
    fault = simulator.add_fault("server_error", times=None)
    for _ in range(3):
        poll(client, simulator_tenant)
    simulator.reset()
    assert fault not in simulator._faults
    clock.now += 61

    poll(client, simulator_tenant)
    for _ in range(3):
        poll(client, simulator_tenant)

    assert job_gets(simulator) == 4  # the probe, then polls as usual


def test_a_failed_probe_opens_the_circuit_again(client, simulator_tenant, simulator, clock):
    client.get(f"/t/{simulator_tenant.slug}/jobs/{sim.RUNNING_JOB_ID}/")
    simulator.add_fault("server_error", times=None)
    for _ in range(3):
        poll(client, simulator_tenant)
    clock.now += 61
    before = job_gets(simulator)

    for _ in range(4):
        poll(client, simulator_tenant)

    assert job_gets(simulator) == before + 1


def test_missing_jobs_and_rate_limits_never_open_it(client, simulator_tenant, simulator, clock):
    simulator.add_fault("rate_limited", job_id=sim.RUNNING_JOB_ID, times=3, seconds=3600)
    for _ in range(3):
        poll(client, simulator_tenant)
    for _ in range(4):
        poll(client, simulator_tenant, job_id="0123456789abcdef0123456789abcdef")

    poll(client, simulator_tenant)

    assert job_gets(simulator) == 3 + 4 + 1


def test_another_tenant_is_not_affected(
    client, simulator_tenant, simulator, clock, make_tenant, make_user
):
    other = make_tenant(
        "other",
        secret=DEMO_CLIENT_SECRET,
        environment="custom",
        base_url=simulator.url,
        identity=DEMO_CLIENT_ID,
        groups=[Group.objects.create(name="Other staff")],
    )
    other_client = Client()
    other_client.force_login(make_user("other-user", groups=other.groups.all()))
    simulator.add_fault("server_error", times=3)
    for _ in range(3):
        poll(client, simulator_tenant)

    answer = poll(other_client, other)

    assert answer.status_code == 200
    assert "not answering" not in answer.content.decode()


def test_a_download_while_the_circuit_is_open_is_refused_at_once(
    client, simulator_tenant, simulator, clock
):
    page = client.get(f"/t/{simulator_tenant.slug}/jobs/{sim.MULTI_BATCH_JOB_ID}/")
    assert page.status_code == 200
    client.get(f"/t/{simulator_tenant.slug}/jobs/{sim.RUNNING_JOB_ID}/")
    simulator.add_fault("server_error", times=None)
    for _ in range(3):
        poll(client, simulator_tenant)
    files = simulator.count(path_prefix="/v1/files/")
    raw = simulator_tenant.jobs.get(job_id=sim.MULTI_BATCH_JOB_ID).raw
    file_id = raw["batches"][0]["fileId"]

    response = client.get(
        f"/t/{simulator_tenant.slug}/jobs/{sim.MULTI_BATCH_JOB_ID}/files/{file_id}"
    )

    assert response.status_code == 503
    assert "not answering for tenant" in response.content.decode()
    assert simulator.count(path_prefix="/v1/files/") == files


def test_while_a_probe_is_under_way_every_other_request_is_refused(simulator_tenant, clock):
    for _ in range(3):
        with pytest.raises(zuora.ZuoraUnavailable), breaker.guarded(simulator_tenant):
            raise zuora.ZuoraUnavailable("Zuora answered HTTP 503.")
    clock.now += 61

    with breaker.guarded(simulator_tenant):  # the probe, still waiting for Zuora
        with pytest.raises(breaker.CircuitOpen), breaker.guarded(simulator_tenant):
            pass
        with pytest.raises(breaker.CircuitOpen), breaker.guarded(simulator_tenant):
            pass
