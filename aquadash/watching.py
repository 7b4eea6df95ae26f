"""Watching a job until it ends, in the background worker (`manage.py db_worker`).

One task, `check_watches`, goes round the watched jobs: every job whose check is due is asked
about through `jobs.fetch_job`, the single-flight path the pages use, so a page open on a
watched job adds no Zuora call, and a final job is served from storage without one. When a job
is final its watches end and their notifications are made in the same transaction, then sent
at once, each with a retry queued (notifications.py). The round then queues itself for when
the next check is due, unless a round is already queued; so however many watches and workers
there are, one round is waiting.

A watch also ends when its watcher stops, may no longer see the tenant, or after
AQUADASH_WATCH_HOURS (with a notice). Zuora being down keeps watches waiting: fetch_job's
circuit breaker and shared failures pace the retries.
"""

import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import Min
from django.tasks import TaskResultStatus, task
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from aquadash import allowance, jobs, notifications, zuora
from aquadash.models import JobSnapshot, Tenant, Watch
from aquadash.shared_cache import shared_cache

logger = logging.getLogger(__name__)

# Watches one round takes on. A round is one task, and notifications queued meanwhile wait for
# it to end: bounding it keeps them from waiting behind a thousand checks.
ROUND_SIZE = 200


def watch(tenant: Tenant, job_id: str, user: AbstractBaseUser, *, link: str) -> Watch:
    """Start watching (or keep the open watch), and make sure a round will check the job."""
    now = timezone.now()
    try:
        with transaction.atomic():
            watch, _ = Watch.objects.open().get_or_create(
                tenant=tenant,
                job_id=job_id,
                user=user,
                defaults={
                    "link": link,
                    "expires_at": now + timedelta(hours=settings.AQUADASH_WATCH_HOURS),
                    "next_check_at": now,
                },
            )
    except IntegrityError:  # the same person pressed twice at once
        watch = Watch.objects.open().get(tenant=tenant, job_id=job_id, user=user)
    schedule_round()
    return watch


def unwatch(tenant: Tenant, job_id: str, user: AbstractBaseUser) -> bool:
    return bool(
        Watch.objects.open()
        .filter(tenant=tenant, job_id=job_id, user=user)
        .update(ended_at=timezone.now(), end=Watch.End.UNWATCHED)
    )


def revive_if_stalled(open_watches: list[Watch]) -> None:
    """Queue a round when open watches are long overdue: the worker that had the round
    stopped in the middle of it (the queue keeps such a task "running" for good)."""
    stalled = timezone.now() - timedelta(seconds=3 * settings.AQUADASH_POLL_SECONDS)
    if any(each.next_check_at < stalled for each in open_watches):
        schedule_round()


def schedule_round(*, at: datetime | None = None) -> None:
    """Queue a round of checks, for `at` or now, unless one is already waiting."""
    waiting = DBTaskResult.objects.filter(
        task_path=check_watches.module_path, status=TaskResultStatus.READY
    )
    if not waiting.exists():
        check_watches.using(run_after=at).enqueue()


@task
def check_watches() -> int:
    """One round: end expired and revoked watches, check every job that is due, and queue
    the next round. Returns how many jobs were checked."""
    now = timezone.now()
    due = list(
        Watch.objects.open()
        .filter(next_check_at__lte=now)
        .select_related("tenant", "user")
        .order_by("next_check_at", "pk")[:ROUND_SIZE]
    )
    Watch.objects.filter(pk__in=[w.pk for w in due]).update(
        next_check_at=now + timedelta(seconds=settings.AQUADASH_POLL_SECONDS)
    )
    groups: dict[tuple[str, int, str], list[Watch]] = {}  # (what to do, tenant, job) → watches
    may_see: dict[int, set[int]] = {}  # user id → tenants they may see, read once a round
    for each in due:
        if each.user_id not in may_see:
            may_see[each.user_id] = set(
                Tenant.objects.visible_to(each.user).values_list("pk", flat=True)
            )
        if each.tenant_id not in may_see[each.user_id]:
            action = Watch.End.REVOKED
        elif each.expires_at <= now:
            action = Watch.End.EXPIRED
        else:
            action = "check"
        groups.setdefault((action, each.tenant_id, each.job_id), []).append(each)
    checks = []
    for (action, _, job_id), watches in groups.items():
        if action == "check":
            checks.append((watches[0].tenant, job_id, watches))
        else:
            _end(watches, action)
    stored = JobSnapshot.objects.filter(
        tenant__in={tenant for tenant, _, _ in checks}, job_id__in={job for _, job, _ in checks}
    ).select_related("tenant")
    snapshots = {(each.tenant_id, each.job_id): each for each in stored}
    states = _run_all([(*check, snapshots.get((check[0].pk, check[1]))) for check in checks])
    # Jobs Zuora reported unchanged are written once for the round, not once each.
    said_again = [state.snapshot.pk for state in states if state and state.untouched]
    JobSnapshot.objects.filter(pk__in=said_again).update(last_fetched_at=timezone.now())
    # A job is next due when asking again can bring news: when the answer it got expires (one
    # pace after it came, from Zuora now or from whoever asked before), when another server's
    # answer is due, or when a failure may be retried. Any sooner, a round would only get the
    # same answer again, and queue another round at once.
    answered = []
    for (tenant, _, watches), state in zip(checks, states, strict=True):
        if state is None or state.ask_again_at is None:
            continue
        paced = state.fetched_at + timedelta(seconds=allowance.pace(tenant, state.job))
        for each in watches:
            each.next_check_at = max(state.ask_again_at, paced, timezone.now())
            answered.append(each)
    Watch.objects.bulk_update(answered, ["next_check_at"])

    next_round = None
    if len(due) == ROUND_SIZE:  # more are due: on with them, once queued notifications are sent
        schedule_round()
        next_round = timezone.now()
    elif (next_due := Watch.objects.open().aggregate(at=Min("next_check_at"))["at"]) is not None:
        next_round = max(next_due, timezone.now())
        schedule_round(at=next_round)
    prune_finished_tasks()
    if due:
        unanswered = sum(state is None for state in states)
        logger.info(
            "Watch round: %d job%s checked%s; next round %s",
            len(checks),
            "" if len(checks) == 1 else "s",
            f", {unanswered} not answered by Zuora" if unanswered else "",
            f"at {next_round:%H:%M:%S %Z}" if next_round else "when someone watches",
        )
    return len(checks)


def prune_finished_tasks() -> int:
    """Delete the queue's finished tasks older than AQUADASH_TASK_DAYS, at most once an hour
    whichever worker gets here, so the table does not grow with every round. Returns how
    many went."""
    if not shared_cache.add("watch:pruned", 1, timeout=3600):
        return 0
    before = timezone.now() - timedelta(days=settings.AQUADASH_TASK_DAYS)
    finished = DBTaskResult.objects.finished().filter(finished_at__lt=before)
    deleted, _ = finished.delete()
    return deleted


Check = tuple[Tenant, str, list[Watch], JobSnapshot | None]


def _run_all(checks: list[Check]) -> list[jobs.JobState | None]:
    """Check the jobs, several at once: each mostly waits for Zuora. Returns what each check
    learned, None where Zuora could not say."""
    if settings.AQUADASH_WATCH_THREADS <= 1 or len(checks) <= 1:
        return [_check(*check) for check in checks]
    return list(_threads().map(_check_in_thread, checks))


@functools.cache
def _threads() -> ThreadPoolExecutor:
    # Kept for the worker's life, so each thread keeps its database connection from round to
    # round, as a web server's threads do from request to request.
    return ThreadPoolExecutor(settings.AQUADASH_WATCH_THREADS, thread_name_prefix="watch")


def _check_in_thread(check: Check) -> jobs.JobState | None:
    close_old_connections()  # as at a request's start: drop a broken or expired connection
    return _check(*check)


def _check(
    tenant: Tenant, job_id: str, watches: list[Watch], snapshot: JobSnapshot | None
) -> jobs.JobState | None:
    """Ask about the job and end its watches if it is final; the job's state, if learned."""
    try:
        state = jobs.fetch_job(
            tenant, job_id, user=None, snapshot=snapshot, touch=False, paced=True
        )
    except zuora.JobNotFound:
        _end(watches, Watch.End.GONE)
    except zuora.ZuoraError as exc:
        # Down, slow, rate limited, credentials rejected: keep watching; fetch_job's breaker
        # and shared failures decide when Zuora is asked again.
        logger.debug("Watched job %s in %s not checked: %s", job_id, tenant.slug, exc.message)
    except Exception:
        logger.exception("Checking watched job %s in %s failed", job_id, tenant.slug)
    else:
        if state.gone:
            _end(watches, Watch.End.GONE, state.job)
        elif state.job.is_final:
            _end(watches, Watch.End.FINAL, state.job)
        return state
    return None


def _end(watches: list[Watch], end: str, job: zuora.Job | None = None) -> None:
    """End the watches that are still open, and queue their notifications with them.

    The rows are locked first, so two workers ending the same watches at once notify once:
    PostgreSQL skips rows another transaction holds, and SQLite runs one writer at a time.
    """
    if job is None:
        snapshot = watches[0].tenant.jobs.filter(job_id=watches[0].job_id).first()
        job = snapshot.job() if snapshot else None
    now = timezone.now()
    with transaction.atomic():
        ending = list(
            Watch.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=[w.pk for w in watches], ended_at=None)
            .select_related("tenant", "user")
            .order_by("pk")
        )
        for each in ending:
            each.ended_at, each.end = now, end
            each.job_name = job.name[:255] if job else ""
            each.job_status = job.status[:32] if job else ""
        Watch.objects.bulk_update(ending, ["ended_at", "end", "job_name", "job_status"])
        deliveries = notifications.plan(ending)
    # Committed: tell them now, from here, rather than after the rest of the round.
    notifications.send_now(deliveries)
