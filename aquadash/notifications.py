"""Telling watchers that a job ended: by e-mail, and on the tenant's chat webhook.

Each notification is a Delivery row, made once when a watch ends (watching.py). A worker sends
it only after claiming it with a conditional UPDATE, so however many workers run, it goes out
once; a claim left by a worker that stopped mid-send lapses after CLAIM, and the notification
is sent again. A failure is tried again with growing waits, then recorded as "could not notify".

A message holds the job's name, final status, record counts, how long it ran and its link:
never a query's text and never a secret. The webhook's URL is a secret (anyone holding it can
post to the channel): it is stored encrypted, and messages, logs and errors name only its host.
"""

import contextlib
import logging
import re
import smtplib
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q
from django.tasks import task
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from aquadash import encryption, zuora
from aquadash.models import Delivery, JobSnapshot, Tenant, Watch
from aquadash.templatetags.aquadash import elapsed

logger = logging.getLogger(__name__)

# Chat providers' webhook hosts: they must resolve to public addresses. Any other host in
# AQUADASH_WEBHOOK_HOSTS is the operator's choice, perhaps an internal chat server.
PROVIDER_HOSTS = ("hooks.slack.com", "chat.googleapis.com", "discord.com", ".webhook.office.com")
WEBHOOK_TIMEOUT = (3.05, 10.0)  # connect, read
# How long a worker's claim on a delivery holds. A send gives up within seconds (the mail
# server's and the webhook's timeouts), so a delivery still "being sent" this long after its
# claim was taken by a worker that stopped mid-send: it is sent again, since a notification
# that might go out twice is better than one that never does.
CLAIM = timedelta(minutes=10)


class NotifyFailed(Exception):
    """A notification could not be sent; the message is safe to show (no URL, no secret).
    `retry` is False when trying again cannot help."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


# --- The chat webhook ---------------------------------------------------------------------------


def _host_allowed(host: str, port: int, default_port: int, hosts: list[str]) -> bool:
    for entry in hosts:
        entry = entry.lower()
        if entry.startswith("."):
            if host.endswith(entry) and port == default_port:
                return True
        elif ":" in entry:
            if entry == f"{host}:{port}":
                return True
        elif entry == host and port == default_port:
            return True
    return False


@sensitive_variables()
def check_webhook_url(url: str) -> str:
    """The URL, stripped, if aquadash may post to it; else ValidationError. Checked when an
    admin saves it and again before every post, as the allow-list may have changed since."""
    refused = ValidationError(
        "aquadash may post only to the chat webhook hosts in AQUADASH_WEBHOOK_HOSTS (by default "
        "Slack, Google Chat, Discord and Microsoft Teams), over https."
    )
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise refused from None
    schemes = ("https", "http") if settings.AQUADASH_WEBHOOK_ALLOW_HTTP else ("https",)
    if parts.scheme not in schemes or parts.username or parts.password or not parts.hostname:
        raise refused
    default_port = 443 if parts.scheme == "https" else 80
    host = parts.hostname.lower()
    if not _host_allowed(host, port or default_port, default_port, settings.AQUADASH_WEBHOOK_HOSTS):
        raise refused
    return url.strip()


class _WebhookConnection(zuora.PublicOnlyConnection):
    def must_be_public(self, host: str) -> bool:
        return _host_allowed(host, self.port or 443, 443, list(PROVIDER_HOSTS))


SESSION = zuora.new_session(_WebhookConnection)


@sensitive_variables()
def webhook_url(tenant: Tenant) -> str:
    """The tenant's webhook URL, checked against the allow-list as it is now. Raises
    NotifyFailed."""
    try:
        return check_webhook_url(tenant.webhook_url())
    except encryption.CredentialUnreadable as exc:
        raise NotifyFailed(exc.message, retry=False) from None
    except ValidationError:
        raise NotifyFailed(
            "the webhook's host is not allowed (AQUADASH_WEBHOOK_HOSTS)", retry=False
        ) from None


@sensitive_variables()
def post_to_webhook(url: str, message: dict) -> None:
    """Post `message` (JSON) to a checked webhook URL. Raises NotifyFailed."""
    host = urlsplit(url).hostname
    try:
        response = SESSION.post(url, json=message, timeout=WEBHOOK_TIMEOUT, allow_redirects=False)
        response.close()
    # requests' messages hold the URL, and the URL is the secret: say only what happened.
    except requests.Timeout:
        raise NotifyFailed(f"{host} did not answer in time") from None
    except requests.RequestException:
        raise NotifyFailed(f"could not connect to {host}") from None
    if response.is_redirect:
        raise NotifyFailed(f"{host} answered with a redirect, which aquadash does not follow")
    if not response.ok:
        raise NotifyFailed(f"{host} answered HTTP {response.status_code}")


# --- Each chat's markup -------------------------------------------------------------------------
# Names come from Zuora and from whoever wrote the query: in chat they must stay text, never a
# ping of the whole channel or a link showing one address and opening another. Each provider
# reads its own markup, known from the webhook's host.


def chat_provider(url: str) -> str:
    """ "discord", "teams" or "slack": Slack, Google Chat (whose links and mentions are Slack's
    `<…>` too) and any Slack-compatible server an operator allows."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "discord.com":
        return "discord"
    if host.endswith(".webhook.office.com"):
        return "teams"
    return "slack"


# Discord's markdown: masked links [text](url), mentions @everyone @here <@id> <@&role>,
# emphasis, quotes, headings, spoilers and code. A backslash makes any of them plain text.
DISCORD_MARKUP = re.compile(r"([\\*_~`|>#\[\]()<@-])")
# Teams' connector cards read markdown and some HTML, so a character reference is plain text to
# both: [text](url), <a href>, <at> mentions and emphasis all stay as typed.
TEAMS_MARKUP = re.compile(r"[&<>\\*_~`|#\[\]()]")


def inert(provider: str, text: str) -> str:
    """`text` as plain text in `provider`'s chat."""
    if provider == "discord":
        return DISCORD_MARKUP.sub(r"\\\1", text)
    if provider == "teams":
        return TEAMS_MARKUP.sub(lambda match: f"&#{ord(match[0])};", text)
    # Slack's mrkdwn: <!channel>, <!everyone> and <url|disguised> links all need a "<".
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chat_message(provider: str, text: str) -> dict:
    """The JSON each provider's webhook takes for `text`, already made inert."""
    if provider == "discord":
        # Discord pings only what allowed_mentions lets it parse: nothing, whatever the text.
        return {"content": text[:2000], "allowed_mentions": {"parse": []}}
    return {"text": text}  # Slack, Google Chat and Teams' connector cards alike


# --- The message --------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def compose(
    watch: Watch, snapshot: JobSnapshot | None, *, as_text: Callable[[str], str] = str
) -> tuple[str, str]:
    """The subject and body telling that `watch` ended; `as_text` keeps each name and status
    plain text in a chat's markup (aquadash's own link needs none)."""
    tenant = watch.tenant
    job = snapshot.job() if snapshot else None
    name = as_text(_one_line(watch.job_name or (job.name if job else "") or "AQuA job"))
    status = as_text(watch.job_status or (job.status if job else "unknown"))
    if watch.end == Watch.End.EXPIRED:
        subject = f"Still running after {settings.AQUADASH_WATCH_HOURS} hours: {name}"
        headline = (
            f"{name} is still {status} after {settings.AQUADASH_WATCH_HOURS} hours, so aquadash "
            "stopped watching it. Zuora stops a query after 3 hours: the job may be stuck."
        )
    elif watch.end == Watch.End.GONE:
        subject = f"Zuora no longer knows job {name}"
        headline = f"{name}: Zuora answered that this job does not exist (any more)."
    else:
        subject = f"{name} {status}"
        headline = f"{name} ended: {status}."
    lines = [headline, "", f"Tenant: {as_text(tenant.name)}", f"Job ID: {watch.job_id}"]
    if job and job.start_time:
        # Zuora reports only a job's start; its end is when aquadash first saw it final.
        lines.append(f"Ran for: about {elapsed(job.start_time, watch.ended_at)}")
    if job and job.batches:
        lines += ["", "Batches:"]
        lines += [
            f"  {as_text(_one_line(b.name or b.batch_id))}: {as_text(_batch(b))}"
            for b in job.batches
        ]
    lines += ["", f"Open it: {watch.link}"]
    return f"[aquadash] {subject}"[:200], "\n".join(lines)


def _batch(batch: zuora.Batch) -> str:
    if batch.status == "completed" and batch.record_count is not None:
        return f"completed, {batch.record_count:,} record{'s' if batch.record_count != 1 else ''}"
    return batch.status


# --- Sending ------------------------------------------------------------------------------------


def plan(ending: list[Watch]) -> list[int]:
    """Deliveries for watches ending together, made in the caller's transaction: an e-mail to
    each watcher, and one chat message for the tenant naming them all. The caller sends them
    once it has committed (send_now); each is also queued for a retry, which finds nothing to
    do once it is sent, and sends it should the caller stop first. Returns their keys."""
    if not ending or ending[0].end not in (Watch.End.FINAL, Watch.End.GONE, Watch.End.EXPIRED):
        return []
    deliveries = [
        Delivery(watch=watch, channel=Delivery.Channel.EMAIL, recipient=watch.user.email)
        for watch in ending
    ]
    tenant = ending[0].tenant
    if tenant.encrypted_webhook_url:
        host = "chat webhook"
        with contextlib.suppress(encryption.CredentialUnreadable):  # the send reports it
            host = urlsplit(tenant.webhook_url()).hostname or host
        deliveries.append(
            Delivery(watch=ending[0], channel=Delivery.Channel.WEBHOOK, recipient=host)
        )
    retry_at = timezone.now() + timedelta(seconds=settings.AQUADASH_NOTIFY_RETRY_SECONDS)
    made = Delivery.objects.bulk_create(deliveries)
    for delivery in made:
        deliver.using(run_after=retry_at).enqueue(delivery.pk)
    return [delivery.pk for delivery in made]


def send_now(delivery_ids: list[int]) -> None:
    """Try each delivery at once; one that fails waits for its queued retry."""
    for delivery_id in delivery_ids:
        _attempt(delivery_id, queue_retry=False)


@task(priority=10)  # before the next round of checks: telling people is what they wait for
def deliver(delivery_id: int) -> str:
    """Send one notification, once: claimed with a conditional UPDATE, so a second worker
    finds nothing to do. Returns what became of it."""
    return _attempt(delivery_id, queue_retry=True)


def _attempt(delivery_id: int, *, queue_retry: bool) -> str:
    now = timezone.now()
    lapsed_claim = Q(status=Delivery.Status.SENDING, claimed_at__lt=now - CLAIM)
    claimed = Delivery.objects.filter(
        Q(status=Delivery.Status.PENDING) | lapsed_claim, pk=delivery_id
    ).update(status=Delivery.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    if not claimed:
        sending = Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.SENDING)
        if queue_retry and (claimed_at := sending.values_list("claimed_at", flat=True).first()):
            # Should the worker sending it stop, this is the task that will find out.
            deliver.using(run_after=claimed_at + CLAIM).enqueue(delivery_id)
            return "being sent by another worker"
        return "not pending"
    delivery = Delivery.objects.select_related("watch__tenant", "watch__user").get(pk=delivery_id)
    try:
        _send(delivery)
    except NotifyFailed as exc:
        logger.warning("Could not notify (%s, delivery %s): %s", delivery.channel, delivery.pk, exc)
        _failed(delivery, exc, queue_retry=queue_retry)
        return "failed"
    delivery.status, delivery.sent_at = Delivery.Status.SENT, timezone.now()
    delivery.last_error = ""
    delivery.save(update_fields=["status", "sent_at", "last_error"])
    return "sent"


def _send(delivery: Delivery) -> None:
    watch = delivery.watch
    watchers = _still_allowed(
        Watch.objects.filter(
            tenant=watch.tenant, job_id=watch.job_id, ended_at=watch.ended_at, end=watch.end
        ).select_related("user")
        if delivery.channel == Delivery.Channel.WEBHOOK
        else [watch]
    )
    if not watchers:
        raise NotifyFailed("not sent: the watcher may no longer see this tenant", retry=False)
    snapshot = watch.tenant.jobs.filter(job_id=watch.job_id).first()
    if delivery.channel == Delivery.Channel.WEBHOOK:
        url = webhook_url(watch.tenant)
        provider = chat_provider(url)
        _, body = compose(watch, snapshot, as_text=lambda text: inert(provider, text))
        names = inert(provider, ", ".join(sorted(each.user.get_username() for each in watchers)))
        post_to_webhook(url, chat_message(provider, f"{body}\n\nWatched by {names}."))
        return
    subject, body = compose(watch, snapshot)
    if not delivery.recipient:
        raise NotifyFailed("no e-mail address on the account; ask an admin to add one", retry=False)
    try:
        send_mail(subject, body, None, [delivery.recipient])
    except (smtplib.SMTPException, OSError) as exc:
        raise NotifyFailed(f"the mail server did not take it ({type(exc).__name__})") from None


def _still_allowed(watches: object) -> list[Watch]:
    return [
        watch
        for watch in watches
        if Tenant.objects.visible_to(watch.user).filter(pk=watch.tenant_id).exists()
    ]


def _failed(delivery: Delivery, exc: NotifyFailed, *, queue_retry: bool) -> None:
    """Try again later with a longer wait each time, or give up after the last attempt.
    Without `queue_retry`, the retry queued when the delivery was made is the next try."""
    delivery.last_error = str(exc)[:500]
    final = not exc.retry or delivery.attempts >= settings.AQUADASH_NOTIFY_ATTEMPTS
    delivery.status = Delivery.Status.FAILED if final else Delivery.Status.PENDING
    with transaction.atomic():
        delivery.save(update_fields=["status", "last_error"])
        if not final and queue_retry:
            wait = settings.AQUADASH_NOTIFY_RETRY_SECONDS * 2 ** (delivery.attempts - 1)
            deliver.using(run_after=timezone.now() + timedelta(seconds=wait)).enqueue(delivery.pk)
