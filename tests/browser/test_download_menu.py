"""A batch's downloads in Chromium: one menu per batch (a compact list on a phone), and a
portion of a joined batch (its first records, some of its segments) downloaded from it."""

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.conftest import NARROW, Page, aquadash_serving, expect, sign_in

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads what the test wrote

NAMES = [f"Name {n:010d}" for n in range(30)]  # the simulator's records, in order


@pytest.fixture
def server(simulator_tenant, tmp_path: Path) -> Iterator[str]:
    """As every browser test's server, but a joined download estimated over 1,000 bytes is
    large: the batches here are 30 records in segments of about 900 bytes."""
    with aquadash_serving(simulator_tenant, tmp_path, AQUADASH_CONFIRM_GB="0.000001") as base:
        yield base


@pytest.fixture
def job_id(simulator, simulator_tenant, make_user) -> str:
    """A completed job of two batches of 30 records, each in 3 segments; "finance" may see it."""
    make_user("finance", groups=simulator_tenant.groups.all())
    return simulator.add_job(records=30, segments=3, batches=2, name="Ledger")


def job_page(looks, job_id: str, width: int = 1440) -> Page:
    page = looks.new_page(width=width)
    sign_in(page, "finance")
    page.goto(f"/t/sim/jobs/{job_id}/")
    return page


def batch(page: Page, name: str):
    return page.get_by_role("rowgroup").filter(has=page.get_by_text(name, exact=True))


def rows(download) -> list[list[str]]:
    assert download.failure() is None
    text = download.path().read_bytes().decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline="")))


def test_on_a_phone_each_batch_is_one_download_menu(looks, job_id):
    page = job_page(looks, job_id, width=NARROW)
    first = batch(page, "Ledger 1")

    # Closed, a batch shows one Download control and its Preview: no row of links.
    links = first.locator(".files").get_by_role("link")
    expect(links).to_have_count(1)
    expect(links).to_have_text("Preview")
    expect(page.get_by_role("link", name="Download whole batch .csv")).to_have_count(0)
    looks.check(page, "job page, every menu closed")

    first.locator("details.menu > summary").click()

    expect(first.get_by_role("link", name="Download whole batch .csv")).to_be_visible()
    expect(first.get_by_text("Whole batch: 30 records in 3 segments")).to_be_visible()
    expect(first.get_by_role("button", name="Download these records")).to_be_visible()
    expect(first.get_by_role("button", name="Download these segments")).to_be_visible()
    assert page.get_by_role("link", name="Download whole batch .csv").count() == 1
    looks.check(page, "job page, a batch's menu open", again=open_first_menu)


def open_first_menu(page: Page) -> None:
    batch(page, "Ledger 1").locator("details.menu > summary").click()


def test_the_first_records_download_from_the_batch_menu(looks, job_id):
    page = job_page(looks, job_id)
    open_first_menu(page)
    menu = batch(page, "Ledger 1").locator("details.menu")
    form = menu.locator("form", has=page.get_by_role("button", name="Download these records"))
    form.get_by_label("First").fill("5")

    with page.expect_download() as download:
        form.get_by_role("button", name="Download these records").click()

    assert download.value.suggested_filename == "Ledger-Ledger-1-first-5.csv"
    assert [row[1] for row in rows(download.value)[1:]] == NAMES[:5]


def test_segments_download_from_the_batch_menu_as_csv_for_excel(looks, job_id):
    page = job_page(looks, job_id, width=NARROW)
    open_first_menu(page)
    menu = batch(page, "Ledger 1").locator("details.menu")
    form = menu.locator("form", has=page.get_by_role("button", name="Download these segments"))
    form.get_by_label("Segments").fill("2")
    form.get_by_label("to").fill("3")
    form.get_by_label("as").select_option(label="CSV for Excel")

    with page.expect_download() as download:
        form.get_by_role("button", name="Download these segments").click()

    assert download.value.suggested_filename == "Ledger-Ledger-1-segments-2-3-excel.csv"
    assert [row[1] for row in rows(download.value)[1:]] == NAMES[10:30]


def test_a_range_the_batch_does_not_have_is_explained(looks, job_id, simulator_tenant):
    page = job_page(looks, job_id)
    batch_id = simulator_tenant.jobs.get(job_id=job_id).raw["batches"][0]["batchId"]

    response = page.goto(f"/t/sim/jobs/{job_id}/batches/{batch_id}/download?from=3&to=5")

    assert response.status == 400
    expect(page.get_by_role("heading", level=1)).to_have_text("Check the part to download")
    expect(page.get_by_text("This batch has 3 segments, so there is no segment 5")).to_be_visible()
    looks.check(page, "a range the batch does not have", status=400)


def test_the_large_download_page_offers_the_first_records(looks, job_id):
    page = job_page(looks, job_id)
    open_first_menu(page)
    batch(page, "Ledger 1").get_by_text("3 segment files").click()
    with page.expect_download():  # a file downloaded whole: the batch's size is known now
        batch(page, "Ledger 1").get_by_role("link", name="Part 1", exact=True).click()
    page.reload()
    open_first_menu(page)
    expect(batch(page, "Ledger 1").get_by_text("aquadash asks first")).to_be_visible()

    batch(page, "Ledger 1").get_by_role("link", name="Download whole batch .csv").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("A large download")
    looks.check(page, "the large download page")
    form = page.locator("form", has=page.get_by_role("button", name="Download these records"))
    form.get_by_label("First").fill("3")
    with page.expect_download() as download:
        form.get_by_role("button", name="Download these records").click()

    assert download.value.suggested_filename == "Ledger-Ledger-1-first-3.csv"
    assert [row[1] for row in rows(download.value)[1:]] == NAMES[:3]
