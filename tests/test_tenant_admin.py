"""The tenant admin: a write-only secret, no secret on any admin surface, Test connection."""

import re
from collections.abc import Callable

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, Permission, User
from django.core import mail
from django.core.checks import run_checks
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from pytest_django.fixtures import Settings

from aquadash import simulator as sim
from aquadash.models import Role, Tenant
from tests.conftest import CANARY_SECRET, DISALLOWED_BASE_URLS

NEW_SECRET = "replacement-secret-0c9e1f"


def form_data(tenant: Tenant | None = None, **changes: object) -> dict:
    data = {
        "name": tenant.name if tenant else "Globex",
        "slug": tenant.slug if tenant else "globex",
        "is_active": "on",
        "environment": tenant.environment if tenant else "us-prod-cloud2",
        "base_url": tenant.base_url if tenant else "",
        "time_zone": tenant.time_zone if tenant else "UTC",
        "entity_id": tenant.entity_id if tenant else "",
        "auth_method": tenant.auth_method if tenant else "oauth",
        "identity": tenant.identity if tenant else "globex-client-id",
        "secret": "",
        **grants_data(tenant),
    }
    return {**data, **changes}


def grants_data(tenant: Tenant | None, *added: tuple[Group, Role]) -> dict:
    """The Access inline as the form posts it: the tenant's grants unchanged, and `added`."""
    grants = list(tenant.grants.all()) if tenant else []
    data = {
        "grants-TOTAL_FORMS": str(len(grants) + len(added)),
        "grants-INITIAL_FORMS": str(len(grants)),
        "grants-MIN_NUM_FORMS": "0",
        "grants-MAX_NUM_FORMS": "1000",
    }
    for n, grant in enumerate(grants):
        data |= {f"grants-{n}-id": grant.pk, f"grants-{n}-group": grant.group_id}
        data |= {f"grants-{n}-role": grant.role, f"grants-{n}-tenant": tenant.pk}
    for n, (group, role) in enumerate(added, start=len(grants)):
        data |= {f"grants-{n}-group": group.pk, f"grants-{n}-role": role}
    return data


def change_url(tenant: Tenant) -> str:
    return reverse("admin:aquadash_tenant_change", args=[tenant.pk])


def stored_secret(tenant: Tenant) -> str:
    return Tenant.objects.get(pk=tenant.pk).zuora_connection().credentials.secret


@pytest.mark.parametrize("after", ["opening it", "a form error"])
def test_change_form_never_renders_the_secret(
    admin_client: Client, tenant: Tenant, after: str
) -> None:
    if after == "opening it":
        response = admin_client.get(change_url(tenant))
    else:  # the secret just typed must not come back in the form shown again
        response = admin_client.post(
            change_url(tenant), form_data(tenant, name="", secret=NEW_SECRET)
        )
        assert (
            response.status_code == 200 and "This field is required." in response.content.decode()
        )
    html = response.content.decode()
    inputs = re.findall(r"<input[^>]*name=\"secret\"[^>]*>", html)
    assert len(inputs) == 1
    assert 'type="password"' in inputs[0]
    assert "value=" not in inputs[0]
    assert CANARY_SECRET not in html and NEW_SECRET not in html
    assert tenant.encrypted_secret not in html
    assert not re.search(r"<input[^>]*type=\"hidden\"[^>]*name=\"[^\"]*secret", html)


def test_blank_secret_keeps_the_stored_one(admin_client: Client, tenant: Tenant) -> None:
    response = admin_client.post(change_url(tenant), form_data(tenant, name="Acme Corp"))
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.name == "Acme Corp"
    assert stored_secret(tenant) == CANARY_SECRET


def test_new_secret_replaces_the_stored_one(admin_client: Client, tenant: Tenant) -> None:
    response = admin_client.post(change_url(tenant), form_data(tenant, secret=NEW_SECRET))
    assert response.status_code == 302
    assert stored_secret(tenant) == NEW_SECRET


def test_secret_is_required_when_adding(admin_client: Client) -> None:
    response = admin_client.post(reverse("admin:aquadash_tenant_add"), form_data())
    assert response.status_code == 200
    assert "Enter the client secret or password." in response.content.decode()
    assert not Tenant.objects.exists()


def test_adding_stores_only_ciphertext_in_every_table(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("admin:aquadash_tenant_add"), form_data(secret=CANARY_SECRET)
    )
    assert response.status_code == 302
    assert stored_secret(Tenant.objects.get(slug="globex")) == CANARY_SECRET
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            assert CANARY_SECRET not in repr(cursor.fetchall()), table


def test_change_log_names_the_secret_field_but_not_its_value(
    admin_client: Client, tenant: Tenant
) -> None:
    admin_client.post(change_url(tenant), form_data(tenant, secret=NEW_SECRET))
    entry = LogEntry.objects.get(object_id=str(tenant.pk))
    assert "Client secret or password" in entry.get_change_message()
    assert NEW_SECRET not in entry.change_message
    assert NEW_SECRET not in entry.object_repr


def test_changelist_search_for_part_of_the_secret_finds_nothing(
    admin_client: Client, tenant: Tenant
) -> None:
    response = admin_client.get(
        reverse("admin:aquadash_tenant_changelist"), {"q": CANARY_SECRET[7:25]}
    )
    assert response.context["cl"].result_count == 0


def test_changelist_shows_no_secret(admin_client: Client, tenant: Tenant) -> None:
    html = admin_client.get(reverse("admin:aquadash_tenant_changelist")).content.decode()
    assert "Acme" in html
    assert tenant.encrypted_secret not in html


@pytest.mark.parametrize("url", DISALLOWED_BASE_URLS)
def test_admin_refuses_disallowed_base_urls(admin_client: Client, url: str) -> None:
    data = form_data(environment="custom", base_url=url, secret=NEW_SECRET)
    response = admin_client.post(reverse("admin:aquadash_tenant_add"), data)
    assert response.status_code == 200
    assert "not an allowed Zuora REST host" in response.content.decode()
    assert not Tenant.objects.exists()


def test_failing_admin_post_mails_a_report_without_the_secret(
    admin_client: Client, tenant: Tenant, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.ADMINS = ["ops@example.com"]

    def broken_save(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(Tenant, "save", broken_save)
    admin_client.raise_request_exception = False
    response = admin_client.post(change_url(tenant), form_data(tenant, secret=NEW_SECRET))
    assert response.status_code == 500
    (report,) = mail.outbox
    assert "the database went away" in report.body
    for text in (report.body, *(content for content, _ in report.alternatives)):
        assert NEW_SECRET not in text
        assert CANARY_SECRET not in text


def test_test_connection_button_records_the_exact_failure(
    admin_client: Client, make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant(environment="custom", base_url="http://127.0.0.1:1")
    url = reverse("admin:aquadash_tenant_test_connection", args=[tenant.pk])
    response = admin_client.post(url, follow=True)
    tenant.refresh_from_db()
    assert tenant.last_contact_ok is False
    assert "cannot reach Zuora" in tenant.last_contact_message
    assert [str(m) for m in response.context["messages"]] == [
        f"Acme: {tenant.last_contact_message}"
    ]


def test_change_form_offers_test_connection(admin_client: Client, tenant: Tenant) -> None:
    html = admin_client.get(change_url(tenant)).content.decode()
    assert reverse("admin:aquadash_tenant_test_connection", args=[tenant.pk]) in html


def test_test_connection_needs_the_change_permission(
    make_user: Callable[..., User], tenant: Tenant
) -> None:
    viewer = make_user("viewer")
    viewer.is_staff = True
    viewer.save()
    viewer.user_permissions.add(Permission.objects.get(codename="view_tenant"))
    client = Client()
    client.force_login(viewer)
    url = reverse("admin:aquadash_tenant_test_connection", args=[tenant.pk])
    assert client.post(url).status_code == 403
    tenant.refresh_from_db()
    assert tenant.last_contact_at is None


def test_test_connection_button_refuses_get(admin_client: Client, tenant: Tenant) -> None:
    url = reverse("admin:aquadash_tenant_test_connection", args=[tenant.pk])
    assert admin_client.get(url).status_code == 405
    tenant.refresh_from_db()
    assert tenant.last_contact_at is None


def test_test_connection_action_checks_each_selected_tenant(
    admin_client: Client, make_tenant: Callable[..., Tenant]
) -> None:
    tenants = [
        make_tenant(slug, environment="custom", base_url="http://127.0.0.1:1")
        for slug in ("acme", "globex")
    ]
    response = admin_client.post(
        reverse("admin:aquadash_tenant_changelist"),
        {"action": "test_connection", "_selected_action": [t.pk for t in tenants]},
        follow=True,
    )
    messages = [str(m) for m in response.context["messages"]]
    assert [m.split(":")[0] for m in messages] == ["Acme", "Globex"]
    assert Tenant.objects.filter(last_contact_ok=False).count() == 2


def test_test_connection_succeeds_against_the_simulator(
    admin_client: Client, simulator_tenant: Tenant
) -> None:
    url = reverse("admin:aquadash_tenant_test_connection", args=[simulator_tenant.pk])
    response = admin_client.post(url, follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "Sim: Zuora issued an OAuth token for these credentials. Zuora's allowance of "
        "sign-ins: 1,999 of 2,000 left this minute."
    ]
    simulator_tenant.refresh_from_db()
    assert simulator_tenant.last_contact_ok is True


def test_test_connection_reports_rejected_credentials(
    admin_client: Client, simulator_tenant: Tenant
) -> None:
    simulator_tenant.set_secret("not-the-secret-zuora-knows")
    simulator_tenant.save()
    url = reverse("admin:aquadash_tenant_test_connection", args=[simulator_tenant.pk])
    response = admin_client.post(url, follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "Sim: Zuora rejected the stored credentials for tenant Sim. Ask an admin to update them."
    ]
    simulator_tenant.refresh_from_db()
    assert simulator_tenant.last_contact_ok is False


@pytest.mark.parametrize(
    "change",
    [
        {"environment": "eu-prod"},
        {"environment": "custom", "base_url": "http://127.0.0.1:1"},
        {"auth_method": "basic"},
    ],
)
def test_changing_where_the_secret_goes_requires_it_again(
    admin_client: Client, tenant: Tenant, change: dict
) -> None:
    refused = admin_client.post(change_url(tenant), form_data(tenant, **change))
    accepted = admin_client.post(change_url(tenant), form_data(tenant, secret=NEW_SECRET, **change))

    assert refused.status_code == 200
    assert "enter the secret again" in refused.content.decode()
    assert accepted.status_code == 302
    assert stored_secret(tenant) == NEW_SECRET


def test_clearing_the_secret_stops_calls_to_zuora(
    admin_client: Client, simulator_tenant: Tenant, simulator, make_user
) -> None:
    response = admin_client.post(
        change_url(simulator_tenant), form_data(simulator_tenant, clear_secret="on")
    )
    member = Client()
    member.force_login(make_user("member", groups=simulator_tenant.groups.all()))

    page = member.get(f"/t/{simulator_tenant.slug}/jobs/{'a' * 32}/")

    assert response.status_code == 302
    assert Tenant.objects.get(pk=simulator_tenant.pk).encrypted_secret == ""
    assert page.status_code == 503
    assert "no stored Zuora secret" in page.content.decode()
    assert simulator.requests == []


def test_clearing_and_replacing_at_once_is_refused(admin_client: Client, tenant: Tenant) -> None:
    response = admin_client.post(
        change_url(tenant), form_data(tenant, secret=NEW_SECRET, clear_secret="on")
    )

    assert response.status_code == 200
    assert stored_secret(tenant) == CANARY_SECRET


def test_plain_http_is_refused_outside_development(
    admin_client: Client, tenant: Tenant, settings: Settings
) -> None:
    settings.ZUORA_ALLOW_HTTP = False
    response = admin_client.post(
        change_url(tenant),
        form_data(tenant, environment="custom", base_url="http://127.0.0.1:1", secret=NEW_SECRET),
    )

    assert response.status_code == 200
    assert "would send the secret unencrypted" in response.content.decode()
    assert Tenant.objects.get(pk=tenant.pk).environment == tenant.environment


@pytest.mark.django_db
def test_the_deploy_check_warns_about_extra_hosts(settings: Settings) -> None:
    settings.ZUORA_EXTRA_HOSTS = frozenset({("10.0.0.5", 8443)})
    warned = [m.id for m in run_checks(include_deployment_checks=True)]
    settings.ZUORA_EXTRA_HOSTS = frozenset()
    quiet = [m.id for m in run_checks(include_deployment_checks=True)]

    assert "aquadash.W001" in warned
    assert "aquadash.W001" not in quiet


SLACK_HOOK = "https://hooks.slack.com/services/T0001/B0001/Xx-webhook-secret-path"


def test_a_chat_webhook_is_stored_encrypted_and_never_rendered(
    admin_client: Client, tenant: Tenant
) -> None:
    response = admin_client.post(change_url(tenant), form_data(tenant, webhook_url=SLACK_HOOK))
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.webhook_url() == SLACK_HOOK
    assert "Xx-webhook-secret-path" not in tenant.encrypted_webhook_url

    html = admin_client.get(change_url(tenant)).content.decode()
    [field] = re.findall(r"<input[^>]*name=\"webhook_url\"[^>]*>", html)
    assert 'type="password"' in field and "value=" not in field
    assert "Xx-webhook-secret-path" not in html
    assert "One is stored (encrypted; never shown)" in html
    history = " ".join(str(entry.change_message) for entry in LogEntry.objects.all())
    assert "Xx-webhook-secret-path" not in history


def test_a_blank_webhook_field_keeps_the_stored_one_and_remove_clears_it(
    admin_client: Client, tenant: Tenant
) -> None:
    tenant.set_webhook_url(SLACK_HOOK)
    tenant.save()

    admin_client.post(change_url(tenant), form_data(tenant, name="Acme Corp"))
    tenant.refresh_from_db()
    assert tenant.webhook_url() == SLACK_HOOK

    admin_client.post(change_url(tenant), form_data(tenant, clear_webhook_url="on"))
    tenant.refresh_from_db()
    assert tenant.webhook_url() == ""


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.test/services/T0/B0/x",
        "https://hooks.slack.com.evil.test/services/x",
        "http://hooks.slack.com/services/x",
        "https://169.254.169.254/latest/meta-data/",
    ],
)
def test_a_webhook_host_not_on_the_allow_list_is_refused_at_save_time(
    admin_client: Client, tenant: Tenant, settings: Settings, url: str
) -> None:
    settings.AQUADASH_WEBHOOK_ALLOW_HTTP = False
    response = admin_client.post(change_url(tenant), form_data(tenant, webhook_url=url))
    assert response.status_code == 200
    assert "aquadash may post only to the chat webhook hosts" in response.content.decode()
    tenant.refresh_from_db()
    assert tenant.encrypted_webhook_url == ""


def test_choosing_username_and_password_warns_that_passwords_expire(
    admin_client: Client,
) -> None:
    response = admin_client.post(
        reverse("admin:aquadash_tenant_add"),
        form_data(auth_method="basic", identity="ops@globex.test", secret=NEW_SECRET),
        follow=True,
    )

    html = response.content.decode()
    assert Tenant.objects.get(slug="globex").auth_method == "basic"
    assert "passwords can expire" in html and "OAuth client instead" in html


def test_an_oauth_tenant_gets_no_password_warning(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("admin:aquadash_tenant_add"), form_data(secret=NEW_SECRET), follow=True
    )

    assert "passwords can expire" not in response.content.decode()


def test_the_add_form_offers_no_clearing_of_a_secret_not_yet_stored(admin_client: Client) -> None:
    html = admin_client.get(reverse("admin:aquadash_tenant_add")).content.decode()
    assert 'name="secret"' in html
    assert 'name="clear_secret"' not in html and "Clear the stored secret" not in html
    assert 'name="clear_webhook_url"' not in html


def test_the_change_form_offers_clearing_only_what_is_stored(
    admin_client: Client, tenant: Tenant
) -> None:
    html = admin_client.get(change_url(tenant)).content.decode()
    assert 'name="clear_secret"' in html
    assert 'name="clear_webhook_url"' not in html  # no webhook stored

    tenant.set_webhook_url(SLACK_HOOK)
    tenant.save()
    assert 'name="clear_webhook_url"' in admin_client.get(change_url(tenant)).content.decode()


def test_a_clear_box_posted_to_the_add_form_is_ignored(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("admin:aquadash_tenant_add"), form_data(secret=NEW_SECRET, clear_secret="on")
    )
    assert response.status_code == 302
    assert stored_secret(Tenant.objects.get(slug="globex")) == NEW_SECRET


def test_the_base_url_help_shows_a_url_the_field_accepts(
    admin_client: Client, settings: Settings
) -> None:
    settings.ZUORA_EXTRA_HOSTS = settings.ZUORA_EXTRA_HOSTS | {("127.0.0.1", 8765)}
    html = admin_client.get(reverse("admin:aquadash_tenant_add")).content.decode()
    help_text = re.search(r'<div class="help" id="id_base_url_helptext">(.*?)</div>', html, re.S)
    [example] = re.findall(r"https?://[\w.:]+", help_text[1])

    response = admin_client.post(
        reverse("admin:aquadash_tenant_add"),
        form_data(environment="custom", base_url=example, secret=NEW_SECRET),
    )

    assert example == "http://127.0.0.1:8765"
    assert response.status_code == 302
    assert Tenant.objects.get(slug="globex").base_url == example


def test_a_base_url_without_its_scheme_is_refused_saying_what_to_type(
    admin_client: Client, settings: Settings
) -> None:
    settings.ZUORA_EXTRA_HOSTS = settings.ZUORA_EXTRA_HOSTS | {("127.0.0.1", 8765)}
    response = admin_client.post(
        reverse("admin:aquadash_tenant_add"),
        form_data(environment="custom", base_url="127.0.0.1:8765", secret=NEW_SECRET),
    )
    assert response.status_code == 200
    assert "Type the whole URL, starting with https://" in response.content.decode()
    assert not Tenant.objects.exists()


def test_test_connection_is_one_of_the_object_tools(admin_client: Client, tenant: Tenant) -> None:
    html = admin_client.get(change_url(tenant)).content.decode()
    tools = re.search(r'<ul class="object-tools">(.*?)</ul>', html, re.S)[1]
    assert re.search(r"<button type=\"submit\">Test connection</button>", tools)
    assert "History" in tools


def test_the_tenant_list_says_when_with_its_zone(admin_client: Client, tenant: Tenant) -> None:
    tenant.record_contact(True, "Zuora issued an OAuth token for these credentials.")
    html = admin_client.get(reverse("admin:aquadash_tenant_changelist")).content.decode()
    assert re.search(r"OK, \d{4}-\d\d-\d\d \d\d:\d\d UTC", html)


def look_up(client: Client, job_id: str) -> None:
    assert client.get(f"/t/sim/jobs/{job_id}/").status_code in (200, 404, 502)


def tenant_writes(queries: CaptureQueriesContext) -> int:
    return sum(q["sql"].startswith('UPDATE "aquadash_tenant"') for q in queries.captured_queries)


def test_a_lookup_is_the_tenants_last_contact(
    finance_client: Client, simulator_tenant: Tenant
) -> None:
    look_up(finance_client, sim.MULTI_BATCH_JOB_ID)
    simulator_tenant.refresh_from_db()
    assert simulator_tenant.last_contact_ok is True
    assert simulator_tenant.last_contact_message == "Zuora answered a page, download or watch."


def test_a_job_zuora_does_not_have_still_counts_as_contact(
    finance_client: Client, simulator_tenant: Tenant
) -> None:
    look_up(finance_client, "f" * 32)
    simulator_tenant.refresh_from_db()
    assert simulator_tenant.last_contact_ok is True


def test_rejected_credentials_in_a_lookup_are_the_last_contact(
    finance_client: Client, simulator_tenant: Tenant
) -> None:
    simulator_tenant.set_secret("not-the-secret-zuora-knows")
    simulator_tenant.save()
    look_up(finance_client, sim.MULTI_BATCH_JOB_ID)
    simulator_tenant.refresh_from_db()
    assert simulator_tenant.last_contact_ok is False
    assert "rejected the stored credentials" in simulator_tenant.last_contact_message


def test_lookups_that_keep_working_write_the_tenant_once_a_minute(
    finance_client: Client, simulator_tenant: Tenant, simulator
) -> None:
    with CaptureQueriesContext(connection) as queries:
        look_up(finance_client, sim.MULTI_BATCH_JOB_ID)
        look_up(finance_client, sim.RUNNING_JOB_ID)

    assert simulator.count("GET", job_id=sim.MULTI_BATCH_JOB_ID) == 1  # both asked Zuora
    assert simulator.count("GET", job_id=sim.RUNNING_JOB_ID) == 1
    assert tenant_writes(queries) == 1


def test_a_tenant_that_stops_working_is_written_at_once(
    finance_client: Client, simulator_tenant: Tenant
) -> None:
    look_up(finance_client, sim.MULTI_BATCH_JOB_ID)
    tenant = Tenant.objects.get(pk=simulator_tenant.pk)
    tenant.set_secret("not-the-secret-zuora-knows")
    tenant.save()

    look_up(finance_client, sim.RUNNING_JOB_ID)  # within the minute

    tenant.refresh_from_db()
    assert tenant.last_contact_ok is False
