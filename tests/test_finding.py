"""Finding a job by ID in any tenant the person may see.

Tenants "sim" (the `simulator` fixture) and "sandbox" (a second simulator) are Zuoras of their
own: a job added to one is unknown to the other. The search asks tenants from threads of its
own, so these tests commit what they write (transaction=True).
"""

import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from aquadash import simulator as sim
from aquadash.forms import ANY_TENANT
from aquadash.models import JobSnapshot, Tenant
from aquadash.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from aquadash.simulator.server import serve
from tests.conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff(simulator_tenant: Tenant) -> Group:
    return simulator_tenant.groups.get()


@pytest.fixture
def second_simulator(sim_clock) -> Iterator[sim.Simulator]:
    zuora = sim.Simulator(clock=sim_clock)
    with serve(zuora):
        yield zuora


def tenant_on(zuora: sim.Simulator, slug: str, settings, groups: tuple = ()) -> Tenant:
    """A tenant on `zuora`'s simulator, granted to `groups`."""
    parts = urlsplit(zuora.url)
    settings.ZUORA_EXTRA_HOSTS = settings.ZUORA_EXTRA_HOSTS | {(parts.hostname, parts.port)}
    tenant = Tenant(
        slug=slug,
        name=slug.title(),
        environment="custom",
        base_url=zuora.url,
        identity=DEMO_CLIENT_ID,
    )
    tenant.set_secret(DEMO_CLIENT_SECRET)
    tenant.full_clean()
    tenant.save()
    tenant.groups.set(groups)
    return tenant


@pytest.fixture
def sandbox(second_simulator, settings, staff) -> Tenant:
    return tenant_on(second_simulator, "sandbox", settings, groups=(staff,))


@pytest.fixture
def finance(staff, make_user) -> User:
    return make_user("finance", groups=(staff,))


@pytest.fixture
def client(finance) -> Client:
    client = Client()
    client.force_login(finance)
    return client


def job_gets(zuora: sim.Simulator, job_id: str) -> int:
    return zuora.count(method="GET", path_prefix=f"/v1/batch-query/jobs/{job_id}")


def find(client: Client, job_id: str):
    return client.get(f"/find/{job_id}/")


def test_any_tenant_is_the_default_for_someone_who_sees_several(client, simulator_tenant, sandbox):
    page = client.get("/").content.decode()

    assert f'<option value="{ANY_TENANT}" selected>Any tenant I can see</option>' in page


def test_someone_who_sees_one_tenant_is_not_offered_any(client, simulator_tenant):
    page = client.get("/").content.decode()

    assert "Any tenant I can see" not in page


def test_the_lookup_form_sends_any_tenant_to_the_search(client, simulator_tenant, sandbox):
    response = client.get("/", {"tenant": ANY_TENANT, "job": sim.RUNNING_JOB_ID.upper()})

    assert response.status_code == 302
    assert response.url == f"/find/{sim.RUNNING_JOB_ID}/"


def test_one_match_opens_the_job_page(
    client, simulator_tenant, sandbox, simulator, second_simulator
):
    job_id = simulator.add_job(records=3)

    response = find(client, job_id)

    assert response.status_code == 302
    assert response.url == f"/t/sim/jobs/{job_id}/"
    assert job_gets(simulator, job_id) == 1 and job_gets(second_simulator, job_id) == 1


def test_a_job_in_several_tenants_lets_the_person_choose(
    client, simulator_tenant, sandbox, simulator, second_simulator
):
    response = find(client, sim.MULTI_BATCH_JOB_ID)  # both simulators hold their catalogue

    assert response.status_code == 200
    page = response.content.decode()
    assert f"Job {sim.MULTI_BATCH_JOB_ID} is in 2 tenants" in page
    assert f'href="/t/sim/jobs/{sim.MULTI_BATCH_JOB_ID}/"' in page
    assert f'href="/t/sandbox/jobs/{sim.MULTI_BATCH_JOB_ID}/"' in page


def test_no_match_says_what_each_tenant_answered(client, simulator_tenant, sandbox):
    unknown = "0123456789abcdef0123456789abcdef"

    response = find(client, unknown)

    assert response.status_code == 404
    page = response.content.decode()
    assert f"No tenant you can see has job {unknown}" in page
    assert page.count("does not have it") == 2


def test_a_stored_job_is_found_without_asking_zuora(
    client, simulator_tenant, sandbox, simulator, second_simulator
):
    job_id = simulator.add_job(records=3)
    client.get(f"/t/sim/jobs/{job_id}/")
    assert JobSnapshot.objects.filter(job_id=job_id).exists()
    simulator.reset()

    response = find(client, job_id)

    assert response.url == f"/t/sim/jobs/{job_id}/"
    assert simulator.requests == [] and second_simulator.requests == []


def test_a_tenant_the_person_may_not_see_is_never_asked_nor_named(
    client, simulator_tenant, second_simulator, settings
):
    tenant_on(second_simulator, "secret-subsidiary", settings)  # granted to nobody

    page = find(client, sim.MULTI_BATCH_JOB_ID)

    assert page.url == f"/t/sim/jobs/{sim.MULTI_BATCH_JOB_ID}/"
    assert second_simulator.requests == []
    page = find(client, "0123456789abcdef0123456789abcdef").content.decode()
    assert "Secret" not in page and "subsidiary" not in page
    assert second_simulator.requests == []


def test_a_slow_or_down_tenant_does_not_hold_the_answer_past_the_deadline(
    client, simulator_tenant, sandbox, second_simulator, staff, settings
):
    settings.AQUADASH_FIND_SECONDS = 1.0
    second_simulator.add_fault("slow", times=None, seconds=5)
    down = Tenant.objects.create(
        slug="down", name="Down", environment="custom", base_url="http://127.0.0.1:1",
        identity=DEMO_CLIENT_ID,
    )  # fmt: skip
    down.set_secret(DEMO_CLIENT_SECRET)
    down.save()
    down.groups.set([staff])
    unknown = "0123456789abcdef0123456789abcdef"

    began = time.monotonic()
    response = find(client, unknown)
    took = time.monotonic() - began

    assert took < 2.5
    assert response.status_code == 503
    page = response.content.decode()
    assert "not every tenant could answer" in page
    assert "did not answer within 1 seconds" in page
    assert "cannot reach Zuora" in page or "could not connect" in page.lower()
    # The slow tenant's answer still arrives, after the page: let it, before the next test.
    wait_until(lambda: not any(t.name.startswith("find") for t in threading.enumerate()), 10)


def test_each_tenant_is_asked_at_most_once(client, simulator_tenant, settings, simulator, staff):
    for n in range(11):  # more tenants than the search asks at once
        tenant_on(simulator, f"copy-{n}", settings, groups=(staff,))
    unknown = "0123456789abcdef0123456789abcdef"

    response = find(client, unknown)

    assert response.status_code == 404
    assert job_gets(simulator, unknown) == 12


def test_an_id_that_is_not_32_hex_characters_is_refused_before_anything_is_asked(
    client, simulator_tenant, sandbox, simulator, second_simulator
):
    response = client.get("/", {"tenant": ANY_TENANT, "job": "not-a-job-id"})

    assert response.status_code == 400
    assert client.get("/find/12345/").status_code == 404
    assert simulator.requests == [] and second_simulator.requests == []


def test_not_found_advises_by_cause_for_each_tenant(
    client, simulator_tenant, sandbox, second_simulator, staff, settings
):
    rejected = tenant_on(second_simulator, "rejected", settings, groups=(staff,))
    rejected.set_secret("not-the-secret")
    rejected.save()
    down = tenant_on(second_simulator, "down", settings, groups=(staff,))
    down.base_url = "http://127.0.0.1:1"
    down.save()

    page = find(client, "0123456789abcdef0123456789abcdef").content.decode()

    assert "credentials rejected: retrying will not help" in page
    assert "Zuora was not answering: try again" in page
    assert page.count("no such job") == 2


def test_not_found_offers_to_search_again(client, simulator_tenant, sandbox):
    unknown = "0123456789abcdef0123456789abcdef"

    page = find(client, unknown).content.decode()

    assert f'<form method="get" action="/find/{unknown}/"' in page
    assert ">Try again</button>" in page


def test_every_page_has_a_lookup_field_in_its_header(client, simulator_tenant):
    page = client.get(f"/t/sim/jobs/{sim.MULTI_BATCH_JOB_ID}/").content.decode()

    assert '<form method="get" action="/" class="header-lookup" role="search">' in page
    assert '<label for="header-job" class="visually-hidden">Look up a job</label>' in page


def test_the_header_lookup_without_a_tenant_opens_the_job_in_any_visible_tenant(
    client, simulator_tenant
):
    response = client.get("/", {"job": sim.MULTI_BATCH_JOB_ID.upper()})

    assert response.status_code == 302
    assert response.url == f"/find/{sim.MULTI_BATCH_JOB_ID}/"
