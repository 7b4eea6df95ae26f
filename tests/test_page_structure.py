"""What every page a person can reach has, for a keyboard and a screen reader: a "Skip to
content" link first, leading to the main content, one h1, and only named navigation."""

import re

import pytest
from django.test import Client

from aquadash import simulator as sim
from aquadash.models import JobSnapshot

JOB = f"/t/sim/jobs/{sim.INCREMENTAL_JOB_ID}/"  # stateful and completed, with result files


@pytest.fixture
def client(finance_client: Client, simulator_tenant) -> Client:
    assert finance_client.get(JOB).status_code == 200  # looked up: its pages exist now
    return finance_client


def pages() -> list[tuple[str, str, int]]:
    raw = JobSnapshot.objects.get(job_id=sim.INCREMENTAL_JOB_ID).raw
    batch = raw["batches"][0]
    file_id = batch.get("fileId") or batch["segments"][0]
    return [
        ("home", "/", 200),
        ("job", JOB, 200),
        ("downloads", JOB + "downloads/", 200),
        ("watch", JOB + "watch/", 200),
        ("compare", JOB + "compare/", 200),
        ("segments", f"{JOB}batches/{batch['batchId']}/segments/", 200),
        ("preview", f"{JOB}files/{file_id}/preview", 200),
        ("work queue", "/jobs/", 200),
        ("a part the batch lacks", f"{JOB}batches/{batch['batchId']}/download?first=0", 400),
        ("not found", "/nowhere/", 404),
        ("unknown job", "/t/sim/jobs/" + "f" * 32 + "/", 404),
    ]


def test_every_page_skips_to_its_content_and_has_one_h1(client, simulator):
    for what, path, status in pages():
        response = client.get(path)
        html = response.content.decode()

        assert response.status_code == status, what
        first_link = re.search(
            r"<(a|button|input|select|textarea)\b[^>]*>", html[html.index("<body") :]
        )
        assert first_link[0] == '<a class="skip-link" href="#content">', what
        assert '<main id="content"' in html, what
        assert len(re.findall(r"<h1\b", html)) == 1, what
        assert all("aria-label=" in nav for nav in re.findall(r"<nav\b[^>]*>", html)), what
