"""/metrics: what operations see move as aquadash works, behind its token, with bounded labels,
added up over gunicorn's processes."""

import hmac
import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from prometheus_client.parser import text_string_to_metric_families

from aquadash import jobs, metrics, notifications, watching, zuora
from aquadash import simulator as sim
from aquadash.models import Delivery, Watch
from aquadash.shared_cache import shared_cache
from tests.conftest import gunicorn_serving, start_django, wait_until

TOKEN = "metrics-token-for-tests-0123456789abcdef"
JOB_ENDPOINT = "/v1/batch-query/jobs/{id}"
HEX_ID = re.compile(r"[0-9a-f]{32}", re.I)

Samples = dict[tuple[str, frozenset], float]


@pytest.fixture(autouse=True)
def metrics_token(settings):
    settings.AQUADASH_METRICS_TOKEN = TOKEN


@pytest.fixture
def finance(simulator_tenant, make_user) -> Client:
    client = Client()
    client.force_login(make_user("finance", groups=simulator_tenant.groups.all()))
    return client


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape() -> Samples:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    return parse(response.content.decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def zuora_calls(samples: Samples, endpoint: str, outcome: str, method: str = "GET") -> float:
    return value(
        samples,
        "aquadash_zuora_calls_total",
        tenant="sim",
        method=method,
        endpoint=endpoint,
        outcome=outcome,
    )


# --- The token --------------------------------------------------------------------------------


def test_metrics_are_off_without_a_token(db, settings):
    settings.AQUADASH_METRICS_TOKEN = ""
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.parametrize(
    "authorization",
    ["", f"Basic {TOKEN}", "Bearer wrong", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", "Bearer"],
)
def test_metrics_refuse_a_missing_or_wrong_token(db, authorization):
    response = Client().get("/metrics", HTTP_AUTHORIZATION=authorization)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"aquadash_" not in response.content


def test_metrics_answer_the_token_without_a_sign_in(db):
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200  # not the login page's redirect
    assert "aquadash_http_requests_total" in response.content.decode()


def test_a_signed_in_person_still_needs_the_token(finance):
    assert finance.get("/metrics").status_code == 401


def test_the_token_is_compared_in_constant_time(db, monkeypatch):
    compared = []
    original = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(metrics.hmac, "compare_digest", spy)
    Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong")
    # Digests of equal length: neither the token's length nor its text shows in the timing.
    assert len(compared) == 1 and len(compared[0][0]) == len(compared[0][1]) == 32


def test_a_short_token_is_a_deploy_warning(db, settings):
    settings.AQUADASH_METRICS_TOKEN = "short"
    with pytest.raises(SystemCheckError, match="aquadash.W002"):
        call_command("check", "--deploy", "--fail-level", "WARNING", "--tag", "security")


# --- What the counters count ------------------------------------------------------------------


def test_zuora_calls_are_counted_by_tenant_endpoint_and_outcome(finance, simulator_tenant):
    before = scrape()
    page = finance.get(f"/t/sim/jobs/{sim.MULTI_BATCH_JOB_ID}/")
    assert page.status_code == 200
    after = scrape()
    assert zuora_calls(after, JOB_ENDPOINT, "200") == zuora_calls(before, JOB_ENDPOINT, "200") + 1
    token = zuora_calls(after, "/oauth/token", "200", method="POST")
    assert token == zuora_calls(before, "/oauth/token", "200", method="POST") + 1


def test_rate_limited_calls_and_the_allowance_left_show(finance, simulator_tenant, simulator):
    # One job request allowed this hour: the first lookup spends it, the second is refused.
    simulator.set_budget("production", {3600: 1})
    before = scrape()
    finance.get(f"/t/sim/jobs/{sim.MULTI_BATCH_JOB_ID}/")
    spent = scrape()
    left = value(spent, "aquadash_zuora_allowance_remaining", tenant="sim", kind="api")
    assert left == 0
    assert value(spent, "aquadash_zuora_allowance_limit", tenant="sim", kind="api") == 1
    assert value(spent, "aquadash_zuora_allowance_remaining", tenant="sim", kind="sign_in") > 0

    finance.get(f"/t/sim/jobs/{sim.RUNNING_JOB_ID}/")
    after = scrape()
    assert zuora_calls(after, JOB_ENDPOINT, "429") == zuora_calls(before, JOB_ENDPOINT, "429") + 1


def test_an_open_breaker_shows_for_its_tenant(finance, simulator_tenant, simulator, settings):
    settings.AQUADASH_POLL_SECONDS = 0
    settings.AQUADASH_BREAKER_FAILURES = 2
    simulator.add_fault("server_error", path="/v1/batch-query/jobs/", times=None)
    before = scrape()
    assert value(before, "aquadash_breaker_open", tenant="sim") == 0
    for _ in range(2):
        shared_cache.delete(jobs.shared_key(simulator_tenant, sim.RUNNING_JOB_ID))
        finance.get(f"/t/sim/jobs/{sim.RUNNING_JOB_ID}/")
    samples = scrape()
    assert value(samples, "aquadash_breaker_open", tenant="sim") == 1
    assert value(samples, "aquadash_breaker_failures", tenant="sim") == 2
    assert zuora_calls(samples, JOB_ENDPOINT, "500") == zuora_calls(before, JOB_ENDPOINT, "500") + 2


def test_a_request_that_waits_for_another_in_vain_is_counted(simulator_tenant, settings):
    settings.AQUADASH_WAIT_SECONDS = 0.1
    key = jobs.shared_key(simulator_tenant, sim.RUNNING_JOB_ID)
    shared_cache.add(key + ":lock", 1, 60)  # another request is asking Zuora, and never answers
    before = value(scrape(), "aquadash_single_flight_waits_total", tenant="sim", outcome="gave_up")
    with pytest.raises(zuora.ZuoraTimeout):
        jobs.fetch_job(simulator_tenant, sim.RUNNING_JOB_ID, user=None)
    after = value(scrape(), "aquadash_single_flight_waits_total", tenant="sim", outcome="gave_up")
    assert after == before + 1


def test_downloads_count_their_bytes_and_outcome(finance, simulator_tenant):
    finance.get(f"/t/sim/jobs/{sim.MULTI_BATCH_JOB_ID}/")
    file_id = simulator_tenant.jobs.get(job_id=sim.MULTI_BATCH_JOB_ID).raw["batches"][0]["fileId"]
    before = scrape()
    response = finance.get(f"/t/sim/jobs/{sim.MULTI_BATCH_JOB_ID}/files/{file_id}")
    body = b"".join(response.streaming_content)
    assert response.status_code == 200 and body
    after = scrape()
    labels = {"tenant": "sim", "kind": "file"}
    sent = value(after, "aquadash_download_bytes_total", **labels)
    assert sent == value(before, "aquadash_download_bytes_total", **labels) + len(body)
    done = value(after, "aquadash_downloads_total", **labels, outcome="complete")
    assert done == value(before, "aquadash_downloads_total", **labels, outcome="complete") + 1


def test_requests_to_aquadash_are_counted_by_view(db):
    before = value(
        scrape(), "aquadash_http_requests_total", view="health", method="GET", status="200"
    )
    Client().get("/health/")
    after = value(
        scrape(), "aquadash_http_requests_total", view="health", method="GET", status="200"
    )
    assert after == before + 1


def test_no_label_names_a_job_or_file(finance, simulator_tenant):
    finance.get(f"/t/sim/jobs/{sim.MULTI_BATCH_JOB_ID}/")
    file_id = simulator_tenant.jobs.get(job_id=sim.MULTI_BATCH_JOB_ID).raw["batches"][0]["fileId"]
    b"".join(finance.get(f"/t/sim/jobs/{sim.MULTI_BATCH_JOB_ID}/files/{file_id}").streaming_content)
    finance.get(f"/t/sim/jobs/{sim.RUNNING_JOB_ID}/")
    samples = scrape()
    labels = [value for _, pairs in samples for _, value in pairs]
    assert "/v1/files/{id}" in labels and JOB_ENDPOINT in labels
    assert not [label for label in labels if HEX_ID.search(label)]


# --- Shared state read when scraped ------------------------------------------------------------


def test_the_watch_queue_lag_is_how_late_the_most_overdue_check_is(simulator_tenant, make_user):
    assert value(scrape(), "aquadash_watch_lag_seconds") == 0
    user = make_user("watcher", groups=simulator_tenant.groups.all())
    now = timezone.now()
    for job_id, late in ((sim.RUNNING_JOB_ID, 600), (sim.MULTI_BATCH_JOB_ID, 30)):
        Watch.objects.create(
            tenant=simulator_tenant,
            job_id=job_id,
            user=user,
            link="http://testserver/",
            expires_at=now + timedelta(hours=1),
            next_check_at=now - timedelta(seconds=late),
        )
    lag = value(scrape(), "aquadash_watch_lag_seconds")
    assert 600 <= lag < 3600


def test_the_task_queue_lag_is_how_long_the_oldest_ready_task_has_waited(db):
    assert value(scrape(), "aquadash_task_queue_lag_seconds") == 0
    now = timezone.now()
    notifications.deliver.using(run_after=now + timedelta(hours=1)).enqueue(1)  # not due yet
    watching.schedule_round()  # to run at once
    DBTaskResult.objects.filter(task_path=watching.check_watches.module_path).update(
        enqueued_at=now - timedelta(seconds=300)
    )
    assert 300 <= value(scrape(), "aquadash_task_queue_lag_seconds") < 900
    notifications.deliver.using(run_after=now - timedelta(seconds=900)).enqueue(2)
    assert 900 <= value(scrape(), "aquadash_task_queue_lag_seconds") < 3600


def test_deliveries_are_counted_by_channel_and_outcome(simulator_tenant, make_user):
    user = make_user("watcher", groups=simulator_tenant.groups.all())
    now = timezone.now()
    for job_id, status in (
        (sim.RUNNING_JOB_ID, Delivery.Status.SENT),
        (sim.MULTI_BATCH_JOB_ID, Delivery.Status.SENT),
        (sim.ERROR_JOB_ID, Delivery.Status.FAILED),
    ):
        watch = Watch.objects.create(
            tenant=simulator_tenant,
            job_id=job_id,
            user=user,
            link="http://testserver/",
            expires_at=now,
            next_check_at=now,
            ended_at=now,
            end=Watch.End.FINAL,
        )
        Delivery.objects.create(
            watch=watch, channel="email", recipient="w@example.com", status=status
        )
    samples = scrape()
    assert value(samples, "aquadash_deliveries", channel="email", outcome="sent") == 2
    assert value(samples, "aquadash_deliveries", channel="email", outcome="failed") == 1


# --- Several processes ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_counters_of_gunicorns_processes_add_up(simulator_tenant, make_user, simulator, tmp_path):
    client = Client()
    client.force_login(make_user("finance", groups=simulator_tenant.groups.all()))
    browser = requests.Session()
    browser.cookies.set("sessionid", client.cookies["sessionid"].value)
    directory = tmp_path / "prometheus"
    # Sync workers take one request at a time (gunicorn makes any worker with threads gthread):
    # while one waits on a slow Zuora, the next request must go to the other process. The
    # metrics files do not depend on the worker class.
    options = ("--workers", "2", "--worker-class", "sync", "--threads", "1")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "AQUADASH_METRICS_TOKEN": TOKEN}
    # A process of the last run, now gone, counted 100 calls: a new server starts from nothing.
    last_run = (
        "from aquadash import metrics\n"
        f"metrics.ZUORA_CALLS.labels('sim', 'GET', {JOB_ENDPOINT!r}, '200').inc(100)"
    )
    assert start_django(then=last_run, **env).returncode == 0
    assert len(pids_with_counters(directory)) == 1
    simulator.add_fault("slow", job_id=sim.RUNNING_JOB_ID, seconds=2)
    with gunicorn_serving(simulator_tenant, options=options, **env) as base:
        slow = threading.Thread(
            target=browser.get, args=(f"{base}/t/sim/jobs/{sim.RUNNING_JOB_ID}/",), daemon=True
        )
        slow.start()
        wait_until(lambda: simulator.count("GET", job_id=sim.RUNNING_JOB_ID) == 1, seconds=30)
        other = browser.get(f"{base}/t/sim/jobs/{sim.MULTI_BATCH_JOB_ID}/", timeout=30)
        assert other.status_code == 200
        slow.join(timeout=30)
        scraped = requests.get(
            f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )
    assert scraped.status_code == 200
    samples = parse(scraped.text)
    # One process asked Zuora about each job, and whichever answered /metrics counts both.
    assert zuora_calls(samples, JOB_ENDPOINT, "200") == 2
    assert len(pids_with_counters(directory)) == 2


def pids_with_counters(directory: Path) -> set[str]:
    return {path.stem.rpartition("_")[2] for path in directory.glob("counter_*.db")}
