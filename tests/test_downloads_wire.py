"""Downloads as a browser receives them from gunicorn, the production server: a stream Zuora
cuts short must reach the browser as a failed download, never as a short file that looks
whole, and a browser that leaves must close Zuora's stream."""

from collections.abc import Iterator

import pytest
import requests
from django.test import Client

from aquadash import simulator as sim
from tests.conftest import gunicorn_serving, wait_until

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads what the test wrote


@pytest.fixture
def server(simulator_tenant) -> Iterator[str]:
    with gunicorn_serving(simulator_tenant) as base:
        yield base


@pytest.fixture
def browser(simulator_tenant, make_user) -> requests.Session:
    client = Client()
    client.force_login(make_user("finance", groups=simulator_tenant.groups.all()))
    session = requests.Session()
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    return session


def file_url(server: str, tenant, job_id: str, browser, batch: int = 0) -> str:
    assert browser.get(f"{server}/t/{tenant.slug}/jobs/{job_id}/", timeout=30).status_code == 200
    raw = tenant.jobs.get(job_id=job_id).raw
    return f"{server}/t/{tenant.slug}/jobs/{job_id}/files/{raw['batches'][batch]['fileId']}"


def arrives_whole(browser: requests.Session, url: str) -> bool:
    """Whether the browser gets the file as a complete download: a 200 whose body ends where
    the server said it would (its length, or the last chunk of a chunked body)."""
    with browser.get(url, stream=True, timeout=30) as response:
        try:
            body = b"".join(response.iter_content(65536))
        except requests.exceptions.ChunkedEncodingError:
            return False
        length = response.headers.get("Content-Length")
        return response.status_code == 200 and (length is None or int(length) == len(body))


def test_a_whole_file_arrives_whole(server, browser, simulator_tenant):
    url = file_url(server, simulator_tenant, sim.MULTI_BATCH_JOB_ID, browser)

    assert arrives_whole(browser, url)


def test_a_csv_zuora_cuts_short_is_a_failed_download(server, browser, simulator_tenant, simulator):
    url = file_url(server, simulator_tenant, sim.MULTI_BATCH_JOB_ID, browser, batch=1)
    simulator.add_fault("truncated", path="/v1/files/", send=300_000)

    assert not arrives_whole(browser, url)


def test_a_gzip_zuora_cuts_short_is_a_failed_download(server, browser, simulator_tenant, simulator):
    url = file_url(server, simulator_tenant, sim.GZIP_JOB_ID, browser)
    file_id = url.rsplit("/", 1)[1]
    gz = requests.get(
        f"{simulator.url}/v1/files/{file_id}",
        timeout=10,
        auth=(sim.DEMO_USERNAME, sim.DEMO_PASSWORD),
    ).content
    simulator.add_fault(
        "file_body", path="/v1/files/", body=gz[: len(gz) // 2], content_type="application/gzip"
    )

    assert not arrives_whole(browser, url)


def test_a_browser_that_leaves_closes_zuoras_stream(server, browser, simulator_tenant, simulator):
    job_id = simulator.add_job(size=200_000_000)
    url = file_url(server, simulator_tenant, job_id, browser)

    with browser.get(url, stream=True, timeout=30) as response:
        next(response.iter_content(65536))
    record = simulator.requests[-1]
    wait_until(lambda: record.closed, seconds=10)

    assert record.closed and not record.finished
    assert record.bytes_sent < 100_000_000


@pytest.mark.parametrize("job_id", [sim.MULTI_BATCH_JOB_ID, sim.PGP_JOB_ID])  # counted, and not
def test_a_plain_file_download_passes_on_zuoras_content_length(
    server, browser, simulator_tenant, simulator, job_id
):
    url = file_url(server, simulator_tenant, job_id, browser)
    file_id = url.rsplit("/", 1)[1]
    with requests.get(
        f"{simulator.url}/v1/files/{file_id}",
        auth=(sim.DEMO_USERNAME, sim.DEMO_PASSWORD),
        timeout=10,
    ) as zuora:
        length = zuora.headers["Content-Length"]

    with browser.get(url, stream=True, timeout=30) as response:
        body = b"".join(response.raw.stream(65536, decode_content=False))

    assert response.headers.get("Content-Length") == length  # so the browser shows progress
    assert "chunked" not in response.headers.get("Transfer-Encoding", "")
    assert len(body) == int(length)
