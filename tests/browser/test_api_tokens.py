"""Making, copying and revoking a personal API token, in Chromium."""

import pytest
import requests

from aquadash import simulator as sim
from tests.browser.conftest import expect, sign_in

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads what the test wrote


def test_a_token_is_made_shown_once_copied_and_revoked(looks, simulator_tenant, make_user):
    make_user("finance", groups=simulator_tenant.groups.all())
    page = looks.new_page(permissions=["clipboard-read", "clipboard-write"])
    sign_in(page, "finance")

    page.get_by_role("link", name="API tokens").click()
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    looks.check(page, "API tokens page")
    page.get_by_label("Name").fill("Power Query")
    page.get_by_label("Sim").check()
    page.get_by_label("30 days").check()
    page.get_by_role("button", name="Make token").click()

    expect(page.get_by_role("heading", name="Your new token")).to_be_visible()
    looks.check(page, "API tokens page with a new token")
    page.get_by_role("button", name="Copy token").click()
    token = page.evaluate("navigator.clipboard.readText()")
    assert token.startswith("aqd_")
    job = f"{looks.base_url}/api/v1/tenants/sim/jobs/{sim.DOC_FILEID_JOB_ID}"
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.get(job, headers=auth, timeout=30).status_code == 200

    page.goto("/account/api-tokens/")  # the page again: the token is not shown
    expect(page.get_by_role("heading", name="Your new token")).to_have_count(0)
    page.get_by_role("button", name="Revoke").click()

    expect(page.get_by_text("revoked")).to_be_visible()
    assert requests.get(job, headers=auth, timeout=30).status_code == 401
