"""The admin's "Test connection" for a tenant, in Chromium."""

import pytest

from tests.browser.conftest import Page, expect, sign_in

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads what the test wrote


def press_test_connection(page: Page) -> None:
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_text("Sim: ")).to_be_visible()


def test_an_admin_tests_a_tenants_connection(looks, simulator_tenant, simulator, make_user):
    make_user("admin", superuser=True)
    page = looks.new_page()
    sign_in(page, "admin")
    page.get_by_role("link", name="Admin").click()
    looks.check(page, "admin index")
    page.get_by_role("link", name="Tenants").click()
    looks.check(page, "admin tenant list")
    page.get_by_role("link", name="Sim", exact=True).click()
    asked_zuora = simulator.count()

    press_test_connection(page)

    assert simulator.count() > asked_zuora
    expect(page.get_by_role("listitem").filter(has_text="Sim: ")).to_have_class("success")
    looks.check(page, "admin tenant form", again=press_test_connection)
