"""Finding a job in any tenant, in Chromium: the answer when no tenant has it."""

import pytest

from tests.browser.conftest import expect, sign_in

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads what the test wrote


def test_a_job_no_tenant_has_is_answered_tenant_by_tenant(looks, simulator_tenant, make_user):
    make_user("finance", groups=simulator_tenant.groups.all())
    page = looks.new_page()
    sign_in(page, "finance")

    response = page.goto("/find/0123456789abcdef0123456789abcdef/")

    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_contain_text("No tenant you can see has job")
    expect(page.get_by_text("does not have it")).to_be_visible()
    looks.check(page, "find, no match", status=404)
