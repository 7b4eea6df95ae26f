"""The admin's tenant form in Chromium: "Test connection", and a tenant admin's view of it."""

import os
from pathlib import Path

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


# What an admin's 1440 px window must show without scrolling sideways: the page, and each
# change list's table (Django lets the table scroll inside its box; that is the width asked of it).
OVERFLOW_AT_1440 = """
() => {
  const problems = [];
  const root = document.documentElement;
  if (root.scrollWidth > window.innerWidth) {
    problems.push(`the page is ${root.scrollWidth}px wide in a ${window.innerWidth}px window`);
  }
  for (const box of document.querySelectorAll("#changelist .results")) {
    if (box.scrollWidth > box.clientWidth + 1) {
      problems.push(`the list is ${box.scrollWidth}px wide in its ${box.clientWidth}px box`);
    }
  }
  return problems;
}
"""

CHANGE_LISTS = ["tenant", "jobsnapshot", "lookup", "download", "auditevent", "watch", "delivery"]


def test_every_change_list_fits_a_1440_px_window(
    looks, subtests, simulator_tenant, make_user, admin_trail
):
    make_user("admin", superuser=True)
    for scheme in ("light", "dark"):
        page = looks.new_page(scheme, 1440)
        sign_in(page, "admin")
        for model in CHANGE_LISTS:
            page.goto(f"/admin/aquadash/{model}/")
            with subtests.test(msg=f"{model} list, {scheme}"):
                expect(page.locator("#result_list tbody tr").first).to_be_visible()
                if directory := os.environ.get("AQUADASH_SCREENSHOTS"):
                    page.screenshot(path=Path(directory, f"admin-{model}-{scheme}.png"))
                assert page.evaluate(OVERFLOW_AT_1440) == []


# How an object tool looks: what Django's own links there (History) are styled with.
TOOL_LOOK = """
(tool) => {
  const style = getComputedStyle(tool);
  return ["background-color", "color", "font-size", "font-weight", "text-transform",
          "letter-spacing", "border-radius", "padding-top", "padding-left", "border-top-width"]
    .map((name) => `${name}: ${style.getPropertyValue(name)}`)
    .concat([`height: ${Math.round(tool.getBoundingClientRect().height)}`]);
}
"""


def test_test_connection_looks_like_the_other_object_tools(looks, simulator_tenant, make_user):
    make_user("admin", superuser=True)
    for scheme in ("light", "dark"):
        page = looks.new_page(scheme, 1440)
        sign_in(page, "admin")
        page.goto(f"/admin/aquadash/tenant/{simulator_tenant.pk}/change/")
        tools = page.locator(".object-tools")
        button = tools.get_by_role("button", name="Test connection")
        history = tools.get_by_role("link", name="History")
        if directory := os.environ.get("AQUADASH_SCREENSHOTS"):
            page.screenshot(path=Path(directory, f"admin-tenant-form-{scheme}.png"))
        assert button.evaluate(TOOL_LOOK) == history.evaluate(TOOL_LOOK)
