"""Roles: a viewer sees job pages and status, a downloader also result data (files, previews,
exports of results), an admin also the tenant's settings. Each tenant URL is asked by each role;
a refused role is answered exactly like a tenant one may not see."""

from collections.abc import Callable
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Group, User
from django.http import Http404, HttpRequest, HttpResponse
from django.test import Client

from aquadash import simulator as sim
from aquadash.access import NOT_FOUND, tenant_required
from aquadash.models import AuditEvent, Grant, JobSnapshot, Role, Tenant, Watch
from tests.test_access import request_as, url_patterns, without_csrf_token
from tests.test_tenant_isolation import JOB_ID, TENANT_VIEWS, Side, shows, side

HTMX = {"HTTP_HX_REQUEST": "true"}
RESULT_DATA = {"joined", "file", "preview", "zip"}  # what TENANT_VIEWS calls result data
FILE_LINK_WORDS = ["Download whole batch", "CSV for Excel", "Preview",
                   "Download all as zip", "/files/"]  # fmt: skip
NOT_YOURS = "Your role on Sim is viewer: files need the downloader role"


@pytest.fixture
def roles(
    simulator: sim.Simulator, simulator_tenant: Tenant, make_user: Callable[..., User]
) -> tuple[Side, dict[Role, Client]]:
    """The simulator tenant holding JOB_ID, and a client signed in for each role on it: the
    downloader through the tenant's own group ("Sim staff", granted as every grant was before
    roles), the others through groups granted in their role."""
    own = side(simulator, simulator_tenant, make_user, records=3)
    clients = {Role.DOWNLOADER: own.client}
    for role in (Role.VIEWER, Role.ADMIN):
        group = Group.objects.create(name=f"Sim {role}s")
        Grant.objects.create(tenant=simulator_tenant, group=group, role=role)
        clients[role] = Client()
        clients[role].force_login(make_user(f"sim-{role}", groups=[group]))
    return own, clients


def nothing_of(own: Side) -> Side:
    """A side whose marker is in no answer, for `shows` on one tenant."""
    return Side(own.tenant, own.client, "nowhere-marker", {}, {})


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize(("template", "headers", "what"), TENANT_VIEWS)
def test_each_role_gets_what_it_may_on_every_tenant_view(roles, role, template, headers, what):
    own, clients = roles

    response = clients[role].get(own.url(template), **headers)

    if role == Role.VIEWER and what in RESULT_DATA:
        assert response.status_code == 404, template
        assert own.marker.encode() not in response.content
    else:
        shows(response, own, nothing_of(own), what)


@pytest.mark.parametrize("role", list(Role))
def test_each_role_may_ask_for_a_sessions_last_completed_job(roles, outsider_client, role):
    own, clients = roles
    url = f"/t/{own.tenant.slug}/last-completed/?partner=..&project=x"  # refused before Zuora

    assert clients[role].get(url).status_code == 400
    assert outsider_client.get(url).status_code == 404


def test_every_tenant_url_is_asked_by_every_role_here():
    # The API's routes are asked per role in test_api.py.
    routes = {
        route
        for route, _, _ in url_patterns()
        if "tenant_slug" in route and not route.startswith("api/")
    }
    asked = {template.partition("?")[0] for template, _, _ in TENANT_VIEWS}
    asked = {each.replace("{t}/", "").replace("{job}", "<zuora_id:job_id>") for each in asked}
    asked = {each.replace("{batch}", "<zuora_id:batch_id>").replace("{file}", "<zuora_id:file_id>")
             for each in asked} | {"last-completed/"}  # fmt: skip
    assert {route.partition("<slug:tenant_slug>/")[2] for route in routes} == asked


@pytest.mark.parametrize("template", [t for t, _, what in TENANT_VIEWS if what in RESULT_DATA])
def test_a_viewer_gets_the_same_not_found_for_a_download_as_for_an_unknown_tenant(roles, template):
    own, clients = roles
    viewer = clients[Role.VIEWER]

    refused = viewer.get(own.url(template))
    unknown = viewer.get(own.url(template).replace(f"/t/{own.tenant.slug}/", "/t/no-such/"))

    assert refused.status_code == unknown.status_code == 404
    body = without_csrf_token(refused.content.replace(b"/t/sim/", b"/t/no-such/"))
    assert body == without_csrf_token(unknown.content)


def test_a_refused_download_is_audited_as_a_refusal(roles):
    own, clients = roles
    url = own.url("{t}/jobs/{job}/download.zip")

    clients[Role.VIEWER].get(url)

    event = AuditEvent.objects.get(kind=AuditEvent.Kind.ACCESS_DENIED)
    assert (event.username, event.tenant, event.target) == ("sim-viewer", own.tenant, url)


def test_a_viewers_job_page_has_no_file_links_and_says_why(roles):
    own, clients = roles

    html = clients[Role.VIEWER].get(own.url("{t}/jobs/{job}/")).content.decode()

    assert NOT_YOURS in html
    assert [words for words in FILE_LINK_WORDS if words in html] == []
    assert own.raw["batches"][0]["segments"][0] in html  # the IDs stay: they are not data


@pytest.mark.parametrize("role", [Role.DOWNLOADER, Role.ADMIN])
def test_a_downloaders_job_page_offers_every_file_link(roles, role):
    own, clients = roles

    html = clients[role].get(own.url("{t}/jobs/{job}/")).content.decode()

    assert NOT_YOURS not in html
    assert [words for words in FILE_LINK_WORDS if words not in html] == []


def test_a_viewers_segments_page_lists_the_ids_without_links_and_says_why(roles):
    own, clients = roles

    html = clients[Role.VIEWER].get(own.url("{t}/jobs/{job}/batches/{batch}/segments/")).content

    assert NOT_YOURS in html.decode()
    assert b"/files/" not in html and b"Download whole batch" not in html
    assert own.raw["batches"][0]["segments"][1].encode() in html


@pytest.mark.parametrize("minutes_since_checked", [0, 5])  # the batches, then the whole section
def test_a_page_kept_rendered_for_a_downloader_is_not_shown_to_a_viewer(
    roles, minutes_since_checked
):
    own, clients = roles
    JobSnapshot.objects.filter(tenant=own.tenant, job_id=JOB_ID).update(
        last_fetched_at=JobSnapshot.objects.get(tenant=own.tenant, job_id=JOB_ID).last_fetched_at
        - timedelta(minutes=minutes_since_checked)
    )
    url = own.url("{t}/jobs/{job}/")
    assert "Download all as zip" in clients[Role.DOWNLOADER].get(url).content.decode()

    html = clients[Role.VIEWER].get(url).content.decode()

    assert "Download all as zip" not in html and NOT_YOURS in html
    assert "Download all as zip" in clients[Role.DOWNLOADER].get(url).content.decode()


def test_a_viewer_may_refresh_and_watch_a_running_job(simulator_tenant, make_user):
    group = Group.objects.create(name="Sim viewers")
    Grant.objects.create(tenant=simulator_tenant, group=group, role=Role.VIEWER)
    viewer = Client()
    viewer.force_login(make_user("viewer", groups=[group]))
    url = f"/t/sim/jobs/{sim.RUNNING_JOB_ID}/"

    assert viewer.post(url).status_code == 302  # Refresh from Zuora
    assert viewer.post(url + "watch/", {"action": "watch"}).status_code == 302

    assert Watch.objects.get().user.username == "viewer"


def test_the_best_of_a_users_grants_counts_and_the_tenant_is_listed_once(
    simulator_tenant, make_user
):
    viewers = Group.objects.create(name="Sim viewers")
    Grant.objects.create(tenant=simulator_tenant, group=viewers, role=Role.VIEWER)
    user = make_user("both", groups=[viewers, *simulator_tenant.groups.exclude(pk=viewers.pk)])

    [tenant] = Tenant.objects.visible_to(user)

    assert tenant.user_role == Role.DOWNLOADER
    assert list(Tenant.objects.visible_to(user, role=Role.DOWNLOADER)) == [tenant]
    assert list(Tenant.objects.visible_to(user, role=Role.ADMIN)) == []


def test_a_superuser_is_admin_of_every_active_tenant(make_tenant, make_user):
    make_tenant("acme")
    make_tenant("closed", is_active=False)

    tenants = list(Tenant.objects.visible_to(make_user("root", superuser=True), role=Role.ADMIN))

    assert [(tenant.slug, tenant.user_role) for tenant in tenants] == [("acme", Role.ADMIN)]


def test_roles_are_ordered_viewer_downloader_admin():
    assert [role.value for role in sorted(Role, key=lambda role: role.rank)] == [
        "viewer",
        "downloader",
        "admin",
    ]


@tenant_required(role=Role.DOWNLOADER)
async def downloaders_only(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    return HttpResponse(f"{tenant.slug} {tenant.user_role}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("role", list(Role))
def test_an_async_view_asks_for_its_role_too(tenant, make_user, role):
    group = Group.objects.create(name=f"Acme {role}s")
    Grant.objects.create(tenant=tenant, group=group, role=role)
    request = request_as(make_user("someone", groups=[group]))

    if role == Role.VIEWER:
        with pytest.raises(Http404, match=NOT_FOUND):
            async_to_sync(downloaders_only)(request, tenant_slug="acme")
    else:
        response = async_to_sync(downloaders_only)(request, tenant_slug="acme")
        assert response.content == f"acme {role}".encode()
