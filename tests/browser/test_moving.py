"""Moving between jobs: the header's lookup field on every page, and the job page's copy
buttons for batch and file IDs."""

import pytest

from aquadash import simulator as sim
from tests.browser.conftest import expect, look_up, sign_in

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads what the test wrote


@pytest.fixture
def finance(simulator_tenant, make_user) -> None:
    make_user("finance", groups=simulator_tenant.groups.all())


@pytest.mark.parametrize("width", [1440, 390])
def test_the_header_lookup_opens_a_job_from_another_jobs_page(looks, finance, width):
    page = looks.new_page(width=width)
    sign_in(page, "finance")
    look_up(page, sim.MULTI_BATCH_JOB_ID)
    field = page.get_by_role("search").get_by_label("Look up a job")
    expect(field).to_be_visible()
    # The whole placeholder shows: the field is not cut on a phone.
    assert page.evaluate("(el) => el.scrollWidth <= el.clientWidth", field.element_handle()), (
        "the header field is cut"
    )

    field.fill(sim.ZIP_JOB_ID)
    page.get_by_role("search").get_by_role("button", name="Open").click()

    page.wait_for_url(f"**/t/sim/jobs/{sim.ZIP_JOB_ID}/")
    looks.check(page, "job page with the header lookup", screenshot="header-lookup")


def test_a_batch_id_copy_button_copies_the_batch_id(looks, finance):
    page = looks.new_page(permissions=["clipboard-read", "clipboard-write"])
    sign_in(page, "finance")
    look_up(page, sim.MULTI_BATCH_JOB_ID)
    batch_id = page.locator("table.batches tbody.batch code").first.inner_text()

    button = page.get_by_role("button", name=f"Copy batch ID {batch_id}")
    button.click()

    expect(button).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == batch_id
