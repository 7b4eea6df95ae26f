"""Real-browser tests: Debian's Chromium, driven by Playwright, against gunicorn serving the
test database and the Zuora simulator, both on loopback.

Every page a flow reaches is checked as it is and again in the other three looks (light and
dark, 1440 and 390 px wide): no console errors, no Content-Security-Policy violations, no axe-core
violation of serious or critical impact, and at 390 px nothing cut off at the side. Each page and
look is a subtest of its own, so a flow goes on past a page that fails them.

Without Chromium (or Playwright) these tests skip, saying so. Set AQUADASH_SCREENSHOTS to a
directory (`make screenshots`) to save screenshots of the job page there.
"""

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings

from aquadash import simulator as sim
from tests.conftest import gunicorn_serving

try:  # tests import Page and expect from here, so that they too skip without Playwright
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # the tests skip, saying why
    Browser = Page = expect = sync_playwright = None

try:
    from axe_playwright_python.base import AXE_SCRIPT
except ImportError:
    AXE_SCRIPT = None

CHROMIUM = os.environ.get("AQUADASH_CHROMIUM", "/usr/bin/chromium")
# Playwright's own browser download is not reachable here: launch Debian's Chromium, and keep it
# from calling home (without these flags it keeps trying the closed network).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
POLL_SECONDS = 1  # the server's AQUADASH_POLL_SECONDS: short, so watching a job is quick
LOOKS = [("light", 1440), ("dark", 1440), ("light", 390), ("dark", 390)]
NARROW = 390
# Boxes meant to scroll sideways on a phone: code, a CSV preview with all its columns, and the
# admin's change lists (Django's design).
MEANT_TO_SCROLL = "pre, textarea, .preview-table, #changelist .results"

# The browser reports CSP violations to the page as events; this keeps them for `check`.
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.effectiveDirective} refused ${event.blockedURI || "inline"}` +
    ` (${event.sourceFile || "page"}:${event.lineNumber})`);
});
"""

# Starts axe-core on the page without waiting for it, so several pages can run it at once.
START_AXE = "() => { window.__axe = axe.run(document, {resultTypes: ['violations']}); }"

# What is cut off at the side: the page wider than the window, and any box narrower than what
# it holds (overflow hidden, clipped or scrolled sideways), naming the text that is out of sight.
# Text hidden on purpose is not cut off: for screen readers only (clipped to a pixel) or moved
# away beside an icon (a large negative text-indent).
FIND_CLIPPED = """
(meantToScroll) => {
  const problems = [];
  const width = window.innerWidth;
  const root = document.documentElement;
  if (root.scrollWidth > width) {
    problems.push(`the page is ${root.scrollWidth}px wide in a ${width}px window`);
  }
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (el.classList.length ? "." + [...el.classList].join(".") : "");
  const hiddenOnPurpose = (el) => {
    for (; el && el !== document.body; el = el.parentElement) {
      const style = getComputedStyle(el);
      const box = el.getBoundingClientRect();
      if (style.clip !== "auto" || style.clipPath !== "none") return true;
      if (box.width <= 1 || box.height <= 1 || parseFloat(style.textIndent) <= -999) return true;
    }
    return false;
  };
  const skip = "input, select, textarea, option, " + meantToScroll;
  for (const el of document.body.querySelectorAll("*")) {
    const style = getComputedStyle(el);
    if (style.display === "none" || style.visibility === "hidden" || el.closest(skip)) continue;
    if (style.overflowX === "visible" || el.scrollWidth <= el.clientWidth + 1) continue;
    if (!el.innerText || !el.innerText.trim() || hiddenOnPurpose(el)) continue;
    const edge = el.getBoundingClientRect().right;
    const hidden = [...el.querySelectorAll("*")]
      .filter((child) => child.children.length === 0 && child.innerText && child.innerText.trim())
      .filter((child) => child.getBoundingClientRect().left >= edge - 1)
      .map((child) => child.innerText.trim().slice(0, 30));
    problems.push(
      `${name(el)} (overflow-x: ${style.overflowX}) is ${el.scrollWidth}px wide in ` +
      `${el.clientWidth}px; out of sight: ${[...new Set(hidden)].slice(0, 8).join(" | ") ||
      "part of its text"}`);
  }
  return problems;
}
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    reason = None
    if sync_playwright is None or AXE_SCRIPT is None:
        reason = "Playwright or axe-playwright-python is not installed (make install)"
    elif not shutil.which(CHROMIUM):
        reason = f"Chromium is not installed at {CHROMIUM}: apt-get install chromium (.ci/run does)"
    if reason:
        for item in items:
            if here in Path(item.path).parents:
                item.add_marker(pytest.mark.skip(reason=f"browser tests skipped: {reason}"))


@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    """One Chromium for all the browser tests; each test opens its own contexts."""
    # Playwright's synchronous API keeps an asyncio loop running in this thread, so Django would
    # refuse the database calls tests make between browser steps. Nothing here runs async code.
    unsafe = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    finally:
        playwright.stop()
        if unsafe is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = unsafe


@contextmanager
def aquadash_serving(simulator_tenant, tmp_path: Path, **environment: str) -> Iterator[str]:
    """aquadash under gunicorn, reading the test database and allowed to call the simulator,
    with `environment`'s settings too; its log is gunicorn.log in the test's tmp_path."""
    with (
        (tmp_path / "gunicorn.log").open("w") as log,
        gunicorn_serving(
            simulator_tenant,
            settings_module="tests.browser.settings",
            log=log,
            AQUADASH_POLL_SECONDS=str(POLL_SECONDS),
            **environment,
        ) as base,
    ):
        yield base


@pytest.fixture
def server(simulator_tenant, tmp_path: Path) -> Iterator[str]:
    with aquadash_serving(simulator_tenant, tmp_path) as base:
        yield base


@dataclass
class Looks:
    """Opens pages, and checks each page a flow reaches in every look."""

    browser: Browser
    base_url: str = ""  # the server of the test under way
    subtests: object = None  # and its subtests
    errors: dict = field(default_factory=dict)  # page -> console errors not yet reported
    # look -> the page that reopens checked pages in it, kept from test to test: a new browser
    # context costs more than half a second
    others: dict = field(default_factory=dict)

    def new_page(self, scheme: str = "light", width: int = 1440, **context: object) -> Page:
        """A page in a context of its own, in that colour scheme and window width."""
        browser_context = self.browser.new_context(
            base_url=self.base_url,
            color_scheme=scheme,
            viewport={"width": width, "height": 900 if width > NARROW else 844},
            accept_downloads=True,
            **context,
        )
        browser_context.add_init_script(WATCH_CSP)
        # Through the DevTools protocol, so the page's CSP does not apply to axe itself.
        browser_context.add_init_script(AXE_SCRIPT)
        page = browser_context.new_page()
        errors = self.errors[page] = []
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        page.on("pageerror", lambda error: errors.append(f"uncaught {error}"))
        return page

    def check(
        self,
        page: Page,
        what: str,
        *,
        status: int = 200,
        again: Callable[[Page], None] | None = None,
        screenshot: str = "",
    ) -> None:
        """Check `page` as it stands, and the same address in each other look, signed in as
        the same user, after `again(page)` has brought it to the same state. The looks load
        and are checked side by side."""
        dark = page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
        shown = {("dark" if dark else "light", page.viewport_size["width"]): page}
        for look in LOOKS:
            if look not in shown:
                other = shown[look] = self.others.get(look) or self.new_page(*look)
                self.others[look] = other
                other.context.clear_cookies()
                other.context.add_cookies(page.context.cookies())
                response = other.goto(page.url, wait_until="commit")
                assert response.status == status, f"{what} answered {response.status} reopened"
        for other in shown.values():
            if other is not page:
                other.wait_for_load_state()
                if again:
                    again(other)
            other.evaluate(START_AXE)
        for look in LOOKS:
            self._report(shown[look], what, look, status, screenshot)
            if shown[look] is not page:
                shown[look].goto("about:blank")  # a running job's page would go on polling

    def _report(
        self, page: Page, what: str, look: tuple[str, int], status: int, screenshot: str
    ) -> None:
        scheme, width = look
        errors, self.errors[page][:] = list(self.errors[page]), []
        if status != 200:  # the browser reports the page's own status as an error
            errors = [text for text in errors if f"status of {status}" not in text]
        with self.subtests.test(msg=f"{what}, {scheme}, {width} px"):
            problems = [f"console: {text}" for text in errors] + page_problems(page, width)
            if screenshot and (directory := os.environ.get("AQUADASH_SCREENSHOTS")):
                target = Path(django_settings.BASE_DIR, directory)
                target.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=target / f"{screenshot}-{scheme}-{width}.png", full_page=True)
            assert not problems, f"{what} ({page.url}), {scheme}, {width} px:\n" + "\n".join(
                problems
            )

    def close_test_pages(self) -> None:
        """Close the pages a test opened, and forget its sign-ins in the pages kept."""
        for page in list(self.errors):
            if page in self.others.values():
                page.context.clear_cookies()
                self.errors[page].clear()
            else:
                page.context.close()
                del self.errors[page]


def page_problems(page: Page, width: int) -> list[str]:
    """CSP violations, serious or critical axe-core violations (of the run START_AXE began),
    and at phone width anything cut off at the side."""
    problems = [f"CSP: {text}" for text in page.evaluate("window.__cspViolations")]
    for violation in page.evaluate("window.__axe")["violations"]:
        if violation["impact"] not in ("serious", "critical"):
            continue
        for node in violation["nodes"]:
            detail = "; ".join(check["message"] for check in node["any"] + node["all"])
            problems.append(
                f"axe {violation['id']} ({violation['impact']}): {', '.join(node['target'])}"
                f" — {detail or violation['help']}"
            )
    if width <= NARROW:
        problems += [f"clipped: {text}" for text in page.evaluate(FIND_CLIPPED, MEANT_TO_SCROLL)]
    return problems


@pytest.fixture(scope="package")
def every_look(chromium: Browser) -> Looks:
    return Looks(chromium)


@pytest.fixture
def looks(every_look: Looks, server: str, subtests) -> Iterator[Looks]:
    """Pages on this test's server, and checks of them in every look."""
    every_look.base_url, every_look.subtests = server, subtests
    yield every_look
    every_look.close_test_pages()


def sign_in(page: Page, username: str, password: str = "password") -> None:
    """Sign in through the login page, as a person would."""
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def look_up(page: Page, job_id: str) -> None:
    """Type the job ID into the home page's lookup, as a person would."""
    lookup = page.locator("form", has=page.get_by_role("button", name="Open job"))
    lookup.get_by_label("Tenant").select_option(label="Sim")
    lookup.get_by_label("Job ID").fill(job_id)
    lookup.get_by_role("button", name="Open job").click()
    page.wait_for_url(f"**/t/sim/jobs/{job_id}/")


def polls(requests_seen: list, path: str) -> list:
    """The htmx polls among the requests a page made."""
    return [
        r for r in requests_seen if urlsplit(r.url).path == path and r.headers.get("hx-request")
    ]


@pytest.fixture
def page(looks, simulator_tenant, make_user) -> Page:
    """Signed in as "finance", on the page of a completed job with four batches."""
    make_user("finance", groups=simulator_tenant.groups.all())
    page = looks.new_page()
    sign_in(page, "finance")
    look_up(page, sim.MULTI_BATCH_JOB_ID)
    return page
