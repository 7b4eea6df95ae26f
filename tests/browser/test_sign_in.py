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
