"""What Zuora's answers mean, without any HTTP: job and batch statuses, `Job` and `Batch`,
Zuora IDs, and a job object (or an error body) turned into a `Job` or the `ZuoraError` it
stands for."""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from aquadash.zuora.errors import (
    CredentialsRejected,
    InvalidId,
    JobNotFound,
    PermissionDenied,
    RequestRejected,
    UnknownPartner,
    UnreadableResponse,
)

JOB_STATUSES = ("submitted", "executing", "completed", "error", "aborted", "cancelled")
FINAL_JOB_STATUSES = frozenset({"completed", "error", "aborted", "cancelled"})
BATCH_STATUSES = (
    "submitted",
    "pending",
    "executing",
    "completed",
    "aborted",
    "cancelled",
    "deleted_notallowed",
)
FINAL_BATCH_STATUSES = frozenset({"completed", "aborted", "cancelled", "deleted_notallowed"})
ZUORA_ID = re.compile(r"[0-9a-f]{32}")
MAX_NAME = 255  # Zuora allows 32 characters in a job name; longer ones are not Zuora's
MAX_MESSAGE = 4096  # Zuora's batch messages are at most 2048
# Every form Zuora writes a startTime in: the tenant's local time with a space or a "T", or,
# for a job submitted with dateTimeUtc, UTC with an offset ("2021-01-18T17:13:48+0000").
ZUORA_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:?\d{2})?")
NOT_FOUND_CODES = frozenset({"90001", "90002"})
AUTH_CODES = frozenset({"90000011"})
# "User is not authorized" (AQuA): good credentials, a user without the permission.
PERMISSION_CODES = frozenset({"90009"})
# "The API user does not have permission to access one or more objects in a query": the job
# ran, without those queries.
OBJECTS_NOT_PERMITTED = "90018"
UNKNOWN_PARTNER = "90019"


@dataclass(frozen=True)
class Batch:
    batch_id: str
    name: str
    query: str
    status: str
    batch_type: str = ""
    api_version: str = ""
    record_count: int | None = None
    full: bool | None = None
    file_id: str = ""
    segments: tuple[str, ...] = ()
    message: str = ""
    deleted: dict | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_BATCH_STATUSES

    @property
    def file_ids(self) -> tuple[str, ...]:
        return self.segments or ((self.file_id,) if self.file_id else ())


@dataclass(frozen=True)
class Job:
    id: str
    name: str
    status: str
    batches: tuple[Batch, ...] = ()
    version: str = ""
    format: str = ""
    encrypted: str = ""
    source_data: str = ""
    partner: str = ""
    project: str = ""
    start_time: datetime | None = None  # aware, in the tenant's time zone (see zuora_time)
    incremental_time: datetime | None = None  # aware, UTC
    offset: int | None = None
    notify_url: str = ""
    error_code: str = ""
    message: str = ""
    raw: dict = field(default_factory=dict, repr=False, compare=False)
    track_id: str = field(default="", compare=False)
    request_id: str = field(default="", compare=False)  # Zuora-Request-Id of the answer

    @property
    def is_final(self) -> bool:
        """Nothing about the job will change. A cancelled or failed job can hold batches that
        never ran; a completed one is final once every batch is."""
        if self.status == "completed":
            return all(batch.is_final for batch in self.batches)
        return self.status in FINAL_JOB_STATUSES

    @property
    def queries_ignored(self) -> bool:
        """Zuora ran the job without the queries whose objects the user may not read."""
        return self.error_code == OBJECTS_NOT_PERMITTED

    @property
    def is_stateful(self) -> bool:
        """Zuora keeps a session's state only for version 1.1 jobs with a partner and a
        project; a 1.0 job is stateless whatever else it names."""
        return bool(self.partner and self.project) and self.version not in ("1", "1.0")

    @property
    def is_pgp(self) -> bool:
        """The results are encrypted to the tenant's PGP key: aquadash can pass them on as
        Zuora made them, but not read, count, join or convert them."""
        return self.encrypted.lower() == "pgp"

    @property
    def has_files(self) -> bool:
        """Some batch has result files to download."""
        return any(batch.file_ids for batch in self.batches)


def normalize_id(value: str) -> str:
    """What people paste: spaces, upper case, stray quotes. Returns the candidate ID."""
    return re.sub(r"[\s\"'`]", "", value or "").lower()


def check_id(value: str, *, what: str) -> str:
    if not isinstance(value, str) or not ZUORA_ID.fullmatch(value):
        raise InvalidId(f"A Zuora {what} ID is 32 hexadecimal characters (0-9, a-f).")
    return value


def parse_job(
    data: Any, *, zone: tzinfo = UTC, tenant: str = "", track_id: str = "", request_id: str = ""
) -> Job:
    """Turn a job object from Zuora into a Job, or raise the ZuoraError it stands for.

    `zone` is the tenant's time zone, in which Zuora writes times that carry no offset."""
    if not isinstance(data, dict):
        raise unreadable("the job is not a JSON object", track_id)
    raise_for_error_body(data, tenant=tenant, track_id=track_id, job_expected=True)
    batches = data.get("batches", [])
    if not isinstance(batches, list):
        raise unreadable("'batches' is not a list", track_id)
    try:
        return Job(
            id=_zuora_id(data, "id"),
            name=_text(data, "name", limit=MAX_NAME),
            status=_text(data, "status", required=True).lower(),
            batches=tuple(_parse_batch(batch) for batch in batches),
            version=_text(data, "version"),
            format=_text(data, "format").upper(),
            encrypted=_text(data, "encrypted"),
            source_data=_text(data, "sourceData"),
            partner=_text(data, "partner", limit=MAX_NAME),
            project=_text(data, "project", limit=MAX_NAME),
            start_time=zuora_time(data.get("startTime"), zone),
            incremental_time=_epoch_millis(data.get("incrementalTime")),
            offset=_integer(data.get("offset"), "offset"),
            notify_url=_text(data, "notifyUrl", limit=MAX_MESSAGE),
            error_code=_text(data, "errorCode"),
            message=_text(data, "message", limit=MAX_MESSAGE),
            raw=data,
            track_id=track_id,
            request_id=request_id,
        )
    except _ShapeError as exc:
        raise unreadable(str(exc), track_id) from None


class _ShapeError(ValueError):
    pass


def _parse_batch(data: Any) -> Batch:
    if not isinstance(data, dict):
        raise _ShapeError("a batch is not a JSON object")
    segments = data.get("segments") or []
    if not isinstance(segments, list) or not all(isinstance(s, str) for s in segments):
        raise _ShapeError("'segments' is not a list of file IDs")
    # File IDs go into our download links, so they must be what Zuora's IDs are.
    segments = [segment.lower() for segment in segments]
    if not all(ZUORA_ID.fullmatch(segment) for segment in segments):
        raise _ShapeError("a segment is not a Zuora file ID")
    deleted = data.get("deleted")
    if deleted is not None and not isinstance(deleted, dict):
        raise _ShapeError("'deleted' is not an object")
    return Batch(
        batch_id=_zuora_id(data, "batchId"),
        name=_text(data, "name", limit=MAX_NAME),
        query=_text(data, "query"),
        status=_text(data, "status", required=True).lower(),
        batch_type=_text(data, "batchType"),
        api_version=_text(data, "apiVersion"),
        record_count=_integer(data.get("recordCount"), "recordCount"),
        full=_boolean(data.get("full"), "full"),
        file_id=_zuora_id(data, "fileId") if data.get("fileId") else "",
        segments=tuple(segments),
        message=_text(data, "message", limit=MAX_MESSAGE),
        deleted=deleted,
        raw=data,
    )


def _text(data: dict, key: str, *, required: bool = False, limit: int | None = None) -> str:
    """A text field; with `limit`, cut to that many characters for display (raw keeps all)."""
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise _ShapeError(f"'{key}' is missing")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _ShapeError(f"'{key}' is not text")
    if key in ("status", "id", "batchId") and not isinstance(value, str):
        raise _ShapeError(f"'{key}' is not text")
    text = str(value)  # version may be the number 1 or the string "1.1"
    return text[: limit - 1] + "…" if limit and len(text) > limit else text


def _zuora_id(data: dict, key: str) -> str:
    """Job and batch IDs are 32 hexadecimal characters; they also end up in our URLs."""
    value = _text(data, key, required=True).lower()
    if not ZUORA_ID.fullmatch(value):
        raise _ShapeError(f"'{key}' is not a Zuora ID")
    return value


def whole_number(text: str) -> int | None:
    """ASCII digits only: str.isdigit() also accepts '²', which int() refuses."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def _integer(value: Any, key: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and (number := whole_number(value)) is not None:
        return number
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _ShapeError(f"'{key}' is not a whole number")


def _boolean(value: Any, key: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _ShapeError(f"'{key}' is not true or false")


def zuora_time(value: Any, zone: tzinfo) -> datetime | None:
    """A startTime, in any form Zuora writes one, as an aware time in the tenant's `zone`.

    Without an offset it is the tenant's local time; with one (a job submitted with
    dateTimeUtc) it says its own zone. This is the one place either becomes the other.
    """
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not ZUORA_TIME.fullmatch(value.strip()):
        raise _ShapeError("'startTime' is not a date and time")
    try:
        written = datetime.fromisoformat(value.strip())
        if written.tzinfo is None:
            return written.replace(tzinfo=zone)
        return written.astimezone(zone)
    except (ValueError, OverflowError):  # 2021-02-30, or an offset past the year 9999
        raise _ShapeError("'startTime' is not a date and time") from None


def _epoch_millis(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    millis = _integer(value, "incrementalTime")
    try:
        return datetime.fromtimestamp(millis / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise _ShapeError("'incrementalTime' is not a time") from None


def raise_for_error_body(data: dict, *, tenant: str, track_id: str, job_expected: bool) -> None:
    """Zuora reports some failures with HTTP 200 and an error body."""
    if is_auth_failure(data):
        raise credentials_rejected(tenant, track_id, str(data.get("processId", "")))
    if data.get("success") is False:
        reasons = data.get("reasons") if isinstance(data.get("reasons"), list) else []
        first = reasons[0] if reasons and isinstance(reasons[0], dict) else {}
        code, text = str(first.get("code", "")), str(first.get("message", ""))
        process_id = str(data.get("processId", ""))
        if code.endswith("10"):  # v1 category 10: permission or access denied
            raise permission_denied(tenant, track_id, process_id)
        if code.endswith("40"):
            raise JobNotFound(not_found_message(), track_id=track_id, process_id=process_id)
        raise RequestRejected(
            f"Zuora refused the request: {text or 'no reason given'} (code {code or 'none'}).",
            track_id=track_id,
            process_id=process_id,
        )
    code = str(data.get("errorCode") or "")
    if not code:
        return
    if code in NOT_FOUND_CODES:
        raise JobNotFound(not_found_message(), track_id=track_id)
    # A real job that failed (status "error") carries errorCode too: that is a job to show.
    if job_expected and data.get("id") and data.get("status"):
        return
    if code in PERMISSION_CODES:
        raise permission_denied(tenant, track_id)
    if code == UNKNOWN_PARTNER:
        raise UnknownPartner(
            "Zuora does not recognise this partner in this tenant (AQuA error 90019). The "
            "partner is the name an integration submits its stateful jobs with.",
            track_id=track_id,
        )
    message = data.get("message") if isinstance(data.get("message"), str) else ""
    raise RequestRejected(
        f"Zuora refused the request: {message or 'no reason given'} (AQuA error {code}).",
        track_id=track_id,
    )


def not_found_message() -> str:
    return (
        "Zuora has no job with this ID for this tenant. Check the ID and the tenant; Zuora also "
        "deletes jobs 180 days after they were created."
    )


def credentials_rejected(tenant: str, track_id: str, process_id: str = "") -> CredentialsRejected:
    return CredentialsRejected(
        f"Zuora rejected the stored credentials for tenant {tenant or 'this tenant'}. "
        "Ask an admin to update them.",
        track_id=track_id,
        process_id=process_id,
    )


def permission_denied(tenant: str, track_id: str, process_id: str = "") -> PermissionDenied:
    return PermissionDenied(
        f"Zuora accepted the credentials of tenant {tenant or 'this tenant'}, but the Zuora user "
        "they belong to is not allowed to use AQuA. Ask your Zuora administrator to give that "
        "user a Platform role with “API Write Access”, and Billing and Payments roles that may "
        "read the objects its queries use; then try again. aquadash's secret is not the problem.",
        track_id=track_id,
        process_id=process_id,
    )


def unreadable(detail: str, track_id: str) -> UnreadableResponse:
    return UnreadableResponse(
        f"Zuora answered with something aquadash cannot read ({detail}). Try again in a minute; "
        "if it persists, quote the track ID to Zuora support.",
        track_id=track_id,
    )


def is_auth_failure(data: Any) -> bool:
    """An error body that says the credentials or token were refused (not a missing
    permission: see PERMISSION_CODES and v1 category 10)."""
    if not isinstance(data, dict):
        return False
    if str(data.get("errorCode") or "") in AUTH_CODES:
        return True
    if data.get("success") is not False:
        return False
    reasons = data.get("reasons")
    first = reasons[0] if isinstance(reasons, list) and reasons else {}
    code = str(first.get("code", "")) if isinstance(first, dict) else ""
    # v1 codes end in a two-digit category: 10 permission, 11 authentication.
    return code in AUTH_CODES or code.endswith("11")
