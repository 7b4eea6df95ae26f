"""The AQuA client against the simulator, over real HTTP on loopback."""

import logging
import socket
import threading
import time
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import urllib3.util.connection
from django.core.cache.backends.locmem import LocMemCache
from hypothesis import given, settings
from hypothesis import strategies as st

from aquadash import simulator as sim
from aquadash import zuora
from tests.conftest import DISALLOWED_BASE_URLS, imports_of

CANARY = "canary-secret-7f3a9c"
EXAMPLE_FILE_JOB = "402881824835bb2a01483c19f7d70256"
EXAMPLE_SEGMENTS_JOB = "e20b07474841608a01484592147005d2"
PACIFIC = ZoneInfo("America/Los_Angeles")


class Sleeps(list):
    """Records the waits the client asks for, instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def connect(
    simulator: sim.Simulator,
    *,
    method: str = "oauth",
    identity: str = "",
    secret: str = "",
    **overrides: object,
) -> zuora.Connection:
    parts = urlsplit(simulator.url)
    if method == "oauth":
        credentials = zuora.Credentials(
            "oauth", identity or sim.DEMO_CLIENT_ID, secret or sim.DEMO_CLIENT_SECRET
        )
    else:
        credentials = zuora.Credentials(
            "basic", identity or sim.DEMO_USERNAME, secret or sim.DEMO_PASSWORD
        )
    options = {
        "base_url": simulator.url,
        "credentials": credentials,
        "tenant": "Acme Prod",
        "extra_hosts": frozenset({(parts.hostname, parts.port)}),
        "token_cache": LocMemCache("tokens", {}),
        "sleep": Sleeps(),
        "read_timeout": 2.0,
    }
    options.update(overrides)
    return zuora.Connection(**options)


def tokens_issued(simulator: sim.Simulator) -> int:
    return simulator.count(method="POST", path_prefix="/oauth/token")


def job_requests(simulator: sim.Simulator, job_id: str) -> int:
    return simulator.count(method="GET", path_prefix=f"/v1/batch-query/jobs/{job_id}")


# --- Shapes -------------------------------------------------------------------------------------


def test_it_reads_the_documented_job_with_a_file_id(simulator):
    job = zuora.get_job(connect(simulator, zone=PACIFIC), job_id=EXAMPLE_FILE_JOB)

    assert (job.id, job.name, job.status, job.version) == (
        EXAMPLE_FILE_JOB,
        "Example",
        "completed",
        "1.1",
    )
    assert (job.format, job.encrypted, job.partner, job.project) == (
        "CSV",
        "none",
        "salesforce",
        "00170000011K3Ub",
    )
    # Zuora writes the tenant's local time without a zone; the job carries the tenant's zone.
    assert job.start_time.isoformat() == "2014-09-03T08:20:07-07:00"
    assert job.is_final and job.is_stateful
    (batch,) = job.batches
    assert batch.name == "AccountingPeriod"
    assert batch.query == "select Id,StartDate,EndDate,FiscalYear,Name,Status from AccountingPeriod"
    assert (batch.status, batch.record_count, batch.full) == ("completed", 1, True)
    assert (batch.api_version, batch.batch_type) == ("60.0", "zoqlexport")
    assert batch.file_id == "402881824835bb2a01483c19f8190259"
    assert batch.batch_id == "402881824835bb2a01483c19f7da0257"
    assert batch.segments == ()
    assert job.raw["batches"][0]["message"] == ""


def test_it_reads_the_documented_job_with_segments(simulator):
    job = zuora.get_job(connect(simulator, zone=PACIFIC), job_id=EXAMPLE_SEGMENTS_JOB)

    (batch,) = job.batches
    assert batch.segments == ("e20b07474841608a01484592159c05d7",)
    assert batch.file_id == ""
    assert batch.file_ids == ("e20b07474841608a01484592159c05d7",)
    assert (batch.record_count, batch.api_version, batch.message) == (132, "59.0", "")
    assert job.start_time.isoformat() == "2014-09-05T04:27:54-07:00"


def test_it_reads_every_catalogue_job(simulator):
    conn = connect(simulator)
    for job_id in sim.CATALOGUE:
        if job_id == sim.EXPIRED_JOB_ID:
            continue
        job = zuora.get_job(conn, job_id=job_id)
        assert job.id == job_id
        assert job.status in zuora.JOB_STATUSES
        assert all(batch.status in zuora.BATCH_STATUSES for batch in job.batches)


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ({"version": 1}, {"version": "1"}),
        ({"version": "1.1"}, {"version": "1.1"}),
        ({"incrementalTime": 1421865001000}, {"incremental_time": "2015-01-21T18:30:01+00:00"}),
        ({"offset": 300}, {"offset": 300}),
        ({"unknownField": {"nested": True}}, {}),
    ],
)
def test_it_tolerates_documented_job_variants(variant, expected):
    data = {"id": "a" * 32, "status": "completed", "batches": [], **variant}

    job = zuora.parse_job(data)

    for name, value in expected.items():
        actual = getattr(job, name)
        assert (actual.isoformat() if hasattr(actual, "isoformat") else actual) == value
    assert job.raw == data


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ({"recordCount": "132"}, {"record_count": 132}),
        ({"recordCount": 0}, {"record_count": 0}),
        ({}, {"full": None, "api_version": "", "message": "", "record_count": None}),
        ({"full": False}, {"full": False}),
        (
            {"deleted": {"column": "IsDeleted", "format": "Boolean", "forceExport": True}},
            {"deleted": {"column": "IsDeleted", "format": "Boolean", "forceExport": True}},
        ),
        ({"status": "deleted_notallowed"}, {"status": "deleted_notallowed", "is_final": True}),
    ],
)
def test_it_tolerates_documented_batch_variants(variant, expected):
    batch = {"batchId": "b" * 32, "name": "Q", "query": "select Id from Account"}
    batch = {"status": "completed", **batch, **variant}

    (parsed,) = zuora.parse_job({"id": "a" * 32, "status": "completed", "batches": [batch]}).batches

    for name, value in expected.items():
        assert getattr(parsed, name) == value


@pytest.mark.parametrize(("encrypted", "is_pgp"), [("pgp", True), ("PGP", True), ("none", False)])
def test_a_job_encrypted_with_pgp_is_known_in_any_case(encrypted, is_pgp):
    job = zuora.parse_job({"id": "a" * 32, "status": "completed", "encrypted": encrypted})

    assert job.is_pgp is is_pgp


def test_a_failed_job_with_an_error_code_is_a_job_to_show():
    job = zuora.parse_job(
        {"id": "a" * 32, "status": "error", "errorCode": "90005", "message": "syntax error"}
    )

    assert (job.status, job.error_code, job.message) == ("error", "90005", "syntax error")
    assert job.is_final


@pytest.mark.parametrize(
    "body",
    [
        {"id": "a" * 32, "status": 123, "batches": []},
        {"id": "a" * 32, "status": "completed", "batches": "x"},
        {"id": "a" * 32, "status": "completed", "batches": ["x"]},
        {
            "id": "a" * 32,
            "status": "completed",
            "batches": [{"status": "done", "recordCount": "x"}],
        },
        {"id": "a" * 32, "status": "completed", "startTime": "yesterday"},
        {"status": "completed"},
        [],
        "job",
    ],
)
def test_a_wrongly_shaped_job_is_unreadable(body):
    with pytest.raises(zuora.UnreadableResponse, match="cannot read"):
        zuora.parse_job(body)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
        max_leaves=20,
    )
)
def test_any_json_either_parses_or_raises_a_zuora_error(body):
    try:
        zuora.parse_job(body)
    except zuora.ZuoraError as exc:
        assert exc.message


# --- Auth ---------------------------------------------------------------------------------------


def test_one_token_serves_many_requests(simulator):
    conn = connect(simulator)

    for _ in range(5):
        zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    assert tokens_issued(simulator) == 1
    assert job_requests(simulator, EXAMPLE_FILE_JOB) == 5


def test_an_expired_token_is_refreshed_once(simulator):
    conn = connect(simulator)
    zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)
    simulator.expire_tokens()

    job = zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    assert job.id == EXAMPLE_FILE_JOB
    assert tokens_issued(simulator) == 2


def test_a_token_is_not_reused_after_it_expires_by_its_lifetime(simulator):
    simulator.token_lifetime = 61  # cached for one second: expires_in minus the safety margin
    conn = connect(simulator)
    zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)
    conn.token_cache.clear()  # what the cache timeout does after a second

    zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    assert tokens_issued(simulator) == 2


def test_basic_auth_reads_jobs(simulator):
    job = zuora.get_job(connect(simulator, method="basic"), job_id=EXAMPLE_FILE_JOB)

    assert job.id == EXAMPLE_FILE_JOB
    assert tokens_issued(simulator) == 0


@pytest.mark.parametrize("method", ["oauth", "basic"])
def test_wrong_credentials_are_reported_without_the_secret(simulator, method):
    conn = connect(simulator, method=method, secret=CANARY)

    with pytest.raises(zuora.CredentialsRejected) as caught:
        zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    assert "Zuora rejected the stored credentials for tenant Acme Prod" in caught.value.message
    assert CANARY not in str(caught.value) and CANARY not in repr(caught.value)


def test_a_revoked_token_is_replaced_once_then_reported(simulator):
    conn = connect(simulator)
    simulator.add_fault("unauthorized", path="/v1/batch-query", times=None)

    with pytest.raises(zuora.CredentialsRejected):
        zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    assert tokens_issued(simulator) == 2
    assert job_requests(simulator, EXAMPLE_FILE_JOB) == 2


def test_success_false_with_an_auth_code_reauthenticates_once(simulator):
    conn = connect(simulator)
    simulator.add_fault("success_false", path="/v1/batch-query", times=None)

    with pytest.raises(zuora.CredentialsRejected):
        zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    assert tokens_issued(simulator) == 2


def test_check_credentials_reports_success_for_both_methods(simulator):
    assert "token" in zuora.check_credentials(connect(simulator))
    assert "accepted" in zuora.check_credentials(connect(simulator, method="basic"))


@pytest.mark.parametrize("method", ["oauth", "basic"])
def test_check_credentials_reports_rejection(simulator, method):
    with pytest.raises(zuora.CredentialsRejected):
        zuora.check_credentials(connect(simulator, method=method, secret="wrong"))


def test_every_request_carries_a_safe_track_id_and_the_entity(simulator):
    conn = connect(simulator, entity_id="8a8082c4-5a12-4c2e-b3c0-2d1b4f0d1a99")

    job = zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    seen = [r for r in simulator.requests if r.path.startswith("/v1/")][-1]
    assert seen.headers["Zuora-Track-Id"] == job.track_id
    assert len(job.track_id) <= 64 and job.track_id.isascii()
    assert not set(job.track_id) & set(":;\"'\r\n")
    assert seen.headers["Zuora-Entity-Ids"] == "8a8082c4-5a12-4c2e-b3c0-2d1b4f0d1a99"


# --- Not found ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["404", "200"])
def test_an_unknown_job_is_not_found_however_zuora_says_it(simulator, mode):
    simulator.unknown_job = mode

    with pytest.raises(zuora.JobNotFound, match="180 days"):
        zuora.get_job(connect(simulator), job_id="0123456789abcdef0123456789abcdef")


def test_a_job_older_than_180_days_is_not_found(simulator):
    with pytest.raises(zuora.JobNotFound):
        zuora.get_job(connect(simulator), job_id=sim.EXPIRED_JOB_ID)


def test_a_forgotten_job_is_not_found(simulator):
    conn = connect(simulator)
    zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)
    simulator.forget_job(EXAMPLE_FILE_JOB)

    with pytest.raises(zuora.JobNotFound):
        zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300).filter(lambda text: not zuora.ZUORA_ID.fullmatch(text)))
def test_anything_but_32_hex_characters_never_reaches_zuora(job_id):
    conn = zuora.Connection(
        base_url="https://rest.zuora.com",
        credentials=zuora.Credentials("oauth", "id", CANARY),
        tenant="Acme",
        session=None,  # any request would fail loudly
    )

    with pytest.raises(zuora.InvalidId):
        zuora.get_job(conn, job_id=job_id)


@pytest.mark.parametrize(
    "job_id",
    [
        "../../v1/accounts",
        "%2e%2e%2f",
        "abc?x=1",
        "abc#f",
        EXAMPLE_FILE_JOB + "/extra",
        "x" * 10000,
    ],
)
def test_path_injection_is_refused_before_any_request(simulator, job_id):
    with pytest.raises(zuora.InvalidId):
        zuora.get_job(connect(simulator), job_id=job_id)

    assert simulator.count() == 0


def test_normalize_id_accepts_what_people_paste():
    assert zuora.normalize_id('  "402881824835BB2A01483C19F7D70256"\n') == EXAMPLE_FILE_JOB


# --- Faults -------------------------------------------------------------------------------------


def test_rate_limited_then_ok_waits_as_asked_and_succeeds(simulator):
    conn = connect(simulator)
    simulator.add_fault("rate_limited", job_id=EXAMPLE_FILE_JOB, seconds=2)

    job = zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    assert job.id == EXAMPLE_FILE_JOB
    assert conn.sleep == [2.0]
    assert job_requests(simulator, EXAMPLE_FILE_JOB) == 2


def test_a_long_rate_limit_is_reported_with_the_wait_instead_of_sleeping(simulator):
    conn = connect(simulator)
    simulator.add_fault("rate_limited", job_id=EXAMPLE_FILE_JOB, seconds=3600)

    with pytest.raises(zuora.RateLimited, match="in 3600 seconds") as caught:
        zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    assert caught.value.retry_after == 3600
    assert conn.sleep == []


def test_rate_limit_reset_header_is_honoured_without_retry_after(simulator):
    conn = connect(simulator)
    simulator.add_fault(
        "rate_limited", job_id=EXAMPLE_FILE_JOB, seconds=3, retry_after_header=False
    )

    zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    assert conn.sleep == [3.0]


@pytest.mark.parametrize("kind", ["unavailable", "bad_gateway", "gateway_timeout"])
def test_passing_server_trouble_is_retried_twice_with_growing_waits(simulator, kind):
    conn = connect(simulator)
    simulator.add_fault(kind, job_id=EXAMPLE_FILE_JOB, times=None)

    with pytest.raises(zuora.ZuoraUnavailable, match="Try again"):
        zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    assert job_requests(simulator, EXAMPLE_FILE_JOB) == 3
    assert len(conn.sleep) == 2 and conn.sleep[0] < conn.sleep[1] <= zuora.MAX_RETRY_WAIT


def test_a_gateway_timeout_is_reported_as_a_timeout(simulator):
    simulator.add_fault("gateway_timeout", job_id=EXAMPLE_FILE_JOB, times=None)

    with pytest.raises(zuora.ZuoraTimeout):
        zuora.get_job(connect(simulator), job_id=EXAMPLE_FILE_JOB)


def test_one_503_then_ok_recovers(simulator):
    simulator.add_fault("unavailable", job_id=EXAMPLE_FILE_JOB)

    assert zuora.get_job(connect(simulator), job_id=EXAMPLE_FILE_JOB).id == EXAMPLE_FILE_JOB


def test_a_500_is_not_retried(simulator):
    simulator.add_fault("server_error", job_id=EXAMPLE_FILE_JOB, times=None)

    with pytest.raises(zuora.ZuoraUnavailable, match="HTTP 500"):
        zuora.get_job(connect(simulator), job_id=EXAMPLE_FILE_JOB)

    assert job_requests(simulator, EXAMPLE_FILE_JOB) == 1


def test_a_slow_answer_times_out_with_a_clear_message(simulator):
    simulator.add_fault("slow", job_id=EXAMPLE_FILE_JOB, seconds=2)

    with pytest.raises(zuora.ZuoraTimeout, match="did not answer"):
        zuora.get_job(connect(simulator, read_timeout=0.3), job_id=EXAMPLE_FILE_JOB)


@pytest.mark.parametrize(
    ("kind", "detail"),
    [
        ("html", "a web page"),
        ("truncated", "broke off"),
        ("invalid_json", "not valid JSON"),
        ("wrong_shape", "not a list"),
        ("oversize", "far larger"),
    ],
)
def test_an_unreadable_answer_is_reported_as_such(simulator, kind, detail):
    simulator.add_fault(kind, job_id=EXAMPLE_FILE_JOB)

    with pytest.raises(zuora.UnreadableResponse, match=detail) as caught:
        zuora.get_job(connect(simulator), job_id=EXAMPLE_FILE_JOB)

    assert "<html" not in caught.value.message.lower()


def test_a_small_gzip_body_that_inflates_past_the_cap_is_refused(simulator):
    simulator.add_fault("oversize", job_id=EXAMPLE_FILE_JOB, gzip=True, bytes=50_000_000)

    with pytest.raises(zuora.UnreadableResponse, match="far larger"):
        zuora.get_job(connect(simulator), job_id=EXAMPLE_FILE_JOB)


def test_a_dropped_connection_is_reported_as_unavailable(simulator):
    simulator.add_fault("drop", job_id=EXAMPLE_FILE_JOB)

    with pytest.raises(zuora.ZuoraUnavailable):
        zuora.get_job(connect(simulator), job_id=EXAMPLE_FILE_JOB)


def test_a_closed_port_is_reported_as_unreachable_without_retrying():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conn = zuora.Connection(
        base_url=f"http://127.0.0.1:{port}",
        credentials=zuora.Credentials("basic", "user", CANARY),
        tenant="Acme",
        extra_hosts=frozenset({("127.0.0.1", port)}),
        sleep=Sleeps(),
    )

    with pytest.raises(zuora.ZuoraUnavailable, match="cannot reach Zuora"):
        zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    assert conn.sleep == []


def test_a_redirect_is_never_followed(simulator):
    metadata_service = sim.Simulator()
    with sim.serve(metadata_service) as target:
        simulator.add_fault(
            "redirect", job_id=EXAMPLE_FILE_JOB, location=f"{target.url}/latest/meta-data/"
        )

        with pytest.raises(zuora.UnexpectedRedirect, match="redirect"):
            zuora.get_job(connect(simulator), job_id=EXAMPLE_FILE_JOB)

        assert metadata_service.count() == 0


def test_a_redirect_of_the_sign_in_is_never_followed(simulator):
    metadata_service = sim.Simulator()
    with sim.serve(metadata_service) as target:
        simulator.add_fault("redirect", path="/oauth/token", location=f"{target.url}/oauth/token")

        with pytest.raises(zuora.UnexpectedRedirect, match="redirect"):
            zuora.get_job(connect(simulator), job_id=EXAMPLE_FILE_JOB)

        assert metadata_service.count() == 0


def test_proxy_variables_are_ignored(simulator, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")

    assert zuora.get_job(connect(simulator), job_id=EXAMPLE_FILE_JOB).id == EXAMPLE_FILE_JOB


def test_a_host_that_is_not_allowed_is_never_called(simulator):
    conn = connect(simulator, extra_hosts=frozenset())

    with pytest.raises(zuora.HostNotAllowed):
        zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    assert simulator.count() == 0


@pytest.mark.parametrize(
    "url", [*DISALLOWED_BASE_URLS, "https://rest.zuora.com/v1?x=1", "javascript:alert(1)", ""]
)
def test_only_documented_zuora_hosts_are_allowed(url):
    with pytest.raises(zuora.HostNotAllowed):
        zuora.check_base_url(url)


def test_every_documented_environment_is_allowed():
    for _, url in zuora.ENVIRONMENTS.values():
        assert zuora.check_base_url(url + "/") == url


# --- Other operations ---------------------------------------------------------------------------


def test_last_completed_job_of_a_partner_and_project(simulator):
    job = zuora.get_last_completed_job(
        connect(simulator), partner=sim.DEMO_PARTNER, project=sim.DEMO_PROJECT
    )

    assert job.id == sim.INCREMENTAL_JOB_ID and job.status == "completed"


def test_last_completed_job_of_an_unknown_session_is_not_found(simulator):
    with pytest.raises(zuora.JobNotFound):
        zuora.get_last_completed_job(connect(simulator), partner="nobody", project="nothing/../x")


def test_cancelling_a_running_job(simulator):
    job = zuora.cancel_job(connect(simulator), job_id=sim.RUNNING_JOB_ID)

    assert job.status == "cancelled"


def test_cancelling_a_finished_job_is_refused(simulator):
    with pytest.raises(zuora.RequestRejected, match="90003"):
        zuora.cancel_job(connect(simulator), job_id=EXAMPLE_FILE_JOB)


def test_a_result_file_streams_as_csv(simulator):
    job = zuora.get_job(connect(simulator), job_id=sim.MULTI_BATCH_JOB_ID)
    batch = job.batches[0]

    with zuora.open_file(connect(simulator), file_id=batch.file_id) as result:
        body = b"".join(result.chunks())

    assert result.content_type.startswith("text/csv")
    assert len(body.decode().strip().splitlines()) == batch.record_count + 1


@pytest.mark.parametrize(
    ("job_id", "content_type", "magic"),
    [
        (sim.GZIP_JOB_ID, "application/gzip", b"\x1f\x8b"),
        (sim.ZIP_JOB_ID, "application/zip", b"PK"),
    ],
)
def test_a_compressed_result_file_passes_through_as_zuora_made_it(
    simulator, job_id, content_type, magic
):
    job = zuora.get_job(connect(simulator), job_id=job_id)

    with zuora.open_file(connect(simulator), file_id=job.batches[0].file_ids[0]) as result:
        body = b"".join(result.chunks())

    assert result.content_type == content_type
    assert body.startswith(magic)


def test_a_result_file_cut_short_raises_instead_of_ending_quietly(simulator):
    job = zuora.get_job(connect(simulator), job_id=sim.MULTI_BATCH_JOB_ID)
    file_id = job.batches[0].file_id
    simulator.add_fault("truncated", path=f"/v1/files/{file_id}")

    with (
        zuora.open_file(connect(simulator), file_id=file_id) as result,
        pytest.raises(zuora.ZuoraUnavailable, match="broke off"),
    ):
        b"".join(result.chunks())


def test_a_purged_result_file_is_reported_as_deleted(simulator):
    job = zuora.get_job(connect(simulator), job_id=sim.PURGED_FILES_JOB_ID)

    with pytest.raises(zuora.FileNotFound, match="3 days"):
        zuora.open_file(connect(simulator), file_id=job.batches[0].file_id)


# --- Secrets ------------------------------------------------------------------------------------


def test_no_secret_or_token_reaches_logs_messages_or_reprs(simulator, caplog):
    caplog.set_level(logging.DEBUG)
    good = connect(simulator)
    zuora.get_job(good, job_id=EXAMPLE_FILE_JOB)
    token = good.token_cache.get(zuora.client._token_key(good))
    bad = connect(simulator, secret=CANARY)
    basic = connect(simulator, method="basic", secret=CANARY)
    errors = []
    for conn, fault in [(bad, None), (basic, None), (good, "server_error"), (good, "html")]:
        if fault:
            simulator.add_fault(fault, job_id=EXAMPLE_FILE_JOB)
        try:
            zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)
        except zuora.ZuoraError as exc:
            errors.append(exc)

    assert len(errors) == 4
    seen = caplog.text + repr(errors) + "".join(map(str, errors)) + repr(bad) + repr(basic)
    assert CANARY not in seen
    assert token is not None
    assert token not in seen


def test_an_answer_about_another_job_is_unreadable(simulator, monkeypatch):
    other = {"id": "f" * 32, "status": "completed", "batches": []}
    answer = (other, "track", "request")
    monkeypatch.setattr(zuora.client, "_call_json", lambda *args, **kwargs: answer)

    with pytest.raises(zuora.UnreadableResponse, match="different job"):
        zuora.get_job(connect(simulator), job_id=EXAMPLE_FILE_JOB)


@pytest.mark.parametrize(
    "batch",
    [
        {"status": "completed", "name": "no ID"},
        {"status": "completed", "batchId": "../../x"},
        {"status": "completed", "batchId": "b" * 32, "recordCount": "\u00b2"},
    ],
)
def test_a_batch_without_a_usable_id_or_count_is_unreadable(batch):
    with pytest.raises(zuora.UnreadableResponse):
        zuora.parse_job({"id": "a" * 32, "status": "completed", "batches": [batch]})


def test_ids_are_read_in_lower_case():
    job = zuora.parse_job(
        {"id": "A" * 32, "status": "completed", "batches": [{"batchId": "B" * 32, "status": "x"}]}
    )

    assert job.id == "a" * 32 and job.batches[0].batch_id == "b" * 32


@pytest.mark.parametrize("value", ["\u00b2", "-5", "abc", "9" * 30, "Wed, 21 Oct 2015 07:28:00"])
def test_a_strange_retry_after_falls_back_to_backoff(simulator, value):
    conn = connect(simulator)
    simulator.add_fault("rate_limited", job_id=EXAMPLE_FILE_JOB, seconds=value)

    assert zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB).id == EXAMPLE_FILE_JOB
    assert len(conn.sleep) == 1 and 0 <= conn.sleep[0] <= zuora.MAX_RETRY_WAIT


@pytest.mark.parametrize("code", [90000011, 50000011])
def test_any_authentication_code_in_a_200_drops_the_cached_token(simulator, code):
    conn = connect(simulator)
    zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)
    simulator.add_fault("success_false", path="/v1/batch-query", code=code)

    job = zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)  # a fresh sign-in succeeds

    assert job.id == EXAMPLE_FILE_JOB
    assert tokens_issued(simulator) == 2


# --- DNS rebinding --------------------------------------------------------------------------------


def resolve_to(monkeypatch, address: str) -> list:
    """Make every name resolve to `address`, and record connection attempts (none succeed)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET

    def getaddrinfo(host, port, *args, **kwargs):
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    attempts = []

    def create_connection(address, *args, **kwargs):
        attempts.append(address)
        raise OSError("no network in tests")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)
    return attempts


def zuora_production() -> zuora.Connection:
    return zuora.Connection(
        base_url="https://rest.zuora.com",
        credentials=zuora.Credentials("basic", "user", CANARY),
        tenant="Acme",
        session=zuora.new_session(),
        sleep=Sleeps(),
    )


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::ffff:127.0.0.1", "::1", "fd00::1"]
)
def test_a_zuora_host_resolving_to_a_private_address_is_never_connected_to(monkeypatch, address):
    attempts = resolve_to(monkeypatch, address)

    with pytest.raises(zuora.HostNotAllowed, match="private network address"):
        zuora.get_job(zuora_production(), job_id=EXAMPLE_FILE_JOB)

    assert attempts == []


def test_a_zuora_host_is_connected_to_at_the_public_address_that_was_checked(monkeypatch):
    attempts = resolve_to(monkeypatch, "8.8.8.8")

    with pytest.raises(zuora.ZuoraUnavailable, match="cannot reach"):
        zuora.get_job(zuora_production(), job_id=EXAMPLE_FILE_JOB)

    assert attempts == [("8.8.8.8", 443)]


def test_a_byte_drip_is_cut_off_at_the_overall_deadline(simulator):
    simulator.add_fault("drip", job_id=EXAMPLE_FILE_JOB, interval=0.05)

    with pytest.raises(zuora.ZuoraTimeout, match="took too long"):
        zuora.get_job(
            connect(simulator, read_timeout=2.0, total_timeout=0.5), job_id=EXAMPLE_FILE_JOB
        )
    assert simulator.requests[-1].finished is False


def test_a_token_request_whose_answer_is_lost_is_not_sent_again(simulator):
    simulator.add_fault("drop", path="/oauth/token")

    with pytest.raises(zuora.ZuoraUnavailable):
        zuora.get_job(connect(simulator), job_id=EXAMPLE_FILE_JOB)

    assert tokens_issued(simulator) == 1
    assert job_requests(simulator, EXAMPLE_FILE_JOB) == 0


def test_twenty_first_lookups_at_once_share_one_token(simulator):
    conn = connect(simulator, sleep=time.sleep)
    start = threading.Barrier(20, timeout=30)
    failures = []

    def look_up() -> None:
        start.wait()
        try:
            zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)
        except zuora.ZuoraError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=look_up) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert tokens_issued(simulator) == 1


# --- Entity, org and the username-and-password check ----------------------------------------------


def test_the_token_call_gets_the_entity_as_a_uuid_and_aqua_as_zuora_shows_it(simulator):
    conn = connect(simulator, entity_id="8a8082c45a124c2eb3c02d1b4f0d1a99")

    zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    token_call, job_call = simulator.requests
    assert token_call.headers["Zuora-Entity-Ids"] == "8a8082c4-5a12-4c2e-b3c0-2d1b4f0d1a99"
    assert job_call.headers["Zuora-Entity-Ids"] == "8a8082c45a124c2eb3c02d1b4f0d1a99"


def test_org_ids_are_sent_as_zuora_org_ids_but_not_to_the_token_call(simulator):
    conn = connect(simulator, org_ids="org-1,org-2")

    zuora.get_job(conn, job_id=EXAMPLE_FILE_JOB)

    token_call, job_call = simulator.requests
    assert job_call.headers["Zuora-Org-Ids"] == "org-1,org-2"
    assert "Zuora-Org-Ids" not in token_call.headers


def test_a_username_and_password_are_checked_with_post_v1_connections(simulator):
    zuora.check_credentials(connect(simulator, method="basic"))

    (seen,) = simulator.requests
    assert seen.endpoint == "POST /v1/connections"
    assert seen.headers["Apiaccesskeyid"] == sim.DEMO_USERNAME
    assert "Authorization" not in seen.headers


def test_zuoras_session_cookie_is_never_kept_for_another_tenant(simulator):
    session = zuora.new_session()

    zuora.check_credentials(connect(simulator, method="basic", session=session))

    assert simulator.requests[-1].status == 200
    assert len(session.cookies) == 0


# Django's one decorator that marks a function's locals as secret for Django's error reports: a
# plain function of Django's, not of the app, with no settings read when imported or called, and
# the way the client's secrets stay out of the reports when the client runs inside Django.
DJANGO_THE_CLIENT_MAY_USE = {"django.views.decorators.debug"}


def test_the_client_imports_nothing_of_the_app():
    """Twin of the simulator's test: the client takes plain arguments in (a Connection) and
    gives dataclasses out, so it may import only itself from aquadash and nothing of Django's
    models, views, templates or settings."""
    for file, name in imports_of(zuora):
        assert not name.startswith("aquadash") or name.startswith("aquadash.zuora"), (
            f"{file} imports {name}"
        )
        assert not name.startswith("django") or name in DJANGO_THE_CLIENT_MAY_USE, (
            f"{file} imports {name}"
        )


def test_the_client_loads_and_works_without_django_configured():
    """In a fresh interpreter with no settings module: importing the client and using it loads
    no module of the app and never configures Django's settings."""
    import os
    import subprocess
    import sys

    from django.conf import settings as django_settings

    check = (
        "import sys, aquadash.zuora as zuora\n"
        "zuora.check_id(zuora.normalize_id(' 2C92C0F96B3A5E01016B3C1D2E3F4A5B '), what='job')\n"
        "from django.conf import settings\n"
        "assert not settings.configured, 'settings configured'\n"
        "app = sorted(m for m in sys.modules if m.startswith('aquadash') "
        "and not m.startswith('aquadash.zuora') and m != 'aquadash')\n"
        "assert not app, app\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", check],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
