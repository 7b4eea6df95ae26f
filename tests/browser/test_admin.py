"""The admin's tenant form in Chromium: "Test connection", and a tenant admin's view of it."""

import pytest
from django.contrib.auth.models import Group

from aquadash.models import Grant, Role
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


def test_a_tenant_admin_changes_their_tenant_with_its_grants_shown_read_only(
    looks, simulator_tenant, make_user
):
    it = Group.objects.create(name="Sim IT")
    Grant.objects.create(tenant=simulator_tenant, group=it, role=Role.ADMIN)
    user = make_user("sim-it", groups=[it])
    user.is_staff = True
    user.save()
    page = looks.new_page()
    sign_in(page, "sim-it")
    page.goto("/admin/aquadash/tenant/")
    page.get_by_role("link", name="Sim", exact=True).click()

    expect(page.get_by_label("Time zone")).to_be_editable()
    expect(page.get_by_label("Role")).to_have_count(0)  # grants are shown, not offered
    expect(page.get_by_text("Sim staff", exact=True).first).to_be_visible()
    looks.check(page, "tenant admin's tenant form")
