"""Who sees which tenant: Tenant.objects.visible_to, @tenant_required, and login everywhere."""

import re
from collections.abc import Callable, Iterator

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import AnonymousUser, Group, User
from django.contrib.contenttypes.models import ContentType
from django.http import Http404, HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone

from aquadash import api
from aquadash.access import tenant_required
from aquadash.models import Tenant

# The only views anyone may reach without signing in.
# /metrics needs no sign-in but its own token (tests/test_metrics.py).
PUBLIC = {"login", "logout", "health", "favicon", "metrics", "admin:login", "admin:logout"}
# Single sign-on's start and the provider's answer are signing in (and 404 while it is off).
PUBLIC |= {"oidc_authentication_init", "oidc_authentication_callback", "oidc_logout"}


@pytest.fixture
def globex(make_tenant: Callable[..., Tenant]) -> Tenant:
    return make_tenant("globex", groups=[Group.objects.create(name="Globex staff")])


def visible_slugs(user: User | AnonymousUser) -> list[str]:
    return list(Tenant.objects.visible_to(user).values_list("slug", flat=True))


def test_member_sees_only_tenants_granted_to_their_groups(
    member: User, tenant: Tenant, globex: Tenant
) -> None:
    assert visible_slugs(member) == ["acme"]


def test_superuser_sees_every_active_tenant(
    make_user: Callable[..., User], tenant: Tenant, globex: Tenant
) -> None:
    assert visible_slugs(make_user("root", superuser=True)) == ["acme", "globex"]


def test_inactive_tenant_is_hidden_from_members_and_superusers(
    member: User, make_user: Callable[..., User], tenant: Tenant
) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(is_active=False)
    assert visible_slugs(member) == []
    assert visible_slugs(make_user("root", superuser=True)) == []


def test_anonymous_and_inactive_users_see_nothing(member: User, tenant: Tenant) -> None:
    assert visible_slugs(AnonymousUser()) == []
    member.is_active = False
    assert visible_slugs(member) == []


def test_tenant_granted_through_two_groups_is_listed_once(
    member: User, tenant: Tenant, globex: Tenant
) -> None:
    tenant.groups.add(globex.groups.get())
    member.groups.add(globex.groups.get())
    assert visible_slugs(member) == ["acme", "globex"]


@tenant_required
def show_tenant(request: HttpRequest, tenant: Tenant, job_id: str) -> HttpResponse:
    return HttpResponse(f"{tenant.slug} {job_id}")


@tenant_required
async def show_tenant_async(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    return HttpResponse(tenant.slug)


def request_as(user: User) -> HttpRequest:
    request = RequestFactory().get("/")
    request.user = user

    async def auser() -> User:
        return user

    request.auser = auser
    return request


def test_tenant_required_passes_the_tenant_in_place_of_the_slug(
    member: User, tenant: Tenant
) -> None:
    response = show_tenant(request_as(member), tenant_slug="acme", job_id="0" * 32)
    assert response.content == b"acme " + b"0" * 32


def test_tenant_required_answers_a_forbidden_tenant_like_a_missing_one(
    member: User, tenant: Tenant, globex: Tenant
) -> None:
    with pytest.raises(Http404) as forbidden:
        show_tenant(request_as(member), tenant_slug="globex", job_id="x")
    with pytest.raises(Http404) as missing:
        show_tenant(request_as(member), tenant_slug="no-such-tenant", job_id="x")
    assert str(forbidden.value) == str(missing.value)


@pytest.mark.django_db(transaction=True)
def test_tenant_required_works_on_async_views(member: User, tenant: Tenant, globex: Tenant) -> None:
    response = async_to_sync(show_tenant_async)(request_as(member), tenant_slug="acme")
    assert response.content == b"acme"
    with pytest.raises(Http404):
        async_to_sync(show_tenant_async)(request_as(member), tenant_slug="globex")


def url_patterns(
    resolver: URLResolver | None = None, prefix: str = "", namespace: str = ""
) -> Iterator[tuple[str, str, URLPattern]]:
    """(route with prefixes, namespaced name or "", pattern) for every pattern in the URLconf."""
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern).removeprefix("^").removesuffix("$")
        if isinstance(pattern, URLResolver):
            inner = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
            yield from url_patterns(pattern, route, inner)
        else:
            yield route, f"{namespace}{pattern.name}" if pattern.name else "", pattern


def sample_url(route: str, pattern: URLPattern, values: dict[str, str]) -> str:
    """A concrete URL that the pattern itself resolves, with a sample value per argument."""

    def sample(match: re.Match) -> str:
        name = match["name"]
        if name in values:
            return values[name]
        return "1" if match["converter"] == "int" else "0" * 32

    url = re.sub(r"\(\?P<(?P<name>\w+)>[^)]*\)", lambda m: values.get(m["name"], "x"), route)
    url = "/" + re.sub(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>", sample, url)
    assert resolve(url).func == pattern.callback, f"no sample URL for {route}; add a value"
    return url


@pytest.fixture
def sample_values(tenant: Tenant) -> dict[str, str]:
    return {
        "tenant_slug": tenant.slug,
        "object_id": str(tenant.pk),
        "id": str(tenant.pk),
        "content_type_id": str(ContentType.objects.get_for_model(Tenant).pk),
        "app_label": "aquadash",
        "url": "nowhere/",
    }


def test_every_view_but_login_logout_and_health_requires_login(
    client: Client, sample_values: dict[str, str]
) -> None:
    checked = []
    for route, name, pattern in url_patterns():
        if name in PUBLIC:
            continue
        url = sample_url(route, pattern, sample_values)
        for method in (client.get, client.post):
            response = method(url)
            if route.startswith("api/"):  # a token, not a session: JSON, never the login page
                assert response.status_code in (401, 404, 405), f"{url} ({name})"
                assert response["Content-Type"] == "application/json"
                continue
            location = response.headers.get("Location", "")
            assert response.status_code == 302, f"{method.__name__.upper()} {url} ({name})"
            assert location.startswith(("/accounts/login/", "/admin/login/")), url
        checked.append(url)
    assert len(checked) > 20


def without_csrf_token(body: bytes) -> bytes:
    """CSRF tokens are masked afresh for every response; they say nothing about the tenant."""
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b"", body)


@pytest.fixture
def stored_job(tenant: Tenant) -> str:
    """The sample job (every sample ID is 32 zeros) stored in `tenant`, as a completed stateful
    job with one batch and one file: every view of it has something to show."""
    zeros = "0" * 32
    raw = {
        "id": zeros,
        "name": "Acme confidential export",
        "status": "completed",
        "format": "CSV",
        "version": "1.1",
        "partner": "acme",
        "project": "a0B5f00000Session",
        "startTime": "2024-01-31T10:00:00+0000",
        "batches": [
            {
                "batchId": zeros,
                "name": "Accounts",
                "status": "completed",
                "query": "select Id from Account",
                "recordCount": 1,
                "fileId": zeros,
            }
        ],
    }
    tenant.jobs.create(
        job_id=zeros,
        name=raw["name"],
        status="completed",
        is_final=True,
        raw=raw,
        last_fetched_at=timezone.now(),
    )
    return raw["name"]


def test_every_tenant_view_answers_a_forbidden_tenant_like_a_missing_one(
    outsider_client: Client, sample_values: dict[str, str], stored_job: str
) -> None:
    outsider = User.objects.get(username="outsider")
    # The API's routes are asked with the outsider's own token, for no tenant.
    token = api.issue(outsider, name="probe", tenants=[], days=1)[1]
    checked = []
    for route, name, pattern in url_patterns():
        if "tenant_slug" not in route:
            continue
        forbidden_url = sample_url(route, pattern, sample_values)
        missing_url = sample_url(route, pattern, {**sample_values, "tenant_slug": "no-such"})
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if route.startswith("api/") else {}
        statuses = set()
        for method in ("get", "post"):
            forbidden = getattr(outsider_client, method)(forbidden_url, **headers)
            missing = getattr(outsider_client, method)(missing_url, **headers)
            assert forbidden.status_code in (404, 405), f"{method.upper()} {forbidden_url}"
            assert forbidden.status_code == missing.status_code
            body = without_csrf_token(forbidden.content.replace(b"/t/acme/", b"/t/no-such/"))
            assert body == without_csrf_token(missing.content), f"{method.upper()} {name}"
            assert stored_job.encode() not in forbidden.content
            statuses.add(forbidden.status_code)
        assert 404 in statuses, forbidden_url
        checked.append(forbidden_url)
    assert checked, "no URL pattern takes a tenant_slug"
