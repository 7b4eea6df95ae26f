"""A viewer in Chromium: the job page shows everything about the job but its result data, and
says why; the files' own addresses are not found."""

import pytest
from django.contrib.auth.models import Group

from aquadash import simulator as sim
from aquadash.models import Grant, Role
from tests.browser.conftest import expect, look_up, sign_in

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads what the test wrote


def test_a_viewers_job_page_offers_no_result_data_and_says_why(looks, simulator_tenant, make_user):
    viewers = Group.objects.create(name="Sim viewers")
    Grant.objects.create(tenant=simulator_tenant, group=viewers, role=Role.VIEWER)
    make_user("viewer", groups=[viewers])
    page = looks.new_page()
    sign_in(page, "viewer")

    look_up(page, sim.MULTI_BATCH_JOB_ID)

    expect(page.get_by_role("heading", name="Month-end extract")).to_be_visible()
    expect(
        page.get_by_text("Your role on Sim is viewer: files need the downloader role")
    ).to_be_visible()
    result_links = "a[href*='/files/'], a[href$='/download'], a[href$='/download.zip']"
    expect(page.locator(result_links)).to_have_count(0)
    expect(page.get_by_role("link", name="Preview")).to_have_count(0)
    expect(page.get_by_role("link", name="Raw JSON")).to_be_visible()  # job metadata stays
    expect(page.get_by_role("cell", name="Accounts")).to_have_count(1)  # the batches are there
    looks.check(page, "viewer's job page")

    response = page.goto(f"/t/sim/jobs/{sim.MULTI_BATCH_JOB_ID}/download.zip")

    assert response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
