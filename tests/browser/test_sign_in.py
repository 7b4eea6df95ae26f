"""Signing in, in Chromium."""

import pytest

from tests.browser.conftest import expect, sign_in

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads what the test wrote


def test_signing_in_leads_to_the_lookup(looks, simulator_tenant, make_user):
    make_user("finance", groups=simulator_tenant.groups.all())
    page = looks.new_page()

    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    looks.check(page, "sign-in page")
    sign_in(page, "finance")

    expect(page.get_by_role("heading", name="Look up an AQuA job")).to_be_visible()
    looks.check(page, "home page")


def test_the_slash_shortcut_jumps_to_the_job_field_and_never_types_into_it(
    looks, simulator_tenant, make_user
):
    make_user("finance", groups=simulator_tenant.groups.all())
    page = looks.new_page()
    page.goto("/")
    sign_in(page, "finance")
    job_field = page.get_by_label("Job ID")
    partner_field = page.get_by_label("Partner")

    page.keyboard.press("/")  # the job field has focus on arrival, and is empty
    expect(job_field).to_be_focused()
    expect(job_field).to_have_value("")

    partner_field.click()
    page.keyboard.type("a/b")  # a field being typed in keeps its slash
    expect(partner_field).to_have_value("a/b")

    page.get_by_role("heading", name="Look up an AQuA job").click()  # nothing focused
    page.keyboard.press("/")
    expect(job_field).to_be_focused()
    expect(job_field).to_have_value("")
