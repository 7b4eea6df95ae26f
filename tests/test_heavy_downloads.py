"""Heavy downloads (xlsx, CSV for Excel, whole batches, job zips) are limited per person and in
all, so that one person's sixteen workbooks cannot take every server thread."""

import pytest
from django.test import Client

from aquadash import simulator as sim
from tests.test_downloads import batch_url, body, file_url, looked_up


@pytest.fixture
def limits(settings):
    settings.AQUADASH_HEAVY_DOWNLOADS_PER_PERSON = 1
    settings.AQUADASH_HEAVY_DOWNLOADS = 2
    return settings


@pytest.fixture
def xlsx_url(finance_client, simulator_tenant) -> str:
    file_id = looked_up(finance_client, simulator_tenant, sim.NOTES_JOB_ID)["batches"][0]["fileId"]
    return file_url(simulator_tenant, sim.NOTES_JOB_ID, file_id, "?as=xlsx")


@pytest.fixture
def zip_url(simulator_tenant) -> str:
    return f"/t/{simulator_tenant.slug}/jobs/{sim.NOTES_JOB_ID}/download.zip"


def colleague(simulator_tenant, make_user, name: str) -> Client:
    client = Client()
    client.force_login(make_user(name, groups=simulator_tenant.groups.all()))
    return client


def assert_busy(response) -> None:
    assert response.status_code == 429
    assert response["Retry-After"] == "30"
    assert "Too many downloads at once" in response.content.decode()


def test_a_second_heavy_download_of_one_person_waits(limits, finance_client, xlsx_url, zip_url):
    first = finance_client.get(xlsx_url)

    second = finance_client.get(zip_url)

    assert first.status_code == 200
    assert_busy(second)
    assert "as many as aquadash makes at once for one person" in second.content.decode()


def test_beyond_the_overall_limit_everyone_waits(
    limits, finance_client, simulator_tenant, make_user, xlsx_url, zip_url
):
    finance_client.get(xlsx_url)
    colleague(simulator_tenant, make_user, "ann").get(zip_url)

    response = colleague(simulator_tenant, make_user, "bob").get(xlsx_url)

    assert_busy(response)
    assert "so that pages stay quick for everyone" in response.content.decode()


def test_a_finished_download_frees_its_place(limits, finance_client, xlsx_url, zip_url):
    body(finance_client.get(xlsx_url))

    assert finance_client.get(zip_url).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_download_the_browser_broke_off_frees_its_place(
    limits, finance_client, xlsx_url, zip_url
):
    response = finance_client.get(zip_url)
    next(iter(response.streaming_content))
    response.close()  # what a WSGI server does when the browser disconnects

    assert finance_client.get(xlsx_url).status_code == 200


def test_an_error_page_frees_its_place(limits, finance_client, simulator_tenant, simulator):
    job_id = simulator.add_job(records=30, segments=3)
    batch = looked_up(finance_client, simulator_tenant, job_id)["batches"][0]
    simulator.forget_job(job_id)  # its files are purged

    purged = finance_client.get(batch_url(simulator_tenant, job_id, batch["batchId"]))

    assert purged.status_code == 404
    assert (
        finance_client.get(batch_url(simulator_tenant, job_id, batch["batchId"])).status_code == 404
    )


def test_plain_file_downloads_are_not_counted(limits, finance_client, simulator_tenant, xlsx_url):
    finance_client.get(xlsx_url)

    response = finance_client.get(xlsx_url.removesuffix("?as=xlsx"))

    assert response.status_code == 200
