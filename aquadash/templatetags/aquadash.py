"""Small template filters: status badges, the batches and timeline bars, timestamps and
durations, so markup is not repeated."""

from datetime import datetime, timedelta, tzinfo

from django import template
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from aquadash.job_facts import JobFacts
from aquadash.models import Download
from aquadash.timeline import Span

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
        stretches.append((status, x, width))
        x += width
    return _bar("outcomes", stretches)


@register.filter
def timeline_bar(spans: tuple[Span, ...]) -> str:
    """A batch's waiting and running on the job's time axis; the table says it in words."""
    return _bar("timeline", [(span.kind, 100 * span.start, 100 * span.width) for span in spans])


def _bar(kind: str, stretches: list[tuple[str, float, float]]) -> str:
    # SVG attributes, not style="width: …": the Content-Security-Policy allows no inline styles.
    return format_html(
        '<svg class="{}" viewBox="0 0 100 1" preserveAspectRatio="none" aria-hidden="true">'
        "{}</svg>",
        kind,
        format_html_join(
            "",
            '<rect class="{}" x="{}" width="{}" height="1"/>',
            [(name, f"{x:.4g}", f"{width:.4g}") for name, x, width in stretches],
        ),
    )


@register.filter
def span(value: timedelta) -> str:
    """A duration as people say it: "42 s", "3 min 5 s", "1 h 2 min"."""
    seconds = max(0, int(value.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {seconds} s"
    return f"{seconds} s"


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
def moment(value: datetime | None, zone: tzinfo | None = None) -> str:
    """`2026-11-29 08:20:07 PST (3 hours ago)`, in `zone` or else the current time zone (the
    tenant's on job pages)."""
    if value is None:
        return "—"
    value = timezone.localtime(value, zone)
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


@register.filter
def signed_percent(change: float) -> str:
    """+80 %, −5 %, "from none" for records where there were none."""
    if change == float("inf"):
        return "from none"
    # Whole percents, but never a rounded ±100 that did not happen (1,234 after 3,000,000).
    shown = f"{change:+.0f}" if abs(change) < 99.5 or abs(change) == 100 else f"{change:+.2f}"
    return f"{shown} %".replace("-", "\u2212")


@register.filter
def load_kind(batch: object) -> str:
    full = getattr(batch, "full", None)
    if batch is None:
        return "—"
    return "full" if full else ("incremental" if full is False else "—")
