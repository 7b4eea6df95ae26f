"""What a job page says about a job beyond Zuora's fields: its dates and totals in the
tenant's time zone, how often the page asks again, and the same request as curl."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from aquadash import allowance, zuora
from aquadash.jobs import JobState
from aquadash.models import Tenant

RETENTION = timedelta(days=180)  # Zuora deletes jobs 180 days after they were created


@dataclass(frozen=True)
class JobFacts:
    """The times and totals a job page states, in the tenant's time zone."""

    started_at: datetime | None
    incremental_time: datetime | None
    deleted_on: datetime | None  # Zuora deletes jobs 180 days after creation
    days_until_deleted: int | None
    files_expire_at: datetime | None  # Zuora purges result files a few days after completion
    file_retention_days: int
    batch_outcomes: list[tuple[str, int]]  # ("completed", 3), ("aborted", 1): final batches only
    batches_total: int
    total_records: int

    @property
    def deletion_is_near(self) -> bool:
        return self.days_until_deleted is not None and self.days_until_deleted <= 14

    @property
    def files_expired(self) -> bool:
        return self.files_expire_at is not None and self.files_expire_at <= timezone.now()

    @property
    def files_expire_soon(self) -> bool:
        return (
            self.files_expire_at is not None
            and not self.files_expired
            and self.files_expire_at - timezone.now() <= timedelta(days=1)
        )


def describe(state: JobState, tenant: Tenant) -> JobFacts:
    job = state.job
    zone = tenant.zoneinfo
    started_at = job.start_time
    deleted_on = files_expire_at = None
    if started_at and started_at.year < 9000:  # far-future nonsense would overflow
        deleted_on = started_at + RETENTION
        if job.status == "completed":
            # Zuora does not report when a job completed; queries run for at most 3 hours, so
            # counting from the start is the earliest the files can go.
            files_expire_at = started_at + timedelta(days=settings.AQUADASH_FILE_RETENTION_DAYS)
    return JobFacts(
        started_at=started_at,
        incremental_time=job.incremental_time.astimezone(zone) if job.incremental_time else None,
        deleted_on=deleted_on,
        days_until_deleted=(deleted_on - timezone.now()).days if deleted_on else None,
        files_expire_at=files_expire_at,
        file_retention_days=settings.AQUADASH_FILE_RETENTION_DAYS,
        batch_outcomes=[
            (status, count)
            for status in zuora.BATCH_STATUSES
            if (count := sum(batch.status == status and batch.is_final for batch in job.batches))
        ],
        batches_total=len(job.batches),
        total_records=sum(batch.record_count or 0 for batch in job.batches),
    )


def poll_seconds(
    tenant: Tenant, job: zuora.Job | None, failures: int, error: zuora.ZuoraError | None = None
) -> int:
    """How long a page waits before asking again: the job's pace (its age and the tenant's
    allowance), doubled after each failed poll up to a minute if that is longer, and never
    sooner than Zuora asked us to come back."""
    seconds = max(
        allowance.pace(tenant, job),
        min(60, settings.AQUADASH_POLL_SECONDS * 2 ** min(failures, 6)),
    )
    if error is not None and error.retry_after:
        seconds = max(seconds, min(error.retry_after, 3600))
    return seconds


def curl_command(tenant: Tenant, job_id: str) -> str:
    """The same request for a support ticket, with the credentials left as variables."""
    auth = (
        '-H "Authorization: Bearer $ZUORA_TOKEN"'
        if tenant.auth_method == "oauth"
        else '-u "$ZUORA_USERNAME:$ZUORA_PASSWORD"'
    )
    entity = f' -H "Zuora-Entity-Ids: {tenant.entity_id}"' if tenant.entity_id else ""
    url = f"{tenant.base_url_resolved}/v1/batch-query/jobs/{job_id}"
    return f'curl -sS {auth}{entity} -H "Accept: application/json" "{url}"'
