"""A job's batches over time, from when aquadash first saw each batch in each status.

Zuora reports only when a job started. Each time a page or the worker learns a batch's new
status, the time is recorded once, in the stored job (JobSnapshot.timeline, by store_job).
From those: how long a batch waited for its turn, how long it ran, and, while it runs, when
Zuora's 3-hour limit per query (error 90027) stops it at the latest. A batch first seen
already running ran "at least" as long as shown: it started before anyone looked.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from aquadash import zuora

QUERY_LIMIT = timedelta(hours=3)  # Zuora stops a query that runs longer (error 90027)
WAITING = ("submitted", "pending")


@dataclass(frozen=True)
class Span:
    """A stretch of the timeline bar, as fractions of the whole."""

    kind: str  # "waiting" or "running"
    start: float
    width: float


@dataclass(frozen=True)
class BatchTimeline:
    name: str
    status: str
    waited: timedelta | None  # from the job's start until it was seen running
    ran: timedelta | None  # from first seen running until first seen done (or now)
    ran_at_least: bool  # first seen already running: it started earlier
    running: bool
    just_started: bool  # seen running for less than a second: "0 s" would read as stuck
    waiting: timedelta | None  # still waiting: from the job's start until now
    done_unseen: bool  # first seen done: it waited and ran before aquadash looked
    stopped_by: datetime | None  # while running: Zuora's limit stops it by then at the latest
    spans: tuple[Span, ...]


def for_job(job: zuora.Job, seen: dict, started_at: datetime | None) -> list[BatchTimeline]:
    """The job's batches on one time axis, from its start (or the first sighting) to the last
    sighting of a final batch, or now while any batch is unfinished. `seen` is the stored
    job's timeline: by batch ID, by status, the ISO time it was first seen."""
    seen = {
        batch_id: {status: datetime.fromisoformat(at) for status, at in statuses.items()}
        for batch_id, statuses in seen.items()
    }
    if not seen:
        return []
    now = timezone.now()
    times = [at for statuses in seen.values() for at in statuses.values()]
    axis_start = min([started_at, *times]) if started_at else min(times)
    axis_end = now if not job.is_final else max(times)
    length = max((axis_end - axis_start).total_seconds(), 1.0)

    def fraction(at: datetime) -> float:
        return max(0.0, min(1.0, (at - axis_start).total_seconds() / length))

    def stretch(kind: str, start: datetime, stop: datetime) -> Span:
        # A sliver at least, so a batch done between two looks still shows.
        return Span(kind, fraction(start), max(fraction(stop) - fraction(start), 0.005))

    timelines = []
    for batch in job.batches:
        statuses = seen.get(batch.batch_id, {})
        waited_since = started_at if any(s in statuses for s in WAITING) else None
        began = statuses.get("executing")
        finals = [at for s, at in statuses.items() if s in zuora.FINAL_BATCH_STATUSES]
        ended = min(finals, default=None)
        running = began is not None and ended is None
        still_waiting = waited_since is not None and began is None and ended is None
        spans = []
        if waited_since and began:
            spans.append(stretch("waiting", waited_since, began))
        if still_waiting:
            spans.append(stretch("waiting", waited_since, now))
        if began:
            spans.append(stretch("running", began, ended or now))
        timelines.append(
            BatchTimeline(
                name=batch.name or batch.batch_id,
                status=batch.status,
                waited=began - waited_since if waited_since and began else None,
                ran=((ended or now) - began) if began else None,
                ran_at_least=bool(began) and not any(s in statuses for s in WAITING),
                running=running,
                just_started=running and now - began < timedelta(seconds=1),
                waiting=now - waited_since if still_waiting else None,
                done_unseen=bool(finals) and set(statuses) <= set(zuora.FINAL_BATCH_STATUSES),
                stopped_by=began + QUERY_LIMIT if running else None,
                spans=tuple(spans),
            )
        )
    # A job first seen already done has nothing to show: no batch was seen waiting or running.
    return timelines if any(row.spans for row in timelines) else []
