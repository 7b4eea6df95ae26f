"""The read-only JSON API and personal API tokens: the token's life (shown once, hashed,
expiry, revocation, its owner), who may read what through it, the throttle, the single flight
shared with the pages, JSON errors, downloads, the audit trail and the OpenAPI description."""

import hashlib
import io
import json
import threading
import zipfile
from datetime import timedelta

import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.urls import get_resolver
from django.utils import timezone

from aquadash import api, redaction
from aquadash import simulator as sim
from aquadash.models import ApiToken, AuditEvent, Download, Grant, Role, Tenant
from tests.conftest import gunicorn_serving, start_django
from tests.test_job_views import HTMX, job_gets, job_url, next_interval


@pytest.fixture
def person(simulator_tenant: Tenant, make_user) -> User:
    """A member of the simulator tenant's group."""
    return make_user("analyst", groups=simulator_tenant.groups.all())


def token_for(user: User, tenants: list[Tenant], *, days: int = 30) -> str:
    return api.issue(user, name="script", tenants=tenants, days=days)[1]


@pytest.fixture
def token(person: User, simulator_tenant: Tenant) -> str:
    return token_for(person, [simulator_tenant])


def get(path: str, token: str | None = None, client: Client | None = None, **extra: str):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return (client or Client()).get(path, **headers, **extra)


def job_api(tenant: Tenant | str, job_id: str) -> str:
    return f"/api/v1/tenants/{getattr(tenant, 'slug', tenant)}/jobs/{job_id}"


def error(response) -> dict:
    assert response["Content-Type"] == "application/json"
    return response.json()["error"]


# --- Reading a job ------------------------------------------------------------------------------


def test_a_token_reads_a_job_as_json_with_the_pages_facts(token, simulator_tenant):
    response = get(job_api(simulator_tenant, sim.DOC_SEGMENTS_JOB_ID), token)

    document = response.json()
    assert response.status_code == 200
    assert document["version"] == 1
    assert document["job"]["id"] == sim.DOC_SEGMENTS_JOB_ID
    assert document["job"]["status"] == "completed" and document["job"]["final"]
    assert document["job"]["page"].endswith(job_url(simulator_tenant, sim.DOC_SEGMENTS_JOB_ID))
    assert document["retention"]["job_deleted_on"]
    assert document["totals"]["batches"] == len(document["batches"])
    batch = document["batches"][0]
    assert [f["part"] for f in batch["files"]] == list(range(1, len(batch["files"]) + 1))
    assert batch["files"][0]["download"].startswith("http://testserver/api/v1/tenants/sim/")
    assert response["Cache-Control"].startswith("max-age=0")


def test_a_running_job_says_when_asking_again_can_bring_news(token, simulator_tenant):
    document = get(job_api(simulator_tenant, sim.RUNNING_JOB_ID), token).json()

    assert not document["job"]["final"]
    assert document["fetched"]["from_zuora"] and document["fetched"]["ask_again_at"]


# --- The token's life ---------------------------------------------------------------------------


def test_the_token_page_shows_a_new_token_once(person, simulator_tenant):
    client = Client()
    client.force_login(person)

    made = client.post(
        "/account/api-tokens/",
        {"name": "Power Query", "tenants": [simulator_tenant.pk], "days": "30"},
    )
    shown = made.content.decode()
    token = shown.split("<code>aqd_", 1)[1].split("<", 1)[0]
    again = client.get("/account/api-tokens/").content.decode()

    assert made.status_code == 200 and "Copy it now" in shown
    assert len(token) == api.LENGTH and token.isalnum()
    assert "aqd_" + token not in again
    assert "Power Query" in again and ApiToken.objects.get().prefix in again
    assert get(job_api(simulator_tenant, sim.DOC_FILEID_JOB_ID), "aqd_" + token).status_code == 200


def test_the_token_is_stored_only_as_its_hash(token):
    stored = ApiToken.objects.values().get()

    assert stored["secret_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert not any(token in str(value) for value in stored.values())
    assert token.startswith("aqd_") and stored["prefix"] == token[:10]


def test_a_token_is_made_only_for_tenants_the_person_may_see(person, make_tenant):
    foreign = make_tenant("foreign")
    client = Client()
    client.force_login(person)

    response = client.post(
        "/account/api-tokens/", {"name": "x", "tenants": [foreign.pk], "days": "30"}
    )

    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_an_expired_token_is_refused(token, simulator_tenant):
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = get(job_api(simulator_tenant, sim.DOC_FILEID_JOB_ID), token)

    assert response.status_code == 401
    assert "expired" in error(response)["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_token_is_refused(person, token, simulator_tenant):
    client = Client()
    client.force_login(person)

    client.post(f"/account/api-tokens/{ApiToken.objects.get().pk}/revoke")
    response = get(job_api(simulator_tenant, sim.DOC_FILEID_JOB_ID), token)

    assert response.status_code == 401
    assert "revoked" in error(response)["message"]
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.API_TOKEN_REVOKED).exists()


def test_nobody_revokes_another_persons_token(token, make_user):
    client = Client()
    client.force_login(make_user("someone"))

    response = client.post(f"/account/api-tokens/{ApiToken.objects.get().pk}/revoke")

    assert response.status_code == 404
    assert ApiToken.objects.get().revoked_at is None


def test_a_disabled_owners_token_is_refused(person, token, simulator_tenant):
    # As a bulk update or a directory sync disables accounts: no save(), so no signal.
    User.objects.filter(pk=person.pk).update(is_active=False)

    response = get(job_api(simulator_tenant, sim.DOC_FILEID_JOB_ID), token)

    assert response.status_code == 401
    assert "disabled" in error(response)["message"]


def test_enabling_an_account_again_does_not_revive_its_tokens(person, token, simulator_tenant):
    person.is_active = False
    person.save()
    person.is_active = True
    person.save()

    response = get(job_api(simulator_tenant, sim.DOC_FILEID_JOB_ID), token)

    assert response.status_code == 401
    assert "revoked" in error(response)["message"]


def test_a_deleted_owners_token_is_gone(person, token, simulator_tenant):
    person.delete()

    response = get(job_api(simulator_tenant, sim.DOC_FILEID_JOB_ID), token)

    assert response.status_code == 401
    assert not ApiToken.objects.exists()


def test_an_unknown_token_or_none_is_a_json_401_not_the_login_page(token, simulator_tenant):
    url = job_api(simulator_tenant, sim.DOC_FILEID_JOB_ID)

    for response in (get(url), get(url, "aqd_" + "x" * 40), get(url, token[:-1])):
        assert response.status_code == 401
        assert error(response)["title"] in ("API token needed", "Unknown API token")


def test_a_signed_in_session_does_not_open_the_api(member_client, tenant):
    response = member_client.get(job_api(tenant, sim.DOC_FILEID_JOB_ID))

    assert response.status_code == 401


# --- Who may read what --------------------------------------------------------------------------


def test_a_token_loses_a_tenant_its_owner_loses(person, token, simulator_tenant):
    unknown = get(job_api("no-such-tenant", sim.DOC_FILEID_JOB_ID), token)
    person.groups.clear()

    lost = get(job_api(simulator_tenant, sim.DOC_FILEID_JOB_ID), token)

    assert lost.status_code == unknown.status_code == 404
    assert lost.json() == unknown.json()


def test_a_token_reads_only_the_tenants_it_was_made_for(person, simulator_tenant, make_tenant):
    other = make_tenant("other", groups=[Group.objects.create(name="Other staff")])
    person.groups.add(*other.groups.all())
    token = token_for(person, [other])

    response = get(job_api(simulator_tenant, sim.DOC_FILEID_JOB_ID), token)
    listed = get("/api/v1/tenants", token).json()

    assert response.status_code == 404
    assert error(response)["message"] == "No such tenant."
    assert [t["slug"] for t in listed["tenants"]] == ["other"]


@pytest.fixture
def viewer_only(person: User, simulator_tenant: Tenant) -> User:
    """`person`, whose groups' grants of the simulator tenant are lowered to viewer."""
    Grant.objects.filter(tenant=simulator_tenant).update(role=Role.VIEWER)
    return person


def test_downloads_need_the_downloader_role(viewer_only, token, simulator_tenant):
    document = get(job_api(simulator_tenant, sim.MULTI_BATCH_JOB_ID), token).json()
    batch = document["batches"][0]

    for url in (batch["files"][0]["download"], batch["download"], document["job"]["download"]):
        response = get(url, token)
        assert response.status_code == 404, url
        assert error(response)["message"] == "No such tenant."


def test_a_download_the_pages_would_ask_about_is_not_asked_of_a_script(
    token, simulator_tenant, simulator, settings
):
    settings.AQUADASH_CONFIRM_GB = 1e-9  # one byte: every estimate is above it
    job_id = simulator.add_job(records=30, segments=3)
    document = get(job_api(simulator_tenant, job_id), token).json()
    batch = document["batches"][0]
    b"".join(get(batch["files"][0]["download"], token).streaming_content)  # now a size is known

    for url in (batch["download"], document["job"]["download"]):
        response = get(url, token)
        assert response.status_code == 200 and response.streaming, url
        b"".join(response.streaming_content)


# --- Throttle -----------------------------------------------------------------------------------


def test_each_token_is_throttled_on_its_own(person, token, simulator_tenant, settings):
    settings.AQUADASH_API_RATE = (3, 60)
    other = token_for(person, [simulator_tenant])
    url = job_api(simulator_tenant, sim.DOC_FILEID_JOB_ID)

    statuses = [get(url, token).status_code for _ in range(4)]
    refused = get(url, token)

    assert statuses == [200, 200, 200, 429]
    assert 1 <= int(refused["Retry-After"]) <= 61
    assert error(refused)["title"] == "Too many requests"
    assert get(url, other).status_code == 200


# --- One call to Zuora, however many ask --------------------------------------------------------


def test_api_polls_and_page_polls_share_one_call_to_zuora(
    token, finance_client, simulator_tenant, simulator
):
    url = job_api(simulator_tenant, sim.RUNNING_JOB_ID)

    for _ in range(3):
        assert get(url, token).status_code == 200
        assert finance_client.get(job_url(simulator_tenant, sim.RUNNING_JOB_ID), **HTMX)

    assert job_gets(simulator, sim.RUNNING_JOB_ID) == 1


@pytest.mark.django_db(transaction=True)
def test_many_api_pollers_at_once_cause_one_call_to_zuora(person, simulator_tenant, simulator):
    tokens = [token_for(person, [simulator_tenant]) for _ in range(12)]
    url = job_api(simulator_tenant, sim.RUNNING_JOB_ID)
    start = threading.Barrier(len(tokens), timeout=30)
    statuses = []

    def poll(token: str) -> None:
        try:
            start.wait()
            statuses.append(get(url, token).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=poll, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 12
    assert job_gets(simulator, sim.RUNNING_JOB_ID) == 1


def test_a_final_job_is_read_from_storage(token, simulator_tenant, simulator):
    url = job_api(simulator_tenant, sim.DOC_FILEID_JOB_ID)
    get(url, token)
    next_interval()

    for _ in range(3):
        get(url, token)

    assert job_gets(simulator, sim.DOC_FILEID_JOB_ID) == 1


# --- Errors -------------------------------------------------------------------------------------


def test_an_unknown_job_is_the_pages_404_as_json(token, simulator_tenant):
    response = get(job_api(simulator_tenant, "0" * 32), token)

    assert response.status_code == 404
    assert error(response)["title"] == "No such job"
    assert error(response)["next_step"] == "home"


def test_a_rate_limit_is_a_503_with_retry_after(token, simulator_tenant, simulator):
    simulator.add_fault("rate_limited", job_id=sim.RUNNING_JOB_ID, seconds=120)

    response = get(job_api(simulator_tenant, sim.RUNNING_JOB_ID), token)

    assert response.status_code == 503
    assert error(response)["title"] == "Zuora asks us to slow down"
    assert error(response)["next_step"] == "retry"
    assert response["Retry-After"] == "120"


def test_the_api_only_reads(token, simulator_tenant):
    response = Client(enforce_csrf_checks=True).post(
        job_api(simulator_tenant, sim.DOC_FILEID_JOB_ID), HTTP_AUTHORIZATION=f"Bearer {token}"
    )

    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert error(response)["title"] == "Method not allowed"


def test_an_unknown_api_address_is_json(token):
    for path in ("/api/", "/api/v1/jobs", "/api/v2/tenants"):
        response = get(path)
        assert response.status_code == 404
        assert error(response)["title"] == "Not found"


def test_a_job_not_stored_has_no_files_yet(token, simulator_tenant):
    response = get(job_api(simulator_tenant, sim.MULTI_BATCH_JOB_ID) + "/download.zip", token)

    assert response.status_code == 404
    assert "open its page first" in error(response)["message"]


# --- Downloads ----------------------------------------------------------------------------------


def from_zuora(simulator: sim.Simulator, file_id: str) -> bytes:
    auth = (sim.DEMO_USERNAME, sim.DEMO_PASSWORD)
    return requests.get(f"{simulator.url}/v1/files/{file_id}", auth=auth, timeout=10).content


def test_every_kind_of_download_through_the_api(token, simulator_tenant, simulator, person):
    document = get(job_api(simulator_tenant, sim.MULTI_BATCH_JOB_ID), token).json()
    batch = document["batches"][0]
    file_url = batch["files"][0]["download"]

    plain, workbook, whole, zipped = (
        b"".join(get(url, token).streaming_content)  # each read whole before the next starts
        for url in (
            file_url,
            file_url + "?as=xlsx",
            batch["download"] + "?as=excel",
            document["job"]["download"],
        )
    )

    assert plain == from_zuora(simulator, batch["files"][0]["id"])
    assert workbook[:2] == b"PK"
    assert whole.startswith(b"\xef\xbb\xbf")
    names = zipfile.ZipFile(io.BytesIO(zipped)).namelist()
    assert len(names) == len(document["batches"])
    trail = set(Download.objects.values_list("username", "outcome"))
    assert trail == {(person.username, "complete")}


def test_heavy_download_limits_apply_to_the_api(token, simulator_tenant, settings):
    settings.AQUADASH_HEAVY_DOWNLOADS_PER_PERSON = 1
    document = get(job_api(simulator_tenant, sim.MULTI_BATCH_JOB_ID), token).json()
    first = get(document["batches"][0]["download"], token)

    second = get(document["batches"][1]["download"], token)

    assert first.status_code == 200
    assert second.status_code == 429 and second["Retry-After"] == "30"
    assert error(second)["title"] == "Too many downloads at once"
    first.close()


@pytest.mark.django_db(transaction=True)
def test_a_script_downloads_a_file_over_http_with_its_token(person, simulator_tenant, simulator):
    token = token_for(person, [simulator_tenant])
    with gunicorn_serving(simulator_tenant) as base:
        auth = {"Authorization": f"Bearer {token}"}
        document = requests.get(
            base + job_api(simulator_tenant, sim.MULTI_BATCH_JOB_ID), headers=auth, timeout=30
        ).json()
        file = document["batches"][0]["files"][0]
        downloaded = requests.get(file["download"], headers=auth, timeout=30)
        anonymous = requests.get(file["download"], timeout=30, allow_redirects=False)

    assert downloaded.status_code == 200
    assert downloaded.content == from_zuora(simulator, file["id"])
    assert anonymous.status_code == 401 and anonymous.json()["error"]["status"] == 401


# --- Audit --------------------------------------------------------------------------------------


def test_uses_are_audited_once_a_minute_per_address(token, simulator_tenant):
    url = job_api(simulator_tenant, sim.DOC_FILEID_JOB_ID)

    for _ in range(5):
        get(url, token)
    get("/api/v1/tenants", token)

    events = AuditEvent.objects.filter(kind=AuditEvent.Kind.API_USE).order_by("at")
    assert [event.target.split(":", 1)[1] for event in events] == [url, "/api/v1/tenants"]
    assert events[0].username == "analyst" and events[0].tenant == simulator_tenant
    assert "answered 200" in events[0].detail
    assert ApiToken.objects.get().last_used_at is not None


def test_a_refused_tokens_use_is_audited(token, simulator_tenant):
    ApiToken.objects.update(revoked_at=timezone.now())

    get(job_api(simulator_tenant, sim.DOC_FILEID_JOB_ID), token)

    (event,) = AuditEvent.objects.filter(kind=AuditEvent.Kind.API_USE)
    assert "revoked" in event.detail


def test_a_token_in_a_log_line_is_redacted(token):
    assert token not in redaction.redact(f"a script sent {token} by mistake")


# --- The OpenAPI description --------------------------------------------------------------------


def test_the_openapi_document_describes_every_api_address(token):
    document = get("/api/v1/openapi.json", token).json()
    api_patterns = next(
        p for p in get_resolver().url_patterns if str(p.pattern) == "api/v1/"
    ).url_patterns
    routes = {
        "/" + str(p.pattern).replace("<slug:tenant_slug>", "{tenant}").replace("<zuora_id:", "{")
        for p in api_patterns
    }

    assert {route.replace(">", "}") for route in routes} == set(document["paths"])
    assert document["servers"] == [{"url": "http://testserver/api/v1"}]


def missing(schema: dict, value: object, schemas: dict, where: str = "") -> list[str]:
    """The required properties the schema names that `value` lacks, however deep."""
    if "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
    gaps = []
    if isinstance(value, dict):
        gaps += [f"{where}.{key}" for key in schema.get("required", []) if key not in value]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                gaps += missing(sub, value[key], schemas, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for item in value:
            gaps += missing(schema["items"], item, schemas, where + "[]")
    return gaps


def test_a_job_answer_has_what_the_openapi_document_promises(token, simulator_tenant):
    schemas = json.loads(api.OPENAPI.read_text())["components"]["schemas"]

    document = get(job_api(simulator_tenant, sim.DOC_SEGMENTS_JOB_ID), token).json()
    refused = get(job_api(simulator_tenant, "0" * 32), token).json()

    assert missing(schemas["Job"], document, schemas) == []
    assert missing(schemas["Error"], refused, schemas) == []
    assert set(document) == set(schemas["Job"]["properties"])


def test_a_malformed_api_rate_stops_start_up_naming_it():
    started = start_django(AQUADASH_API_RATE="lots", DEBUG="1")

    assert started.returncode != 0
    assert "AQUADASH_API_RATE" in started.stderr


def test_an_admin_revokes_a_leaked_token(token, simulator_tenant, admin_client):
    listed = admin_client.get("/admin/aquadash/apitoken/", {"q": token[:10]})
    pk = ApiToken.objects.get().pk

    admin_client.post("/admin/aquadash/apitoken/", {"action": "revoke", "_selected_action": [pk]})

    assert token[:10] in listed.content.decode() and token not in listed.content.decode()
    assert get(job_api(simulator_tenant, sim.DOC_FILEID_JOB_ID), token).status_code == 401


@pytest.mark.django_db(transaction=True)
def test_the_readmes_python_example_downloads_every_batch(
    person, simulator_tenant, tmp_path, monkeypatch, capsys
):
    readme = (settings.BASE_DIR / "README.md").read_text()
    example = readme.split("## API\n", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AQUADASH_TOKEN", token_for(person, [simulator_tenant]))
    with gunicorn_serving(simulator_tenant) as base:
        monkeypatch.setenv("AQUADASH", base)
        exec(example.replace("/tenants/acme/", "/tenants/sim/"), {})  # noqa: S102

    batches = simulator_tenant.jobs.get(job_id=sim.MULTI_BATCH_JOB_ID).job().batches
    assert {path.name for path in tmp_path.iterdir()} == {f"{b.name}.csv" for b in batches}
    assert (tmp_path / "Accounts.csv").read_text().startswith("Account: Id,")
    assert capsys.readouterr().out.count(" records\n") == len(batches)


def test_an_encrypted_jobs_batches_offer_their_parts_not_a_join(token, simulator_tenant):
    document = get(job_api(simulator_tenant, sim.PGP_JOB_ID), token).json()

    assert all(batch["download"] is None for batch in document["batches"])
    assert all(batch["files"] for batch in document["batches"])
    assert document["job"]["download"]
