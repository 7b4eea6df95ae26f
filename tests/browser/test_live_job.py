"""A job page in Chromium: looked up from the home page, refreshed live while the job runs,
quiet once it ends or while the tab is hidden, and still readable after Zuora forgets the job."""

from urllib.parse import urlsplit

import pytest

from aquadash import simulator as sim
from tests.browser.conftest import POLL_SECONDS, Page, expect, look_up, polls, sign_in

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads what the test wrote

# Stands in for the browser's own signal that the tab was hidden or shown again: headless
# Chromium always reports a visible page, so the page is told as a real tab switch tells it.
TAB_SWITCH = """
(() => {
  let hidden = false;
  Object.defineProperty(Document.prototype, "visibilityState", {
    configurable: true, get: () => (hidden ? "hidden" : "visible"),
  });
  Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => hidden });
  window.__switchTab = (hide) => {
    hidden = hide;
    document.dispatchEvent(new Event("visibilitychange"));
  };
})();
"""


@pytest.fixture
def finance(simulator_tenant, make_user):
    return make_user("finance", groups=simulator_tenant.groups.all())


def status(page: Page, text: str):
    """The job's status, when it is `text`, beside the job's name."""
    return page.get_by_role("heading", level=1).locator("xpath=..").get_by_text(text, exact=True)


def next_poll(page: Page, path: str) -> None:
    """Wait for the page to poll the job page at `path`."""
    page.wait_for_event("request", lambda r: polls([r], path))


def test_a_running_job_completes_on_screen_and_polling_stops(looks, finance, sim_clock, simulator):
    page = looks.new_page()
    sign_in(page, "finance")
    look_up(page, sim.RUNNING_JOB_ID)
    expect(status(page, "executing")).to_be_visible()
    looks.check(page, "job page, running")
    seen = []
    page.on("request", lambda request: seen.append(request))
    path = urlsplit(page.url).path
    page.evaluate("window.sameDocument = true")  # gone if the page reloads

    next_poll(page, path)  # it polls while the job runs
    sim_clock.advance(5 * simulator.batch_seconds)
    expect(status(page, "completed")).to_be_visible(timeout=10_000)
    assert page.evaluate("window.sameDocument") is True
    after = len(seen)
    page.wait_for_timeout((2 * POLL_SECONDS + 0.5) * 1000)

    # Nothing more but what the end itself brings: the watch card, reloaded, the kept-files card
    # (shown once a job is final), and the new icon.
    ended = ("/watch/", "/archive/", "/favicon-ok.svg")
    assert [r.url for r in seen[after:] if not r.url.endswith(ended)] == []
    looks.check(page, "job page, completed")


def test_a_hidden_tab_makes_no_requests(looks, finance):
    page = looks.new_page()
    page.add_init_script(TAB_SWITCH)
    sign_in(page, "finance")
    look_up(page, sim.RUNNING_JOB_ID)
    seen = []
    page.on("request", lambda request: seen.append(request))
    path = urlsplit(page.url).path
    next_poll(page, path)  # it polls while visible

    page.evaluate("__switchTab(true)")
    hidden_from = len(seen)
    page.wait_for_timeout((3 * POLL_SECONDS + 0.5) * 1000)
    while_hidden = [request.url for request in seen[hidden_from:]]
    with page.expect_request(lambda r: polls([r], path), timeout=2 * POLL_SECONDS * 1000):
        page.evaluate("__switchTab(false)")  # shown again, it polls again

    assert while_hidden == []


def test_a_job_zuora_no_longer_has_shows_the_stored_copy(looks, finance, simulator):
    page = looks.new_page()
    sign_in(page, "finance")
    look_up(page, sim.MULTI_BATCH_JOB_ID)
    expect(status(page, "completed")).to_be_visible()
    simulator.forget_job(sim.MULTI_BATCH_JOB_ID)  # Zuora purged it

    page.wait_for_timeout(POLL_SECONDS * 1000)  # a refresh within the interval is not asked
    page.get_by_role("button", name="Refresh from Zuora").click()

    expect(page.get_by_text("Zuora no longer has this job.")).to_be_visible()
    expect(page.get_by_text("Accounts", exact=True)).to_be_visible()  # its stored batches
    looks.check(page, "job page, gone from Zuora")
