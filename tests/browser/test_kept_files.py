"""Kept files in Chromium: a person presses "Keep these files", the worker keeps them, Zuora
purges them, and the job still downloads and previews, from aquadash's archive."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from aquadash.models import KeptFile
from tests.archive_helpers import run_worker, sha256
from tests.browser.conftest import aquadash_serving, expect, look_up, sign_in

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads what the test wrote


@pytest.fixture
def archive_folder(settings: object, tmp_path: Path) -> Path:
    """One archive on disk for the server and for the worker this test runs."""
    folder = tmp_path / "archive"
    settings.STORAGES = {
        **settings.STORAGES,
        "archive": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": folder},
        },
    }
    return folder


@pytest.fixture
def server(simulator_tenant, tmp_path: Path, archive_folder: Path) -> Iterator[str]:
    environment = {"AQUADASH_ARCHIVE_URL": f"file://{archive_folder}"}
    with aquadash_serving(simulator_tenant, tmp_path, **environment) as base:
        yield base


def test_a_kept_job_whose_files_zuora_purged_downloads_and_previews_from_the_archive(
    looks, simulator_tenant, simulator, make_user
):
    job_id = simulator.add_job(records=300, name="Month end")
    make_user("finance", groups=simulator_tenant.groups.all())
    page = looks.new_page()
    sign_in(page, "finance")
    look_up(page, job_id)

    page.get_by_role("button", name="Keep these files").click()
    expect(page.get_by_text("being copied from Zuora")).to_be_visible()
    run_worker()
    simulator.forget_job(job_id)  # Zuora purges the files
    page.reload()

    expect(page.get_by_text("Kept by aquadash until")).to_be_visible()
    expect(page.get_by_text("Probably purged by Zuora")).to_have_count(0)
    looks.check(page, "a kept job after Zuora purged its files")
    page.locator("details.menu summary").first.click()  # the batch's download menu
    link = page.get_by_role("link", name="Download .csv")
    with page.expect_download() as download:
        link.click()
    received = download.value.path().read_bytes()
    assert download.value.failure() is None
    assert received.count(b"\n") == 1 + 300
    (kept_file,) = KeptFile.objects.filter(kept_job__job_id=job_id)
    assert sha256(received) == kept_file.sha256

    page.get_by_role("link", name="Preview").click()
    expect(page.get_by_role("heading", name="Preview of Month end")).to_be_visible()
    expect(page.get_by_text("The header and the first 100 records")).to_be_visible()
    page.reload()
    expect(page.get_by_text("from the archive").first).to_be_visible()
