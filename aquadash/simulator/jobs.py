"""AQuA jobs as the simulator holds them: how a submitted job is checked, how it moves with the
clock and how it is rendered as Zuora's job JSON."""

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

SEGMENT_ROWS = 500_000  # Zuora's fixed maximum of records per segment file
MAX_QUERIES = 50
# How Zuora cuts a full load into segments is not documented. Its examples: 132 and 1
# AccountingPeriod records in one segment each; 88 Account records in 18 and 1,322 in 27. So the
# number of files follows the object and grows slowly with the records, not records / 500,000.
ONE_FILE_OBJECTS = frozenset({"accountingperiod"})
BASE_PARTS = 18
RECORDS_PER_EXTRA_PART = 150
MAX_PARTS = 100  # ours: Zuora's examples say nothing of big loads beyond the 500,000 rule
FINAL_STATUSES = frozenset({"completed", "error", "aborted", "cancelled"})

# Objects that cannot export deleted records (Zuora's export-deleted-data page).
NO_DELETED_SUPPORT = frozenset(
    {"accountingcode", "accountingperiod", "paymenttransactionlog", "refundtransactionlog"}
    | {"processedusage", "discountappliedmetrics"}
)


def derived_id(*parts: object) -> str:
    """A stable 32-hex ID, so seeded batches and files keep their IDs across restarts."""
    return hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=16).hexdigest()


def local_time(timestamp: float, zone: ZoneInfo) -> str:
    """Zuora renders startTime in the tenant's time zone without saying which."""
    return datetime.fromtimestamp(timestamp, zone).strftime("%Y-%m-%d %H:%M:%S")


def utc_time(timestamp: float) -> str:
    """With dateTimeUtc, Zuora writes times in UTC with an offset: "2021-01-18T17:13:48+0000"
    (a job's startTime in guardian/support-frontend's captured answer; the POST reference
    documents the same YYYY-MM-DDThh:mm:ss±hhmm for dateTime values in the results)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass
class Batch:
    batch_id: str
    echo: dict[str, Any]  # name, query, batchType, apiVersion, full, deleted: whichever are shown
    record_count: int  # rows in its file(s) once completed
    file_ids: list[str]  # one file, or one per segment
    segmented: bool = False
    status: str | None = None  # fixed status; None follows the job's clock
    message: str = ""
    count_as_string: bool = False  # older tenants send recordCount as "1234"
    sizes: list[int] = field(default_factory=list)  # rows in each segment file, when segmented

    @property
    def query(self) -> str:
        return str(self.echo.get("query", ""))

    @property
    def deleted(self) -> dict[str, Any] | None:
        return self.echo.get("deleted")

    @property
    def has_deleted_rows(self) -> bool:
        """Full loads never export deleted rows; incremental loads and forceExport do."""
        deleted = self.deleted
        return bool(deleted) and (
            self.echo.get("full") is False or bool(deleted.get("forceExport"))
        )

    def segment_rows(self, segment: int | None) -> tuple[int, int]:
        """The slice [start, stop) of the result rows held by one file."""
        if segment is None:
            return 0, self.record_count
        start = sum(self.sizes[:segment])
        return start, start + self.sizes[segment]


@dataclass
class Job:
    job_id: str
    echo: dict[str, Any]  # top-level fields other than id, status, startTime and batches
    batches: list[Batch]
    created: float | None  # clock time of submission; None: set at the first GET
    status: str | None = None  # fixed status; None runs on the clock
    document: str | None = None  # served verbatim instead of rendering (Zuora's doc examples)
    use_query_labels: bool = False
    utc_times: bool = False  # submitted with dateTimeUtc: times in UTC, with an offset

    @property
    def partner_project(self) -> tuple[Any, Any]:
        return self.echo.get("partner"), self.echo.get("project")

    @property
    def stateful(self) -> bool:
        return is_stateful(self.echo.get("version", "1.0"), *self.partner_project)

    @property
    def format(self) -> str:
        return str(self.echo.get("format", "CSV")).upper()

    @property
    def encrypted(self) -> str:
        return str(self.echo.get("encrypted", "none")).lower()

    def statuses(self, now: float, batch_seconds: float) -> tuple[str, list[str]]:
        """The job's status and each batch's at `now`.

        A job on the clock is submitted for one `batch_seconds`, then runs its batches one after
        another, each taking `batch_seconds`.
        """
        count = len(self.batches)
        if self.status is not None:
            return self.status, [batch.status or "completed" for batch in self.batches]
        assert self.created is not None
        elapsed = now - self.created
        if batch_seconds <= 0:
            return "completed", ["completed"] * count
        if elapsed < batch_seconds:
            return "submitted", ["pending"] * count
        done = int((elapsed - batch_seconds) // batch_seconds)
        if done >= count:
            return "completed", ["completed"] * count
        return "executing", ["completed"] * done + ["executing"] + ["pending"] * (count - done - 1)

    def cancel(self, now: float, batch_seconds: float) -> None:
        _, batch_statuses = self.statuses(now, batch_seconds)
        for batch, status in zip(self.batches, batch_statuses, strict=True):
            batch.status = "completed" if status == "completed" else "cancelled"
        self.status = "cancelled"

    def render(
        self, now: float, batch_seconds: float, zone: ZoneInfo, *, just_submitted: bool = False
    ) -> dict[str, Any]:
        """The job JSON; the POST answer has no startTime, like Zuora's."""
        status, batch_statuses = self.statuses(now, batch_seconds)
        if just_submitted:
            status, batch_statuses = "submitted", ["pending"] * len(self.batches)
        job: dict[str, Any] = {"id": self.job_id, **self.echo, "status": status}
        if not just_submitted and self.created is not None:
            job["startTime"] = (
                utc_time(self.created) if self.utc_times else local_time(self.created, zone)
            )
        job["batches"] = [
            render_batch(batch, batch_status)
            for batch, batch_status in zip(self.batches, batch_statuses, strict=True)
        ]
        return job


def render_batch(batch: Batch, status: str) -> dict[str, Any]:
    # localizedStatus is on every batch, on POST and on GET alike (Guardian's captures); no
    # real answer has one at the job level.
    rendered: dict[str, Any] = {"batchId": batch.batch_id, **batch.echo, "status": status}
    rendered["localizedStatus"] = status
    count = batch.record_count if status == "completed" else 0
    rendered["recordCount"] = str(count) if batch.count_as_string else count
    if status in ("completed", "aborted", "deleted_notallowed"):
        rendered["message"] = batch.message
    if status == "completed":
        if batch.segmented:
            rendered["segments"] = list(batch.file_ids)
        else:
            rendered["fileId"] = batch.file_ids[0]
    return rendered


class Rejected(Exception):
    """A submission Zuora refuses with an AQuA error code (HTTP 200, errorCode + message)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def submitted_job(
    body: dict[str, Any], *, now: float, zone: ZoneInfo, loaded_queries: set[str]
) -> Job:
    """A new job from a POST body, per Zuora's reference; raises Rejected like Zuora does.

    `loaded_queries` are the queries this partner/project session already completed: running
    one of them again is an incremental load (`full: false`), anything else a full load.
    """
    queries = body.get("queries")
    if not isinstance(queries, list) or not queries:
        raise Rejected("90016", "There are no queries in the request.")
    if len(queries) > MAX_QUERIES:
        raise Rejected("90004", f"The number of queries exceeds the limit of {MAX_QUERIES}.")
    notify_url = body.get("notifyUrl")
    if isinstance(notify_url, str) and len(notify_url) >= 5000:
        raise Rejected("90014", "The notifyUrl is too long.")

    version = body.get("version", "1.0")
    stateful = is_stateful(version, body.get("partner"), body.get("project"))
    echo: dict[str, Any] = {
        "name": body.get("name", ""),
        "version": version,
        "format": str(body.get("format") or "csv").upper(),
        "encrypted": str(body.get("encrypted") or "none").lower(),
    }
    for key in ("partner", "project", "offset", "notifyUrl"):
        if key in body:
            echo[key] = body[key]
    echo["sourceData"] = body.get("sourceData", "LIVE")  # the default, echoed as Zuora's do
    if "incrementalTime" in body:
        echo["incrementalTime"] = _epoch_millis(body["incrementalTime"], zone)
    echo["useLastCompletedJobQueries"] = body.get("useLastCompletedJobQueries", False)

    batches = [_submitted_batch(query, stateful, loaded_queries) for query in queries]
    return Job(
        job_id=uuid.uuid4().hex,
        echo=echo,
        batches=batches,
        created=now,
        use_query_labels=body.get("useQueryLabels") in (True, "true", "True"),
        utc_times=body.get("dateTimeUtc") in (True, "true", "True"),
    )


def _submitted_batch(query: Any, stateful: bool, loaded_queries: set[str]) -> Batch:
    text = query.get("query") if isinstance(query, dict) else None
    batch_type = query.get("type", "zoqlexport") if isinstance(query, dict) else None
    if (
        not isinstance(text, str)
        or not query_object(text)
        or batch_type not in ("zoql", "zoqlexport")
    ):
        raise Rejected("90005", "There is a syntax error in one of the queries in the AQuA input")
    deleted = query.get("deleted")
    if deleted:
        if not stateful and not (isinstance(deleted, dict) and deleted.get("forceExport")):
            raise Rejected("90012", "Stateless AQuA does not support deleted columns.")
        if query_object(text).lower() in NO_DELETED_SUPPORT:
            raise Rejected(
                "90017",
                "Objects included in the queries do not support the querying of deleted records. "
                "Remove Deleted section in the JSON request and retry the request",
            )
    full = not (stateful and text in loaded_queries)
    echo: dict[str, Any] = {
        "name": query.get("name", ""),
        "query": text,
        "batchType": batch_type,
        "apiVersion": query.get("apiVersion", "91.0"),  # "latest if not specified"
        "full": full,
    }
    if deleted:
        echo["deleted"] = deleted
    # A deterministic size per query; stateful full loads are big enough to be segmented.
    seed = int(derived_id(text)[:8], 16)
    count = seed % 1_500_000 if stateful and full else seed % (500 if stateful else 5000)
    segmented = stateful and full
    batch_id = uuid.uuid4().hex
    sizes = segment_sizes(count, zuora_parts(text, count), batch_id) if segmented else [count]
    return Batch(
        batch_id=batch_id,
        echo=echo,
        record_count=count,
        file_ids=[uuid.uuid4().hex for _ in sizes],
        segmented=segmented,
        sizes=sizes if segmented else [],
    )


def is_stateful(version: Any, partner: Any, project: Any) -> bool:
    """Version 1.0 is stateless even with a partner and project (Zuora's stateful-mode page)."""
    return str(version) not in ("1", "1.0") and bool(partner) and bool(project)


def zuora_parts(query: str, records: int) -> int:
    """How many parts Zuora cuts a full load of this query into, before the 500,000 rule."""
    if query_object(query).lower() in ONE_FILE_OBJECTS:
        return 1
    return min(MAX_PARTS, BASE_PARTS + records // RECORDS_PER_EXTRA_PART)


def segment_sizes(records: int, parts: int, seed: str) -> list[int]:
    """Rows in each segment file: `records` spread unevenly over `parts` (each part gets a row
    before any gets two), and every part over 500,000 rows cut into files of at most that."""
    weights = [1 + int(derived_id(seed, "part", n)[:2], 16) for n in range(parts)]
    each = 1 if records >= parts else 0
    spare = records - each * parts
    sizes = [each + spare * weight // sum(weights) for weight in weights]
    for n in range(records - sum(sizes)):  # what rounding down left over, one row each
        sizes[n % parts] += 1
    return [rows for size in sizes for rows in cut(size, SEGMENT_ROWS)]


def cut(rows: int, most: int) -> list[int]:
    """Rows in each file when `rows` are cut into files of at most `most`: all full but the
    last (one empty file when there are no rows)."""
    full, rest = divmod(rows, most)
    return [most] * full + ([rest] if rest or not full else [])


def refusal(body: dict[str, Any], rejected: Rejected) -> dict[str, Any]:
    """Zuora's answer to a refused POST, as Guardian captured one (90005): the job as asked, with
    no IDs, status error, errorCode and message, and its batches still pending."""
    queries = body.get("queries") if isinstance(body.get("queries"), list) else []
    batches = [
        {
            "localizedStatus": "pending",
            "recordCount": 0,
            "batchType": query.get("type", "zoqlexport"),
            "apiVersion": query.get("apiVersion", "91.0"),
            "full": True,
            "status": "pending",
            "name": query.get("name", ""),
            "query": query.get("query"),
        }
        for query in queries
        if isinstance(query, dict)
    ]
    return {
        "errorCode": rejected.code,
        "message": rejected.message,
        "batches": batches,
        "useLastCompletedJobQueries": body.get("useLastCompletedJobQueries", False),
        "encrypted": str(body.get("encrypted") or "none").lower(),
        "status": "error",
        "name": body.get("name", ""),
        "version": body.get("version", "1.0"),
        "format": str(body.get("format") or "csv").upper(),
    }


def query_object(query: str) -> str:
    """The FROM object of a ZOQL query, or "" when the query does not look like ZOQL."""
    words = query.split()
    lowered = [word.lower() for word in words]
    if not words or lowered[0] != "select" or "from" not in lowered[2:]:
        return ""
    after = lowered.index("from", 2) + 1
    return words[after] if after < len(words) else ""


def _epoch_millis(value: Any, zone: ZoneInfo) -> int:
    """Zuora takes incrementalTime as tenant-local "YYYY-MM-DD hh:mm:ss" and echoes epoch ms."""
    try:
        moment = datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone)
    except ValueError:
        raise Rejected("90015", "The incremental timestamp is invalid.") from None
    return int(moment.timestamp() * 1000)
