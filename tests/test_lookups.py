"""Looking a job up: the home page's forms, the permalink they land on, and the trail of
lookups each page view leaves."""

import re

import pytest
from django.utils import timezone

from aquadash import simulator as sim
from aquadash.models import JobSnapshot, Lookup
from tests.test_job_views import HTMX, UNKNOWN_JOB, job_url, next_interval


def test_lookup_lands_on_the_permalink(finance_client, simulator_tenant):
    response = finance_client.get(
        "/", {"tenant": "sim", "job": f"  {sim.MULTI_BATCH_JOB_ID.upper()} "}
    )

    assert response.status_code == 302
    assert response["Location"] == job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID)


@pytest.mark.parametrize(
    "text",
    [
        f"https://rest.zuora.com/v1/batch-query/jobs/{sim.ZIP_JOB_ID}",
        f'curl -H "Authorization: Bearer x" "https://rest.zuora.com/v1/batch-query/jobs/{sim.ZIP_JOB_ID}"',
    ],
)
def test_a_pasted_zuora_address_opens_the_job_in_the_chosen_tenant(
    finance_client, simulator_tenant, text
):
    response = finance_client.get("/", {"tenant": "sim", "job": text})

    assert response["Location"] == job_url(simulator_tenant, sim.ZIP_JOB_ID)


def test_a_pasted_job_link_opens_that_job(finance_client, simulator_tenant):
    link = f"https://aquadash.example.com{job_url(simulator_tenant, sim.ZIP_JOB_ID)}?x=1"

    response = finance_client.get("/", {"tenant": "sim", "job": link})

    assert response["Location"] == job_url(simulator_tenant, sim.ZIP_JOB_ID)


@pytest.mark.parametrize("text", ["hello", "12345", "", "402881824835bb2a01483c19f7d7025g"])
def test_a_bad_job_id_in_the_form_is_a_form_error(
    finance_client, simulator_tenant, simulator, text
):
    response = finance_client.get("/", {"tenant": "sim", "job": text})

    assert response.status_code == 400
    assert simulator.count() == 0


def test_the_form_offers_only_tenants_the_user_may_see(
    finance_client, simulator_tenant, make_tenant
):
    make_tenant("secret-tenant")

    response = finance_client.get("/", {"tenant": "secret-tenant", "job": sim.MULTI_BATCH_JOB_ID})

    assert response.status_code == 400
    assert "Secret Tenant" not in response.content.decode()


def test_the_last_completed_form_remembers_the_last_tenant_and_lookup_asks_any(
    finance_client, simulator_tenant, make_tenant
):
    other = make_tenant("other", groups=simulator_tenant.groups.all())
    finance_client.get(job_url(simulator_tenant, sim.MULTI_BATCH_JOB_ID))

    html = finance_client.get("/").content.decode()

    lookup, last_completed = html.split('id="last_completed_tenant"')
    assert '<option value="*" selected>Any tenant I can see</option>' in lookup
    assert re.search(r'<option value="sim" selected>', last_completed)
    assert other.name in html


def test_last_completed_job_opens_its_page(finance_client, simulator_tenant):
    response = finance_client.get(
        "/",
        {"tenant": "sim", "partner": sim.DEMO_PARTNER, "project": sim.DEMO_PROJECT},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == job_url(simulator_tenant, sim.INCREMENTAL_JOB_ID)
    assert response.status_code == 200


def test_last_completed_job_of_an_unknown_session_is_a_404(finance_client, simulator_tenant):
    response = finance_client.get(
        f"/t/{simulator_tenant.slug}/last-completed/",
        {"partner": sim.DEMO_PARTNER, "project": "body"},
    )

    html = response.content.decode()
    assert response.status_code == 404
    assert "<h1>No completed job</h1>" in html
    assert f"partner “{sim.DEMO_PARTNER}” and project “body”" in html
    assert "has no stored copy" not in html


def test_each_page_view_is_recorded_once_and_polls_are_not(finance_client, simulator_tenant):
    url = job_url(simulator_tenant, sim.RUNNING_JOB_ID)
    finance_client.get(url)
    finance_client.get(url, **HTMX)
    finance_client.get(job_url(simulator_tenant, UNKNOWN_JOB))

    lookups = Lookup.objects.order_by("at")
    assert [(lookup.username, lookup.job_id) for lookup in lookups] == [
        ("finance", sim.RUNNING_JOB_ID),
        ("finance", UNKNOWN_JOB),
    ]
    assert (lookups[0].outcome, lookups[0].job_status) == ("shown", "executing")
    assert (lookups[1].outcome, lookups[1].job_name) == ("failed: not found in Zuora", "")


def test_home_lists_recent_lookups(finance_client, simulator_tenant):
    finance_client.get(job_url(simulator_tenant, sim.ZIP_JOB_ID))
    finance_client.get(job_url(simulator_tenant, sim.GZIP_JOB_ID))

    html = finance_client.get("/").content.decode()

    assert html.index(sim.GZIP_JOB_ID) < html.index(sim.ZIP_JOB_ID)


def test_recent_lookups_show_each_job_as_it_is_now(finance_client, simulator_tenant, sim_clock):
    url = job_url(simulator_tenant, sim.RUNNING_JOB_ID)
    finance_client.get(url)
    sim_clock.advance(600)
    next_interval()
    finance_client.get(url, **HTMX)

    html = finance_client.get("/").content.decode()

    assert ">completed</span>" in html and ">executing</span>" not in html


def test_tenant_jobs_can_be_searched_and_filtered(finance_client, simulator_tenant, make_tenant):
    for job_id in [sim.MULTI_BATCH_JOB_ID, sim.ERROR_JOB_ID, sim.RUNNING_JOB_ID]:
        finance_client.get(job_url(simulator_tenant, job_id))
    url = f"/t/{simulator_tenant.slug}/jobs/"

    everything = finance_client.get(url).content.decode()
    errors = finance_client.get(url, {"status": "error"}).content.decode()
    by_id = finance_client.get(url, {"q": f" {sim.RUNNING_JOB_ID.upper()} "}).content.decode()
    by_name = finance_client.get(url, {"q": "finance EXPORT"}).content.decode()

    assert all(job_id in everything for job_id in [sim.MULTI_BATCH_JOB_ID, sim.ERROR_JOB_ID])
    assert sim.ERROR_JOB_ID in errors and sim.MULTI_BATCH_JOB_ID not in errors
    assert sim.RUNNING_JOB_ID in by_id and sim.MULTI_BATCH_JOB_ID not in by_id
    assert sim.RUNNING_JOB_ID in by_name and sim.ERROR_JOB_ID not in by_name


def test_tenant_jobs_are_paginated_on_the_server(finance_client, simulator_tenant):
    JobSnapshot.objects.bulk_create(
        JobSnapshot(
            tenant=simulator_tenant,
            job_id=f"{n:032x}",
            name=f"job {n}",
            status="completed",
            raw={},
            last_fetched_at="2026-01-01T00:00:00Z",
            started_at=timezone.now(),
        )
        for n in range(120)
    )

    html = finance_client.get(f"/t/{simulator_tenant.slug}/jobs/", {"page": 3}).content.decode()

    assert "Page 3 of 3" in html
    assert html.count("<tr>") == 21  # the header and the last 20 jobs


# The home page's empty forms are kept rendered by each process (views._lookup_forms), keyed on
# the tenant choices and the tenant chosen beforehand: one test per part of that key.


def widget_templates(response) -> list[str]:
    return [t.name for t in response.templates if t.name.startswith("django/forms/widgets/")]


def test_the_empty_forms_are_rendered_once_and_then_kept(finance_client, simulator_tenant):
    first = finance_client.get("/")
    again = finance_client.get("/")

    assert widget_templates(first)
    assert widget_templates(again) == []
    assert again.content.decode().count('<option value="sim"') == 2  # both forms, as at first


def test_a_renamed_tenant_shows_its_new_name_in_the_forms_at_once(finance_client, simulator_tenant):
    finance_client.get("/")
    simulator_tenant.name = "Simulated Zuora"
    simulator_tenant.save()

    html = finance_client.get("/").content.decode()

    assert html.count('<option value="sim">Simulated Zuora</option>') == 2


def test_a_tenant_with_a_new_slug_is_offered_under_it_at_once(finance_client, simulator_tenant):
    finance_client.get("/")
    simulator_tenant.slug = "zuora-sim"
    simulator_tenant.save()

    html = finance_client.get("/").content.decode()

    assert html.count('<option value="zuora-sim">') == 2 and 'value="sim"' not in html


def test_a_tenant_granted_since_is_offered_at_once(finance_client, simulator_tenant, make_tenant):
    finance_client.get("/")
    make_tenant("other", groups=simulator_tenant.groups.all())

    html = finance_client.get("/").content.decode()

    assert html.count('<option value="other">Other</option>') == 2
    assert "Any tenant I can see" in html


def test_the_forms_choose_the_tenant_last_looked_in_at_once(
    finance_client, simulator_tenant, make_tenant
):
    make_tenant("other", groups=simulator_tenant.groups.all())
    finance_client.get("/")
    session = finance_client.session
    session["last_tenant"] = "other"
    session.save()

    html = finance_client.get("/").content.decode()

    assert re.search(
        r'<option value="other" selected>', html.split('id="last_completed_tenant"')[1]
    )


def test_filled_in_forms_are_never_kept(finance_client, simulator_tenant):
    finance_client.get("/")
    typed = finance_client.get("/", {"tenant": "sim", "job": "not-a-job-id"}).content.decode()
    empty = finance_client.get("/").content.decode()

    assert 'value="not-a-job-id"' in typed and 'class="error"' in typed
    assert "not-a-job-id" not in empty and 'class="error"' not in empty
