"""A job's result data for the browser: which files it lists, what they are called, and streams
from Zuora that are counted and recorded while they pass through.

A download view checks the tenant and finds the file or batch in the job aquadash stored (so no
ID the job does not list ever reaches Zuora), then asks `one_file`, `whole_batch` or `whole_job`
for its response. The last two first ask to confirm a download estimated above
AQUADASH_CONFIRM_GB; a whole batch may also be only a portion of it (its first records, some of
its segments). Each opens the first file before answering (so a purged file is a page, not a
broken download) and hands `recorded` the rest; what fails before answering is noted on the
download and raised, for the view to show its error page.
"""

import functools
import logging
import re
import secrets
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponseBase, QueryDict, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.http import content_disposition_header

from aquadash import archive, breaker, jobs, results, zuora
from aquadash.models import Download, JobSnapshot, Tenant
from aquadash.shared_cache import shared_cache

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


class BadPortion(zuora.ZuoraError):
    """A part of a batch asked for that the batch does not have, or not in numbers."""

    http_status = 400
    summary = "no such part of the batch"
    title = "Check the part to download"
    next_step = "job"


class Busy(zuora.ZuoraError):
    """Too many heavy downloads under way, the person's own or everyone's."""

    http_status = 429
    summary = "too many downloads at once"
    title = "Too many downloads at once"
    next_step = "job"
    retry_after = 30  # a guess: an xlsx of a few hundred thousand records takes about that


@dataclass(frozen=True)
class Part:
    """One result file a job lists: a batch's file, or one of its segments."""

    batch: zuora.Batch
    number: int  # 1-based among the batch's segments; 0 for a batch's single file
    of: int


def job_and_batch(tenant: Tenant, job_id: str, batch_id: str) -> tuple[zuora.Job, zuora.Batch]:
    job = jobs.stored_or_404(tenant, job_id).job()
    batch = next((b for b in job.batches if b.batch_id == batch_id), None)
    if batch is None:
        raise Http404("No such batch in this job.")
    return job, batch


def job_and_part(tenant: Tenant, job_id: str, file_id: str) -> tuple[zuora.Job, Part]:
    """The stored job and where it lists the file: no other file ID ever reaches Zuora."""
    job = jobs.stored_or_404(tenant, job_id).job()
    part = listed_files(job).get(file_id)
    if part is None:
        raise Http404("This job lists no such result file.")
    return job, part


@dataclass(frozen=True)
class Portion:
    """Which part of a batch a joined download holds: all of it, its segments `segments[0]`
    to `segments[1]` (1-based, inclusive), the first `first` records, or both."""

    first: int | None = None
    segments: tuple[int, int] | None = None

    @property
    def whole(self) -> bool:
        return self.first is None and self.segments is None

    def file_ids(self, batch: zuora.Batch) -> list[str]:
        if self.segments is None:
            return batch.file_ids
        return batch.file_ids[self.segments[0] - 1 : self.segments[1]]

    @property
    def suffix(self) -> str:
        """For the file's name, which says it holds a part: `-segments-3-5-first-1000`."""
        words = f"-segments-{self.segments[0]}-{self.segments[1]}" if self.segments else ""
        return words + (f"-first-{self.first}" if self.first else "")

    @property
    def label(self) -> str:
        """For the download trail: `segments 3–5, first 1,000 records`."""
        words = [f"segments {self.segments[0]}–{self.segments[1]}"] if self.segments else []
        if self.first:
            words.append(f"first {self.first:,} record{'s' * (self.first > 1)}")
        return ", ".join(words)


WHOLE = Portion()


def requested_portion(request: HttpRequest, batch: zuora.Batch) -> Portion:
    """`?first=N`, `?from=i&to=j` or both, checked against the batch: else BadPortion."""
    first = _whole_number(request.GET, "first", "a number of records")
    start = _whole_number(request.GET, "from", "a segment number")
    end = _whole_number(request.GET, "to", "a segment number")
    if (start is None) != (end is None):
        raise BadPortion("Give both the first and the last segment to download, as 3 and 5.")
    count = len(batch.file_ids)
    segments = None
    if start is not None and end is not None:
        if start > end:
            raise BadPortion(
                f"Segment {start} comes after segment {end}: give the lower number first."
            )
        if end > count:
            raise BadPortion(
                f"This batch has {count:,} segment{'s' * (count > 1)}, so there is no segment "
                f"{end:,}: give numbers from 1 to {count:,}."
            )
        segments = (start, end)
    return Portion(first, segments)


def _whole_number(query: QueryDict, name: str, what: str) -> int | None:
    if name not in query:
        return None
    text = query[name].strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 12 and int(text) >= 1):
        shown = text[:20] or "nothing"
        raise BadPortion(f"“{shown}” is not {what}: give a whole number of 1 or more.")
    return int(text)


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
    pgp = ".pgp" if job.is_pgp else ""
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


def open_file(
    tenant: Tenant, file_id: str, download: Download | None = None
) -> zuora.ResultFile | archive.KeptResult:
    """The file from aquadash's archive when it keeps it (Zuora is not asked), else Zuora's."""
    if kept := archive.open_kept(tenant, file_id, download):
        return kept
    with breaker.guarded(tenant):
        return zuora.open_file(
            tenant.zuora_connection(),
            file_id=file_id,
            retention_days=settings.AQUADASH_FILE_RETENTION_DAYS,
        )


def opener(tenant: Tenant, first_id: str, download: Download) -> Callable[[str], zuora.ResultFile]:
    """Opens the tenant's result files; the first one at once, before the response answers, so
    that a purged file is an error page rather than a broken download."""
    opened = {first_id: open_file(tenant, first_id, download)}

    def open_result(file_id: str) -> zuora.ResultFile:
        return opened.pop(file_id, None) or open_file(tenant, file_id, download)

    return open_result


def open_parts(
    job: zuora.Job, file_ids: list[str], open_result: Callable[[str], zuora.ResultFile]
) -> Iterator[Iterator[bytes]]:
    """Each of a batch's files as CSV, each opened only when the one before has been read."""
    for file_id in file_ids:
        yield decoded(open_result(file_id), job.format)


def joined(
    job: zuora.Job, file_ids: list[str], open_result: Callable[[str], zuora.ResultFile]
) -> Iterator[bytes]:
    """A batch's files as one CSV, its header read before this returns: a first file with no
    header aquadash can read is a page, not a broken download."""
    chunks = results.joined(open_parts(job, file_ids, open_result))
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
        if not job.is_pgp:
            joined = results.joined(open_parts(job, batch.file_ids, open_result))
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


@dataclass(frozen=True)
class Estimate:
    """What aquadash knows of a download's size before making it, without asking Zuora: the
    records Zuora counted, the files, and a size scaled from the job's largest file downloaded
    whole before (its sample), if any was."""

    records: int | None
    files: int
    size: int | None  # bytes, as Zuora makes the files (compressed for gzip and zip)
    measured: int  # the bytes of the file the size is scaled from
    compressed: bool

    @property
    def too_big(self) -> bool:
        return self.size is not None and self.size > settings.AQUADASH_CONFIRM_GB * 1e9


def estimate(
    job: zuora.Job,
    batches: list[zuora.Batch],
    sample: tuple[int | None, int | None],
    portion: Portion = WHOLE,
) -> Estimate:
    """The size of `portion` of `batches`, scaled from the job's `sample` (bytes, records) by
    its bytes per record when both record counts are known, else by its bytes per file."""
    wanted = [batch for batch in batches if batch.file_ids]
    files = sum(len(portion.file_ids(batch)) for batch in wanted)
    counts = [batch.record_count for batch in wanted]
    records = None if None in counts or portion.segments else sum(counts)
    if portion.first is not None:
        records = portion.first if records is None else min(records, portion.first)
    length, counted = sample
    size = None
    if length:
        if counted and records is not None:
            size = round(length / counted * records)
        else:
            size = length * files
    return Estimate(records, files, size, length or 0, job.format.upper() in ("GZIP", "ZIP"))


def page_estimates(job: zuora.Job, snapshot: JobSnapshot) -> dict[str, Estimate]:
    """What the job page says beside its joined downloads: each batch's by its ID, and the
    job zip's as "job"; from the stored job alone, so the page asks neither Zuora nor the
    download trail."""
    sample = (snapshot.sample_bytes, snapshot.sample_records)
    sizes = {batch.batch_id: estimate(job, [batch], sample) for batch in job.batches}
    return sizes | {"job": estimate(job, job.batches, sample)}


def _confirmation(
    request: HttpRequest,
    tenant: Tenant,
    job: zuora.Job,
    batches: list[zuora.Batch],
    what: str,
    portion: Portion = WHOLE,
) -> HttpResponseBase | None:
    """A page asking to confirm a download estimated above AQUADASH_CONFIRM_GB, unless the link
    already carries `?confirm=1`: a plain link, so it works without JavaScript. For a batch it
    also offers the batch's first records or some of its segments."""
    if request.GET.get("confirm") == "1":
        return None
    sample = tenant.jobs.filter(job_id=job.id).values_list("sample_bytes", "sample_records")
    sizes = estimate(job, batches, sample.first() or (None, None), portion)
    if not sizes.too_big:
        return None
    query = request.GET.copy()
    query["confirm"] = "1"
    context = {
        "tenant": tenant,
        "job": job,
        "what": what,
        "estimate": sizes,
        "limit_gb": settings.AQUADASH_CONFIRM_GB,
        "anyway": f"{request.path}?{query.urlencode()}",
        "batch": batches[0] if len(batches) == 1 else None,
        "variant": request.GET.get("as", ""),
        "xlsx_max_records": results.EXCEL_MAX_ROWS - 1,
    }
    response = render(request, "download_confirm.html", context)
    add_never_cache_headers(response)
    return response


def segment_list(batch: zuora.Batch) -> str:
    return "".join(f"{segment}\n" for segment in batch.segments)


def one_file(
    request: HttpRequest, tenant: Tenant, job: zuora.Job, part: Part, file_id: str
) -> HttpResponseBase:
    """One result file, streamed from Zuora as it comes: as Zuora made it, or ready for Excel."""
    variant = _variant(request, job)
    download = Download.start(
        request.user,
        tenant,
        job.id,
        kind=Download.Kind.FILE,
        batch_id=part.batch.batch_id,
        file_id=file_id,
        variant=variant,
    )
    with _before_answering(download):
        result = open_file(tenant, file_id, download)
        name = file_name(job, part.batch, part=part.number, of=part.of)
        whole_batch = part.batch if part.number == 0 else None  # a segment is part of a count
        if variant:
            csv_chunks = decoded(result, job.format)
            return _csv_download(
                job, download, csv_chunks, name=name, variant=variant, whole_batch=whole_batch
            )
    if isinstance(result, archive.KeptResult):

        def complete(records: int | None) -> tuple[str, str, int | None]:
            if records is None:  # PGP: nothing to count
                return Download.Outcome.COMPLETE, "", None
            return _counted(download, job, whole_batch, records)

        if sent := archive.sent_from_disk(result, download, on_complete=complete):
            return _as_download(sent, name + extension(job))
    chunks = closing(result)
    if job.is_pgp or not settings.AQUADASH_COUNT_RECORDS:
        # PGP: encrypted to the tenant's key, so there is nothing aquadash can count.
        whole = (Download.Outcome.COMPLETE, "", None)
        response = StreamingHttpResponse(
            recorded(download, chunks, on_complete=lambda: _sampled(download, whole))
        )
    else:
        counter = results.RecordCounter()
        response = StreamingHttpResponse(
            recorded(
                download,
                counting(chunks, job.format, counter),
                on_complete=lambda: _sampled(
                    download, _counted(download, job, whole_batch, counter.records)
                ),
            )
        )
    if result.length is not None:
        response["Content-Length"] = str(result.length)
    return _as_download(response, name + extension(job))


def whole_batch(
    request: HttpRequest, tenant: Tenant, job: zuora.Job, batch: zuora.Batch, *, ask: bool = True
) -> HttpResponseBase:
    """All of a batch's segments, in order, as one CSV with one header row; or the portion of
    them asked for, whose count is not held against Zuora's. Above AQUADASH_CONFIRM_GB, first
    a page that asks, unless `ask` is off (a script that asked has no one to ask)."""
    if not batch.file_ids:
        raise Http404("This batch has no result files (yet).")
    if job.is_pgp:
        raise NotDownloadable(
            "This job's results are encrypted with the tenant's PGP key, so aquadash cannot "
            "join or convert them. Download the parts one by one and decrypt each."
        )
    variant = _variant(request, job)
    portion = requested_portion(request, batch)
    what = f"batch {batch.name or batch.batch_id} as one file"
    if ask and (confirm := _confirmation(request, tenant, job, [batch], what, portion)):
        return confirm
    download = Download.start(
        request.user,
        tenant,
        job.id,
        kind=Download.Kind.BATCH,
        batch_id=batch.batch_id,
        variant=variant,
        portion=portion.label,
    )
    file_ids = portion.file_ids(batch)
    with _before_answering(download):
        csv_chunks = joined(job, file_ids, opener(tenant, file_ids[0], download))
        if portion.first:
            csv_chunks = results.first_records(csv_chunks, portion.first)
        return _csv_download(
            job,
            download,
            csv_chunks,
            name=file_name(job, batch) + portion.suffix,
            variant=variant or "csv",
            whole_batch=batch if portion.whole else None,
            sheet=batch.name,
        )


def whole_job(
    request: HttpRequest, tenant: Tenant, job: zuora.Job, *, ask: bool = True
) -> HttpResponseBase:
    """The whole job as one zip, one CSV per batch (the encrypted parts as they are, for PGP);
    above AQUADASH_CONFIRM_GB, first a page that asks, unless `ask` is off."""
    batches = [batch for batch in job.batches if batch.file_ids]
    if not batches:
        raise Http404("This job has no result files (yet).")
    if ask and (confirm := _confirmation(request, tenant, job, batches, "the whole job as a zip")):
        return confirm
    download = Download.start(request.user, tenant, job.id, kind=Download.Kind.JOB)
    with _before_answering(download):
        open_result = opener(tenant, batches[0].file_ids[0], download)
    members = job_members(job, batches, download, open_result)
    response = StreamingHttpResponse(recorded(download, results.zipped(members)))
    return _as_download(response, file_name(job, suffix=".zip"))


@contextmanager
def _before_answering(download: Download) -> Iterator[None]:
    """What fails before the response answers (the first file, a join's header, a workbook) is
    an error page rather than a broken download: noted on the download, raised for the view.

    A workbook is the one result read whole before answering, so a result aquadash cannot read
    here is a workbook it could not make.
    """
    try:
        yield
    except zuora.ZuoraError as exc:
        download.finish(Download.Outcome.FAILED, detail=str(exc))
        raise
    except results.ResultUnreadable as exc:
        download.finish(Download.Outcome.FAILED, detail=str(exc))
        raise NotDownloadable(
            f"aquadash could not make a workbook of this result: {exc}."
        ) from None


def _variant(request: HttpRequest, job: zuora.Job) -> str:
    """`?as=`: nothing for the file as Zuora made it, `excel` for CSV with a byte-order mark,
    `xlsx` for a workbook. Encrypted results can only be had as they are."""
    variant = request.GET.get("as", "")
    if variant not in ("", "csv", "excel", "xlsx"):
        raise Http404("No such download format.")
    if variant and job.is_pgp:
        raise Http404("Encrypted results can only be downloaded as Zuora made them.")
    return variant


def _csv_download(
    job: zuora.Job,
    download: Download,
    csv_chunks: Iterator[bytes],
    *,
    name: str,
    variant: str,
    whole_batch: zuora.Batch | None,
    sheet: str = "",
) -> HttpResponseBase:
    """A result as CSV (`csv`), CSV for Excel (`excel`) or a workbook (`xlsx`), counted and
    checked against Zuora's count when it holds `whole_batch`."""
    if variant == "xlsx":
        sheet = sheet or (whole_batch.name if whole_batch else "Results")
        return _xlsx_download(job, download, csv_chunks, name=name, sheet=sheet, batch=whole_batch)
    counter = results.RecordCounter()

    def complete() -> tuple[str, str, int | None]:
        return _counted(download, job, whole_batch, counter.records)

    chunks = counting(csv_chunks, "CSV", counter)
    if variant == "excel":
        chunks, name = results.for_excel(chunks), name + "-excel"
    chunks = recorded(download, chunks, on_complete=complete)
    return _as_download(StreamingHttpResponse(chunks), name + ".csv")


def _xlsx_download(
    job: zuora.Job,
    download: Download,
    csv_chunks: Iterator[bytes],
    *,
    name: str,
    sheet: str,
    batch: zuora.Batch | None,
) -> HttpResponseBase:
    """A workbook is a zip whose parts are written at its end, so it is made in a temporary
    file first (XlsxWriter's constant-memory mode) and then streamed with its length."""
    workbook: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115  # closed by the stream
    try:
        records = results.write_xlsx(results.csv_rows(csv_chunks), workbook, sheet=sheet)
    except (zuora.ZuoraError, results.ResultUnreadable):
        workbook.close()
        raise
    outcome = _counted(download, job, batch, records)
    size = workbook.tell()
    workbook.seek(0)
    chunks = recorded(download, file_chunks(workbook), on_complete=lambda: outcome)
    response = StreamingHttpResponse(chunks)
    response["Content-Length"] = str(size)
    return _as_download(response, name + ".xlsx")


def _counted(
    download: Download, job: zuora.Job, batch: zuora.Batch | None, records: int
) -> tuple[str, str, int | None]:
    """A download's outcome once its records are counted: checked against Zuora's count when
    it held a whole batch."""
    if batch is None:
        return Download.Outcome.COMPLETE, "", records
    return check_count(download, job, batch, records)


def _sampled(
    download: Download, outcome: tuple[str, str, int | None]
) -> tuple[str, str, int | None]:
    """A file download's outcome, keeping the file as its job's sample when it came whole."""
    if outcome[0] == Download.Outcome.COMPLETE:
        JobSnapshot.keep_sample(download.tenant, download.job_id, download.bytes_sent, outcome[2])
    return outcome


def _as_download(response: HttpResponseBase, filename: str) -> HttpResponseBase:
    response["Content-Type"] = content_type(filename)
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return as_attachment(response, filename)


def as_attachment(response: HttpResponseBase, filename: str) -> HttpResponseBase:
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


# --- Heavy downloads: how many at once ------------------------------------------------------

# A slot nobody releases (its server was killed mid-download) frees itself after this long; a
# download that lasts longer renews its own slots while it streams.
SLOT_SECONDS = 600


class Slot:
    """One heavy download's place among the person's and everyone's, kept in the shared cache
    so that every app server counts the same downloads (each server its own while Redis is
    down: then every server still keeps threads for pages)."""

    def __init__(self, user: AbstractBaseUser) -> None:
        self._token = secrets.token_hex(8)
        self._keys: list[str] = []
        self._renewed = time.monotonic()
        limits = [
            (f"heavy:user:{user.pk}", settings.AQUADASH_HEAVY_DOWNLOADS_PER_PERSON),
            ("heavy:all", settings.AQUADASH_HEAVY_DOWNLOADS),
        ]
        for prefix, limit in limits:
            keys = (f"{prefix}:{number}" for number in range(limit))
            key = next(
                (key for key in keys if shared_cache.add(key, self._token, SLOT_SECONDS)), ""
            )
            if not key:
                self.release()
                raise Busy(_busy_message(mine=prefix != "heavy:all", limit=limit))
            self._keys.append(key)

    def renew(self) -> None:
        """Keep the slots of a download that is still streaming, at most once a minute or so."""
        if time.monotonic() - self._renewed > SLOT_SECONDS / 10:
            self._renewed = time.monotonic()
            for key in self._keys:
                shared_cache.set(key, self._token, SLOT_SECONDS)

    def release(self) -> None:
        keys, self._keys = self._keys, []
        for key in keys:
            if shared_cache.get(key) == self._token:  # not a slot that expired and was retaken
                shared_cache.delete(key)


def _busy_message(*, mine: bool, limit: int) -> str:
    if mine:
        return (
            f"You already have {limit} Excel, whole-batch or zip download{'s' * (limit > 1)} "
            f"under way, as many as aquadash makes at once for one person. Try again when "
            f"{'one has' if limit > 1 else 'it has'} finished."
        )
    return (
        f"aquadash is making {limit} Excel, whole-batch or zip download{'s' * (limit > 1)} "
        "right now, as many as it makes at once, so that pages stay quick for everyone. Try "
        "again in a minute."
    )


class _Holding:
    """A streaming response's chunks, holding the download's slot until the server closes the
    response: when the download has been sent, or when the browser went away."""

    def __init__(self, chunks: Iterable[bytes], slot: Slot) -> None:
        self._chunks = iter(chunks)
        self._slot = slot

    def __iter__(self) -> "_Holding":
        return self

    def __next__(self) -> bytes:
        self._slot.renew()
        return next(self._chunks)

    def close(self) -> None:
        self._slot.release()


# The variants of a single file that count as heavy: the file as Zuora made it only passes through.
HEAVY_FILE_VARIANTS = ("xlsx", "excel")


def heavily(
    request: HttpRequest,
    answer: Callable[[], HttpResponseBase],
    *,
    variants: tuple[str, ...] = (),
) -> HttpResponseBase:
    """`answer()`, counted among the heavy downloads while it streams (only when asked `?as=`
    one of `variants`, if given). Raises Busy beyond the limits."""
    if variants and request.GET.get("as", "") not in variants:
        return answer()
    slot = Slot(request.user)
    try:
        response = answer()
    except BaseException:
        slot.release()
        raise
    if response.streaming:
        response.streaming_content = _Holding(response.streaming_content, slot)
    else:  # an error page: the download never started
        slot.release()
    return response


def heavy(*, variants: tuple[str, ...] = ()) -> Callable:
    """A download view whose answers are heavy downloads (see `heavily`): beyond the limits, a
    429 page with Retry-After."""

    def decorate(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            try:
                return heavily(request, lambda: view(request, *args, **kwargs), variants=variants)
            except Busy as exc:
                return _busy_page(request, exc, kwargs["tenant"], kwargs["job_id"])

        return wrapper

    return decorate


def _busy_page(request: HttpRequest, exc: Busy, tenant: Tenant, job_id: str) -> HttpResponseBase:
    context = {"tenant": tenant, "job_id": job_id, "error": exc, "title": exc.title}
    response = render(request, "job_error.html", context, status=exc.http_status)
    response["Retry-After"] = str(exc.retry_after)
    add_never_cache_headers(response)
    return response
