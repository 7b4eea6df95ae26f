"""Getting a job for a page: from what we stored, from the shared cache, or from Zuora.

Every view that needs a job calls `fetch_job`. However many people watch one running job, on
however many servers, Zuora is asked at most once per job per poll interval: the first caller
takes a lock in the shared cache and fetches, everyone else is served the last known state.
A final job never changes, so once stored it is served without calling Zuora at all.
"""

import logging
import math
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone

from aquadash import allowance, archive, breaker, metrics, zuora
from aquadash.models import JobSnapshot, Tenant
from aquadash.shared_cache import shared_cache

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobState:
    """A job as a page shows it: the job, where it came from, and any passing trouble."""

    job: zuora.Job
    snapshot: JobSnapshot
    fetched_at: datetime
    from_zuora: bool  # fetched from Zuora during this request
    gone: bool = False  # Zuora no longer knows the job; we show what we stored
    error: zuora.ZuoraError | None = None  # the latest fetch failed; this is the last good state
    refreshing: bool = False  # another request is asking Zuora; this is the last known state
    untouched: bool = False  # asked with touch=False, Zuora said the same: nothing was written
    # When asking again can bring news: the answer this state came from is shared until then
    # (or another server's answer is due). None for a final or vanished job.
    ask_again_at: datetime | None = None

    @property
    def is_final(self) -> bool:
        return self.gone or self.job.is_final


@dataclass(frozen=True)
class SharedAnswer:
    """Zuora's latest answer about a job, the job or the error it was, shared by every server
    (through the shared cache) until the next poll is due."""

    at: float  # when it was fetched, as time.time()
    until: float  # when the next poll is due
    track_id: str = ""
    request_id: str = ""
    raw: dict | None = None  # the job, as Zuora described it
    error: str = ""  # or the name of the ZuoraError it was
    message: str = ""
    retry_after: float | None = None


def shared_key(tenant: Tenant, job_id: str) -> str:
    """Where a job's SharedAnswer lives in the shared cache; the single-flight lock is beside
    it, at this key plus ":lock"."""
    # "v2" since answers became SharedAnswers: servers of a rolling deploy read only their own.
    return f"job:v2:{tenant.pk}:{job_id}"


def fetch_job(
    tenant: Tenant,
    job_id: str,
    *,
    user: AbstractBaseUser | None,
    refresh: bool = False,
    snapshot: JobSnapshot | None = None,
    touch: bool = True,
    paced: bool = False,
) -> JobState:
    """The job's current state for a page, or the ZuoraError a page should show instead.

    `refresh` re-asks Zuora about a final or vanished job, for the doubtful, at most once per
    poll interval however many click it. `snapshot` is the stored job when the caller has
    already read it (the worker reads a round's in one query); else it is read here. Without
    `touch`, a job Zuora reported unchanged is not written at all: the state says so
    (`untouched`), for a caller that writes many at once. `paced` callers (a page's poll, a
    watch) accept an answer as old as the job's pace (allowance.pace); anyone else, a person
    looking the job up or refreshing it, is served nothing older than AQUADASH_POLL_SECONDS.
    """
    job_id = zuora.check_id(job_id, what="job")
    if snapshot is None:
        snapshot = tenant.jobs.filter(job_id=job_id).first()
    if snapshot and not refresh and (snapshot.is_final or snapshot.gone_at):
        return _stored_state(snapshot)

    # From here a refresh is like any poll: an answer younger than the poll interval, or a
    # rate limit's Retry-After, is served as it is, so clicks cannot spend the tenant's quota.
    key = shared_key(tenant, job_id)
    cached = shared_cache.get(key)
    # AQUADASH_COALESCE=0 exists only as the herd benchmark's baseline: every poll asks Zuora.
    coalesce = settings.AQUADASH_COALESCE
    if coalesce and cached and time.time() < _fresh_until(cached, paced=paced):
        return _state_from_cache(tenant, cached, snapshot)

    if coalesce and not shared_cache.add(key + ":lock", 1, settings.AQUADASH_POLL_SECONDS):
        # Another request is asking Zuora right now. A refresh, or a first lookup with nothing
        # to show, waits briefly for its answer; nobody holds a worker longer than that.
        worth_waiting = refresh or not (cached or snapshot)
        if worth_waiting and (answer := _wait_for(key, newer_than=cached.at if cached else 0)):
            metrics.single_flight_wait(tenant.slug, "answer")
            return _state_from_cache(tenant, answer, snapshot)
        metrics.single_flight_wait(tenant.slug, "gave_up" if worth_waiting else "served")
        # Its answer, shared when it comes, is the next news: not sooner than a poll from now.
        soon = timezone.now() + timedelta(seconds=settings.AQUADASH_POLL_SECONDS)
        if cached:
            state = _state_from_cache(tenant, cached, snapshot)
            return replace(state, refreshing=True, ask_again_at=soon)
        if snapshot:
            return replace(_stored_state(snapshot), refreshing=True, ask_again_at=soon)
        raise zuora.ZuoraTimeout(
            "Zuora is slow to answer about this job; aquadash is still asking. Try again in a "
            "few seconds."
        )

    try:
        with breaker.guarded(tenant):
            job = zuora.get_job(tenant.zuora_connection(), job_id=job_id)
    except zuora.ZuoraError as exc:
        wait = _remember_failure(key, exc)
        if isinstance(exc, zuora.RateLimited):
            # No server asks again before Zuora said it may.
            shared_cache.set(key + ":lock", 1, timeout=wait)
        else:
            _release(key)
        if snapshot is None:
            raise
        if isinstance(exc, zuora.JobNotFound):
            snapshot.mark_gone()
            return _stored_state(snapshot)
        retry_at = timezone.now() + timedelta(seconds=wait)
        return replace(_stored_state(snapshot), error=exc, ask_again_at=retry_at)
    said_again = snapshot is not None and snapshot.raw == job.raw and snapshot.gone_at is None
    if said_again:
        # As poll after poll of a running job: only when, by whom and the track ID are new.
        snapshot.last_fetched_at, snapshot.track_id = timezone.now(), job.track_id
        snapshot.request_id = job.request_id
        snapshot.last_fetched_by = user if user and user.is_authenticated else None
        if touch:
            fields = ["last_fetched_at", "last_fetched_by", "track_id", "request_id"]
            snapshot.save(update_fields=fields)
    else:
        snapshot = store_job(tenant, job, user=user)
    pace = allowance.pace(tenant, job)
    _remember(key, raw=job.raw, track_id=job.track_id, request_id=job.request_id, fresh_for=pace)
    _release(key)
    now = timezone.now()
    return JobState(
        job=job,
        snapshot=snapshot,
        fetched_at=now,
        from_zuora=True,
        untouched=said_again and not touch,
        ask_again_at=None if job.is_final else now + timedelta(seconds=pace),
    )


def stored_or_404(tenant: Tenant, job_id: str) -> JobSnapshot:
    """The job as aquadash stored it, for what needs no fresh answer (its files, its watches)."""
    snapshot = tenant.jobs.filter(job_id=job_id).first()
    if snapshot is None:
        raise Http404("aquadash has not stored this job yet; open its page first.")
    return snapshot


def store_job(tenant: Tenant, job: zuora.Job, *, user: AbstractBaseUser | None) -> JobSnapshot:
    """Remember what Zuora said about a job, so the page can explain it after Zuora forgets."""
    fetched_by = user if user and user.is_authenticated else None
    values = {
        "name": job.name[:255],
        "status": job.status[:32],
        "is_final": job.is_final,
        "raw": job.raw,
        "track_id": job.track_id,
        "request_id": job.request_id,
        "last_fetched_at": timezone.now(),
        "last_fetched_by": fetched_by,
        "gone_at": None,
    }
    try:
        snapshot = _save(tenant, job, values)
    except IntegrityError:  # two servers stored the same new job at once: now it is there
        snapshot = _save(tenant, job, values)
    archive.job_stored(tenant, job)  # the tenant may keep its result files
    return snapshot


def _save(tenant: Tenant, job: zuora.Job, values: dict) -> JobSnapshot:
    with transaction.atomic():
        # Locked, so that of two servers storing at once the first to see a batch's new status
        # sets its time in the timeline, and the second keeps it.
        stored = tenant.jobs.select_for_update().filter(job_id=job.id)
        snapshot = stored.first() or JobSnapshot(tenant=tenant, job_id=job.id)
        for field, value in values.items():
            setattr(snapshot, field, value)
        snapshot.timeline = _seen(snapshot.timeline, job, values["last_fetched_at"])
        columns = queue_columns(job, snapshot.timeline)
        for field, value in columns.items():
            setattr(snapshot, field, value)
        # A stored job keeps what others write (record counts, first sight): only Zuora's
        # answer, the timeline and what the work queue reads of them are written over it.
        snapshot.save(update_fields=[*values, "timeline", *columns] if snapshot.pk else None)
        return snapshot


def queue_columns(job: zuora.Job, timeline: dict) -> dict:
    """What the work queue sorts and filters on, from Zuora's answer and the stored timeline
    (migration 0012 filled them with a frozen copy of this function).

    Zuora reports only when a job started, so its run time is measured to when aquadash first
    saw every batch finished: up to one look late, and unknown (None) when aquadash never saw
    the job unfinished, or while it runs.
    """
    run_seconds = None
    seen = [
        {s: datetime.fromisoformat(at) for s, at in statuses.items()}
        for statuses in timeline.values()
    ]
    seen_unfinished = any(
        s not in zuora.FINAL_BATCH_STATUSES for statuses in seen for s in statuses
    )
    finished = [
        min(at for s, at in statuses.items() if s in zuora.FINAL_BATCH_STATUSES)
        for statuses in seen
        if zuora.FINAL_BATCH_STATUSES.intersection(statuses)
    ]
    if job.is_final and job.start_time and seen_unfinished and len(finished) == len(seen):
        seconds = (max(finished) - job.start_time).total_seconds()
        run_seconds = int(min(max(seconds, 0), 2**31 - 1))  # a nonsense start stays storable
    return {
        "started_at": job.start_time,
        "run_seconds": run_seconds,
        "total_records": sum(batch.record_count or 0 for batch in job.batches),
        "batches_done": sum(batch.is_final for batch in job.batches),
        "batches_total": len(job.batches),
    }


def _seen(timeline: dict, job: zuora.Job, now: datetime) -> dict:
    """The timeline with each batch's current status, if new, first seen `now`."""
    timeline = {batch_id: dict(statuses) for batch_id, statuses in timeline.items()}
    for batch in job.batches:
        if batch.batch_id and batch.status:
            timeline.setdefault(batch.batch_id, {}).setdefault(batch.status, now.isoformat())
    return timeline


def _stored_state(snapshot: JobSnapshot) -> JobState:
    return JobState(
        job=snapshot.job(),
        snapshot=snapshot,
        fetched_at=snapshot.last_fetched_at,
        from_zuora=False,
        gone=snapshot.gone_at is not None,
    )


def _state_from_cache(
    tenant: Tenant, cached: SharedAnswer, snapshot: JobSnapshot | None
) -> JobState:
    """The last answer any server had from Zuora, as a state or as the error it was."""
    if cached.raw is None:
        cls = _error_class(cached.error)
        ids = {"track_id": cached.track_id, "request_id": cached.request_id}
        # Zuora's wait counted from when it answered, not from now.
        left = cached.retry_after and max(
            1, math.ceil(cached.at + cached.retry_after - time.time())
        )
        if issubclass(cls, zuora.RateLimited):
            error = cls(cached.message, retry_after=left or None, **ids)
        else:
            error = cls(cached.message, **ids)
            error.retry_after = left or None
        if snapshot is None:
            raise error
        if isinstance(error, zuora.JobNotFound):
            return _stored_state(snapshot)
        return replace(_stored_state(snapshot), error=error, ask_again_at=_stale_at(cached))
    job = zuora.parse_job(
        cached.raw, zone=tenant.zoneinfo, track_id=cached.track_id, request_id=cached.request_id
    )
    fetched_at = datetime.fromtimestamp(cached.at, tz=UTC)
    if snapshot is None:
        # Read before another request stored it (a first lookup that waited), or the cache
        # outlived the database row (a restored database): store only in the second case.
        snapshot = tenant.jobs.filter(job_id=job.id).first()
        snapshot = snapshot or store_job(tenant, job, user=None)
    return JobState(
        job=job,
        snapshot=snapshot,
        fetched_at=fetched_at,
        from_zuora=False,
        ask_again_at=None if job.is_final else _stale_at(cached),
    )


def _stale_at(cached: SharedAnswer) -> datetime:
    """When a shared answer stops being served to pages' polls and watches."""
    return datetime.fromtimestamp(_fresh_until(cached, paced=True), tz=UTC)


def _release(key: str) -> None:
    """Give up the single-flight lock once the answer is shared. Left to expire, it would
    outlive the answer (caches count expiry in whole seconds) and every caller in between
    would be told another request is asking, with nothing newer to show for it."""
    shared_cache.delete(key + ":lock")


def _fresh_until(cached: SharedAnswer, *, paced: bool) -> float:
    """Until when a shared answer is served instead of asking Zuora. A failure is served its
    whole time (Zuora said when to come back); a job, to a person, for one poll interval."""
    if paced or cached.raw is None:
        return cached.until
    return min(cached.until, cached.at + settings.AQUADASH_POLL_SECONDS)


def _remember(key: str, *, fresh_for: float | None = None, **answer: object) -> None:
    """Share Zuora's answer with every server until the next poll is due."""
    now = time.time()
    fresh_for = fresh_for or settings.AQUADASH_POLL_SECONDS
    shared_cache.set(key, SharedAnswer(at=now, until=now + fresh_for, **answer), timeout=3600)


def _remember_failure(key: str, exc: zuora.ZuoraError) -> float:
    """Share a failure too, so the next caller is not the one to wait on a failing Zuora.
    Returns how long it is shared for."""
    fresh_for = settings.AQUADASH_POLL_SECONDS
    if exc.retry_after:
        fresh_for = max(fresh_for, min(exc.retry_after, 600))
    _remember(
        key,
        fresh_for=fresh_for,
        error=type(exc).__name__,
        message=exc.reason if isinstance(exc, zuora.RateLimited) else exc.message,
        track_id=exc.track_id,
        request_id=exc.request_id,
        retry_after=exc.retry_after,
    )
    return fresh_for


def _error_class(name: str) -> type[zuora.ZuoraError]:
    """The ZuoraError subclass of that name (including ones defined outside the zuora package)."""
    classes = [zuora.ZuoraError]
    while classes:
        cls = classes.pop()
        if cls.__name__ == name:
            return cls
        classes.extend(cls.__subclasses__())
    return zuora.ZuoraError


def _wait_for(key: str, *, newer_than: float) -> SharedAnswer | None:
    """The answer another request is getting from Zuora, if it comes within
    AQUADASH_WAIT_SECONDS; None rather than hold a worker longer."""
    deadline = time.monotonic() + settings.AQUADASH_WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.05)
        cached = shared_cache.get(key)
        if cached and cached.at > newer_than:
            return cached
    return None
