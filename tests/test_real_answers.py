"""Zuora's documented and captured answers (tests/fixtures/zuora/) through the client, and the
simulator's answers held to the same shapes, so that neither can drift from the real Zuora."""

import json
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.core.cache.backends.locmem import LocMemCache

from aquadash import simulator as sim
from aquadash import zuora

FIXTURES = Path(__file__).parent / "fixtures" / "zuora"
AUTH = (sim.DEMO_USERNAME, sim.DEMO_PASSWORD)
TIMEOUT = 5
ZUORA_ID = re.compile(r"[0-9a-f]{32}")
GUARDIAN_CAPTURE = "job-guardian-datetimeutc"
# The startTime layouts real answers use: the tenant's local time, or UTC with an offset when
# the job was submitted with dateTimeUtc (the Guardian capture).
START_TIME_LAYOUTS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z")
# Documented, but in no answer we hold: older SDKs typed recordCount as a string (Zuora's SDK
# changelog, String to Number; see shared/zuora-aqua.md), and the simulator keeps one such job.
DOCUMENTED_TYPES = {("batch", "recordCount"): {"str"}}


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def fixture_names(prefix: str = "") -> list[str]:
    return sorted(path.stem for path in FIXTURES.glob(f"{prefix}*.json"))


class Replay:
    """A server that gives one recorded answer to every request."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.url = ""  # set by serve()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = self.answer["body"]
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **self.answer["headers"]}
        start_response(f"{self.answer['status']} Answer", list(headers.items()))
        return [data]


@pytest.fixture
def replaying() -> Iterator[Callable[[str], zuora.Connection]]:
    """replaying(fixture name) -> a Connection to a server that answers with that fixture."""
    servers = []

    def connect(name: str) -> zuora.Connection:
        replay = Replay(fixture(name))
        servers.append(sim.serve(replay))  # type: ignore[arg-type]
        servers[-1].__enter__()
        parts = urlsplit(replay.url)
        return zuora.Connection(
            base_url=replay.url,
            credentials=zuora.Credentials("basic", sim.DEMO_USERNAME, sim.DEMO_PASSWORD),
            tenant="Acme Prod",
            extra_hosts=frozenset({(parts.hostname, parts.port)}),
            token_cache=LocMemCache("tokens", {}),
            sleep=lambda seconds: None,
            read_timeout=2.0,
        )

    yield connect
    for server in servers:
        server.__exit__(None, None, None)


def oauth(conn: zuora.Connection) -> zuora.Connection:
    credentials = zuora.Credentials("oauth", sim.DEMO_CLIENT_ID, sim.DEMO_CLIENT_SECRET)
    return zuora.Connection(**(vars(conn) | {"credentials": credentials}))


# The corpus itself


@pytest.mark.parametrize("name", fixture_names())
def test_every_answer_names_its_source(name):
    answer = fixture(name)

    assert {"source", "status", "headers", "body"} <= answer.keys()
    assert (
        answer["source"].startswith(("https://", "Built, not captured")) or "@" in answer["source"]
    )
    assert answer["source"].startswith("Built, not captured") == name.endswith("-built")


# Real answers through the client


@pytest.mark.parametrize("name", [n for n in fixture_names("job-") if n != GUARDIAN_CAPTURE])
def test_every_documented_job_is_read(replaying, name):
    body = fixture(name)["body"]

    job = zuora.get_job(replaying(name), job_id=body["id"])

    assert (job.id, job.status) == (body["id"], body["status"])
    assert [batch.status for batch in job.batches] == [b["status"] for b in body["batches"]]
    assert [batch.record_count for batch in job.batches] == [
        b["recordCount"] for b in body["batches"]
    ]
    assert [batch.file_ids for batch in job.batches] == [
        tuple(b.get("segments") or ([b["fileId"]] if "fileId" in b else []))
        for b in body["batches"]
    ]


def test_guardian_capture_with_an_offset_start_time_is_read(replaying):
    job = zuora.get_job(replaying(GUARDIAN_CAPTURE), job_id="2c92c0f977091c5c0177167d05f77d7c")

    assert job.start_time == datetime(2021, 1, 18, 17, 13, 48, tzinfo=UTC)
    assert job.batches[0].file_id == "2c92c086770917c40177167e4418436c"
    assert job.batches[0].record_count == 220


def test_file_segmentation_example_has_18_files_for_88_records(replaying):
    job = zuora.get_job(
        replaying("job-file-segmentation-18-segments"), job_id="402881824835bb2a0148419305d402a6"
    )

    assert job.batches[0].record_count == 88
    assert len(job.batches[0].file_ids) == 18


def test_project_echoed_lower_cased_is_kept_as_zuora_sent_it(replaying):
    job = zuora.get_job(
        replaying("job-post-query-lowercased-project"), job_id="2c92c0f966cd4f580166ec0ac89d5bb7"
    )

    assert (job.partner, job.project) == ("salesforce", "00170000011k3ub")


def test_incremental_time_is_read_as_epoch_milliseconds(replaying):
    job = zuora.get_job(
        replaying("job-post-query-retrieval-time"), job_id="2c9080214b08c3a0014b08f0a6d50041"
    )

    # Zuora's example: 2015-01-21 10:30:01 Pacific sent, 1421865001000 echoed.
    assert job.incremental_time == datetime(2015, 1, 21, 18, 30, 1, tzinfo=UTC)


def test_a_job_with_90018_is_shown_with_its_code(replaying):
    job = zuora.get_job(replaying("job-90018-built"), job_id="402881824835bb2a01483c19f7d70256")

    assert (job.status, job.error_code) == ("completed", "90018")


@pytest.mark.parametrize("name", ["error-90001-built", "error-90002-built"])
def test_unknown_job_and_batch_codes_are_not_found(replaying, name):
    with pytest.raises(zuora.JobNotFound):
        zuora.get_job(replaying(name), job_id="0" * 32)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("error-90005-guardian", "syntax error"),
        ("error-90027-built", "maximum processing time"),
        ("error-90028-built", "concurrent jobs"),
        ("error-90029-built", "maximum time limit"),
    ],
)
def test_aqua_refusals_are_refused_with_zuoras_words(replaying, name, words):
    with pytest.raises(zuora.RequestRejected, match=words):
        zuora.get_job(replaying(name), job_id="0" * 32)


def test_unknown_partner_says_so(replaying):
    with pytest.raises(zuora.UnknownPartner) as raised:
        zuora.get_last_completed_job(
            replaying("error-90019-built"), partner="nosuch", project="00170000011K3Ub"
        )

    assert "partner" in raised.value.message.lower()


def test_user_not_authorized_is_a_missing_permission_not_bad_credentials(replaying):
    with pytest.raises(zuora.PermissionDenied):
        zuora.get_job(replaying("error-90009-built"), job_id="0" * 32)


def test_documented_token_answer_signs_in(replaying):
    conn = oauth(replaying("token-reference"))

    assert "token" in zuora.check_credentials(conn)


def test_documented_file_error_body_is_zuora_unavailable(replaying):
    with pytest.raises(zuora.ZuoraUnavailable):
        zuora.open_file(replaying("file-error-reference"), file_id="a" * 32)


def test_documented_file_size_refusal_is_file_too_large(replaying):
    with pytest.raises(zuora.FileTooLarge):
        zuora.open_file(replaying("file-error-max-object-size"), file_id="a" * 32)


# The simulator's answers have the real answers' shapes


def json_type(value: Any) -> str:
    return type(value).__name__


def shapes(bodies: Iterable[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """(level, key) -> the JSON types seen, for jobs and their batches."""
    seen: dict[tuple[str, str], set[str]] = {}
    for body in bodies:
        for key, value in body.items():
            seen.setdefault(("job", key), set()).add(json_type(value))
        for batch in body.get("batches", []):
            for key, value in batch.items():
                seen.setdefault(("batch", key), set()).add(json_type(value))
    return seen


def real_jobs() -> list[dict[str, Any]]:
    """Every job-shaped answer that Zuora published or someone captured (none built by us)."""
    bodies = [fixture(name)["body"] for name in fixture_names() if not name.endswith("-built")]
    return [body for body in bodies if isinstance(body, dict) and "batches" in body]


REAL_SHAPES = shapes(real_jobs())


def simulated_jobs(simulator: sim.Simulator) -> list[dict[str, Any]]:
    """The simulator's job answers: every catalogue job, a POST, a DELETE and a last-completed."""
    bodies = [
        requests.get(
            f"{simulator.url}/v1/batch-query/jobs/{job_id}", auth=AUTH, timeout=TIMEOUT
        ).json()
        for job_id in sim.CATALOGUE
        if job_id != sim.EXPIRED_JOB_ID
    ]
    post = {
        "version": "1.1",
        "partner": "salesforce",
        "project": "00170000011K3Ub",
        "incrementalTime": "2015-01-21 10:30:01",
        "offset": 600,
        "notifyUrl": "https://example.com/?jobId=${JOBID}&status=${STATUS}",
        "queries": [{"name": "Account", "query": "select Id from Account", "type": "zoql"}],
    }
    submitted = requests.post(
        f"{simulator.url}/v1/batch-query/", json=post, auth=AUTH, timeout=TIMEOUT
    ).json()
    cancelled = requests.delete(
        f"{simulator.url}/v1/batch-query/jobs/{submitted['id']}", auth=AUTH, timeout=TIMEOUT
    ).json()
    last = requests.get(
        f"{simulator.url}/v1/batch-query/jobs/partner/{sim.DEMO_PARTNER}/project/{sim.DEMO_PROJECT}",
        auth=AUTH,
        timeout=TIMEOUT,
    ).json()
    return [*bodies, submitted, cancelled, last]


def test_simulated_jobs_use_only_keys_and_types_real_jobs_have(simulator):
    simulated = shapes(simulated_jobs(simulator))

    strangers = {
        key: types - REAL_SHAPES.get(key, set()) - DOCUMENTED_TYPES.get(key, set())
        for key, types in simulated.items()
    }
    assert {key: types for key, types in strangers.items() if types} == {}


def test_every_real_job_key_is_one_the_simulator_can_send(simulator):
    simulated = shapes(simulated_jobs(simulator))

    # Keys only the error answer of a POST carries are checked against the simulator's refusal.
    assert set(REAL_SHAPES) - set(simulated) == set()


def test_simulated_ids_and_start_times_have_real_formats(simulator):
    for body in simulated_jobs(simulator):
        assert ZUORA_ID.fullmatch(body["id"])
        if "startTime" in body:
            assert any(readable(body["startTime"], layout) for layout in START_TIME_LAYOUTS)
        for batch in body["batches"]:
            assert ZUORA_ID.fullmatch(batch["batchId"])
            for file_id in batch.get("segments") or [batch.get("fileId", "0" * 32)]:
                assert ZUORA_ID.fullmatch(file_id)


def readable(text: str, layout: str) -> bool:
    try:
        datetime.strptime(text, layout)
    except ValueError:
        return False
    return True


def test_real_ids_and_start_times_have_the_formats_the_simulator_is_held_to():
    for body in real_jobs():
        if "startTime" in body:
            assert any(readable(body["startTime"], layout) for layout in START_TIME_LAYOUTS)
        for batch in body["batches"]:
            for file_id in batch.get("segments") or [batch.get("fileId", "0" * 32)]:
                assert ZUORA_ID.fullmatch(file_id)


def test_simulated_syntax_error_has_the_captured_shape(simulator):
    real = fixture("error-90005-guardian")["body"]
    bad = {"name": "testJob", "queries": [{"name": "job1", "query": "bad query"}]}

    answer = requests.post(
        f"{simulator.url}/v1/batch-query/", json=bad, auth=AUTH, timeout=TIMEOUT
    ).json()

    assert shapes([answer]) == shapes([real])
    assert (answer["errorCode"], answer["status"]) == ("90005", "error")


def test_simulated_token_has_the_documented_shape(simulator):
    real = fixture("token-reference")["body"]
    form = {
        "client_id": sim.DEMO_CLIENT_ID,
        "client_secret": sim.DEMO_CLIENT_SECRET,
        "grant_type": "client_credentials",
    }

    answer = requests.post(f"{simulator.url}/oauth/token", data=form, timeout=TIMEOUT).json()

    assert {key: json_type(value) for key, value in answer.items()} == {
        key: json_type(value) for key, value in real.items()
    }
    assert ZUORA_ID.fullmatch(answer["access_token"])
    assert re.fullmatch(r"user\.[0-9a-f]+( entity\.[0-9a-f-]{36})+ .*tenant\.\d+", answer["scope"])


def test_simulated_file_error_has_the_documented_shape(simulator):
    real = fixture("file-error-reference")["body"]

    answer = requests.get(f"{simulator.url}/v1/files/{'a' * 32}", auth=AUTH, timeout=TIMEOUT)

    assert answer.status_code == 404
    assert answer.json().keys() == real.keys()
    assert [
        {key: json_type(value) for key, value in reason.items()}
        for reason in answer.json()["reasons"]
    ] == [{key: json_type(value) for key, value in reason.items()} for reason in real["reasons"]]
