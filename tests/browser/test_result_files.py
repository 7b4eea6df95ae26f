"""Result files in Chromium: a download arrives byte for byte as Zuora serves it, and a
preview shows the first records under the batch."""

import pytest
import requests

from aquadash import simulator as sim
from tests.browser.conftest import Page, expect, look_up, sign_in

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads what the test wrote


def batch(page: Page, name: str):
    """The rows of the batches table about the batch of that name."""
    return page.get_by_role("rowgroup").filter(has=page.get_by_text(name, exact=True))


def download_menu(page: Page, name: str):
    """The batch's download menu, opened."""
    menu = batch(page, name).locator("details.menu")
    menu.locator("summary").click()
    expect(menu.locator(".menu-body")).to_be_visible()
    return menu


def open_preview(page: Page) -> None:
    batch(page, "Accounts").get_by_role("link", name="Preview", exact=True).click()
    expect(page.get_by_role("heading", name="Preview of Accounts")).to_be_visible()


def test_a_downloaded_file_is_what_zuora_serves(page, looks, simulator):
    link = download_menu(page, "Accounts").get_by_role("link", name="Download .csv")
    file_id = link.get_attribute("href").rsplit("/", 1)[1]

    with page.expect_download() as download:
        link.click()

    received = download.value.path().read_bytes()
    served = requests.get(
        f"{simulator.url}/v1/files/{file_id}",
        auth=(sim.DEMO_USERNAME, sim.DEMO_PASSWORD),
        timeout=10,
    ).content
    assert download.value.failure() is None
    assert download.value.suggested_filename == "Month-end-extract-Accounts.csv"
    assert received == served
    assert received.count(b"\n") == 1 + 1250
    page.reload()
    expect(page.get_by_text("✓ 1,250 records verified")).to_be_visible()
    expect(page.get_by_role("heading", name="Downloads of this job")).to_be_visible()
    looks.check(page, "job page after a download", screenshot="job")


def test_a_preview_shows_the_header_and_first_records(page, looks):
    open_preview(page)

    preview = page.locator(".preview", has=page.get_by_role("heading", name="Preview of Accounts"))
    table = preview.get_by_role("table")
    expect(table.get_by_role("row")).to_have_count(1 + 100)
    expect(page.get_by_text("The header and the first 100 records")).to_be_visible()
    looks.check(page, "job page with a preview", again=open_preview)

    preview_page = (
        batch(page, "Accounts")
        .get_by_role("link", name="Preview", exact=True)
        .get_attribute("href")
    )
    page.goto(preview_page)  # where the link leads without JavaScript
    expect(page.get_by_role("heading", name="Preview of Accounts")).to_be_visible()
    looks.check(page, "preview page")


@pytest.mark.parametrize("link", ["Download .csv", "CSV for Excel", "xlsx"])
def test_a_purged_files_link_shows_why_it_cannot_be_downloaded(
    looks, simulator_tenant, make_user, link
):
    make_user("finance", groups=simulator_tenant.groups.all())
    page = looks.new_page()
    sign_in(page, "finance")
    look_up(page, sim.PURGED_FILES_JOB_ID)
    downloads = []
    page.on("download", lambda download: downloads.append(download))

    download_menu(page, "Accounts").get_by_role("link", name=link, exact=True).click()

    expect(page.get_by_role("heading", name="Result file purged by Zuora")).to_be_visible()
    assert downloads == []
    if link == "Download .csv":
        looks.check(page, "a purged file's page", status=404)
