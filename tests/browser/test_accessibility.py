"""What a keyboard, a screen reader and a phone need of every page, in Chromium: a "Skip to
content" link first, an h1, labelled navigation landmarks; the preview as wide as the page,
numbers on the right, and closable; on a phone no keyboard hint and a whole placeholder."""

import pytest

from aquadash import simulator as sim
from tests.browser.conftest import NARROW, Page, expect

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads what the test wrote

JOB = f"/t/sim/jobs/{sim.MULTI_BATCH_JOB_ID}/"

# Every kind of page a person reaches, once the job has been looked up.
PAGES = [
    ("home page", "/", 200),
    ("job page", JOB, 200),
    ("downloads page", JOB + "downloads/", 200),
    ("watch page", JOB + "watch/", 200),
    ("work queue", "/jobs/", 200),
    ("not found", "/t/sim/jobs/" + "0" * 32 + "/nothing", 404),
    ("unknown job", "/t/sim/jobs/" + "f" * 32 + "/", 404),
]

# The text of the first element that Tab reaches from the top of the page.
FIRST_TABBABLE = """
() => [...document.querySelectorAll("a[href], button, input, select, textarea, [tabindex]")]
  .find((el) => el.tabIndex >= 0 && !el.disabled && el.getClientRects().length).textContent.trim()
"""

# The width the placeholder's text needs, against the room the field has for it.
PLACEHOLDER_FITS = """
(field) => {
  const style = getComputedStyle(field);
  const context = document.createElement("canvas").getContext("2d");
  context.font = style.font;
  const room = field.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  return context.measureText(field.placeholder).width <= room;
}
"""


def preview_link(page: Page):
    accounts = page.get_by_role("rowgroup").filter(has=page.get_by_text("Accounts", exact=True))
    return accounts.get_by_role("link", name="Preview", exact=True)


@pytest.mark.parametrize(("what", "path", "status"), PAGES, ids=[p[0] for p in PAGES])
def test_every_page_starts_with_a_skip_link_and_has_an_h1_and_named_navs(page, what, path, status):
    assert page.goto(path).status == status

    skip = page.get_by_role("link", name="Skip to content")
    assert page.evaluate(FIRST_TABBABLE) == "Skip to content"
    if page.evaluate("document.activeElement === document.body"):  # not the home page's field
        page.keyboard.press("Tab")
        expect(skip).to_be_focused()
    else:
        skip.focus()
    box = skip.bounding_box()
    assert box and box["y"] >= 0 and box["width"] > 1, "the skip link is not shown on focus"
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    expect(page.get_by_role("heading", level=1)).to_have_count(1)
    for nav in page.get_by_role("navigation").all():
        assert nav.get_attribute("aria-label"), f"{what}: a nav without a name"
    expect(page.get_by_role("navigation", name="Main")).to_have_count(1)


def test_the_preview_page_has_an_h1_and_closes_back_to_the_job(looks, page):
    page.goto(preview_link(page).get_attribute("href"))  # where it leads without JavaScript

    expect(page.get_by_role("heading", level=1)).to_have_text("Preview of Accounts")
    looks.check(page, "preview page")
    page.get_by_role("link", name="Close preview").click()
    page.wait_for_url(f"**{JOB}")


def test_a_preview_without_javascript_closes_back_to_the_job(looks, simulator_tenant, page):
    still = looks.new_page(java_script_enabled=False)
    still.context.add_cookies(page.context.cookies())
    still.goto(JOB)
    preview_link(still).click()
    expect(still.get_by_role("heading", level=1)).to_have_text("Preview of Accounts")

    still.get_by_role("link", name="Close preview").click()

    still.wait_for_url(f"**{JOB}")


@pytest.mark.parametrize("width", [1440, NARROW])
def test_a_preview_spans_the_page_puts_numbers_right_and_closes(looks, page, width):
    page.set_viewport_size({"width": width, "height": 900})
    preview_link(page).click()
    table = page.get_by_role("region", name="Preview of Accounts")
    expect(table).to_be_visible()
    balance = page.evaluate(
        "() => [...document.querySelectorAll('.preview-table th')]"
        ".findIndex((th) => th.textContent === 'Account: Balance')"
    )
    row = table.locator("tbody tr").first
    cell, name = row.locator("td").nth(balance), row.locator("td").nth(2)
    assert cell.evaluate("(td) => getComputedStyle(td).textAlign") == "right"
    assert name.evaluate("(td) => getComputedStyle(td).textAlign") == "left"
    # A table of rows and columns, as wide as the batch it previews (less its padding).
    assert cell.bounding_box()["y"] == name.bounding_box()["y"], "a record is not one row"
    batch = page.locator("tbody.batch").first.bounding_box()
    assert table.bounding_box()["width"] >= batch["width"] - 40
    if width == NARROW:
        looks.check(
            page, "job page with a preview", again=lambda other: preview_link(other).click()
        )

    page.get_by_role("link", name="Close preview").click()

    expect(table).to_have_count(0)
    expect(preview_link(page)).to_be_focused()
    assert page.url.endswith(JOB)  # closed in place, no page loaded


@pytest.mark.parametrize("width", [1440, NARROW])
def test_a_phone_shows_no_keyboard_hint_and_the_whole_placeholder(looks, page, width):
    phone = looks.new_page(width=width)
    phone.context.add_cookies(page.context.cookies())
    phone.goto("/")

    hint = phone.get_by_text("(press / to jump here)")
    if width == NARROW:
        expect(hint).to_be_hidden()
    else:
        expect(hint).to_be_visible()
    for field in (phone.locator("#id_job"), phone.locator("#header-job")):
        assert field.evaluate(PLACEHOLDER_FITS), f"{field}'s placeholder is cut off"
