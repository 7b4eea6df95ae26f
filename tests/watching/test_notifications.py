"""Watching a job: the notifications a watch's end sends, by e-mail and to the chat webhook,
and what happens when sending fails."""

import pytest
from django.core import mail
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from aquadash import notifications
from aquadash.models import Delivery
from tests.watching.conftest import (
    HTMX,
    RUNNING,
    WEBHOOK_PATH,
    aquadash_log,
    ended_watch,
    finish_running_job,
    open_job,
    run_worker,
    set_webhook,
    time_passes,
    watch,
    watched_job_ends,
)

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
    settings.MAILERS = {"default": {"BACKEND": "tests.watching.test_notifications.RefusingMail"}}
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
