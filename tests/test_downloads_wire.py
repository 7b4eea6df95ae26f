"""Downloads as a browser receives them from gunicorn, the production server: a stream Zuora
cuts short must reach the browser as a failed download, never as a short file that looks
whole, and a browser that leaves must close Zuora's stream."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client

from aquadash import simulator as sim
from tests.conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads what the test wrote


def database_url() -> str:
    """The test database, as DATABASE_URL, for a server in another process."""
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        return f"sqlite:///{name}"
    parts = urlsplit(os.environ["DATABASE_URL"])
    return parts._replace(path=f"/{name}").geturl()


@pytest.fixture
def server(simulator_tenant, unused_port) -> Iterator[str]:
    host, port = (
        urlsplit(simulator_tenant.base_url).hostname,
        urlsplit(simulator_tenant.base_url).port,
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "ZUORA_EXTRA_HOSTS": f"127.0.0.1:1,{host}:{port}",
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    process = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "gunicorn",
            "aquadash.wsgi",
            "--worker-class",
            "gthread",
            "--workers",
            "1",
            "--threads",
            "4",
            "--bind",
            f"127.0.0.1:{unused_port}",
        ],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{unused_port}"
    try:
        for _ in range(100):
            try:
                requests.get(base + "/health/", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
