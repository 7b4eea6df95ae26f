"""A job's result data for the browser: which files it lists, what they are called, and streams
from Zuora that are counted and recorded while they pass through.

A download view checks the tenant, finds the file or batch in the job aquadash stored (so no ID
the job does not list ever reaches Zuora), opens the first file before answering (so a purged
file is a page, not a broken download) and hands `recorded` the rest.
"""

import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from aquadash import breaker, results, zuora
from aquadash.models import Download, JobSnapshot, Tenant

logger = logging.getLogger(__name__)

CONTENT_TYPES = {
    ".csv": "text/csv; charset=utf-8",
    ".gz": "application/gzip",
    ".zip": "application/zip",
    ".pgp": "application/octet-stream",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".txt": "text/plain; charset=utf-8",
}


class NotDownloadable(zuora.ZuoraError):
    """Something the job's own data rules out, such as joining encrypted parts."""

    http_status = 409
    summary = "not downloadable"
    title = "Cannot download it that way"
    next_step = "job"


@dataclass(frozen=True)
class Part:
    """One result file a job lists: a batch's file, or one of its segments."""

    batch: zuora.Batch
    number: int  # 1-based among the batch's segments; 0 for a batch's single file
    of: int


def listed_files(job: zuora.Job) -> dict[str, Part]:
    """Every file ID the job lists, and where: the only IDs a download may ask Zuora for."""
    files = {}
    for batch in job.batches:
        if batch.file_id:
            files[batch.file_id.lower()] = Part(batch, 0, 1)
        for number, segment in enumerate(batch.segments, start=1):
            files[segment.lower()] = Part(batch, number, len(batch.segments))
    return files


def extension(job: zuora.Job, *, decoded: bool = False) -> str:
    """`.csv`, `.csv.gz`, `.zip` or with `.pgp`, as Zuora makes the file; `decoded`: as CSV."""
    pgp = ".pgp" if job.encrypted.lower() == "pgp" else ""
    if decoded:
        return ".csv" + pgp
    return {"GZIP": f".csv{pgp}.gz", "ZIP": ".zip"}.get(job.format.upper(), f".csv{pgp}")


def content_type(filename: str) -> str:
    """Only types from our own list; nothing a browser might run."""
    return CONTENT_TYPES.get("." + filename.rsplit(".", 1)[-1], "application/octet-stream")


def file_name(
    job: zuora.Job,
    batch: zuora.Batch | None = None,
    *,
    part: int = 0,
    of: int = 0,
    suffix: str = "",
) -> str:
    """`Nightly-export-Account.csv`, `...-part-003-of-012.csv.gz`: from names people gave, made
    safe for every file system and header."""
    words = [job.name or f"aqua-job-{job.id}"]
    if batch is not None:
        words.append(batch.name or batch.batch_id)
    stem = "-".join(filter(None, (_safe(word) for word in words))) or f"aqua-job-{job.id}"
    if part:
        width = max(3, len(str(of)))
        stem += f"-part-{part:0{width}d}-of-{of:0{width}d}"
    return stem[:150] + suffix


def _safe(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = "".join(c if c.isprintable() else " " for c in text)
    text = re.sub(r'[\\/:*?"<>|;,=\s]+', "-", text)  # separators, quotes, header delimiters
    return text.strip("-. ")[:80]


def open_file(tenant: Tenant, file_id: str) -> zuora.ResultFile:
    with breaker.guarded(tenant):
        return zuora.open_file(
            tenant.zuora_connection(),
            file_id=file_id,
            retention_days=settings.AQUADASH_FILE_RETENTION_DAYS,
        )


def opener(
    tenant: Tenant, first_id: str, first: zuora.ResultFile
) -> Callable[[str], zuora.ResultFile]:
    """Opens the tenant's result files; the first one the view already opened, before it
    answered, so that a purged file is an error page rather than a broken download."""
    opened = {first_id: first}

    def open_result(file_id: str) -> zuora.ResultFile:
        return opened.pop(file_id, None) or open_file(tenant, file_id)

    return open_result


def open_parts(
    job: zuora.Job, batch: zuora.Batch, open_result: Callable[[str], zuora.ResultFile]
) -> Iterator[Iterator[bytes]]:
    """Each of the batch's files as CSV, each opened only when the one before has been read."""
    for file_id in batch.file_ids:
        yield decoded(open_result(file_id), job.format)


def joined(
    job: zuora.Job, batch: zuora.Batch, open_result: Callable[[str], zuora.ResultFile]
) -> Iterator[bytes]:
    """The batch's files as one CSV, its header read before this returns: a first file with no
    header aquadash can read is a page, not a broken download."""
    chunks = results.joined(open_parts(job, batch, open_result))
    try:
        header = next(chunks, b"")
    except results.ResultUnreadable as exc:
        raise NotDownloadable(f"aquadash cannot join this batch's files: {exc}.") from None
    return _after(header, chunks)


def _after(first: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from chunks  # and closes them when the browser goes


def closing(result: zuora.ResultFile) -> Iterator[bytes]:
    """The file's bytes as Zuora sends them; Zuora's stream is closed however this ends."""
    with result:
        yield from result.chunks()


def decoded(result: zuora.ResultFile, file_format: str) -> Iterator[bytes]:
    """The file as CSV, unpacked from gzip or zip as it streams."""
    with result:
        yield from results.decoded(result.chunks(), file_format)


def file_chunks(file: IO[bytes]) -> Iterator[bytes]:
    with file:
        while chunk := file.read(results.PIECE):
            yield chunk


def job_members(
    job: zuora.Job,
    batches: list[zuora.Batch],
    download: Download,
    open_result: Callable[[str], zuora.ResultFile],
) -> Iterator[tuple[str, Iterator[bytes]]]:
    """The files of a whole-job zip: each batch as one CSV with its count checked, or, for an
    encrypted job, every part as Zuora made it."""
    for batch in batches:
        if job.encrypted.lower() != "pgp":
            joined = results.joined(open_parts(job, batch, open_result))
            yield file_name(job, batch, suffix=".csv"), _checked(download, job, batch, joined)
            continue
        of = len(batch.segments)
        for number, file_id in enumerate(batch.file_ids, start=1):
            name = file_name(job, batch, part=number if of else 0, of=of) + extension(job)
            yield name, closing(open_result(file_id))


def _checked(
    download: Download, job: zuora.Job, batch: zuora.Batch, chunks: Iterator[bytes]
) -> Iterator[bytes]:
    counter = results.RecordCounter()
    yield from counting(chunks, "CSV", counter)
    check_count(download, job, batch, counter.records)


def recorded(
    download: Download,
    chunks: Iterable[bytes],
    *,
    on_complete: Callable[[], tuple[str, str, int | None]] | None = None,
) -> Iterator[bytes]:
    """Pass the chunks to the browser, noting bytes sent and how the download ended.

    A stream that breaks is re-raised, so the server drops the connection and the browser marks
    the download failed instead of saving a short file that looks whole. A browser that leaves
    closes this generator, which closes Zuora's stream on its way out.
    """
    outcome, detail, records = Download.Outcome.STARTED, "", None
    try:
        for chunk in chunks:
            download.bytes_sent += len(chunk)
            yield chunk
        outcome, detail, records = (
            on_complete() if on_complete else (Download.Outcome.COMPLETE, "", None)
        )
    except GeneratorExit:
        outcome = Download.Outcome.CANCELLED
        raise
    except (zuora.ZuoraError, results.ResultUnreadable) as exc:
        outcome, detail = Download.Outcome.BROKEN, str(exc)
        logger.warning(
            "Download %s broke off after %s bytes: %s", download.pk, download.bytes_sent, exc
        )
        raise
    finally:
        download.finish(outcome, detail=detail, records=records)


def counting(
    chunks: Iterable[bytes], file_format: str, counter: results.RecordCounter
) -> Iterator[bytes]:
    """Pass a result file on unchanged while counting the CSV records inside it.

    Each chunk is passed on once the next has been read, and the last only when the file has
    proved whole: a gzip or zip cut short (even one Zuora gave a length for) never reaches the
    browser complete, so the browser marks the download failed.
    """
    decoder = results.decoder(file_format)
    held = b""
    for chunk in chunks:
        for piece in decoder.feed(chunk):
            counter.feed(piece)
        if held:
            yield held
        held = chunk
    decoder.finish()
    if held:
        yield held


def check_count(
    download: Download, job: zuora.Job, batch: zuora.Batch, counted: int
) -> tuple[str, str, int]:
    """Store the count of a whole batch and compare it with Zuora's recordCount."""
    with transaction.atomic():  # two batches of one job may finish counting at once
        snapshot = (
            JobSnapshot.objects.select_for_update()
            .filter(tenant=download.tenant, job_id=job.id)
            .first()
        )
        if snapshot:
            snapshot.record_counts[batch.batch_id] = {
                "counted": counted,
                "expected": batch.record_count,
                "checked_at": timezone.now().isoformat(),
            }
            snapshot.save(update_fields=["record_counts"])
    if batch.record_count is not None and counted != batch.record_count:
        detail = (
            f"RECORD COUNT MISMATCH: Zuora reported {batch.record_count:,} records, "
            f"the file holds {counted:,}"
        )
        return Download.Outcome.MISMATCH, detail, counted
    return Download.Outcome.COMPLETE, "", counted


def segment_list(batch: zuora.Batch) -> str:
    return "".join(f"{segment}\n" for segment in batch.segments)
