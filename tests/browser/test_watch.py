"""Watching a job in Chromium: the watch card, and the open tab telling that the job ended."""

import re

import pytest

from aquadash import simulator as sim
from aquadash.models import Watch
from tests.browser.conftest import Page, expect, look_up, sign_in

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads what the test wrote

# Records the notifications the page shows, as the browser would show them.
NOTIFICATIONS = """
window.__notifications = [];
window.Notification = new Proxy(window.Notification, {
  construct(target, args) { window.__notifications.push(args[0]); return {}; },
});
"""


@pytest.fixture
def finance(simulator_tenant, make_user):
    return make_user("finance", groups=simulator_tenant.groups.all(), email="finance@example.com")


def watch_card(page: Page):
    return page.locator("#watching")


def test_a_watched_job_ends_in_the_title_the_icon_and_a_browser_notification(
    looks, finance, sim_clock, simulator
):
    page = looks.new_page(permissions=["notifications"])
    page.add_init_script(NOTIFICATIONS)
    sign_in(page, "finance")
    look_up(page, sim.RUNNING_JOB_ID)
    watch_card(page).get_by_role("button", name="Notify me when it ends").click()
    expect(watch_card(page).get_by_role("button", name="Stop watching")).to_be_visible()
    expect(watch_card(page)).to_contain_text("Waiting for this job to end: finance.")
    assert Watch.objects.open().filter(user=finance).count() == 1
    looks.check(page, "job page, watched")

    watch_card(page).get_by_role("button", name="Also notify in this browser").click()
    expect(watch_card(page)).to_contain_text("This browser will notify you too")
    title = page.title()
    sim_clock.advance(5 * simulator.batch_seconds)

    expect(page).to_have_title("\u2713 " + title.replace("executing", "completed"), timeout=10_000)
    icon = page.locator("link[rel=icon]")
    assert icon.get_attribute("href").endswith("favicon-ok.svg")
    assert page.evaluate("window.__notifications") == [page.title()]
    expect(watch_card(page)).to_contain_text("This job has ended; notifying: finance.")
    expect(watch_card(page).get_by_role("button", name="Notify me when it ends")).to_have_count(0)


def test_without_the_browser_opt_in_no_notification_is_shown(looks, finance, sim_clock, simulator):
    page = looks.new_page(permissions=["notifications"])
    page.add_init_script(NOTIFICATIONS)
    sign_in(page, "finance")
    look_up(page, sim.RUNNING_JOB_ID)
    expect(watch_card(page)).to_be_visible()
    sim_clock.advance(5 * simulator.batch_seconds)

    expect(page).to_have_title(re.compile("^\u2713 "), timeout=10_000)
    assert page.evaluate("window.__notifications") == []
