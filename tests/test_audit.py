"""The security audit trail: one event for each thing a security review asks about, never a
secret in it, and no way to change or remove an event."""

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from aquadash import simulator as sim
from aquadash.models import AuditEvent, Tenant
from tests.conftest import CANARY_SECRET
from tests.test_sign_in import DOCUMENTED_LIMIT
from tests.test_tenant_admin import NEW_SECRET, change_url, form_data

HTMX = {"HTTP_HX_REQUEST": "true"}


def events(kind: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(kind=kind).order_by("at"))


def assert_no_secret_anywhere() -> None:
    for event in AuditEvent.objects.all():
        text = " ".join(str(value) for value in vars(event).values())
        assert CANARY_SECRET not in text and NEW_SECRET not in text


def test_a_secret_changed_in_the_admin_is_one_event_naming_the_field_only(
    admin_client: Client, tenant: Tenant
) -> None:
    admin_client.post(change_url(tenant), form_data(tenant, secret=NEW_SECRET))

    [event] = events(AuditEvent.Kind.CREDENTIALS_CHANGED)
    assert (event.username, event.tenant, event.target) == ("admin", tenant, "secret")
    assert event.detail == "secret replaced"
    assert_no_secret_anywhere()


def test_a_name_change_is_not_a_credential_event(admin_client: Client, tenant: Tenant) -> None:
    admin_client.post(change_url(tenant), form_data(tenant, name="Acme Corp"))

    assert events(AuditEvent.Kind.CREDENTIALS_CHANGED) == []


def test_a_failed_test_connection_is_recorded(admin_client: Client, simulator_tenant, simulator):
    simulator.add_fault("unauthorized", path="/oauth/token")
    url = reverse("admin:aquadash_tenant_test_connection", args=[simulator_tenant.pk])

    admin_client.post(url)

    [event] = events(AuditEvent.Kind.CONNECTION_TEST_FAILED)
    assert (event.username, event.tenant) == ("admin", simulator_tenant)
    assert "rejected" in event.detail


def test_unreadable_credentials_are_recorded_once_however_often_they_are_needed(
    simulator_tenant, make_user
) -> None:
    Tenant.objects.filter(pk=simulator_tenant.pk).update(encrypted_secret="gAAAAA-tampered")
    client = Client()
    client.force_login(make_user("member", groups=simulator_tenant.groups.all()))

    for _ in range(3):
        client.get(f"/t/{simulator_tenant.slug}/jobs/{sim.RUNNING_JOB_ID}/", **HTMX)

    [event] = events(AuditEvent.Kind.CREDENTIALS_UNREADABLE)
    assert event.tenant == simulator_tenant


def test_a_refused_tenant_is_recorded_once_per_person_and_tenant(
    simulator_tenant, outsider_client
) -> None:
    for _ in range(3):
        response = outsider_client.get(f"/t/{simulator_tenant.slug}/jobs/{sim.RUNNING_JOB_ID}/")
        assert response.status_code == 404
    outsider_client.get("/t/no-such-tenant/jobs/")

    [event] = events(AuditEvent.Kind.ACCESS_DENIED)
    assert (event.username, event.tenant) == ("outsider", simulator_tenant)
    assert event.target == f"/t/{simulator_tenant.slug}/jobs/{sim.RUNNING_JOB_ID}/"


def test_a_lockout_is_recorded(make_user) -> None:
    make_user("alice")
    client = Client()
    for _ in range(DOCUMENTED_LIMIT):
        client.post("/accounts/login/", {"username": "alice", "password": "guess"})

    [event] = events(AuditEvent.Kind.LOCKED_OUT)
    assert event.username == "alice"
    assert "127.0.0.1" in event.detail


def test_a_download_is_recorded(simulator_tenant, make_user) -> None:
    client = Client()
    client.force_login(make_user("member", groups=simulator_tenant.groups.all()))
    client.get(f"/t/{simulator_tenant.slug}/jobs/{sim.MULTI_BATCH_JOB_ID}/")
    raw = simulator_tenant.jobs.get(job_id=sim.MULTI_BATCH_JOB_ID).raw
    file_id = raw["batches"][0]["fileId"]
    response = client.get(
        f"/t/{simulator_tenant.slug}/jobs/{sim.MULTI_BATCH_JOB_ID}/files/{file_id}"
    )
    b"".join(response.streaming_content)

    [event] = events(AuditEvent.Kind.DOWNLOAD)
    assert (event.username, event.tenant) == ("member", simulator_tenant)
    assert event.target == f"job {sim.MULTI_BATCH_JOB_ID} file {file_id}"
    assert event.detail.startswith("result file: complete")


def test_nobody_can_change_or_delete_an_event(make_user, tenant) -> None:
    AuditEvent.record(AuditEvent.Kind.ACCESS_DENIED, tenant=tenant, username="x")
    event = AuditEvent.objects.get()
    root = Client()
    root.force_login(make_user("root", superuser=True))

    listing = root.get("/admin/aquadash/auditevent/?kind=access_denied")
    change = root.post(f"/admin/aquadash/auditevent/{event.pk}/change/", {"detail": "edited"})
    delete = root.post(f"/admin/aquadash/auditevent/{event.pk}/delete/", {"post": "yes"})

    assert listing.status_code == 200 and "tenant access denied" in listing.content.decode()
    assert change.status_code == 403 and delete.status_code == 403
    with pytest.raises(ValueError, match="never changed"):
        event.save()
    with pytest.raises(ValueError, match="never deleted"):
        event.delete()
    assert AuditEvent.objects.get().detail == ""


def test_the_trail_filters_by_tenant_user_kind_and_time(make_user, tenant, make_tenant) -> None:
    other = make_tenant("other", groups=[Group.objects.create(name="Other")])
    AuditEvent.record(AuditEvent.Kind.ACCESS_DENIED, tenant=tenant, username="x")
    AuditEvent.record(AuditEvent.Kind.LOCKED_OUT, tenant=other, username="y")
    root = Client()
    root.force_login(make_user("root", superuser=True))

    def shown(query: str) -> list[str]:
        response = root.get(f"/admin/aquadash/auditevent/?{query}")
        return [event.kind for event in response.context["cl"].result_list]

    assert shown(f"tenant__id__exact={other.pk}") == ["locked_out"]
    assert shown("q=x") == ["access_denied"]
    assert shown("kind__exact=locked_out") == ["locked_out"]
    assert shown("at__year=1999") == []
    assert len(shown(f"at__year={AuditEvent.objects.first().at.year}")) == 2
