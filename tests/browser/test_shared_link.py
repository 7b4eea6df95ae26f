"""A job link pasted into a chat, opened in Chromium by a colleague who may see the tenant and
by one who may not."""

import pytest
from django.contrib.auth.models import Group

from aquadash import simulator as sim
from tests.browser.conftest import expect, look_up, sign_in

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads what the test wrote


@pytest.fixture
def shared_link(looks, simulator_tenant, make_user) -> str:
    """The link that "finance" copied with the job page's "Copy link" button."""
    make_user("finance", groups=simulator_tenant.groups.all())
    page = looks.new_page(permissions=["clipboard-read", "clipboard-write"])
    sign_in(page, "finance")
    look_up(page, sim.MULTI_BATCH_JOB_ID)
    page.get_by_role("button", name="Copy link").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    link = page.evaluate("navigator.clipboard.readText()")
    page.context.close()
    return link


def test_a_colleague_with_access_opens_the_shared_link(
    looks, shared_link, simulator_tenant, make_user
):
    make_user("colleague", groups=simulator_tenant.groups.all())
    page = looks.new_page(width=390)
    sign_in(page, "colleague")

    response = page.goto(shared_link)

    assert response.status == 200
    expect(page.get_by_role("heading", name="Month-end extract")).to_be_visible()
    looks.check(page, "shared job page")


def test_a_colleague_without_access_gets_not_found(looks, shared_link, simulator, make_user):
    make_user("outsider", groups=[Group.objects.create(name="Other staff")])
    page = looks.new_page(scheme="dark")
    sign_in(page, "outsider")
    asked_zuora = simulator.count()

    response = page.goto(shared_link)

    assert response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_text("Month-end extract")).to_have_count(0)
    assert simulator.count() == asked_zuora
    looks.check(page, "not-found page", status=404)
