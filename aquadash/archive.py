"""Keeping result files after Zuora purges them: aquadash's own copy, in its own storage.

Zuora deletes a job's result files a few days after it completes. A tenant's admin chooses what
aquadash keeps (ArchivePolicy); anyone who may see the tenant can also keep one completed job.
The worker (`copy_job`, a django.tasks task) copies every file of the job as it streams from
Zuora into the `archive` storage (STORAGES, set from AQUADASH_ARCHIVE_URL: the filesystem under
var/ or an S3-compatible store) through Django's storage API, never holding a whole file in
memory or on local disk. Each file is stored under a random key and marked kept only once its
size, SHA-256 and, for CSV, its records are known; a batch's records must match Zuora's
recordCount. A copy that breaks is retried with back-off, then shown in red.

Downloads ask `open_kept` first (through downloads.open_file): a kept file is served from here,
before Zuora's purge as after it, and Zuora is not asked.
"""

import hashlib
import io
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db import IntegrityError, transaction
from django.db.models import Count, Min, Q, Sum
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.tasks import task
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods

from aquadash import breaker, results, zuora
from aquadash.access import NOT_FOUND, note_refusal, tenant_required
from aquadash.models import ArchivePolicy, Download, JobSnapshot, KeptFile, KeptJob, Tenant, Watch
from aquadash.shared_cache import shared_cache

logger = logging.getLogger(__name__)

KEY_PREFIX = "kept"
ATTEMPTS = 4  # copies of a job tried in all; then it is shown as failed, in red
RETRY_SECONDS = 30  # the first wait before trying again; doubled each time
# A worker copying a job says so at least this often; a copy silent for STALE_SECONDS belongs to
# a worker that was killed, and is started again.
HEARTBEAT_SECONDS = 30
STALE_SECONDS = 600
READ_SIZE = 1024 * 1024  # what a download reads from the store at once


class ArchiveUnavailable(zuora.ZuoraError):
    """The store behind the archive does not answer."""

    http_status = 503
    summary = "archive not answering"
    title = "aquadash's archive is not answering"
    next_step = "retry"
    retry_after = 60


class CopyFailed(Exception):
    """A copy that cannot be marked kept: `str()` says why, for people."""


def storage() -> Storage:
    return storages["archive"]


# --- What is kept ---------------------------------------------------------------------------


def reason_to_keep(tenant: Tenant, job: zuora.Job) -> str | None:
    """Why the tenant's policy keeps this job, or None."""
    if job.status != "completed" or not job.is_final or not job.has_files:
        return None
    policy = ArchivePolicy.objects.filter(tenant=tenant).first()
    if policy is None or policy.keep == ArchivePolicy.Keep.NOTHING:
        return None
    if policy.keep == ArchivePolicy.Keep.ALL:
        return KeptJob.Reason.ALL
    if policy.keep == ArchivePolicy.Keep.SESSIONS:
        in_session = (job.partner, job.project) in policy.session_pairs()
        return KeptJob.Reason.SESSION if in_session else None
    watched = Watch.objects.filter(tenant=tenant, job_id=job.id).exists()
    return KeptJob.Reason.WATCHED if watched else None


def job_stored(tenant: Tenant, job: zuora.Job) -> None:
    """Called whenever aquadash stores what Zuora said of a job: keep it if the policy says so."""
    if not job.is_final or KeptJob.objects.filter(tenant=tenant, job_id=job.id).exists():
        return
    if reason := reason_to_keep(tenant, job):
        keep(tenant, job, reason=reason)


def keep(
    tenant: Tenant, job: zuora.Job, *, reason: str, user: AbstractBaseUser | None = None
) -> KeptJob:
    """Start keeping the job's files (or keep the record there is), and queue the copy."""
    files = [
        (file_id.lower(), batch.batch_id) for batch in job.batches for file_id in batch.file_ids
    ]
    try:
        with transaction.atomic():
            kept = KeptJob.objects.create(
                tenant=tenant,
                job_id=job.id,
                reason=reason,
                asked_by=user if user and user.is_authenticated else None,
                kept_until=timezone.localdate() + timedelta(days=settings.AQUADASH_ARCHIVE_DAYS),
            )
            KeptFile.objects.bulk_create(
                KeptFile(kept_job=kept, file_id=file_id, batch_id=batch_id)
                for file_id, batch_id in files
            )
    except IntegrityError:  # kept already, by another person or worker
        return KeptJob.objects.get(tenant=tenant, job_id=job.id)
    ArchivePolicy.objects.get_or_create(tenant=tenant)  # so the admin lists the tenant
    if (full := over_limit(tenant)) is not None:
        _end(kept, KeptJob.Status.FULL, full)
        return kept
    copy_job.enqueue(kept.pk)
    return kept


def limit_bytes(tenant: Tenant) -> int:
    policy = ArchivePolicy.objects.filter(tenant=tenant).first()
    gigabytes = policy.max_gb if policy and policy.max_gb is not None else None
    return int((gigabytes if gigabytes is not None else settings.AQUADASH_ARCHIVE_MAX_GB) * 1e9)


def kept_bytes(tenant: Tenant) -> int:
    files = KeptFile.objects.filter(kept_job__tenant=tenant, status=KeptFile.Status.KEPT)
    return files.aggregate(total=Sum("size"))["total"] or 0


def over_limit(tenant: Tenant) -> str | None:
    """Why new archiving must stop for the tenant, or None."""
    used, limit = kept_bytes(tenant), limit_bytes(tenant)
    if used < limit:
        return None
    return (
        f"The tenant's archive holds {used / 1e9:,.2f} GB, its limit is {limit / 1e9:,.2f} GB: "
        "nothing more is kept until files expire or an admin raises the limit."
    )


def tenant_figures(tenant: Tenant) -> dict:
    """For the admin: kept jobs, bytes, the oldest date and whether archiving has stopped."""
    jobs = KeptJob.objects.filter(tenant=tenant, status=KeptJob.Status.KEPT)
    figures = jobs.aggregate(jobs=Count("pk"), oldest=Min("kept_at"))
    return {
        **figures,
        "bytes": kept_bytes(tenant),
        "limit": limit_bytes(tenant),
        "full": over_limit(tenant),
    }


# --- Copying ----------------------------------------------------------------------------------


@task
def copy_job(kept_job_id: int) -> str:
    """Copy every file of a kept job that is not kept yet; returns the job's status after."""
    expire_due()
    now = timezone.now()
    stale = now - timedelta(seconds=STALE_SECONDS)
    # Claimed with one UPDATE, so of two workers given the same job only one copies it.
    claimed = KeptJob.objects.filter(
        Q(claimed_at=None) | Q(claimed_at__lt=stale),
        pk=kept_job_id,
        status=KeptJob.Status.COPYING,
    ).update(claimed_at=now)
    kept = KeptJob.objects.select_related("tenant").filter(pk=kept_job_id).first()
    if not claimed or kept is None:
        return kept.status if kept else "gone"
    snapshot = JobSnapshot.objects.get(tenant=kept.tenant, job_id=kept.job_id)
    try:
        _copy_all(kept, snapshot.job())
    except zuora.FileNotFound:
        _end(
            kept,
            KeptJob.Status.PURGED,
            "Could not be kept: Zuora purged the result files before aquadash had copied them.",
        )
    except (CopyFailed, zuora.ZuoraError) as exc:
        _retry(kept, str(exc))
    return kept.status


def _copy_all(kept: KeptJob, job: zuora.Job) -> None:
    files = {each.file_id: each for each in kept.files.all()}
    for batch in job.batches:
        batch_files = [files[file_id.lower()] for file_id in batch.file_ids]
        for each in batch_files:
            if each.status == KeptFile.Status.KEPT:
                continue
            if (full := over_limit(kept.tenant)) is not None:
                _end(kept, KeptJob.Status.FULL, full)
                return
            _copy_file(kept, job, each)
        _check_batch(job, batch, batch_files)
    kept.status, kept.kept_at, kept.detail, kept.claimed_at = (
        KeptJob.Status.KEPT,
        timezone.now(),
        "",
        None,
    )
    kept.save(update_fields=["status", "kept_at", "detail", "claimed_at"])
    _expire_later(kept)
    if files:  # the largest kept file sizes the job page's estimates, as a download's would
        largest = max(files.values(), key=lambda each: each.size or 0)
        JobSnapshot.keep_sample(kept.tenant, kept.job_id, largest.size or 0, largest.records)
    plural = "" if len(files) == 1 else "s"
    logger.info("Kept job %s of %s: %d file%s", kept.job_id, kept.tenant.slug, len(files), plural)


def _check_batch(job: zuora.Job, batch: zuora.Batch, batch_files: list[KeptFile]) -> None:
    """The batch's records, summed over its files, against Zuora's recordCount."""
    if job.is_pgp or batch.record_count is None:
        return
    counted = sum(each.records or 0 for each in batch_files)
    if counted == batch.record_count:
        return
    for each in batch_files:  # copied again from the start on the next try
        _remove(each.key)
        each.status, each.key = KeptFile.Status.WAITING, ""
        each.detail = f"RECORD COUNT MISMATCH: batch holds {counted:,}"
        each.save(update_fields=["status", "key", "detail"])
    raise CopyFailed(
        f"RECORD COUNT MISMATCH in batch {batch.name or batch.batch_id}: Zuora reported "
        f"{batch.record_count:,} records, the files hold {counted:,}"
    )


def _copy_file(kept: KeptJob, job: zuora.Job, kept_file: KeptFile) -> None:
    """Stream one file from Zuora into the store under a new random key; mark it kept only
    when it arrived whole."""
    if kept_file.key:  # a half file from a copy that broke, or whose worker was killed
        _remove(kept_file.key)
    key = f"{KEY_PREFIX}/{secrets.token_hex(2)}/{secrets.token_hex(16)}"
    kept_file.key, kept_file.status, kept_file.detail = key, KeptFile.Status.COPYING, ""
    kept_file.save(update_fields=["key", "status", "detail"])
    try:
        with breaker.guarded(kept.tenant):
            result = zuora.open_file(
                kept.tenant.zuora_connection(),
                file_id=kept_file.file_id,
                retention_days=settings.AQUADASH_FILE_RETENTION_DAYS,
            )
        reader = _Measured(result.chunks(), None if job.is_pgp else job.format, kept.pk)
        with result:
            saved = storage().save(key, File(reader, name=key))
        reader.finish()  # a stream cut short raised already (its length is checked on the way)
    except zuora.FileNotFound:
        _remove(key)
        kept_file.status = KeptFile.Status.PURGED
        kept_file.save(update_fields=["status"])
        raise
    except (zuora.ZuoraError, results.ResultUnreadable, CopyFailed) as exc:
        _remove(key)
        _failed(kept_file, f"The copy from Zuora failed: {exc}")
    except Exception as exc:  # the store's own errors: a full disk, S3 not answering, refused
        logger.warning("Archive store failed for job %s: %r", kept.job_id, exc)
        _remove(key)
        _failed(kept_file, f"The archive store failed: {type(exc).__name__}: {exc}")
    kept_file.key, kept_file.size, kept_file.sha256 = saved, reader.size, reader.sha256.hexdigest()
    kept_file.records = reader.records
    kept_file.status, kept_file.kept_at = KeptFile.Status.KEPT, timezone.now()
    kept_file.save()


def _failed(kept_file: KeptFile, detail: str) -> None:
    kept_file.status, kept_file.detail = KeptFile.Status.FAILED, detail[:500]
    kept_file.save(update_fields=["status", "detail"])
    raise CopyFailed(detail)


class _Measured(io.RawIOBase):
    """A file-like view of Zuora's stream for the storage API, which reads it in pieces:
    counts its bytes, hashes it and counts its CSV records as they pass, and keeps telling that
    the worker is alive."""

    def __init__(self, chunks: Iterator[bytes], file_format: str | None, kept_job_id: int) -> None:
        self._chunks = chunks
        self._left = b""
        self.size = 0
        self.sha256 = hashlib.sha256()
        self._decoder = results.decoder(file_format) if file_format is not None else None
        self._counter = results.RecordCounter()
        self._kept_job_id = kept_job_id
        self._beat = time.monotonic()

    @property
    def records(self) -> int | None:
        return self._counter.records if self._decoder is not None else None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._left:
            chunk = next(self._chunks, b"")
            if not chunk:
                return 0
            self._take(chunk)
            self._left = chunk
        size = min(len(buffer), len(self._left))
        buffer[:size], self._left = self._left[:size], self._left[size:]
        return size

    def _take(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.sha256.update(chunk)
        if self._decoder is not None:
            for piece in self._decoder.feed(chunk):
                self._counter.feed(piece)
        if time.monotonic() - self._beat > HEARTBEAT_SECONDS:
            self._beat = time.monotonic()
            KeptJob.objects.filter(pk=self._kept_job_id).update(claimed_at=timezone.now())

    def finish(self) -> None:
        """Raises ResultUnreadable when a gzip or zip file ended before its end."""
        if self._decoder is not None:
            self._decoder.finish()


def _retry(kept: KeptJob, detail: str) -> None:
    """Try again later, waiting longer each time; after ATTEMPTS, failed (shown in red)."""
    kept.attempts += 1
    kept.claimed_at = None
    if kept.attempts >= ATTEMPTS:
        _end(kept, KeptJob.Status.FAILED, f"{detail} (tried {kept.attempts} times)")
        return
    at = timezone.now() + timedelta(seconds=RETRY_SECONDS * 2 ** (kept.attempts - 1))
    kept.detail = f"{detail}. Trying again at {timezone.localtime(at):%H:%M:%S %Z}."[:500]
    kept.save(update_fields=["attempts", "claimed_at", "detail"])
    logger.warning("Copy of job %s failed (%s); again at %s", kept.job_id, detail, at)
    copy_job.using(run_after=at).enqueue(kept.pk)


def _end(kept: KeptJob, status: str, detail: str) -> None:
    kept.status, kept.detail, kept.claimed_at = status, detail[:500], None
    kept.save(update_fields=["status", "detail", "claimed_at", "attempts"])
    if status != KeptJob.Status.KEPT:
        logger.warning("Job %s of %s not kept: %s", kept.job_id, kept.tenant.slug, detail)


def try_again(kept: KeptJob) -> None:
    """A copy that failed, started afresh when someone asks (the store may be back)."""
    claimed = KeptJob.objects.filter(pk=kept.pk, status=KeptJob.Status.FAILED).update(
        status=KeptJob.Status.COPYING, attempts=0, detail="", claimed_at=None
    )
    if claimed:
        kept.refresh_from_db()
        copy_job.enqueue(kept.pk)


def revive_if_stalled(kept: KeptJob) -> None:
    """Queue the copy again when the worker copying it stopped saying so: it was killed."""
    stale = timezone.now() - timedelta(seconds=STALE_SECONDS)
    if kept.status == KeptJob.Status.COPYING and kept.claimed_at and kept.claimed_at < stale:
        copy_job.enqueue(kept.pk)


def _remove(key: str) -> None:
    if not key:
        return
    try:
        storage().delete(key)
    except Exception as exc:  # the store is down: the key is random and never served
        logger.warning("Could not remove a half-copied file from the archive: %r", exc)


# --- Expiry ---------------------------------------------------------------------------------


def expire_due(*, today: date | None = None) -> int:
    """Remove the files of jobs kept past their date, at most once an hour whichever worker
    gets here (or always, given `today`); returns how many jobs expired."""
    if today is None and not shared_cache.add("archive:expired", 1, timeout=3600):
        return 0
    due = KeptJob.objects.filter(kept_until__lt=today or timezone.localdate()).exclude(
        status=KeptJob.Status.EXPIRED
    )
    expired = 0
    for kept in due.select_related("tenant"):
        _expire(kept)
        expired += 1
    return expired


@task
def expire_job(kept_job_id: int) -> str:
    """Queued for the day after a job's date when it is kept: removes its files then."""
    kept = KeptJob.objects.select_related("tenant").filter(pk=kept_job_id).first()
    if kept is None or kept.status == KeptJob.Status.EXPIRED:
        return "gone"
    if kept.kept_until >= timezone.localdate():  # not yet: the worker ran it early
        _expire_later(kept)
        return kept.status
    _expire(kept)
    return kept.status


def _expire_later(kept: KeptJob) -> None:
    day_after = datetime.combine(kept.kept_until + timedelta(days=1), datetime.min.time())
    expire_job.using(run_after=timezone.make_aware(day_after)).enqueue(kept.pk)


def _expire(kept: KeptJob) -> None:
    for each in kept.files.exclude(key=""):
        storage().delete(each.key)
    removed = kept.files.filter(status=KeptFile.Status.KEPT).update(
        status=KeptFile.Status.WAITING, key=""
    )
    kept.status, kept.expired_at = KeptJob.Status.EXPIRED, timezone.now()
    kept.detail = f"Expired on {kept.kept_until:%Y-%m-%d}: {removed} files removed."
    kept.save(update_fields=["status", "expired_at", "detail"])
    logger.info("Archive: job %s of %s expired", kept.job_id, kept.tenant.slug)


# --- Serving ----------------------------------------------------------------------------------


class KeptResult:
    """A kept file opened for reading, in the shape of zuora.ResultFile: `chunks()`, `length`,
    `close()`. Read in pieces from the store, never whole."""

    track_id = ""
    content_type = "application/octet-stream"

    def __init__(self, kept_file: KeptFile) -> None:
        self.length = kept_file.size
        self.records = kept_file.records  # as counted when it was kept, of these same bytes
        try:
            self.path: str | None = storage().path(kept_file.key)
        except NotImplementedError:  # a store with no local files (S3)
            self.path = None
        try:
            handle = storage().open(kept_file.key, "rb")
            # An S3 file would download itself whole to a temporary file before the first
            # read; its object's body streams instead.
            obj = getattr(handle, "obj", None)
            self._body = obj.get()["Body"] if obj is not None else handle
        except Exception as exc:
            logger.warning("Archive store failed opening file %s: %r", kept_file.file_id, exc)
            raise ArchiveUnavailable(
                "aquadash keeps this file, but its archive is not answering. Try again in a "
                "minute; if it lasts, tell whoever runs aquadash."
            ) from None

    def chunks(self, chunk_size: int = READ_SIZE) -> Iterator[bytes]:
        sent = 0
        try:
            while chunk := self._body.read(chunk_size):
                sent += len(chunk)
                yield chunk
        except Exception as exc:
            logger.warning("Archive store broke off after %s bytes: %r", sent, exc)
        if sent != self.length:
            raise ArchiveUnavailable("The file from aquadash's archive broke off before its end.")

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> "KeptResult":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _SentFile(io.FileIO):
    """A kept file as FileResponse sends it, telling on close how much of it was sent: a server
    with sendfile moves its position as it sends (socket.sendfile), others read it."""

    def __init__(self, path: str, on_close: Callable[[int], None]) -> None:
        super().__init__(path, "rb")
        self._on_close: Callable[[int], None] | None = on_close

    def close(self) -> None:
        if self.closed:
            return
        sent = self.tell()
        super().close()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close(sent)


def sent_from_disk(
    result: "KeptResult",
    download: Download,
    *,
    on_complete: Callable[[int | None], tuple[str, str, int | None]],
) -> FileResponse | None:
    """A kept file on the filesystem as Django's FileResponse, so that the server sends it from
    disk as it sends any file (with sendfile under gunicorn), or None for a store with no local
    files. `on_complete(records)` gives the outcome of a download sent whole, from the records
    counted when the file was kept; the download is finished when the server closes the file."""
    if result.path is None:
        return None
    result.close()

    def finish(sent: int) -> None:
        download.bytes_sent = sent
        with transaction.atomic():  # the download and its audit event: one commit, not two
            if sent != result.length:
                download.finish(Download.Outcome.CANCELLED)
                return
            outcome, detail, records = on_complete(result.records)
            download.finish(outcome, detail=detail, records=records)

    return FileResponse(_SentFile(result.path, finish))


def open_kept(tenant: Tenant, file_id: str, download: Download | None = None) -> KeptResult | None:
    """The kept copy of a tenant's result file, opened, or None when aquadash keeps none."""
    kept_file = (
        KeptFile.objects.filter(
            kept_job__tenant=tenant, file_id=file_id.lower(), status=KeptFile.Status.KEPT
        )
        .exclude(kept_job__status=KeptJob.Status.EXPIRED)
        .first()
    )
    if kept_file is None:
        return None
    result = KeptResult(kept_file)
    if download is not None:
        download.from_archive = True  # saved when the download is finished
    return result


def kept_job(tenant: Tenant, job_id: str) -> KeptJob | None:
    return KeptJob.objects.filter(tenant=tenant, job_id=job_id).first()


def serves(tenant: Tenant, job_id: str) -> bool:
    """Whether the job's files are all kept, so its downloads work after Zuora's purge."""
    return KeptJob.objects.filter(tenant=tenant, job_id=job_id, status=KeptJob.Status.KEPT).exists()


# --- The job page's card --------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@tenant_required
def job_archive(request: HttpRequest, tenant: Tenant, job_id: str) -> HttpResponse:
    """Whether aquadash keeps the job's files, until when, and how the copy goes; POST is
    "Keep these files", a downloader's act (it fetches the result data, spending the tenant's
    API allowance), refused to a viewer as a download is. The job page loads it after itself."""
    if request.method == "POST" and not tenant.gives_files:
        note_refusal(request.user, tenant.slug, request.path)
        raise Http404(NOT_FOUND)
    snapshot = tenant.jobs.filter(job_id=job_id).first()
    if snapshot is None:
        return HttpResponse("aquadash has not stored this job yet.", status=404)
    job = snapshot.job()
    kept = kept_job(tenant, job_id)
    files_at_zuora = job.status == "completed" and job.is_final and job.has_files
    files_at_zuora = files_at_zuora and not snapshot.gone_at and not files_expired(job)
    if request.method == "POST":
        if kept is None and files_at_zuora:
            kept = keep(tenant, job, reason=KeptJob.Reason.ASKED, user=request.user)
        elif kept is not None and kept.status == KeptJob.Status.FAILED and files_at_zuora:
            try_again(kept)
        if not request.htmx:
            return redirect("job", tenant_slug=tenant.slug, job_id=job_id)
    if kept is not None:
        revive_if_stalled(kept)
    files = list(kept.files.order_by("pk")) if kept else []
    context = {
        "tenant": tenant,
        "job_id": job_id,
        "job": job,
        "kept": kept,
        "files": files,
        "failed_files": [
            each
            for each in files
            if each.status in (KeptFile.Status.FAILED, KeptFile.Status.PURGED)
        ],
        "can_keep": tenant.gives_files
        and files_at_zuora
        and (kept is None or kept.status == KeptJob.Status.FAILED),
        "archive_days": settings.AQUADASH_ARCHIVE_DAYS,
    }
    template = "job_archive.html#card" if request.htmx else "job_archive.html"
    with timezone.override(tenant.zoneinfo):
        response = render(request, template, context)
    add_never_cache_headers(response)
    return response


def files_expired(job: zuora.Job) -> bool:
    """Whether Zuora has probably purged the job's files, counting from its start (as the job
    page's Retention does: Zuora does not say when a job completed)."""
    if job.start_time is None:
        return False
    try:
        purged_at = job.start_time + timedelta(days=settings.AQUADASH_FILE_RETENTION_DAYS)
    except OverflowError:  # a start time near the year 9999: not purged, whatever it means
        return False
    return purged_at <= timezone.now()
