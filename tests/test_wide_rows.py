"""A result file with one very wide row: every path that reads rows refuses it with a message,
having read no more of it than a row's allowance, and nothing holds the row."""

import tracemalloc

import pytest

from aquadash import downloads, results
from aquadash import simulator as sim
from aquadash.models import Download
from aquadash.simulator.faults import Fault, replacement
from tests.conftest import wait_until
from tests.test_downloads import HTMX, batch_url, body, file_url, last_download, looked_up

WIDTH = 64 * 1024 * 1024  # characters in the wide row: 64 times what aquadash reads of a row
FORMATS = {"CSV": sim.MULTI_BATCH_JOB_ID, "GZIP": sim.GZIP_JOB_ID, "ZIP": sim.ZIP_JOB_ID}


def wide_file(simulator: sim.Simulator, file_format: str, **params: object) -> None:
    params = {"width": WIDTH, "format": file_format, **params}
    simulator.add_fault("wide_row", path="/v1/files/", **params)


def wide_file_url(client, tenant, simulator, file_format: str, suffix: str, **params) -> str:
    """The address of a job's file, as `suffix` asks for it, once Zuora serves it with a wide
    row (of WIDTH characters unless `params` say otherwise)."""
    job_id = FORMATS[file_format]
    file_id = looked_up(client, tenant, job_id)["batches"][0]["fileId"]
    wide_file(simulator, file_format, **params)
    return file_url(tenant, job_id, file_id, suffix)


def stopped_early(simulator: sim.Simulator) -> bool:
    """Zuora's stream of the wide file was closed with most of it unsent (a compressed one is
    still about three quarters as long as its CSV)."""
    request = next(r for r in reversed(simulator.requests) if r.fault == "wide_row")
    wait_until(lambda: request.closed)
    return not request.finished and request.bytes_sent < WIDTH // 4


@pytest.mark.parametrize("file_format", FORMATS)
@pytest.mark.parametrize("suffix", ["/preview", "?as=xlsx"])
def test_preview_and_xlsx_refuse_a_row_wider_than_they_read(
    finance_client, simulator_tenant, simulator, file_format, suffix
):
    url = wide_file_url(finance_client, simulator_tenant, simulator, file_format, suffix)

    response = finance_client.get(url)

    assert response.status_code == 409
    assert "row 2 is over 1,048,576 characters long" in response.content.decode()
    assert stopped_early(simulator)
    assert last_download().outcome == Download.Outcome.FAILED


def test_preview_refuses_a_cell_longer_than_it_reads(finance_client, simulator_tenant, simulator):
    url = wide_file_url(
        finance_client, simulator_tenant, simulator, "CSV", "/preview", width=300_000, cell=200_000
    )

    response = finance_client.get(url)

    assert response.status_code == 409
    assert "row 2 has a cell over 131,072 characters long" in response.content.decode()


def test_preview_of_a_wide_but_allowed_row_shows_its_first_columns(
    finance_client, simulator_tenant, simulator
):
    url = wide_file_url(
        finance_client, simulator_tenant, simulator, "CSV", "/preview", width=500_000, cell=5, row=1
    )

    html = finance_client.get(url, **HTMX).content.decode()

    assert html.count("<th>") == 100
    assert "Only the first 100 columns are shown; 99,901 more are in the file." in html


def test_csv_for_excel_breaks_off_at_a_row_too_wide_and_says_why(
    finance_client, simulator_tenant, simulator
):
    url = wide_file_url(finance_client, simulator_tenant, simulator, "GZIP", "?as=excel")

    response = finance_client.get(url)

    with pytest.raises(results.TooWide):
        body(response)
    assert last_download().outcome == Download.Outcome.BROKEN
    assert "row 2 is over 1,048,576 characters long" in last_download().detail
    assert stopped_early(simulator)


def test_a_batch_whose_header_is_too_wide_to_join_is_a_page_that_says_so(
    finance_client, simulator_tenant, simulator
):
    job_id = simulator.add_job(records=30, segments=3)
    batch = looked_up(finance_client, simulator_tenant, job_id)["batches"][0]
    wide_file(simulator, "CSV", row=1)

    response = finance_client.get(batch_url(simulator_tenant, job_id, batch["batchId"]))

    assert response.status_code == 409
    assert "its first line is over 1,048,576 bytes long" in response.content.decode()
    assert stopped_early(simulator)


def test_a_wide_row_is_counted_as_it_passes_without_being_held():
    fault = Fault("wide_row", params={"width": WIDTH, "format": "GZIP"})
    chunks = replacement(fault, None).body
    counter = results.RecordCounter()

    tracemalloc.start()
    try:
        for _ in downloads.counting(chunks, "GZIP", counter):
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert counter.records == 2
    assert peak < 4 * 1024 * 1024  # the row is 64 MB
