"""Errors that tell the truth: a missing Zuora permission, a name that does not resolve, the
wrong cloud, an unknown partner, and Zuora's request ID kept for Zuora support."""

import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from pytest_django.fixtures import Settings

from aquadash import simulator as sim
from aquadash import zuora
from aquadash.models import JobSnapshot
from aquadash.zuora import network
from tests.test_job_views import job_url
from tests.test_zuora import EXAMPLE_FILE_JOB, connect, tokens_issued, zuora_production

# --- A missing permission is not a bad secret ---------------------------------------------------


def test_a_client_without_aqua_is_told_which_permission_is_missing(simulator):
    conn = connect(simulator, identity=sim.NO_AQUA_CLIENT_ID, secret=sim.NO_AQUA_CLIENT_SECRET)

    with pytest.raises(zuora.PermissionDenied) as caught:
        zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    assert "API Write Access" in caught.value.message
    assert "Zuora administrator" in caught.value.message
    assert "update" not in caught.value.message
    assert tokens_issued(simulator) == 1  # the token was fine: no second sign-in


def test_a_v1_permission_denied_code_in_a_200_is_a_missing_permission(simulator):
    conn = connect(simulator)
    simulator.add_fault("success_false", path="/v1/batch-query", code=50000010)

    with pytest.raises(zuora.PermissionDenied):
        zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    assert tokens_issued(simulator) == 1


def test_a_user_without_aqua_gets_a_missing_permission_for_a_file(simulator):
    conn = connect(
        simulator, method="basic", identity=sim.NO_AQUA_USERNAME, secret=sim.NO_AQUA_PASSWORD
    )

    with pytest.raises(zuora.PermissionDenied):
        zuora.open_file(conn, file_id="a" * 32)


def test_the_page_of_a_missing_permission_offers_no_credentials_update(
    admin_client, simulator_tenant
):
    simulator_tenant.identity = sim.NO_AQUA_CLIENT_ID
    simulator_tenant.set_secret(sim.NO_AQUA_CLIENT_SECRET)
    simulator_tenant.save()

    response = admin_client.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID))

    html = response.content.decode()
    assert response.status_code == 502
    assert "<h1>The Zuora user lacks a permission</h1>" in html
    assert "Update the credentials" not in html


def test_a_job_whose_queries_were_ignored_is_shown_with_the_warning(
    finance_client, simulator_tenant
):
    response = finance_client.get(job_url(simulator_tenant, sim.QUERIES_IGNORED_JOB_ID))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Some queries were not run (Zuora error 90018)." in html


# --- A name that does not resolve ----------------------------------------------------------------


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    def getaddrinfo(host: str, port: object, *args: object, **kwargs: object) -> list:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_zuora_host_that_does_not_resolve_is_unreachable_not_tampered_with(no_dns):
    with pytest.raises(zuora.ZuoraUnavailable) as caught:
        zuora.get_job(zuora_production(), job_id=EXAMPLE_FILE_JOB)

    assert "cannot reach Zuora (the host name did not resolve)" in caught.value.message
    assert caught.value.http_status == 503
    assert caught.value.track_id == ""  # the request never left


def test_the_page_of_an_unresolvable_host_is_a_503_to_retry_without_a_track_id(
    no_dns, member_client, tenant
):
    response = member_client.get(job_url(tenant, EXAMPLE_FILE_JOB))

    html = response.content.decode()
    assert response.status_code == 503
    assert "the host name did not resolve" in html
    assert "Try again" in html
    assert "Zuora-Track-Id" not in html
    assert "tampered" not in html


# --- Zuora's request ID ---------------------------------------------------------------------------


def test_an_error_keeps_zuoras_request_id(simulator):
    simulator.add_fault("unavailable", job_id=EXAMPLE_FILE_JOB, times=None)

    with pytest.raises(zuora.ZuoraUnavailable) as caught:
        zuora.get_job(connect(simulator), job_id=EXAMPLE_FILE_JOB)

    uuid.UUID(caught.value.request_id)  # the simulator's Zuora-Request-Id


def test_the_error_page_shows_zuoras_request_id(finance_client, simulator_tenant, simulator):
    simulator.add_fault("unavailable", job_id=EXAMPLE_FILE_JOB, times=None)

    html = finance_client.get(job_url(simulator_tenant, EXAMPLE_FILE_JOB)).content.decode()

    assert "Zuora-Track-Id <code>aquadash-" in html
    assert "Zuora-Request-Id <code>" in html


def test_a_stored_job_keeps_the_request_id_for_its_page_and_raw_view(
    finance_client, simulator_tenant
):
    html = finance_client.get(job_url(simulator_tenant, EXAMPLE_FILE_JOB)).content.decode()
    snapshot = JobSnapshot.objects.get(job_id=EXAMPLE_FILE_JOB)
    raw = finance_client.get(job_url(simulator_tenant, EXAMPLE_FILE_JOB, "raw.json"))

    uuid.UUID(snapshot.request_id)
    assert f"Zuora-Request-Id <code>{snapshot.request_id}</code>" in html
    assert raw["Zuora-Request-Id"] == snapshot.request_id
    assert raw["Zuora-Track-Id"] == snapshot.track_id


# --- The wrong cloud -----------------------------------------------------------------------------


@pytest.fixture
def two_clouds(
    simulator: sim.Simulator, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> Iterator[sim.Simulator]:
    """US Production's two clouds for this test: Cloud 1 is `simulator`, which holds the
    tenant; Cloud 2 is another simulator that knows no client and no user, so it answers 401.
    Yields Cloud 2."""
    other = sim.Simulator(clients={}, users={})
    with sim.serve(other):
        for each in (simulator, other):
            parts = urlsplit(each.url)
            settings.ZUORA_EXTRA_HOSTS = settings.ZUORA_EXTRA_HOSTS | {(parts.hostname, parts.port)}
        monkeypatch.setitem(
            network.ENVIRONMENTS, "us-prod-cloud1", ("US Production (Cloud 1)", simulator.url)
        )
        monkeypatch.setitem(
            network.ENVIRONMENTS, "us-prod-cloud2", ("US Production (Cloud 2)", other.url)
        )
        yield other


@pytest.mark.parametrize(
    ("method", "identity", "secret"),
    [
        ("oauth", sim.DEMO_CLIENT_ID, sim.DEMO_CLIENT_SECRET),
        ("basic", sim.DEMO_USERNAME, sim.DEMO_PASSWORD),
    ],
)
def test_test_connection_names_the_cloud_where_the_credentials_work(
    two_clouds, simulator, make_tenant, method, identity, secret
):
    tenant = make_tenant(
        environment="us-prod-cloud2", auth_method=method, identity=identity, secret=secret
    )

    ok, message = tenant.check_connection()

    assert not ok
    assert (
        f"these credentials work at {simulator.url} (US Production (Cloud 1)): change the "
        "tenant's environment" in message
    )
    assert "update" not in message


def test_credentials_no_cloud_accepts_are_still_blamed(two_clouds, make_tenant):
    tenant = make_tenant(environment="us-prod-cloud2", identity=sim.DEMO_CLIENT_ID)

    ok, message = tenant.check_connection()  # the canary secret: wrong everywhere

    assert not ok
    assert "Zuora rejected the stored credentials" in message


def test_only_us_production_and_api_sandbox_have_another_cloud():
    assert zuora.network.other_clouds("https://rest.zuora.com") == [
        ("US Production (Cloud 1)", "https://rest.na.zuora.com")
    ]
    assert zuora.network.other_clouds("https://rest.sandbox.na.zuora.com") == [
        ("US API Sandbox (Cloud 2)", "https://rest.apisandbox.zuora.com")
    ]
    assert zuora.network.other_clouds("https://rest.eu.zuora.com") == []


# --- An unknown partner --------------------------------------------------------------------------


def test_an_unknown_partner_reads_as_one_on_the_last_completed_form(
    finance_client, simulator_tenant
):
    response = finance_client.get(
        f"/t/{simulator_tenant.slug}/last-completed/", {"partner": "nobody", "project": "p1"}
    )

    html = response.content.decode()
    assert response.status_code == 404
    assert "<h1>Unknown partner</h1>" in html
    assert "does not recognise the partner “nobody”" in html
