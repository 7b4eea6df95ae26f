"""Watching a job: CSRF, private addresses for chat hosts, read-only admin, and rounds that
write and requeue safely."""

import socket
from dataclasses import replace
from datetime import timedelta

import pytest
import urllib3
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from aquadash import jobs, notifications, watching
from aquadash import simulator as sim
from aquadash.models import Delivery, JobSnapshot, Watch
from tests.watching.conftest import (
    HTMX,
    RUNNING,
    open_job,
    run_worker,
    time_passes,
    watch,
    watched_job_ends,
)

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
