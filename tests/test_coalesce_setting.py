"""AQUADASH_COALESCE: on, polls share Zuora's answer; off (the herd benchmark's baseline only),
every poll asks Zuora itself."""

import pytest
from django.test import Client

from aquadash import simulator as sim
from aquadash.models import Tenant
from tests.conftest import start_django

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def client(finance_client: Client) -> Client:
    """Signed in as a member of the simulator tenant's group, not as a superuser."""
    return finance_client


def poll_five_times(client: Client, tenant: Tenant) -> None:
    for _ in range(5):
        response = client.get(f"/t/{tenant.slug}/jobs/{sim.RUNNING_JOB_ID}/", **HTMX)
        assert response.status_code == 200


def job_gets(simulator: sim.Simulator) -> int:
    return simulator.count(method="GET", path_prefix=f"/v1/batch-query/jobs/{sim.RUNNING_JOB_ID}")


def test_with_coalescing_on_polls_in_one_interval_ask_zuora_once(
    client, simulator_tenant, simulator, settings
):
    settings.AQUADASH_COALESCE = True

    poll_five_times(client, simulator_tenant)

    assert job_gets(simulator) == 1


def test_with_coalescing_off_every_poll_asks_zuora(client, simulator_tenant, simulator, settings):
    settings.AQUADASH_COALESCE = False

    poll_five_times(client, simulator_tenant)

    assert job_gets(simulator) == 5


@pytest.mark.parametrize(("value", "expected"), [(None, "True"), ("0", "False")])
def test_coalescing_is_on_unless_the_environment_switches_it_off(tmp_path, value, expected):
    env = {"AQUADASH_COALESCE": value} if value else {}
    result = start_django(
        drop=("AQUADASH_COALESCE",),
        DEBUG="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        then="from django.conf import settings; print(settings.AQUADASH_COALESCE)",
        **env,
    )

    assert result.stdout.split() == [expected], result.stderr
