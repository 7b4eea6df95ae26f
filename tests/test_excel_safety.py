"""What reaches Excel from a result download: a workbook for any batch name Zuora accepts, and
no cell that Excel would run as a formula in the CSV made for it."""

import io
from datetime import datetime

import openpyxl
import pytest
from django.test import Client

from aquadash import simulator as sim
from aquadash.models import AuditEvent
from tests.test_downloads import body, file_url, from_zuora, looked_up, records

FORMULAS = b'Id,Name,Amount\n1,"=HYPERLINK(""http://evil.test"",""Pay"")",-12.50\n2,=cmd|x,+3\n'


@pytest.mark.parametrize("name", ["'Q3 accounts'", "📈" * 20, "History"])
def test_xlsx_of_a_batch_with_any_name_opens(finance_client, simulator_tenant, simulator, name):
    job_id = simulator.add_job(records=3, name=name)
    file_id = looked_up(finance_client, simulator_tenant, job_id)["batches"][0]["fileId"]

    response = finance_client.get(file_url(simulator_tenant, job_id, file_id, "?as=xlsx"))

    assert openpyxl.load_workbook(io.BytesIO(body(response))).active.max_row == 1 + 3


def test_csv_for_excel_makes_formula_cells_text_and_keeps_numbers(
    finance_client, simulator_tenant, simulator
):
    job_id = simulator.add_job(records=2)
    file_id = looked_up(finance_client, simulator_tenant, job_id)["batches"][0]["fileId"]
    simulator.add_fault("file_body", path="/v1/files/", body=FORMULAS)

    data = body(finance_client.get(file_url(simulator_tenant, job_id, file_id, "?as=excel")))

    assert records(data)[1:] == [
        ["1", '\'=HYPERLINK("http://evil.test","Pay")', "-12.50"],
        ["2", "'=cmd|x", "'+3"],
    ]


def test_the_plain_csv_stays_byte_for_byte(finance_client, simulator_tenant, simulator):
    job_id = simulator.add_job(records=2)
    file_id = looked_up(finance_client, simulator_tenant, job_id)["batches"][0]["fileId"]
    simulator.add_fault("file_body", path="/v1/files/", body=FORMULAS, times=2)

    data = body(finance_client.get(file_url(simulator_tenant, job_id, file_id, "?as=csv")))

    assert data == FORMULAS == from_zuora(simulator, file_id).content


def test_xlsx_of_a_dateTimeUtc_job_shows_its_times_as_utc(
    finance_client, simulator_tenant, simulator
):
    job_id = sim.UTC_TIMES_JOB_ID
    file_id = looked_up(finance_client, simulator_tenant, job_id)["batches"][0]["fileId"]

    response = finance_client.get(file_url(simulator_tenant, job_id, file_id, "?as=xlsx"))

    sheet = openpyxl.load_workbook(io.BytesIO(body(response))).active
    updated = [cell for cell in sheet[1] if cell.value.endswith("UpdatedDate")][0]
    cell = sheet.cell(row=2, column=updated.column)
    assert isinstance(cell.value, datetime)
    assert cell.number_format.endswith('"UTC"')


def test_the_job_page_offers_a_csv_for_excel(finance_client, simulator_tenant):
    looked_up(finance_client, simulator_tenant, sim.MULTI_BATCH_JOB_ID)

    page = finance_client.get(f"/t/{simulator_tenant.slug}/jobs/{sim.MULTI_BATCH_JOB_ID}/")

    assert ">CSV for Excel</a>" in page.content.decode()


def test_a_csv_for_excel_is_named_so_in_every_trail(finance_client, simulator_tenant, make_user):
    job_id = sim.MULTI_BATCH_JOB_ID
    file_id = looked_up(finance_client, simulator_tenant, job_id)["batches"][0]["fileId"]
    body(finance_client.get(file_url(simulator_tenant, job_id, file_id, "?as=excel")))
    admin = Client()
    admin.force_login(make_user("root", superuser=True))

    trail = finance_client.get(f"/t/{simulator_tenant.slug}/jobs/{job_id}/downloads/")
    [event] = AuditEvent.objects.filter(kind=AuditEvent.Kind.DOWNLOAD)
    listing = admin.get("/admin/aquadash/download/")

    assert "result file (CSV for Excel)" in trail.content.decode()
    assert event.detail.startswith("result file (CSV for Excel): complete")
    assert '<td class="field-what">result file (CSV for Excel)<br>' in listing.content.decode()
