"""Watching a job: the worker's rounds that check watched jobs and end watches, with one worker
and with two."""

import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.test import Client
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from aquadash import notifications, watching
from aquadash.models import Delivery, Grant, JobSnapshot, Role, Watch
from tests.conftest import database_url
from tests.watching.conftest import (
    HTMX,
    RUNNING,
    WEBHOOK_PATH,
    ended_watch,
    finish_running_job,
    open_job,
    run_worker,
    set_webhook,
    time_passes,
    watch,
    watched_job_ends,
)

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


def test_a_viewer_watching_is_notified(client, simulator_tenant, finance, sim_clock):
    # Notifications carry no result data, so the viewer role is enough to be told.
    Grant.objects.filter(tenant=simulator_tenant).update(role=Role.VIEWER)
    open_job(client, simulator_tenant, RUNNING)
    watch(client, simulator_tenant, RUNNING)
    finish_running_job(sim_clock)
    for _ in range(2):
        time_passes()
        run_worker()

    assert [message.to for message in mail.outbox] == [["finance@example.com"]]
    assert Watch.objects.get().end == Watch.End.FINAL


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
