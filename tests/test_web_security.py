"""Web protections, each tested so that the test fails when the protection is removed:
CSRF, the Content-Security-Policy and htmx configuration on every kind of HTML page, escaping
of everything Zuora sends on every page, fragment and error page, and outbound calls only
through the guarded session."""

import json
import re
import uuid
from html.parser import HTMLParser

import pytest
import requests
from django.test import Client
from django.urls import reverse

from aquadash import simulator as sim
from aquadash import zuora
from aquadash.models import JobSnapshot, Tenant
from tests.test_access import sample_url, url_patterns

HTMX = {"HTTP_HX_REQUEST": "true"}
HTMX_CONFIG = {
    "selfRequestsOnly": True,
    "allowEval": False,
    "allowScriptTags": False,
    "includeIndicatorStyles": False,
    "historyCacheSize": 0,
    "refreshOnHistoryMiss": True,
}
# Every attribute our own templates put on elements that starts with hx- or on.
OUR_HTMX_ATTRIBUTES = {"hx-get", "hx-trigger", "hx-swap", "hx-target", "hx-history", "hx-preserve"}


class Elements(HTMLParser):
    """Every start tag with its attributes, and the nonces of inline scripts and styles."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


@pytest.fixture
def member(simulator_tenant: Tenant, make_user) -> Client:
    client = Client()
    client.force_login(make_user("finance", groups=simulator_tenant.groups.all()))
    return client


# --- CSRF ---------------------------------------------------------------------------------------


@pytest.fixture
def strict_admin(make_user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("root", superuser=True))
    return client


def test_signing_out_without_a_csrf_token_is_refused(strict_admin):
    response = strict_admin.post("/accounts/logout/")

    assert response.status_code == 403
    assert strict_admin.get("/").status_code == 200  # still signed in


@pytest.mark.parametrize("debug", [False, True])
def test_a_failed_csrf_check_shows_aquadashs_own_page(strict_admin, settings, debug):
    settings.DEBUG = debug

    response = strict_admin.post("/accounts/logout/")

    html = response.content.decode()
    assert response.status_code == 403
    assert "Your form expired; reload and try again." in html
    assert '<span class="muted">root</span>' in html  # the usual header: they are signed in
    assert "CSRF verification failed" not in html


def test_an_admin_change_without_a_csrf_token_is_refused(strict_admin, tenant):
    url = reverse("admin:aquadash_tenant_change", args=[tenant.pk])

    response = strict_admin.post(url, {"name": "Renamed"})

    assert response.status_code == 403
    assert Tenant.objects.get(pk=tenant.pk).name == tenant.name


def test_test_connection_without_a_csrf_token_is_refused(strict_admin, simulator_tenant, simulator):
    url = reverse("admin:aquadash_tenant_test_connection", args=[simulator_tenant.pk])

    response = strict_admin.post(url)

    assert response.status_code == 403
    assert simulator.requests == []


def test_another_sessions_csrf_token_is_refused(strict_admin, make_user):
    other = Client(enforce_csrf_checks=True)
    other.force_login(make_user("other"))
    other.get("/")
    token = other.cookies["csrftoken"].value

    response = strict_admin.post("/accounts/logout/", {"csrfmiddlewaretoken": token})

    assert response.status_code == 403


def test_signing_in_without_a_csrf_token_is_refused(make_user):
    make_user("alice")

    response = Client(enforce_csrf_checks=True).post(
        "/accounts/login/", {"username": "alice", "password": "password"}
    )

    assert response.status_code == 403


def test_views_that_only_read_refuse_post(member, simulator_tenant):
    for url in ["/", f"/t/{simulator_tenant.slug}/jobs/"]:
        assert member.post(url).status_code == 405


# --- CSP and htmx on every kind of page -------------------------------------------------------


def html_pages(member: Client, tenant: Tenant) -> dict[str, object]:
    """One response of each kind of HTML page aquadash serves."""
    member.get(f"/t/{tenant.slug}/jobs/{sim.FULL_LOAD_JOB_ID}/")
    raw = JobSnapshot.objects.get(job_id=sim.FULL_LOAD_JOB_ID).raw
    batch = raw["batches"][1]
    job = f"/t/{tenant.slug}/jobs/{sim.FULL_LOAD_JOB_ID}"
    return {
        "home": member.get("/"),
        "job": member.get(f"{job}/"),
        "poll fragment": member.get(f"/t/{tenant.slug}/jobs/{sim.RUNNING_JOB_ID}/", **HTMX),
        "jobs list": member.get(f"/t/{tenant.slug}/jobs/"),
        "segments": member.get(f"{job}/batches/{batch['batchId']}/segments/"),
        "preview page": member.get(f"{job}/files/{batch['segments'][0]}/preview"),
        "preview fragment": member.get(f"{job}/files/{batch['segments'][0]}/preview", **HTMX),
        "job error": member.get(f"/t/{tenant.slug}/jobs/{'0' * 32}/"),
        "not found": member.get("/t/no-such-tenant/jobs/"),
        "sign-in": Client().get("/accounts/login/"),
        "admin": admin_page(member),
    }


def admin_page(member: Client):
    member.get("/")  # any page, for the session
    return Client().get("/admin/login/")


def csp(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split("; ")}


def test_every_kind_of_page_carries_the_strict_policy(member, simulator_tenant):
    for kind, response in html_pages(member, simulator_tenant).items():
        policy = csp(response)
        # Django names the nonce only in responses that use it.
        found = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"])
        nonce = found[1] if found else None
        allowed = ["'self'", f"'nonce-{nonce}'"] if nonce else ["'self'"]
        assert policy["default-src"] == ["'none'"], kind
        assert policy["script-src"] == allowed, kind
        assert policy["style-src"] == allowed, kind
        assert policy["frame-ancestors"] == ["'none'"], kind
        assert policy["object-src"] == ["'none'"], kind
        assert policy["base-uri"] == ["'none'"], kind
        assert policy["form-action"] == ["'self'"], kind
        assert response["X-Frame-Options"] == "DENY", kind
        elements = Elements(response.content.decode())
        for inline in elements.named("script") + elements.named("style"):
            if "src" not in inline:
                assert nonce and inline.get("nonce") == nonce, kind


def test_two_responses_have_different_nonces(member):
    first, second = member.get("/"), member.get("/")

    assert csp(first)["script-src"] != csp(second)["script-src"]


def test_every_full_page_of_ours_configures_htmx_safely(member, simulator_tenant):
    for kind, response in html_pages(member, simulator_tenant).items():
        if "fragment" in kind or kind in ("admin", "sign-in", "not found"):
            continue
        [meta] = [
            m
            for m in Elements(response.content.decode()).named("meta")
            if m.get("name") == "htmx-config"
        ]
        assert json.loads(meta["content"]) == HTMX_CONFIG, kind


def test_job_pages_keep_no_history_cache(member, simulator_tenant):
    html = member.get(f"/t/{simulator_tenant.slug}/jobs/{sim.RUNNING_JOB_ID}/").content.decode()

    assert any(attrs.get("hx-history") == "false" for _, attrs in Elements(html).tags)


# --- Our own error pages, in the demo too ---------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"/t/no-such-tenant/jobs/{sim.RUNNING_JOB_ID}/",  # a view's 404
        "/t/sim/jobs/not-a-job-id/",  # no URL pattern matches
        "/t/sim/jobs/not-a-job-id/raw.json",
    ],
)
def test_under_debug_a_missing_page_is_ours_not_djangos(member, settings, url):
    settings.DEBUG = True  # as `make run` serves

    response = member.get(url)

    html = response.content.decode()
    assert response.status_code == 404
    assert "There is nothing here, or nothing you have access to" in html
    assert "URLconf" not in html and "t/&lt;slug:tenant_slug&gt;" not in html
    assert csp(response)["default-src"] == ["'none'"]


def test_under_debug_a_bad_request_is_ours_not_djangos(member, settings):
    settings.DEBUG = True

    fields = "&".join(f"field{n}=1" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = member.get(f"/?{fields}")  # Django refuses so many fields as suspicious

    assert response.status_code == 400
    assert "That request could not be understood" in response.content.decode()
    assert "Traceback" not in response.content.decode()


def test_under_debug_an_address_without_its_slash_still_redirects(member, settings):
    settings.DEBUG = True

    response = member.get(f"/t/sim/jobs/{sim.RUNNING_JOB_ID}")

    assert response.status_code == 301
    assert response["Location"] == f"/t/sim/jobs/{sim.RUNNING_JOB_ID}/"


# --- Everything Zuora sends is text -----------------------------------------------------------

HOSTILE = '"><img src=x onerror=alert(1) hx-get="/evil"><script>alert(1)</script>{{ 7|add:7 }}'


def hostile_job(job_id: str) -> dict:
    text = {
        field: HOSTILE
        for field in (
            "name",
            "partner",
            "project",
            "message",
            "errorCode",
            "version",
            "format",
            "encrypted",
            "sourceData",
            "notifyUrl",
        )
    }
    batch = {field: HOSTILE for field in ("name", "query", "batchType", "apiVersion", "message")}
    batch |= {
        "batchId": "b" * 32,
        "status": "completed",
        "recordCount": 3,
        "fileId": "f" * 32,
        "deleted": {"column": HOSTILE, "format": HOSTILE},
    }
    return {
        "id": job_id,
        "status": "completed",
        "startTime": "2026-11-29 10:00:00",
        **text,
        "batches": [batch],
    }


def assert_inert(html: str, kind: str) -> None:
    """No element or attribute came from Zuora's text: only our own markup is markup."""
    assert "{{ 7|add:7 }}" in html or "14" not in html, kind
    for tag, attrs in Elements(html).tags:
        assert tag != "img", kind
        for name, value in attrs.items():
            assert not name.startswith("on"), f"{kind}: <{tag} {name}>"
            if name.startswith("hx-"):
                assert name in OUR_HTMX_ATTRIBUTES, f"{kind}: <{tag} {name}>"
                assert "/evil" not in (value or ""), kind
    scripts = [attrs for name, attrs in Elements(html).tags if name == "script"]
    assert all("src" in attrs for attrs in scripts), kind


def test_zuoras_text_is_inert_on_every_page_fragment_and_error_page(
    member, simulator_tenant, simulator
):
    job_id = uuid.uuid4().hex
    simulator.add_fault(
        "file_body",
        job_id=job_id,
        body=json.dumps(hostile_job(job_id)),
        content_type="application/json",
    )
    simulator.add_fault("file_body", path="/v1/files/", body=f"Id,{HOSTILE}\n1,{HOSTILE}\n")
    rejected = uuid.uuid4().hex
    simulator.add_fault(
        "file_body",
        job_id=rejected,
        content_type="application/json",
        body=json.dumps({"success": False, "reasons": [{"code": 53100320, "message": HOSTILE}]}),
    )
    base = f"/t/{simulator_tenant.slug}"

    pages = {
        "job page": member.get(f"{base}/jobs/{job_id}/"),
        "poll fragment": member.get(f"{base}/jobs/{job_id}/?refresh=1", **HTMX),
        "jobs list": member.get(f"{base}/jobs/"),
        "home": member.get("/"),
        "segments page": member.get(f"{base}/jobs/{job_id}/batches/{'b' * 32}/segments/"),
        "preview": member.get(f"{base}/jobs/{job_id}/files/{'f' * 32}/preview", **HTMX),
        "error page": member.get(f"{base}/jobs/{rejected}/"),
    }

    assert pages["job page"].status_code == 200
    assert pages["error page"].status_code == 502
    assert "&lt;script&gt;" in pages["preview"].content.decode()
    for kind, response in pages.items():
        assert_inert(response.content.decode(), kind)


def test_a_file_id_that_is_not_a_zuora_id_is_an_unreadable_answer(
    member, simulator_tenant, simulator
):
    job_id = uuid.uuid4().hex
    document = hostile_job(job_id) | {"name": "Fine"}
    document["batches"][0]["fileId"] = "../../v1/accounts"
    simulator.add_fault(
        "file_body", job_id=job_id, body=json.dumps(document), content_type="application/json"
    )

    response = member.get(f"/t/{simulator_tenant.slug}/jobs/{job_id}/")

    assert response.status_code == 502


# --- Outbound calls -----------------------------------------------------------------------------


def test_every_view_calls_out_only_through_the_guarded_session(
    member, simulator_tenant, simulator, monkeypatch
):
    sessions = []
    send = requests.Session.send

    def recorded_send(self, request, **kwargs):
        sessions.append((self, self.trust_env, kwargs.get("allow_redirects")))
        return send(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", recorded_send)
    member.get(f"/t/{simulator_tenant.slug}/jobs/{sim.FULL_LOAD_JOB_ID}/")
    raw = JobSnapshot.objects.get(job_id=sim.FULL_LOAD_JOB_ID).raw
    values = {
        "tenant_slug": simulator_tenant.slug,
        "job_id": sim.FULL_LOAD_JOB_ID,
        "batch_id": raw["batches"][1]["batchId"],
        "file_id": raw["batches"][1]["segments"][0],
    }
    driven = 0
    for route, _, pattern in url_patterns():
        if "tenant_slug" not in route:
            continue
        response = member.get(sample_url(route, pattern, values) + "?partner=p&project=q")
        if response.streaming:
            b"".join(response.streaming_content)
        driven += 1

    assert driven >= 10
    assert simulator.count(path_prefix="/v1/files/") >= 1
    assert sessions and all(
        session is zuora.SESSION and not trust_env and redirects is False
        for session, trust_env, redirects in sessions
    )
