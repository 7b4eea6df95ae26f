"""Small template filters: status badges, the batches bar and timestamps, so markup is not
repeated."""

from datetime import datetime

from django import template
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from aquadash.job_facts import JobFacts
from aquadash.models import Download

register = template.Library()

BADGE_TONES = {
    "completed": "ok",
    "error": "bad",
    "aborted": "bad",
    "cancelled": "muted",
    "deleted_notallowed": "bad",
    "executing": "run",
    "submitted": "wait",
    "pending": "wait",
}


@register.filter
def status_badge(status: str) -> str:
    tone = BADGE_TONES.get(status, "muted")
    return format_html('<span class="badge badge-{}">{}</span>', tone, status or "unknown")


@register.filter
def outcome_bar(facts: JobFacts) -> str:
    """The batches as one bar, a stretch per final outcome (completed, aborted, cancelled) and
    the rest empty. The words beside it say the same, so the bar is hidden from screen readers."""
    stretches, x = [], 0.0
    for status, count in facts.batch_outcomes:
        width = 100 * count / facts.batches_total
        stretches.append((status, f"{x:.4g}", f"{width:.4g}"))
        x += width
    return format_html(
        '<svg class="outcomes" viewBox="0 0 100 1" preserveAspectRatio="none" aria-hidden="true">'
        "{}</svg>",
        format_html_join("", '<rect class="{}" x="{}" width="{}" height="1"/>', stretches),
    )


OUTCOME_TONES = {"complete": "ok", "mismatch": "bad", "broken": "bad", "failed": "bad"}


@register.filter
def download_outcome(outcome: str) -> str:
    """A download's outcome as a badge, in words (colour is never the only signal)."""
    label = Download.Outcome(outcome).label if outcome in Download.Outcome.values else outcome
    return format_html(
        '<span class="badge badge-{}">{}</span>', OUTCOME_TONES.get(outcome, "muted"), label
    )


@register.filter
def get_item(mapping: dict, key: str) -> object:
    return mapping.get(key)


@register.filter
def moment(value: datetime | None) -> str:
    """`2026-11-29 08:20:07 PST (3 hours ago)`, in the current time zone (the tenant's on job
    pages)."""
    if value is None:
        return "—"
    value = timezone.localtime(value)
    return format_html(
        '<time datetime="{}">{} <span class="muted">({})</span></time>',
        value.isoformat(),
        value.strftime("%Y-%m-%d %H:%M:%S %Z"),
        naturaltime(value),
    )


@register.filter
def elapsed(start: datetime | None, until: datetime | None = None) -> str:
    """How long from `start` to `until` (now): seconds under a minute, then Django's
    timesince."""
    if start is None:
        return "—"
    until = until or timezone.now()
    seconds = int((until - start).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} second{'' if seconds == 1 else 's'}"
    return timesince(start, until)
