"""Watching a job: the watch card, the worker's rounds, and the notifications they send.

The worker runs as it does in production, `manage.py db_worker`, here in batch mode (it runs
what is due, then returns); Zuora is the simulator over loopback, and the chat webhook a
small HTTP server that records what it is sent. Time passes by moving the queue's and the
watches' times back, and the simulator's clock forward.
"""

import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from unittest import mock

import pytest
import urllib3
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core import mail
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from aquadash import jobs, notifications, watching
from aquadash import simulator as sim
from aquadash.models import Delivery, JobSnapshot, Tenant, Watch
from aquadash.simulator.server import serve
from tests.conftest import database_url

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


# --- The watch card ------------------------------------------------------------------------------


def test_watching_and_unwatching_a_running_job(client, simulator_tenant, finance):
    open_job(client, simulator_tenant, RUNNING)
    card = client.get(f"/t/sim/jobs/{RUNNING}/watch/", **HTMX).content.decode()
    assert "Notify me when it ends" in card
    assert "Nobody is watching this job." in card

    card = watch(client, simulator_tenant, RUNNING)

    assert "Stop watching" in card
    assert "<strong>finance</strong>" in card
    assert Watch.objects.open().filter(user=finance, job_id=RUNNING).count() == 1

    card = watch(client, simulator_tenant, RUNNING, "unwatch")

    assert "Notify me when it ends" in card
    assert "Nobody is watching this job." in card
    assert Watch.objects.get(user=finance).end == Watch.End.UNWATCHED


def test_watching_twice_is_one_watch(client, simulator_tenant, finance):
    open_job(client, simulator_tenant, RUNNING)

    watch(client, simulator_tenant, RUNNING)
    watch(client, simulator_tenant, RUNNING)

    assert Watch.objects.filter(user=finance).count() == 1


def test_every_colleague_sees_who_is_watching(client, simulator_tenant, controller):
    open_job(client, simulator_tenant, RUNNING)
    watch(client, simulator_tenant, RUNNING)
    colleague = Client()
    colleague.force_login(controller)

    card = colleague.get(f"/t/sim/jobs/{RUNNING}/watch/", **HTMX).content.decode()

    assert "<strong>finance</strong>" in card
    assert "Notify me when it ends" in card  # the colleague is not watching yet


def test_a_final_job_offers_no_watch(client, simulator_tenant):
    open_job(client, simulator_tenant, COMPLETED)

    watch(client, simulator_tenant, COMPLETED)

    assert not Watch.objects.exists()
    card = client.get(f"/t/sim/jobs/{COMPLETED}/watch/", **HTMX).content.decode()
    assert "Notify me" not in card


def test_without_javascript_watching_returns_to_the_job_page(client, simulator_tenant):
    open_job(client, simulator_tenant, RUNNING)

    response = client.post(f"/t/sim/jobs/{RUNNING}/watch/", {"action": "watch"})

    assert response.status_code == 302
    assert response.url == f"/t/sim/jobs/{RUNNING}/"
    assert Watch.objects.open().count() == 1


def test_the_job_page_loads_the_watch_card(client, simulator_tenant):
    page = client.get(f"/t/sim/jobs/{RUNNING}/").content.decode()

    assert f'hx-get="/t/sim/jobs/{RUNNING}/watch/"' in page
    assert 'hx-trigger="load, aquadash:ended from:body"' in page


def test_someone_who_may_not_see_the_tenant_can_neither_watch_nor_see_watchers(
    client, simulator_tenant, outsider_client
):
    open_job(client, simulator_tenant, RUNNING)
    watch(client, simulator_tenant, RUNNING)

    assert outsider_client.get(f"/t/sim/jobs/{RUNNING}/watch/", **HTMX).status_code == 404
    response = outsider_client.post(f"/t/sim/jobs/{RUNNING}/watch/", {"action": "watch"})
    assert response.status_code == 404
    assert Watch.objects.count() == 1


def test_a_job_never_opened_cannot_be_watched(client, simulator_tenant):
    response = client.post(f"/t/sim/jobs/{RUNNING}/watch/", {"action": "watch"})

    assert response.status_code == 404
    assert not Watch.objects.exists()


# --- The worker ----------------------------------------------------------------------------------


def test_a_job_that_ends_notifies_each_watcher_once_by_email_and_the_webhook(
    client, simulator_tenant, finance, controller, simulator, sim_clock, chat_hook
):
    set_webhook(simulator_tenant, chat_hook)
    open_job(client, simulator_tenant, RUNNING)
    watch(client, simulator_tenant, RUNNING)
    colleague = Client()
    colleague.force_login(controller)
    watch(colleague, simulator_tenant, RUNNING)

    run_worker()  # still running: nothing to tell
    assert mail.outbox == [] and chat_hook.posts == []
    assert Watch.objects.open().count() == 2

    finish_running_job(sim_clock)
    for _ in range(3):  # more rounds than needed: nobody is told twice
        time_passes()
        run_worker()

    assert sorted(message.to[0] for message in mail.outbox) == [
        "controller@example.com",
        "finance@example.com",
    ]
    assert len(chat_hook.posts) == 1
    assert chat_hook.posts[0]["path"] == WEBHOOK_PATH
    text = chat_hook.posts[0]["json"]["text"]
    assert "Watched by controller, finance." in text
    assert set(Watch.objects.values_list("end", flat=True)) == {Watch.End.FINAL}
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SENT}


def test_the_message_tells_the_job_its_status_records_duration_and_link_but_no_query(
    client, simulator_tenant, finance, simulator, sim_clock
):
    watched_job_ends(client, simulator_tenant, sim_clock)

    run_worker()

    [message] = mail.outbox
    job = JobSnapshot.objects.get(job_id=RUNNING).job()
    assert message.subject == f"[aquadash] {job.name} completed"
    assert f"{job.name} ended: completed." in message.body
    assert f"Job ID: {RUNNING}" in message.body
    assert re.search(r"\nRan for: about \d+ seconds\n", message.body)  # not "0 minutes"
    for batch in job.batches:
        assert f"{batch.name}: completed, {batch.record_count:,} record" in message.body
        assert batch.query not in message.body
    assert f"Open it: http://testserver/t/sim/jobs/{RUNNING}/" in message.body


def test_a_final_job_costs_no_zuora_call(client, simulator_tenant, simulator, sim_clock):
    watched_job_ends(client, simulator_tenant, sim_clock)
    open_job(client, simulator_tenant, RUNNING)  # a page stores it final
    assert JobSnapshot.objects.get(job_id=RUNNING).is_final
    simulator.reset()
    time_passes()

    run_worker()

    assert simulator.count(method="GET") == 0
    assert Watch.objects.get().end == Watch.End.FINAL
    assert len(mail.outbox) == 1


def test_an_open_page_and_the_worker_share_one_zuora_call_per_interval(
    client, simulator_tenant, simulator
):
    open_job(client, simulator_tenant, RUNNING)
    watch(client, simulator_tenant, RUNNING)
    simulator.reset()
    time_passes()

    for _ in range(3):
        client.get(f"/t/sim/jobs/{RUNNING}/", **HTMX)  # the page polls
        run_worker()  # and the worker checks, within one interval

    assert simulator.count(method="GET", path_prefix="/v1/batch-query/jobs/") == 1


def test_revoked_access_while_watching_stops_the_notification(
    client, simulator_tenant, finance, sim_clock, chat_hook
):
    set_webhook(simulator_tenant, chat_hook)
    open_job(client, simulator_tenant, RUNNING)
    watch(client, simulator_tenant, RUNNING)
    finance.groups.clear()
    finish_running_job(sim_clock)
    time_passes()

    run_worker()

    assert mail.outbox == [] and chat_hook.posts == []
    assert Watch.objects.get().end == Watch.End.REVOKED


def test_access_revoked_after_the_end_but_before_sending_sends_nothing(simulator_tenant, finance):
    ended = ended_watch(simulator_tenant, finance)
    delivery = Delivery.objects.create(watch=ended, channel="email", recipient=finance.email)
    finance.groups.clear()

    notifications.deliver.call(delivery.pk)

    assert mail.outbox == []
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.last_error == "not sent: the watcher may no longer see this tenant"


def test_the_round_that_sees_the_end_sends_at_once_with_a_retry_queued(
    client, simulator_tenant, sim_clock
):
    watched_job_ends(client, simulator_tenant, sim_clock)

    watching.check_watches.call()  # the round alone, no task after it

    assert len(mail.outbox) == 1
    retry = DBTaskResult.objects.get(task_path="aquadash.notifications.deliver")
    assert retry.run_after > timezone.now() + timedelta(seconds=20)  # and finds it sent
    run_worker()
    time_passes(seconds=3600)
    run_worker()
    assert len(mail.outbox) == 1


def test_zuora_down_keeps_the_watch_waiting(client, simulator_tenant, simulator, sim_clock):
    open_job(client, simulator_tenant, RUNNING)
    watch(client, simulator_tenant, RUNNING)
    finish_running_job(sim_clock)
    simulator.add_fault("unavailable", times=100)
    time_passes(seconds=60)

    run_worker()

    assert Watch.objects.open().count() == 1
    assert mail.outbox == []
    next_round = DBTaskResult.objects.filter(status="READY").get()
    assert next_round.task_path == "aquadash.watching.check_watches"


def test_a_watch_expires_after_a_day_with_a_notice(client, simulator_tenant, settings):
    open_job(client, simulator_tenant, RUNNING)
    watch(client, simulator_tenant, RUNNING)
    Watch.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    time_passes()

    run_worker()

    assert Watch.objects.get().end == Watch.End.EXPIRED
    [message] = mail.outbox
    assert message.subject.startswith("[aquadash] Still running after 24 hours: ")
    assert "aquadash stopped watching it" in message.body
    rounds = DBTaskResult.objects.filter(task_path="aquadash.watching.check_watches")
    assert not rounds.filter(status="READY").exists()  # no round left to run


def test_a_job_zuora_does_not_know_ends_the_watch_with_a_notice(
    client, simulator_tenant, simulator
):
    open_job(client, simulator_tenant, RUNNING)
    watch(client, simulator_tenant, RUNNING)
    simulator.forget_job(RUNNING)
    time_passes(seconds=60)

    run_worker()

    assert Watch.objects.get().end == Watch.End.GONE
    [message] = mail.outbox
    assert "Zuora answered that this job does not exist" in message.body


def test_only_one_round_waits_however_many_watch(client, simulator_tenant, controller):
    open_job(client, simulator_tenant, RUNNING)
    watch(client, simulator_tenant, RUNNING)
    colleague = Client()
    colleague.force_login(controller)
    watch(colleague, simulator_tenant, RUNNING)
    assert DBTaskResult.objects.filter(status="READY").count() == 1

    run_worker()

    waiting = DBTaskResult.objects.filter(status="READY").get()
    assert waiting.run_after > timezone.now()


# --- Notification failures -------------------------------------------------------------------


def test_a_failing_webhook_is_retried_with_growing_waits_then_reported(
    client, simulator_tenant, sim_clock, chat_hook, settings, caplog
):
    settings.AQUADASH_NOTIFY_ATTEMPTS = 3
    chat_hook.status = "500 Internal Server Error"
    set_webhook(simulator_tenant, chat_hook)
    watched_job_ends(client, simulator_tenant, sim_clock)
    run_worker()

    waits = []
    for _ in range(3):
        retry = DBTaskResult.objects.filter(
            status="READY", task_path="aquadash.notifications.deliver"
        ).first()
        if retry is None:
            break
        waits.append(round((retry.run_after - timezone.now()).total_seconds() / 10) * 10)
        time_passes(seconds=3600)
        run_worker()

    assert len(chat_hook.posts) == 3
    assert waits == [30, 60]
    delivery = Delivery.objects.get(channel="webhook")
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempts == 3
    assert delivery.last_error == "127.0.0.1 answered HTTP 500"
    card = client.get(f"/t/sim/jobs/{RUNNING}/watch/", **HTMX).content.decode()
    assert "could not notify by chat webhook: 127.0.0.1 answered HTTP 500" in card
    assert Delivery.objects.get(channel="email").status == Delivery.Status.SENT
    assert WEBHOOK_PATH not in card
    assert WEBHOOK_PATH not in aquadash_log(caplog)


def test_an_unreachable_webhook_is_reported_without_its_url(
    client, simulator_tenant, sim_clock, settings, caplog
):
    settings.AQUADASH_WEBHOOK_HOSTS = ["127.0.0.1:1"]
    settings.AQUADASH_WEBHOOK_ALLOW_HTTP = True
    settings.AQUADASH_NOTIFY_ATTEMPTS = 1
    simulator_tenant.set_webhook_url("http://127.0.0.1:1" + WEBHOOK_PATH)
    simulator_tenant.save()
    watched_job_ends(client, simulator_tenant, sim_clock)

    run_worker()

    delivery = Delivery.objects.get(channel="webhook")
    assert delivery.last_error == "could not connect to 127.0.0.1"
    assert WEBHOOK_PATH not in aquadash_log(caplog)


def test_a_webhook_that_redirects_is_not_followed(
    client, simulator_tenant, sim_clock, chat_hook, settings
):
    settings.AQUADASH_NOTIFY_ATTEMPTS = 1
    chat_hook.status = "307 Temporary Redirect"
    set_webhook(simulator_tenant, chat_hook)
    watched_job_ends(client, simulator_tenant, sim_clock)

    run_worker()

    assert [post["path"] for post in chat_hook.posts] == [WEBHOOK_PATH]
    delivery = Delivery.objects.get(channel="webhook")
    assert (
        delivery.last_error == "127.0.0.1 answered with a redirect, which aquadash does not follow"
    )


def test_a_webhook_host_taken_off_the_allow_list_is_refused_at_send_time(
    client, simulator_tenant, sim_clock, chat_hook, settings
):
    set_webhook(simulator_tenant, chat_hook)
    open_job(client, simulator_tenant, RUNNING)
    watch(client, simulator_tenant, RUNNING)
    settings.AQUADASH_WEBHOOK_HOSTS = ["hooks.slack.com"]
    finish_running_job(sim_clock)
    time_passes()

    run_worker()

    assert chat_hook.posts == []
    delivery = Delivery.objects.get(channel="webhook")
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.last_error == "the webhook's host is not allowed (AQUADASH_WEBHOOK_HOSTS)"


def test_a_failing_mail_server_is_retried(client, simulator_tenant, sim_clock, settings):
    settings.MAILERS = {"default": {"BACKEND": "tests.test_watching.RefusingMail"}}
    watched_job_ends(client, simulator_tenant, sim_clock)

    run_worker()

    delivery = Delivery.objects.get(channel="email")
    assert delivery.status == Delivery.Status.PENDING
    assert delivery.last_error == "the mail server did not take it (SMTPServerDisconnected)"
    assert DBTaskResult.objects.filter(
        status="READY", task_path="aquadash.notifications.deliver"
    ).exists()


class RefusingMail:
    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def send_messages(self, messages: object) -> int:
        import smtplib

        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


def test_a_watcher_without_an_email_address_is_told_why_on_the_page(
    client, simulator_tenant, finance, sim_clock
):
    finance.email = ""
    finance.save()
    watched_job_ends(client, simulator_tenant, sim_clock)

    run_worker()

    card = client.get(f"/t/sim/jobs/{RUNNING}/watch/", **HTMX).content.decode()
    assert "could not notify by e-mail: no e-mail address on the account" in card


# --- The webhook itself ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.slack.com/services/T0/B0/x", True),
        ("https://acme.webhook.office.com/webhookb2/x", True),
        ("https://chat.googleapis.com/v1/spaces/x/messages?key=k", True),
        ("http://hooks.slack.com/services/T0/B0/x", False),
        ("https://hooks.slack.com:8443/services/x", False),
        ("https://hooks.slack.com.evil.test/services/x", False),
        ("https://evil.test/hooks.slack.com", False),
        ("https://user@hooks.slack.com/services/x", False),
        ("https://webhook.office.com.evil.test/x", False),
        ("https://169.254.169.254/latest/meta-data", False),
        ("not a url", False),
    ],
)
def test_only_allowed_webhook_hosts_pass(url, allowed, settings):
    settings.AQUADASH_WEBHOOK_HOSTS = list(notifications.PROVIDER_HOSTS)
    settings.AQUADASH_WEBHOOK_ALLOW_HTTP = False
    try:
        notifications.check_webhook_url(url)
    except notifications.ValidationError:
        passed = False
    else:
        passed = True
    assert passed is allowed


def test_chat_text_cannot_ping_the_channel_or_disguise_links(
    simulator_tenant, finance, simulator, chat_hook
):
    job_id = simulator.add_job(records=3, name="<!channel> see <https://evil.test|your invoice>")
    watch_row = ended_watch(
        simulator_tenant,
        finance,
        job_id=job_id,
        job_name="<!channel> see <https://evil.test|your invoice>",
    )
    set_webhook(simulator_tenant, chat_hook)
    delivery = Delivery.objects.create(watch=watch_row, channel="webhook", recipient="127.0.0.1")

    notifications.deliver.call(delivery.pk)

    text = chat_hook.posts[0]["json"]["text"]
    assert "<!channel>" not in text and "<https://evil.test" not in text
    assert "&lt;!channel&gt; see &lt;https://evil.test|your invoice&gt;" in text


def test_a_delivery_is_sent_once_however_often_it_is_run(simulator_tenant, finance):
    watch_row = ended_watch(simulator_tenant, finance)
    delivery = Delivery.objects.create(watch=watch_row, channel="email", recipient=finance.email)

    results = [notifications.deliver.call(delivery.pk) for _ in range(3)]

    assert results == ["sent", "not pending", "not pending"]
    assert len(mail.outbox) == 1


def test_a_delivery_left_being_sent_by_a_stopped_worker_is_sent_when_its_claim_lapses(
    simulator_tenant, finance
):
    watch_row = ended_watch(simulator_tenant, finance)
    delivery = Delivery.objects.create(
        watch=watch_row,
        channel="email",
        recipient=finance.email,
        status=Delivery.Status.SENDING,  # as a worker killed mid-send leaves it
        claimed_at=timezone.now(),
        attempts=1,
    )

    assert notifications.deliver.call(delivery.pk) == "being sent by another worker"
    assert mail.outbox == []
    check = DBTaskResult.objects.get(task_path="aquadash.notifications.deliver")
    assert check.run_after == delivery.claimed_at + notifications.CLAIM

    Delivery.objects.update(claimed_at=timezone.now() - notifications.CLAIM)  # the check is due

    assert notifications.deliver.call(delivery.pk) == "sent"
    assert len(mail.outbox) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Delivery.Status.SENT, 2)


# --- Two real workers ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_workers_notify_each_watcher_exactly_once(
    simulator_tenant, finance, controller, simulator, sim_clock, chat_hook, tmp_path
):
    set_webhook(simulator_tenant, chat_hook)
    client = Client()
    client.force_login(finance)
    open_job(client, simulator_tenant, RUNNING)
    for user in (finance, controller):
        watching.watch(simulator_tenant, RUNNING, user, link="http://testserver/")
    finish_running_job(sim_clock)
    time_passes()
    for _ in range(6):  # rounds racing each other, as after a restart
        watching.check_watches.enqueue()
    mails = tmp_path / "mail"
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "ZUORA_EXTRA_HOSTS": f"127.0.0.1:1,127.0.0.1:{simulator.url.rsplit(':', 1)[1]}",
        "AQUADASH_WEBHOOK_HOSTS": chat_hook.url.removeprefix("http://"),
        "AQUADASH_WEBHOOK_ALLOW_HTTP": "1",
        "AQUADASH_WATCH_THREADS": "4",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(mails),
    }
    workers = [
        subprocess.Popen(  # noqa: S603
            [sys.executable, "manage.py", "db_worker", "--batch", "--no-startup-delay"]
            + ["--no-reload", "--worker-id", f"test-{n}"],
            cwd=django_settings.BASE_DIR,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for n in range(2)
    ]
    outputs = [worker.communicate(timeout=120)[0].decode() for worker in workers]

    assert all(worker.returncode == 0 for worker in workers), outputs
    sent = [path.read_text() for path in mails.iterdir()] if mails.exists() else []
    recipients = sorted(
        line for text in sent for line in text.splitlines() if line.startswith("To:")
    )
    assert recipients == ["To: controller@example.com", "To: finance@example.com"], outputs
    assert len(chat_hook.posts) == 1


def test_two_rounds_ending_the_same_watches_notify_once(client, simulator_tenant, sim_clock):
    open_job(client, simulator_tenant, RUNNING)
    watch(client, simulator_tenant, RUNNING)
    read_by_both = list(Watch.objects.open().select_related("tenant", "user"))

    watching._end(read_by_both, Watch.End.FINAL)
    watching._end(read_by_both, Watch.End.FINAL)

    assert Delivery.objects.count() == 1


# --- Security ------------------------------------------------------------------------------------


def test_watching_without_a_csrf_token_is_refused(simulator_tenant, finance):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(finance)
    strict.get(f"/t/sim/jobs/{RUNNING}/")

    response = strict.post(f"/t/sim/jobs/{RUNNING}/watch/", {"action": "watch"})

    assert response.status_code == 403
    assert not Watch.objects.exists()


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1"])
def test_a_chat_provider_resolving_to_a_private_address_is_never_connected_to(
    simulator_tenant, monkeypatch, settings, address
):
    settings.AQUADASH_WEBHOOK_HOSTS = list(notifications.PROVIDER_HOSTS)
    simulator_tenant.set_webhook_url("https://hooks.slack.com/services/T0/B0/" + "x" * 24)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *args, **kwargs: [(family, socket.SOCK_STREAM, 6, "", (address, port))],
    )
    attempts = []
    monkeypatch.setattr(
        urllib3.util.connection,
        "create_connection",
        lambda address, *args, **kwargs: attempts.append(address) or socket.socket(),
    )

    with pytest.raises(notifications.NotifyFailed, match="could not connect to hooks.slack.com"):
        notifications.post_to_webhook(
            notifications.webhook_url(simulator_tenant), {"text": "Job ended"}
        )

    assert attempts == []


def test_admins_read_watches_and_deliveries_but_cannot_change_them(
    admin_client, client, simulator_tenant, sim_clock
):
    watched_job_ends(client, simulator_tenant, sim_clock)
    run_worker()
    watch_row, delivery = Watch.objects.get(), Delivery.objects.get()

    listing = admin_client.get("/admin/aquadash/watch/").content.decode()
    assert RUNNING in listing and "e-mail: sent" in listing
    page = admin_client.get(f"/admin/aquadash/watch/{watch_row.pk}/change/").content.decode()
    assert "finance@example.com" in page
    assert admin_client.get("/admin/aquadash/delivery/").status_code == 200
    response = admin_client.post(
        f"/admin/aquadash/delivery/{delivery.pk}/change/", {"status": "pending"}
    )
    assert response.status_code == 403
    assert admin_client.get("/admin/aquadash/watch/add/").status_code == 403
    assert Delivery.objects.get().status == Delivery.Status.SENT


def test_a_round_writes_the_jobs_zuora_reported_unchanged_in_one_update(client, simulator_tenant):
    for job_id in (RUNNING, sim.SUBMITTED_JOB_ID):  # two jobs that stay as they are
        open_job(client, simulator_tenant, job_id)
        watch(client, simulator_tenant, job_id)
    before = dict(JobSnapshot.objects.values_list("job_id", "last_fetched_at"))
    time_passes()

    with CaptureQueriesContext(connection) as queries:
        assert watching.check_watches.call() == 2

    updates = [q["sql"] for q in queries if q["sql"].startswith('UPDATE "aquadash_jobsnapshot"')]
    assert len(updates) == 1 and '"raw"' not in updates[0]
    after = dict(JobSnapshot.objects.values_list("job_id", "last_fetched_at"))
    assert all(after[job_id] > before[job_id] for job_id in before)


def test_a_job_is_next_checked_when_the_answer_it_got_expires(client, simulator_tenant, simulator):
    open_job(client, simulator_tenant, RUNNING)
    watch(client, simulator_tenant, RUNNING)
    key = jobs.shared_key(simulator_tenant, RUNNING)
    answer = cache.get(key)  # a page's answer, 3 s old: 2 s of its interval left
    cache.set(key, replace(answer, at=answer.at - 3, until=answer.until - 3))
    Watch.objects.update(next_check_at=timezone.now())
    simulator.reset()

    watching.check_watches.call()

    assert simulator.count(method="GET") == 0  # the page's answer served
    due_in = (Watch.objects.get().next_check_at - timezone.now()).total_seconds()
    assert 1 < due_in < 2.5  # when it expires, not a whole interval from now


def test_a_round_lost_with_its_worker_is_queued_again_when_someone_looks(client, simulator_tenant):
    open_job(client, simulator_tenant, RUNNING)
    watch(client, simulator_tenant, RUNNING)
    DBTaskResult.objects.update(status="RUNNING")  # the worker that took it was killed
    Watch.objects.update(next_check_at=timezone.now() - timedelta(minutes=5))

    client.get(f"/t/sim/jobs/{RUNNING}/watch/", **HTMX)

    assert DBTaskResult.objects.filter(
        status="READY", task_path="aquadash.watching.check_watches"
    ).exists()
    run_worker()
    assert Watch.objects.get().next_check_at > timezone.now()  # checked again
