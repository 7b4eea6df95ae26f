"""The work queue in Chromium: sorting by a heading, filtering with the form, in every look."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from aquadash.models import JobSnapshot
from tests.browser.conftest import expect, sign_in

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads what the test wrote


@pytest.fixture
def queue(simulator_tenant, make_tenant, make_user) -> None:
    """Jobs of two tenants in two zones, and "finance", who may see both."""
    berlin = make_tenant("berlin", time_zone="Europe/Berlin", groups=simulator_tenant.groups.all())
    now = timezone.now()
    for n, (tenant, status) in enumerate(
        [
            (simulator_tenant, "completed"),
            (berlin, "error"),
            (simulator_tenant, "executing"),
            (berlin, "completed"),
            (simulator_tenant, "cancelled"),
        ]  # fmt: skip
    ):
        JobSnapshot.objects.create(
            tenant=tenant,
            job_id=f"{n + 1:032x}",
            name=f"Month-end export {n + 1}",
            status=status,
            is_final=status != "executing",
            raw={},
            last_fetched_at=now - timedelta(minutes=n),
            started_at=now - timedelta(hours=n + 1),
            run_seconds=None if status == "executing" else 60 * (n + 2),
            total_records=1000 * (5 - n),
            batches_done=n % 3,
            batches_total=3,
        )
    make_user("finance", groups=simulator_tenant.groups.all())


def names(page) -> list[str]:
    return page.locator("table.queue tbody td a").all_inner_texts()


def test_the_work_queue_sorts_by_a_heading_and_filters(looks, queue):
    page = looks.new_page()
    sign_in(page, "finance")
    page.get_by_role("link", name="Jobs", exact=True).click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Jobs")
    assert names(page)[0] == "Month-end export 1"  # newest start first
    looks.check(page, "work queue", screenshot="work-queue")

    page.get_by_role("link", name="Records").click()
    expect(page).to_have_url(re.compile(r"sort=-records"))
    expect(page.locator("table.queue tbody tr").first).to_contain_text("Month-end export 1")
    page.get_by_role("link", name="Records").click()
    expect(page).to_have_url(re.compile(r"sort=records"))
    expect(page.locator("table.queue tbody tr").first).to_contain_text("Month-end export 5")

    page.locator("select[name=status]").select_option("error")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"status=error"))
    expect(page.locator("table.queue tbody tr")).to_have_count(1)
    expect(page.locator("table.queue tbody tr")).to_contain_text("Berlin")
    looks.check(page, "work queue, filtered")


def test_the_work_queue_asks_for_eight_characters_of_an_id(looks, queue):
    page = looks.new_page(width=390)
    sign_in(page, "finance")
    page.goto("/jobs/")

    page.get_by_label("Name or job ID").fill("00000")
    page.get_by_role("button", name="Show").click()

    expect(page.get_by_role("status")).to_contain_text("type at least 8 characters")
    looks.check(page, "work queue, short ID")


def test_the_work_queue_works_without_javascript(looks, queue, every_look):
    page = every_look.browser.new_page(base_url=looks.base_url, java_script_enabled=False)
    sign_in(page, "finance")
    page.goto("/jobs/?sort=name")

    page.locator("select[name=tenant]").select_option(label="Berlin")
    page.get_by_role("button", name="Show").click()

    assert names(page) == ["Month-end export 2", "Month-end export 4"]
    page.context.close()
