"""Watching a job: what its tests share (fixtures, helpers and the chat webhook they post to).

The worker runs as it does in production, `manage.py db_worker`, here in batch mode (it runs
what is due, then returns); Zuora is the simulator over loopback, and the chat webhook a
small HTTP server that records what it is sent. Time passes by moving the queue's and the
watches' times back, and the simulator's clock forward.
"""

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from aquadash import simulator as sim
from aquadash.models import Tenant, Watch
from aquadash.simulator.server import serve

HTMX = {"HTTP_HX_REQUEST": "true"}
RUNNING = sim.RUNNING_JOB_ID
COMPLETED = sim.MULTI_BATCH_JOB_ID
WEBHOOK_PATH = "/services/T0001/B0001/webhook-path-is-a-secret"


class ChatHook:
    """A Slack-compatible incoming webhook on loopback: records each post, answers `status`."""

    url = ""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.status = "200 OK"
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: object) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        with self._lock:
            self.posts.append({"path": environ["PATH_INFO"], "json": json.loads(body or b"{}")})
        headers = [("Content-Type", "text/plain")]
        if self.status.startswith("3"):  # elsewhere, on this same server
            headers.append(("Location", self.url + "/redirected" + WEBHOOK_PATH))
        start_response(self.status, headers)
        return [b"ok"]


@pytest.fixture
def chat_hook(settings: object) -> Iterator[ChatHook]:
    hook = ChatHook()
    with serve(hook) as running:
        settings.AQUADASH_WEBHOOK_HOSTS = [f"127.0.0.1:{running.port}"]
        settings.AQUADASH_WEBHOOK_ALLOW_HTTP = True
        yield hook


@pytest.fixture
def finance(simulator_tenant: Tenant, make_user: object) -> User:
    return make_user("finance", groups=simulator_tenant.groups.all(), email="finance@example.com")


@pytest.fixture
def client(finance: User) -> Client:
    client = Client()
    client.force_login(finance)
    return client


@pytest.fixture
def controller(simulator_tenant: Tenant, make_user: object) -> User:
    groups = simulator_tenant.groups.all()
    return make_user("controller", groups=groups, email="controller@example.com")


@pytest.fixture(autouse=True)
def one_thread(settings: object) -> None:
    """The worker's checks in the test's own thread and transaction (threads are tested on
    their own, with real workers)."""
    settings.AQUADASH_WATCH_THREADS = 1


def open_job(client: Client, tenant: Tenant, job_id: str) -> None:
    assert client.get(f"/t/{tenant.slug}/jobs/{job_id}/").status_code == 200


def watch(client: Client, tenant: Tenant, job_id: str, action: str = "watch") -> str:
    response = client.post(f"/t/{tenant.slug}/jobs/{job_id}/watch/", {"action": action}, **HTMX)
    assert response.status_code == 200
    return response.content.decode()


def time_passes(seconds: float | None = None) -> None:
    """`seconds` pass (by default a poll interval): whatever is queued or due by then becomes
    due now, and the answers pages and workers share from Zuora grow stale."""
    later = timezone.now() + timedelta(seconds=seconds or django_settings.AQUADASH_POLL_SECONDS)
    cache.clear()
    DBTaskResult.objects.filter(run_after__lte=later).update(run_after=timezone.now())
    Watch.objects.filter(next_check_at__lte=later).update(next_check_at=timezone.now())


def run_worker() -> None:
    """The real worker loop, run until nothing is due. It recycles database connections
    between tasks, as in production; here the test's transaction must stay open."""
    with mock.patch("django_tasks_db.management.commands.db_worker.close_old_connections"):
        call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)


def aquadash_log(caplog: pytest.LogCaptureFixture) -> str:
    """What aquadash logged (not the test's chat server, which logs the paths it is sent)."""
    return "\n".join(
        record.getMessage()
        for record in caplog.records
        if not record.name.startswith("aquadash.simulator")
    )


def finish_running_job(sim_clock: object) -> None:
    sim_clock.advance(3600)


def watched_job_ends(client: Client, tenant: Tenant, sim_clock: object) -> None:
    """The client opens the running job and watches it; it ends, and an interval passes."""
    open_job(client, tenant, RUNNING)
    watch(client, tenant, RUNNING)
    finish_running_job(sim_clock)
    time_passes()


def ended_watch(tenant: Tenant, user: User, *, job_id: str = RUNNING, **fields: str) -> Watch:
    """A watch whose job has just completed, as a round leaves it."""
    now = timezone.now()
    return Watch.objects.create(
        tenant=tenant,
        job_id=job_id,
        user=user,
        link=f"http://testserver/t/{tenant.slug}/jobs/{job_id}/",
        expires_at=now,
        next_check_at=now,
        ended_at=now,
        end=Watch.End.FINAL,
        job_status="completed",
        **fields,
    )


def set_webhook(tenant: Tenant, hook: ChatHook) -> None:
    tenant.set_webhook_url(hook.url + WEBHOOK_PATH)
    tenant.save()
