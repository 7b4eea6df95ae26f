"""The job pages: lookup, permalink, live refresh that stops, stored memory and every error."""

import dataclasses
import re
from datetime import datetime, timedelta, tzinfo
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.humanize.templatetags import humanize
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from aquadash import jobs, views, zuora
from aquadash import simulator as sim
from aquadash.models import JobSnapshot, Lookup, Tenant

HTMX = {"HTTP_HX_REQUEST": "true"}
UNKNOWN_JOB = "0123456789abcdef0123456789abcdef"
REDIS_DOWN = {  # a shared cache on a closed port; rendered fragments stay in the process
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
    },
    "template_fragments": settings.CACHES["template_fragments"],
}


def job_url(tenant: Tenant, job_id: str, suffix: str = "") -> str:
    return f"/t/{tenant.slug}/jobs/{job_id}/{suffix}"


def job_gets(simulator: sim.Simulator, job_id: str) -> int:
    return simulator.count(method="GET", path_prefix=f"/v1/batch-query/jobs/{job_id}")


def next_interval() -> None:
    """What the passing of one poll interval does: cached answers and locks expire."""
    cache.clear()


def polls(html: str) -> bool:
    return 'hx-trigger="poll"' in html and "data-poll=" in html


def stored_a_while_ago(job_id: str, *, field: str = "last_fetched_at") -> None:
    """As if the job had been stored (or, with `field="gone_at"`, found gone) two minutes ago:
    a final job's page is then kept rendered."""
    earlier = timezone.now() - timedelta(minutes=2)
    JobSnapshot.objects.filter(job_id=job_id).update(**{field: earlier})


@pytest.fixture
def client(finance_client: Client) -> Client:
    """Signed in as a member of the simulator tenant's group, not as a superuser."""
    return finance_client


# --- The documentation examples -----------------------------------------------------------------


def test_the_documented_file_id_job_renders_every_field(client, simulator_tenant):
    response = client.get(job_url(simulator_tenant, sim.DOC_FILEID_JOB_ID))

    html = response.content.decode()
    assert response.status_code == 200
    for text in [
        "Example",
        sim.DOC_FILEID_JOB_ID,
        "badge-ok",
        "Stateful",
        "salesforce",
        "00170000011K3Ub",
        "1.1",
        "CSV",
        "none",
        "2014-09-03 08:20:07 PDT",
        "AccountingPeriod",
        "select Id,StartDate,EndDate,FiscalYear,Name,Status from AccountingPeriod",
        "zoqlexport",
        "60.0",
        "full",
        "402881824835bb2a01483c19f8190259",
        "402881824835bb2a01483c19f7da0257",
    ]:
        assert text in html, text
    assert not polls(html)


def test_the_documented_segments_job_renders_every_field(client, simulator_tenant):
    response = client.get(job_url(simulator_tenant, sim.DOC_SEGMENTS_JOB_ID))

    html = response.content.decode()
    for text in [
        "e20b07474841608a01484592159c05d7",
        "e20b07474841608a01484592147305d3",
        "132",
        "59.0",
        "2014-09-05 04:27:54 PDT",
        "segment",
    ]:
        assert text in html, text


def test_start_time_is_read_in_the_tenants_time_zone(client, simulator_tenant):
    simulator_tenant.time_zone = "UTC"
    simulator_tenant.save()

    html = client.get(job_url(simulator_tenant, sim.DOC_FILEID_JOB_ID)).content.decode()

    assert "2014-09-03 08:20:07 UTC" in html


# --- Statuses and polling -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job_id", "status", "shown"),
    [
        (sim.MULTI_BATCH_JOB_ID, "completed", []),
        (sim.ERROR_JOB_ID, "error", ["90029"]),
        (sim.ABORTED_JOB_ID, "aborted", []),
        (sim.CANCELLED_JOB_ID, "cancelled", ["submitted"]),
        (sim.DELETED_NOT_ALLOWED_JOB_ID, "aborted", ["deleted_notallowed"]),
        (sim.INCREMENTAL_JOB_ID, "completed", ["incremental", "Incremental from", "Offset"]),
        (sim.DELETED_SECTION_JOB_ID, "completed", ["Deleted records"]),
    ],
)
def test_a_final_job_shows_its_status_and_does_not_poll(
    client, simulator_tenant, job_id, status, shown
):
    page = client.get(job_url(simulator_tenant, job_id)).content.decode()
    fragment = client.get(job_url(simulator_tenant, job_id), **HTMX).content.decode()

    assert f">{status}</span>" in page
    for text in shown:
        assert text in page
    assert not polls(page) and not polls(fragment)
    assert f"· {status} · aquadash</title>" in fragment


def test_an_aborted_batch_shows_its_message(client, simulator_tenant, simulator):
    page = client.get(job_url(simulator_tenant, sim.ABORTED_JOB_ID)).content.decode()

    raw = JobSnapshot.objects.get(job_id=sim.ABORTED_JOB_ID).raw
    messages = [batch["message"] for batch in raw["batches"] if batch.get("message")]
    assert messages and all(escape(message) in page for message in messages)


# The running job started 16 s ago, the submitted one 5 minutes ago: a tenth of that.
@pytest.mark.parametrize(
    ("job_id", "seconds"), [(sim.RUNNING_JOB_ID, 5), (sim.SUBMITTED_JOB_ID, 30)]
)
def test_a_running_job_polls_with_its_progress(client, simulator_tenant, job_id, seconds):
    page = client.get(job_url(simulator_tenant, job_id)).content.decode()

    assert polls(page)
    assert '<span class="pulse" aria-hidden="true"></span>Live</span>' in page
    assert '<svg class="outcomes"' in page
    assert f"Refreshing every {seconds} seconds" in page
    assert 'hx-history="false"' in page


def test_polling_stops_the_moment_the_job_completes(client, simulator_tenant, sim_clock):
    url = job_url(simulator_tenant, sim.RUNNING_JOB_ID)
    assert polls(client.get(url).content.decode())

    sim_clock.advance(600)
    next_interval()
    fragment = client.get(url, **HTMX)

    html = fragment.content.decode()
    assert fragment.status_code == 200
    assert "<title>Nightly finance export · completed · aquadash</title>" in html
    assert not polls(html)
    assert 'class="pulse"' not in html
    assert '<rect class="completed" x="0" width="100" height="1"/>' in html


def test_the_poll_answer_carries_the_tab_title_outside_the_swapped_section(
    client, simulator_tenant
):
    fragment = client.get(job_url(simulator_tenant, sim.RUNNING_JOB_ID), **HTMX).content.decode()

    assert fragment.strip().startswith(
        "<title>Nightly finance export · executing · aquadash</title>"
    )
    assert fragment.index("</title>") < fragment.index('<section id="live"')


def test_a_stored_final_job_is_rendered_once_for_all_who_may_see_it(
    client, simulator_tenant, make_user, outsider_client
):
    url = job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID)
    client.get(url)  # from Zuora
    stored_a_while_ago(sim.MULTI_BATCH_JOB_ID)
    client.get(url)  # from storage: rendered and kept
    colleague = Client()
    colleague.force_login(make_user("colleague", groups=simulator_tenant.groups.all()))

    response = colleague.get(url)

    assert "live" not in [template.name for template in response.templates]
    assert "Month-end extract" in response.content.decode()
    assert outsider_client.get(url).status_code == 404


def test_a_final_job_stored_seconds_ago_is_rendered_each_time(client, simulator_tenant):
    url = job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID)
    client.get(url)
    client.get(url)

    response = client.get(url)

    assert "live" in [template.name for template in response.templates]


def test_a_final_job_section_too_big_to_keep_is_rendered_each_time(
    client, simulator_tenant, monkeypatch
):
    monkeypatch.setattr(views, "KEEP_LIVE_BYTES", 10_000)  # the month-end extract's is 12 kB
    url = job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID)
    client.get(url)
    stored_a_while_ago(sim.MULTI_BATCH_JOB_ID)
    client.get(url)

    response = client.get(url)

    assert "live" in [template.name for template in response.templates]


def test_a_kept_final_job_shows_a_renamed_tenant_and_a_vanished_job_at_once(
    client, simulator_tenant, simulator
):
    url = job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID)
    client.get(url)
    stored_a_while_ago(sim.MULTI_BATCH_JOB_ID)
    client.get(url)
    simulator_tenant.name = "Renamed tenant"
    simulator_tenant.entity_id = "entity-2"
    simulator_tenant.save()

    html = client.get(url).content.decode()
    assert "<strong>Renamed tenant</strong>" in html
    assert "Zuora-Entity-Ids: entity-2" in html  # in Copy as curl

    simulator.forget_job(sim.MULTI_BATCH_JOB_ID)
    next_interval()
    client.post(url)
    stored_a_while_ago(sim.MULTI_BATCH_JOB_ID, field="gone_at")
    assert "Zuora no longer has this job" in client.get(url).content.decode()


def test_a_kept_final_job_page_keeps_its_relative_times_current(
    client, simulator_tenant, monkeypatch
):
    url = job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID)
    client.get(url)
    stored_a_while_ago(sim.MULTI_BATCH_JOB_ID)
    assert "As of 2\xa0minutes ago" in client.get(url).content.decode()
    later = timezone.now() + timedelta(hours=3)

    class Later(datetime):  # humanize's clock
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:
            return later

    monkeypatch.setattr(timezone, "now", lambda: later)
    monkeypatch.setattr(humanize, "datetime", Later)

    assert "As of 3\xa0hours ago" in client.get(url).content.decode()


def test_a_passing_error_while_polling_keeps_the_last_state_and_backs_off(
    client, simulator_tenant, simulator
):
    url = job_url(simulator_tenant, sim.RUNNING_JOB_ID)
    client.get(url)
    next_interval()
    simulator.add_fault("server_error", job_id=sim.RUNNING_JOB_ID)

    response = client.get(url, **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert "Could not refresh" in html and "HTTP 500" in html
    assert "Nightly finance export" in html
    assert 'data-poll="10"' in html and "failures=1" in html


# --- A memory that outlives Zuora's -------------------------------------------------------------


def test_a_job_zuora_forgot_is_explained_from_what_was_stored(client, simulator_tenant, simulator):
    url = job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID)
    client.get(url)
    simulator.forget_job(sim.MULTI_BATCH_JOB_ID)
    next_interval()

    response = client.post(url, follow=True)

    html = response.content.decode()
    assert response.status_code == 200
    assert "Zuora no longer has this job" in html
    assert "younger than Zuora's 180-day retention" in html
    assert "completed</span>" in html
    assert JobSnapshot.objects.get(job_id=sim.MULTI_BATCH_JOB_ID).gone_at is not None
    looked_up = Lookup.objects.order_by("-pk").first()
    assert looked_up.outcome == "shown from storage (gone from Zuora)"


def test_a_running_job_that_vanishes_stops_polling_under_the_banner(
    client, simulator_tenant, simulator
):
    url = job_url(simulator_tenant, sim.RUNNING_JOB_ID)
    client.get(url)
    simulator.forget_job(sim.RUNNING_JOB_ID)
    next_interval()

    html = client.get(url, **HTMX).content.decode()

    assert "Zuora no longer has this job" in html
    assert not polls(html)


def test_an_unknown_job_is_a_404_that_explains_retention(client, simulator_tenant):
    response = client.get(job_url(simulator_tenant, UNKNOWN_JOB))

    html = response.content.decode()
    assert response.status_code == 404
    assert "<h1>No such job</h1>" in html and "180 days" in html
    assert "has no stored copy" in html and "Look up another job" in html
    assert "Try again" not in html


@pytest.mark.parametrize("mode", ["404", "200"])
def test_an_expired_job_is_not_found_however_zuora_says_it(
    client, simulator_tenant, simulator, mode
):
    simulator.unknown_job = mode

    assert client.get(job_url(simulator_tenant, sim.EXPIRED_JOB_ID)).status_code == 404


def test_retention_dates_are_stated(client, simulator_tenant):
    html = client.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID)).content.decode()

    assert re.search(r"Deleted by Zuora on \d{4}-\d\d-\d\d, in \d+ days", html)
    assert "Result files" in html


# --- Errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "params", "status", "text"),
    [
        ("rate_limited", {"seconds": 120}, 503, "Try again in 120 seconds"),
        ("unavailable", {}, 503, "Zuora is not answering"),
        ("gateway_timeout", {}, 504, "Zuora is not answering"),
        ("html", {}, 502, "could not be used"),
        ("invalid_json", {}, 502, "could not be used"),
        ("redirect", {"location": "http://169.254.169.254/"}, 502, "could not be used"),
    ],
)
def test_each_upstream_failure_has_its_own_page_and_status(
    client, simulator_tenant, simulator, fault, params, status, text
):
    simulator.add_fault(fault, job_id=sim.MULTI_BATCH_JOB_ID, times=None, **params)
    url = job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID)

    response = client.get(url)

    html = response.content.decode()
    assert response.status_code == status
    assert text in html
    assert f'<a class="button" href="{url}">Try again' in html
    assert "Traceback" not in html


def test_a_rate_limited_poll_waits_as_long_as_zuora_asked(client, simulator_tenant, simulator):
    url = job_url(simulator_tenant, sim.RUNNING_JOB_ID)
    client.get(url)
    next_interval()
    simulator.add_fault("rate_limited", job_id=sim.RUNNING_JOB_ID, seconds=30)

    html = client.get(url, **HTMX).content.decode()

    assert "Try again in 30 seconds" in html
    assert 'data-poll="30"' in html


def test_after_a_rate_limit_no_poll_asks_zuora_before_retry_after(
    client, simulator_tenant, simulator, settings
):
    # Every poll would otherwise ask Zuora.
    settings.AQUADASH_POLL_SECONDS = settings.AQUADASH_POLL_MAX_SECONDS = 0
    url = job_url(simulator_tenant, sim.RUNNING_JOB_ID)
    client.get(url)
    simulator.add_fault("rate_limited", job_id=sim.RUNNING_JOB_ID, seconds=30)
    client.get(url, **HTMX)

    for _ in range(3):
        assert client.get(url, **HTMX).status_code == 200

    assert job_gets(simulator, sim.RUNNING_JOB_ID) == 2


def test_rate_limited_page_says_when_to_retry(client, simulator_tenant, simulator):
    simulator.add_fault("rate_limited", job_id=sim.MULTI_BATCH_JOB_ID, seconds=120)

    response = client.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID))

    assert response["Retry-After"] == "120"


def test_a_shared_rate_limit_counts_down_from_when_zuora_answered(
    client, simulator_tenant, simulator
):
    simulator.add_fault("rate_limited", job_id=sim.MULTI_BATCH_JOB_ID, seconds=120)
    url = job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID)
    client.get(url)
    key = jobs.shared_key(simulator_tenant, sim.MULTI_BATCH_JOB_ID)
    answer = jobs.shared_cache.get(key)
    jobs.shared_cache.set(key, dataclasses.replace(answer, at=answer.at - 30.5))  # 30 s later

    again = client.get(url)

    html = again.content.decode()
    assert "Try again in 90 seconds" in html and "120 seconds" not in html
    assert again["Retry-After"] == "90"
    assert "Zuora will answer again from" in html


def test_a_slow_zuora_is_a_504(client, simulator_tenant, simulator, settings):
    settings.ZUORA_READ_TIMEOUT = 0.3
    simulator.add_fault("slow", job_id=sim.MULTI_BATCH_JOB_ID, seconds=1.5)

    response = client.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID))

    assert response.status_code == 504
    assert "did not answer" in response.content.decode()


def test_rejected_credentials_are_a_502_with_a_link_for_admins(
    simulator_tenant, make_user, simulator
):
    simulator_tenant.set_secret("not-the-secret")
    simulator_tenant.save()
    member, admin = Client(), Client()
    member.force_login(make_user("member", groups=simulator_tenant.groups.all()))
    admin.force_login(make_user("root", superuser=True))

    as_member = member.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID))
    as_admin = admin.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID))

    assert as_member.status_code == as_admin.status_code == 502
    assert "ask an admin" in as_member.content.decode().lower()
    assert "Update the credentials" not in as_member.content.decode()
    assert f"/admin/aquadash/tenant/{simulator_tenant.pk}/change/" in as_admin.content.decode()
    assert "<h1>Zuora credentials problem</h1>" in as_member.content.decode()
    assert "Try again" not in as_member.content.decode()


def test_a_member_meeting_rejected_credentials_is_offered_their_other_tenants(
    simulator_tenant, make_tenant, make_user, simulator
):
    simulator_tenant.set_secret("not-the-secret")
    simulator_tenant.save()
    other = make_tenant("acme", groups=simulator_tenant.groups.all())
    make_tenant("hidden")
    member = Client()
    member.force_login(make_user("member", groups=simulator_tenant.groups.all()))

    html = member.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID)).content.decode()

    assert "Look up another job" in html
    assert f'href="/t/{other.slug}/jobs/">{other.name}</a>' in html
    assert "/t/hidden/" not in html


def test_an_admin_meeting_rejected_credentials_is_not_told_to_ask_an_admin(
    simulator_tenant, make_user, simulator
):
    simulator_tenant.set_secret("not-the-secret")
    simulator_tenant.save()
    admin = Client()
    admin.force_login(make_user("root", superuser=True))

    html = admin.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID)).content.decode()

    assert "Zuora rejected the stored credentials" in html
    assert "ask an admin" not in html.lower()


def test_unreadable_stored_credentials_are_a_503_without_calling_zuora(
    client, simulator_tenant, simulator, settings
):
    settings.AQUADASH_ENCRYPTION_KEYS = ["x" * 43 + "="]

    response = client.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID))

    assert response.status_code == 503
    assert "cannot be read" in response.content.decode()
    assert simulator.count() == 0


@pytest.mark.parametrize(
    "job_id", ["hello", "../../v1/accounts", "%2e%2e%2f", "abc%3Fx=1", "A" * 33, "é" * 32]
)
def test_a_bad_job_id_is_refused_before_zuora_is_asked(client, simulator_tenant, simulator, job_id):
    response = client.get(job_url(simulator_tenant, job_id))

    assert response.status_code in (400, 404)
    assert simulator.count() == 0


def test_refresh_from_zuora_posts_and_comes_back_to_the_clean_job_address(
    simulator_tenant, simulator, make_user
):
    url = job_url(simulator_tenant, sim.DOC_FILEID_JOB_ID)
    member = Client(enforce_csrf_checks=True)
    member.force_login(make_user("member", groups=simulator_tenant.groups.all()))
    html = member.get(url).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)[1]
    next_interval()

    response = member.post(url, {"csrfmiddlewaretoken": token})

    assert response.status_code == 302 and response["Location"] == url
    assert job_gets(simulator, sim.DOC_FILEID_JOB_ID) == 2


def test_a_refresh_address_does_not_ask_zuora_again(client, simulator_tenant, simulator):
    url = job_url(simulator_tenant, sim.DOC_FILEID_JOB_ID)
    client.get(url)
    next_interval()

    client.get(url + "?refresh=1")

    assert job_gets(simulator, sim.DOC_FILEID_JOB_ID) == 1


def test_a_refresh_without_its_form_token_is_refused(simulator_tenant, simulator, make_user):
    member = Client(enforce_csrf_checks=True)
    member.force_login(make_user("member", groups=simulator_tenant.groups.all()))

    response = member.post(job_url(simulator_tenant, sim.DOC_FILEID_JOB_ID))

    assert response.status_code == 403
    assert simulator.count() == 0


def test_an_outsider_gets_the_missing_tenant_404_and_zuora_is_not_asked(
    simulator_tenant, simulator, outsider_client
):
    for suffix in ["", "raw.json"]:
        response = outsider_client.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID, suffix))
        assert response.status_code == 404
    assert (
        outsider_client.post(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID)).status_code == 404
    )
    assert (
        outsider_client.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID), **HTMX).status_code
        == 404
    )
    assert simulator.count() == 0


def test_a_colleague_in_the_same_group_opens_the_same_link(client, simulator_tenant, make_user):
    url = job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID)
    client.get(url)
    colleague = Client()
    colleague.force_login(make_user("colleague", groups=simulator_tenant.groups.all()))

    response = colleague.get(url)

    assert response.status_code == 200
    assert sim.MULTI_BATCH_JOB_ID in response.content.decode()


def test_access_revoked_while_watching_ends_in_a_404_poll(client, simulator_tenant):
    url = job_url(simulator_tenant, sim.RUNNING_JOB_ID)
    client.get(url)
    simulator_tenant.groups.set([Group.objects.create(name="Others")])

    assert client.get(url, **HTMX).status_code == 404


def test_an_expired_session_makes_a_poll_reload_to_the_login_page(simulator_tenant):
    response = Client().get(job_url(simulator_tenant, sim.RUNNING_JOB_ID), **HTMX)

    assert response.status_code == 200
    assert response["HX-Redirect"].startswith("/accounts/login/")


def test_after_signing_in_again_the_poll_returns_to_the_page_not_the_fragment(simulator_tenant):
    page = f"http://testserver{job_url(simulator_tenant, sim.RUNNING_JOB_ID)}"

    response = Client().get(
        job_url(simulator_tenant, sim.RUNNING_JOB_ID) + "?failures=0",
        HTTP_HX_CURRENT_URL=page,
        **HTMX,
    )

    assert response["HX-Redirect"].endswith(f"?next=/t/sim/jobs/{sim.RUNNING_JOB_ID}/")


def test_polls_do_not_extend_the_session(client, simulator_tenant):
    url = job_url(simulator_tenant, sim.RUNNING_JOB_ID)
    client.get(url)

    response = client.get(url, **HTMX)

    assert "sessionid" not in response.cookies


# --- Raw JSON, curl, segments -------------------------------------------------------------------


def test_raw_json_is_exactly_what_zuora_returned(client, simulator_tenant):
    client.get(job_url(simulator_tenant, sim.DOC_FILEID_JOB_ID))

    response = client.get(job_url(simulator_tenant, sim.DOC_FILEID_JOB_ID, "raw.json?download=1"))

    assert response.json() == JobSnapshot.objects.get(job_id=sim.DOC_FILEID_JOB_ID).raw
    assert response.json()["batches"][0]["fileId"] == "402881824835bb2a01483c19f8190259"
    assert response["Content-Disposition"].startswith("attachment")


def test_copy_as_curl_leaves_the_token_as_a_variable(client, simulator_tenant):
    html = client.get(job_url(simulator_tenant, sim.DOC_FILEID_JOB_ID)).content.decode()

    curl = re.search(r'data-copy="(curl [^"]+)"', html)[1]
    assert "$ZUORA_TOKEN" in curl
    assert f"{simulator_tenant.base_url}/v1/batch-query/jobs/{sim.DOC_FILEID_JOB_ID}" in curl


def test_the_track_id_of_the_last_request_is_shown(client, simulator_tenant, simulator):
    html = client.get(job_url(simulator_tenant, sim.DOC_FILEID_JOB_ID)).content.decode()

    sent = [r for r in simulator.requests if r.job_id == sim.DOC_FILEID_JOB_ID][-1]
    assert sent.headers["Zuora-Track-Id"] in html


def test_thousands_of_segments_collapse_to_a_count(client, simulator_tenant):
    response = client.get(job_url(simulator_tenant, sim.MANY_SEGMENTS_JOB_ID))

    html = response.content.decode()
    assert "2,000 segments" in html
    assert len(html) < 60_000
    link = re.search(r'href="([^"]+/segments/)"', html)[1]
    first_page = client.get(link).content.decode()
    assert first_page.count("<li>") == 500
    assert "Page 1 of 4" in first_page


def test_fifty_batches_render(client, simulator_tenant):
    html = client.get(job_url(simulator_tenant, sim.FIFTY_BATCHES_JOB_ID)).content.decode()

    assert html.count('<tbody class="batch">') == 50


def test_pages_carry_a_strict_csp_with_a_fresh_nonce(client, simulator_tenant):
    first = client.get(job_url(simulator_tenant, sim.DOC_FILEID_JOB_ID))
    second = client.get(job_url(simulator_tenant, sim.DOC_FILEID_JOB_ID))

    policy = first["Content-Security-Policy"]
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    nonce = re.search(r"'nonce-([^']+)'", policy)[1]
    assert nonce not in second["Content-Security-Policy"]
    assert f'nonce="{nonce}"' in first.content.decode()
    assert first["X-Frame-Options"] == "DENY"


def test_without_javascript_the_page_has_a_refresh_link(client, simulator_tenant):
    html = client.get(job_url(simulator_tenant, sim.RUNNING_JOB_ID)).content.decode()

    assert (
        f'<form id="refresh" method="post" action="{job_url(simulator_tenant, sim.RUNNING_JOB_ID)}"'
        in html
    )
    assert '<button type="submit" form="refresh">Refresh from Zuora</button>' in html
    assert re.findall(r"<button[^>]*data-copy", html)
    assert all(" hidden " in tag for tag in re.findall(r"<button[^>]*data-copy", html))
    assert '<span class="needs-js" hidden>Refreshing every' in html


def test_the_page_names_the_environment_and_time_zone(client, simulator_tenant):
    html = client.get(job_url(simulator_tenant, sim.DOC_FILEID_JOB_ID)).content.decode()

    assert f"{simulator_tenant.base_url} · times in America/Los_Angeles" in html


def test_hostile_upstream_text_is_escaped(client, simulator_tenant, simulator):
    client.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID))
    snapshot = JobSnapshot.objects.get(job_id=sim.MULTI_BATCH_JOB_ID)
    snapshot.raw["name"] = '<script>alert(1)</script>"><img src=x onerror=alert(1) hx-get="/x">'
    snapshot.raw["batches"][0]["query"] = "{{ settings.SECRET_KEY }}<b hx-post='/y'>"
    JobSnapshot.objects.filter(pk=snapshot.pk).update(raw=snapshot.raw)

    html = client.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID)).content.decode()

    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "<b hx-post" not in html
    assert "&lt;script&gt;" in html


def test_admins_can_read_the_lookup_trail_but_not_change_it(client, simulator_tenant, make_user):
    client.get(job_url(simulator_tenant, sim.ZIP_JOB_ID))
    admin = Client()
    admin.force_login(make_user("root", superuser=True))
    lookup = Lookup.objects.get()

    listing = admin.get("/admin/aquadash/lookup/")
    change = admin.post(f"/admin/aquadash/lookup/{lookup.pk}/delete/", {"post": "yes"})

    assert listing.status_code == 200 and sim.ZIP_JOB_ID in listing.content.decode()
    assert change.status_code == 403
    assert Lookup.objects.filter(pk=lookup.pk).exists()


def test_a_tenant_that_is_not_yours_gets_a_plain_not_found_page(simulator_tenant, outsider_client):
    response = outsider_client.get(job_url(simulator_tenant, sim.DOC_FILEID_JOB_ID))

    html = response.content.decode()
    assert response.status_code == 404
    assert "Not found" in html and "ask an admin" in html
    assert simulator_tenant.name not in html


# --- Odd input and odd answers never make a 500 ----------------------------------------------


@pytest.mark.parametrize(
    ("failures", "counted"),
    [("%C2%B2", 1), ("9" * 5000, 1), ("-1", 1), ("abc", 1), ("", 1), ("2", 3), ("50", 11)],
)
def test_a_mangled_poll_counter_is_ignored(client, simulator_tenant, simulator, failures, counted):
    url = job_url(simulator_tenant, sim.RUNNING_JOB_ID)
    client.get(url)
    next_interval()
    simulator.add_fault("server_error", job_id=sim.RUNNING_JOB_ID)  # the counter counts failures

    response = client.get(f"{url}?failures={failures}", **HTMX)

    assert response.status_code == 200
    assert f'hx-get="{url}?failures={counted}"' in response.content.decode()


@pytest.mark.parametrize("polling", [True, False])
def test_an_error_message_with_html_is_shown_as_text(
    client, simulator_tenant, monkeypatch, polling
):
    hostile = '<img src=x onerror="alert(1)"> <a hx-get="/admin/">retry</a>'

    def failing(*args: object, **kwargs: object) -> None:
        raise zuora.ZuoraUnavailable(hostile)

    monkeypatch.setattr(jobs, "fetch_job", failing)

    headers = HTMX if polling else {}
    html = client.get(job_url(simulator_tenant, sim.RUNNING_JOB_ID), **headers).content.decode()

    assert escape(hostile) in html
    assert "<img" not in html and 'hx-get="/admin/"' not in html


@pytest.mark.parametrize("path", ["%00/", "%C2%B2/", "abc%00def/", f"{sim.RUNNING_JOB_ID}%00/"])
def test_a_job_address_that_is_not_an_id_is_a_404_before_any_view(
    client, simulator_tenant, simulator, path
):
    response = client.get(f"/t/{simulator_tenant.slug}/jobs/{path}")

    assert response.status_code == 404
    assert simulator.count() == 0 and not Lookup.objects.exists()


def test_an_upper_case_job_address_opens_the_job(client, simulator_tenant):
    response = client.get(job_url(simulator_tenant, sim.DOC_FILEID_JOB_ID.upper()))

    assert response.status_code == 200
    assert JobSnapshot.objects.filter(job_id=sim.DOC_FILEID_JOB_ID).exists()


def test_a_search_with_a_nul_byte_is_answered(client, simulator_tenant):
    assert client.get(f"/t/{simulator_tenant.slug}/jobs/", {"q": "a\x00b"}).status_code == 200


def test_a_pasted_link_with_a_non_ascii_tenant_is_a_form_error(client, simulator_tenant):
    response = client.get("/", {"tenant": "sim", "job": f"https://x/t/acmé/jobs/{'a' * 31}/"})

    assert response.status_code == 400


@pytest.mark.parametrize(("partner", "project"), [("..", "x"), ("..", ".."), (".", "x")])
def test_dot_segments_in_partner_or_project_never_reach_another_zuora_path(
    client, simulator_tenant, simulator, partner, project
):
    response = client.get(
        f"/t/{simulator_tenant.slug}/last-completed/", {"partner": partner, "project": project}
    )

    assert response.status_code == 400
    assert simulator.count(path_prefix="/v1/") == 0


def test_a_far_future_start_time_is_shown_without_retention_dates(client, simulator_tenant):
    raw = {"id": "a" * 32, "status": "completed", "startTime": "9999-12-31 23:59:59", "batches": []}
    JobSnapshot.objects.create(
        tenant=simulator_tenant,
        job_id="a" * 32,
        status="completed",
        is_final=True,
        raw=raw,
        last_fetched_at="2026-01-01T00:00:00Z",
    )

    response = client.get(job_url(simulator_tenant, "a" * 32))

    assert response.status_code == 200
    assert "9999-12-31 23:59:59" in response.content.decode()


def test_after_a_failed_first_lookup_trying_again_answers_at_once(
    client, simulator_tenant, simulator
):
    simulator.add_fault("unavailable", job_id=sim.RUNNING_JOB_ID, times=None)
    assert client.get(job_url(simulator_tenant, sim.RUNNING_JOB_ID)).status_code == 503
    calls = job_gets(simulator, sim.RUNNING_JOB_ID)

    again = client.get(job_url(simulator_tenant, sim.RUNNING_JOB_ID))

    assert again.status_code == 503
    assert job_gets(simulator, sim.RUNNING_JOB_ID) == calls  # the shared failure, not a new call


def test_a_first_lookup_rate_limited_is_not_retried_before_retry_after(
    client, simulator_tenant, simulator, settings
):
    settings.AQUADASH_POLL_SECONDS = 0
    simulator.add_fault("rate_limited", job_id=sim.RUNNING_JOB_ID, times=None, seconds=60)
    assert client.get(job_url(simulator_tenant, sim.RUNNING_JOB_ID)).status_code == 503
    calls = job_gets(simulator, sim.RUNNING_JOB_ID)

    again = client.get(job_url(simulator_tenant, sim.RUNNING_JOB_ID))

    assert again.status_code == 503 and again["Retry-After"] == "60"
    assert job_gets(simulator, sim.RUNNING_JOB_ID) == calls


def test_the_favicon_is_served_to_anyone():
    response = Client().get("/favicon.ico")

    assert response.status_code == 301
    assert response["Location"].endswith("aquadash/favicon.svg")


@pytest.mark.parametrize("words", ["month end", "EXTRACT month", "month-end"])
def test_tenant_jobs_are_found_by_words_of_their_name(client, simulator_tenant, words):
    client.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID))  # "Month-end extract"
    client.get(job_url(simulator_tenant, sim.ERROR_JOB_ID))

    html = client.get(f"/t/{simulator_tenant.slug}/jobs/", {"q": words}).content.decode()

    assert sim.MULTI_BATCH_JOB_ID in html and sim.ERROR_JOB_ID not in html


def test_tenant_jobs_are_found_by_a_pasted_zuora_address(client, simulator_tenant):
    client.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID))
    address = f"https://rest.zuora.com/v1/batch-query/jobs/{sim.MULTI_BATCH_JOB_ID.upper()}"

    html = client.get(f"/t/{simulator_tenant.slug}/jobs/", {"q": address}).content.decode()

    assert sim.MULTI_BATCH_JOB_ID in html


def test_error_pages_name_the_problem_in_the_tab(client, simulator_tenant):
    unknown = client.get(job_url(simulator_tenant, UNKNOWN_JOB)).content.decode()
    dots = client.get(
        f"/t/{simulator_tenant.slug}/last-completed/", {"partner": "..", "project": "x"}
    ).content.decode()

    assert "<title>No such job · aquadash</title>" in unknown
    assert "<title>Check the partner and project · aquadash</title>" in dots


def test_the_home_page_has_no_duplicate_element_ids(client, simulator_tenant):
    html = client.get("/").content.decode()

    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))


def test_the_same_job_id_in_two_tenants_is_two_jobs(
    client, simulator_tenant, simulator, sim_clock, make_tenant, settings
):
    other_zuora = sim.Simulator(clock=sim_clock)
    with sim.serve(other_zuora):
        host_port = (urlsplit(other_zuora.url).hostname, urlsplit(other_zuora.url).port)
        settings.ZUORA_EXTRA_HOSTS = settings.ZUORA_EXTRA_HOSTS | {host_port}
        other = make_tenant(
            "other",
            secret=sim.DEMO_CLIENT_SECRET,
            environment="custom",
            base_url=other_zuora.url,
            identity=sim.DEMO_CLIENT_ID,
            groups=simulator_tenant.groups.all(),
        )
        other_zuora.forget_job(sim.MULTI_BATCH_JOB_ID)

        here = client.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID))
        there = client.get(job_url(other, sim.MULTI_BATCH_JOB_ID))
        here_again = client.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID))

    assert here.status_code == here_again.status_code == 200
    assert there.status_code == 404
    assert JobSnapshot.objects.filter(job_id=sim.MULTI_BATCH_JOB_ID).count() == 1
    assert other_zuora.count(path_prefix="/v1/batch-query/jobs/") == 1


def test_the_batch_summary_counts_failures_honestly(client, simulator_tenant):
    html = client.get(job_url(simulator_tenant, sim.ABORTED_JOB_ID)).content.decode()

    assert "1 completed, 1 aborted of 2 · 42 records" in html
    assert '<rect class="completed" x="0" width="50" height="1"/>' in html
    assert '<rect class="aborted" x="50" width="50" height="1"/>' in html


@pytest.mark.parametrize(("batches", "open_queries"), [(2, 2), (6, 0)])
def test_a_long_job_collapses_its_queries(
    client, simulator_tenant, simulator, batches, open_queries
):
    job_id = simulator.add_job(records=10, batches=batches)

    html = client.get(job_url(simulator_tenant, job_id)).content.decode()

    assert html.count('<details class="query"') == batches
    assert html.count('<details class="query" open>') == open_queries


def test_records_not_yet_known_are_a_dash_not_zero(client, simulator_tenant):
    html = client.get(job_url(simulator_tenant, sim.RUNNING_JOB_ID)).content.decode()

    cells = re.findall(r'<td class="num" data-label="Records">(.*?)</td>', html)
    assert cells[0] == "7"  # the batch already done
    assert all("—" in cell for cell in cells[2:])  # still pending
    assert "1 completed of 5" in html
    assert '<rect class="completed" x="0" width="20" height="1"/>' in html


# --- Moving between jobs ------------------------------------------------------------------------


def stored_also_in(tenant: Tenant, job_id: str) -> None:
    """`tenant` has stored the same job ID, as a sandbox copied from production would."""
    snapshot = JobSnapshot.objects.get(job_id=job_id)
    snapshot.pk, snapshot.tenant = None, tenant
    snapshot.save()


def test_a_job_page_names_another_visible_tenant_that_stored_the_same_id(
    client, simulator_tenant, make_tenant
):
    url = job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID)
    client.get(url)
    sandbox = make_tenant(
        "sandbox", name="Sandbox (copy of Demo)", groups=tuple(simulator_tenant.groups.all())
    )
    stored_also_in(sandbox, sim.MULTI_BATCH_JOB_ID)

    page = client.get(url).content.decode()

    link = f'<a href="{job_url(sandbox, sim.MULTI_BATCH_JOB_ID)}">Sandbox (copy of Demo)</a>'
    assert f"also in: {link}" in page


def test_a_job_page_never_names_a_tenant_the_person_may_not_see(
    client, simulator_tenant, make_tenant
):
    url = job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID)
    client.get(url)
    stored_also_in(make_tenant("secret-subsidiary"), sim.MULTI_BATCH_JOB_ID)  # granted to nobody

    page = client.get(url).content.decode()

    assert "also in" not in page
    assert "Secret Subsidiary" not in page and "secret-subsidiary" not in page
