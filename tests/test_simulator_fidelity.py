"""The simulator behaves as the real Zuora does where our first reading was too tidy: segments,
the concurrent-job limit, the multi-entity header, localizedStatus and sourceData. Spoken to over
real HTTP with plain requests, never our client."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from aquadash import simulator as sim
from tests.conftest import FakeClock

AUTH = (sim.DEMO_USERNAME, sim.DEMO_PASSWORD)
TIMEOUT = 5
FIXTURES = Path(__file__).parent / "fixtures" / "zuora"
# Two entities, in the UUID form of Zuora's createToken sample.
ENTITIES = ["1a2b7a37-3e7d-4cb3-b0e2-883de9e766cc", "c92ed977-510c-4c48-9b51-8d5e848671e9"]
# Queries whose deterministic record counts suit each test (5,763 and 818,156 records).
SMALL_ACCOUNT_LOAD = "select Id, Name from Account where Balance > 188"
BIG_PERIOD_LOAD = "select Id, Name from AccountingPeriod where FiscalYear > 0"


def get(simulator: sim.Simulator, path: str, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("auth", AUTH)
    return requests.get(simulator.url + path, timeout=TIMEOUT, **kwargs)


def job(simulator: sim.Simulator, job_id: str) -> dict[str, Any]:
    return get(simulator, f"/v1/batch-query/jobs/{job_id}").json()


def submit(simulator: sim.Simulator, **body: Any) -> dict[str, Any]:
    body.setdefault("queries", [{"name": "A", "query": "select Id from Account"}])
    response = requests.post(
        simulator.url + "/v1/batch-query/", json=body, auth=AUTH, timeout=TIMEOUT
    )
    return response.json()


def stateful_full_load(simulator: sim.Simulator, sim_clock: FakeClock, query: str) -> dict:
    """A completed stateful full load of one query, as GET answers it."""
    job_id = submit(
        simulator,
        version="1.1",
        partner="salesforce",
        project="fidelity",
        queries=[{"name": "Load", "query": query}],
    )["id"]
    sim_clock.advance(2 * simulator.batch_seconds)
    return job(simulator, job_id)


def rows(simulator: sim.Simulator, file_id: str) -> list[str]:
    return get(simulator, f"/v1/files/{file_id}").content.decode().splitlines()


# Segments


def test_documented_eighteen_segment_job_is_served_as_zuora_printed_it(simulator):
    documented = json.loads((FIXTURES / "job-file-segmentation-18-segments.json").read_text())

    assert job(simulator, sim.DOC_EIGHTEEN_SEGMENTS_JOB_ID) == documented["body"]


def test_eighteen_segments_hold_88_records_unevenly_each_with_a_header(simulator):
    [batch] = job(simulator, sim.DOC_EIGHTEEN_SEGMENTS_JOB_ID)["batches"]

    files = [rows(simulator, segment) for segment in batch["segments"]]

    assert len(files) == 18
    assert len({file[0] for file in files}) == 1  # the same header row on every segment
    sizes = [len(file) - 1 for file in files]
    assert sum(sizes) == batch["recordCount"] == 88
    assert max(sizes) - min(sizes) > 1  # more than rounding 88 rows into 18 equal parts


def test_a_full_load_is_cut_into_more_segments_than_500000_rows_need(simulator, sim_clock):
    [batch] = stateful_full_load(simulator, sim_clock, SMALL_ACCOUNT_LOAD)["batches"]

    assert batch["recordCount"] == 5_763  # one 500,000-row file would hold it all
    assert len(batch["segments"]) == 18 + 5_763 // 150


def test_segments_of_a_full_load_join_to_its_record_count(simulator, sim_clock):
    [batch] = stateful_full_load(simulator, sim_clock, SMALL_ACCOUNT_LOAD)["batches"]

    files = [rows(simulator, segment)[1:] for segment in batch["segments"]]

    assert sum(len(file) for file in files) == batch["recordCount"]
    assert len({tuple(file) for file in files}) == len(files)  # no segment repeats another


def test_an_accounting_period_load_is_cut_only_by_the_500000_rule(simulator, sim_clock):
    [batch] = stateful_full_load(simulator, sim_clock, BIG_PERIOD_LOAD)["batches"]

    assert batch["recordCount"] == 818_156
    assert len(batch["segments"]) == 2


# The concurrent-job limit


def test_the_51st_concurrent_stateless_job_is_refused_with_90028(simulator):
    # SUBMITTED_JOB_ID is already a stateless job waiting: 49 more reach Zuora's 50.
    answers = [submit(simulator) for _ in range(50)]

    assert all("id" in answer for answer in answers[:49])
    assert answers[49]["errorCode"] == "90028"
    assert answers[49]["status"] == "error"


def test_stateful_jobs_have_a_limit_of_their_own(simulator):
    for _ in range(50):
        submit(simulator)

    answer = submit(simulator, version="1.1", partner="salesforce", project="own-limit")

    assert "id" in answer


def test_finished_jobs_free_their_places(simulator, sim_clock):
    for _ in range(50):
        submit(simulator)
    sim_clock.advance(10 * simulator.batch_seconds)

    assert "id" in submit(simulator)


# The multi-entity header


@pytest.fixture
def multi_entity(sim_clock: FakeClock) -> Iterator[sim.Simulator]:
    """A simulator whose OAuth tokens are valid for two entities."""
    simulator = sim.Simulator(clock=sim_clock, entities=ENTITIES)
    with sim.serve(simulator):
        yield simulator


def bearer(simulator: sim.Simulator) -> dict[str, str]:
    form = {
        "client_id": sim.DEMO_CLIENT_ID,
        "client_secret": sim.DEMO_CLIENT_SECRET,
        "grant_type": "client_credentials",
    }
    answer = requests.post(simulator.url + "/oauth/token", data=form, timeout=TIMEOUT).json()
    return {"Authorization": f"Bearer {answer['access_token']}"}


def test_a_token_for_several_entities_lists_them_in_its_scope(multi_entity):
    form = {
        "client_id": sim.DEMO_CLIENT_ID,
        "client_secret": sim.DEMO_CLIENT_SECRET,
        "grant_type": "client_credentials",
    }
    scope = requests.post(multi_entity.url + "/oauth/token", data=form, timeout=TIMEOUT).json()[
        "scope"
    ]

    assert all(f"entity.{entity}" in scope.split() for entity in ENTITIES)


def test_a_token_for_several_entities_is_refused_without_the_entity_header(multi_entity):
    response = get(
        multi_entity,
        f"/v1/batch-query/jobs/{sim.ZIP_JOB_ID}",
        auth=None,
        headers=bearer(multi_entity),
    )

    assert response.status_code == 400
    assert "Zuora-Entity-Ids" in response.json()["reasons"][0]["message"]


@pytest.mark.parametrize("entity", [ENTITIES[1], ENTITIES[1].replace("-", "")])
def test_a_token_for_several_entities_works_with_the_entity_named(multi_entity, entity):
    headers = bearer(multi_entity) | {"Zuora-Entity-Ids": entity}

    response = get(
        multi_entity, f"/v1/batch-query/jobs/{sim.ZIP_JOB_ID}", auth=None, headers=headers
    )

    assert response.status_code == 200


def test_an_entity_the_token_does_not_cover_is_refused(multi_entity):
    headers = bearer(multi_entity) | {"Zuora-Entity-Ids": "0" * 32}

    response = get(
        multi_entity, f"/v1/batch-query/jobs/{sim.ZIP_JOB_ID}", auth=None, headers=headers
    )

    assert response.status_code == 400


def test_a_token_for_one_entity_needs_no_entity_header(simulator):
    response = get(
        simulator, f"/v1/batch-query/jobs/{sim.ZIP_JOB_ID}", auth=None, headers=bearer(simulator)
    )

    assert response.status_code == 200


# localizedStatus and sourceData


def test_batches_carry_localized_status_on_get(simulator):
    batches = job(simulator, sim.ZIP_JOB_ID)["batches"]

    assert [batch["localizedStatus"] for batch in batches] == ["completed", "completed"]


def test_no_answer_has_localized_status_at_the_job_level(simulator):
    assert "localizedStatus" not in submit(simulator)
    assert "localizedStatus" not in job(simulator, sim.ZIP_JOB_ID)


def test_seeded_jobs_echo_source_data_live(simulator):
    assert job(simulator, sim.ZIP_JOB_ID)["sourceData"] == "LIVE"


def test_submitted_jobs_echo_source_data_live_by_default(simulator):
    job_id = submit(simulator)["id"]

    assert job(simulator, job_id)["sourceData"] == "LIVE"
