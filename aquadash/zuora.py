"""The Zuora AQuA API client: every call aquadash makes to Zuora goes through this module.

Plain arguments in (a `Connection`), frozen dataclasses out (`Job`, `Batch`), and one exception
family (`ZuoraError`) whose messages a finance user can act on. Nothing here knows about Django
requests or models, and no secret or bearer token ever reaches a message, a log record or a repr.
"""

import contextlib
import email.utils
import hashlib
import ipaddress
import json
import logging
import math
import random
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from urllib.parse import quote, urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.util.connection
from django.views.decorators.debug import sensitive_variables

logger = logging.getLogger(__name__)

# Zuora's documented REST environments: key -> (label, base URL), from the API reference's
# introduction, https://developer.zuora.com/v1-api-reference/introduction/.
ENVIRONMENTS: dict[str, tuple[str, str]] = {
    "us-prod-cloud1": ("US Production (Cloud 1)", "https://rest.na.zuora.com"),
    "us-prod-cloud2": ("US Production (Cloud 2)", "https://rest.zuora.com"),
    "us-sandbox-cloud1": ("US API Sandbox (Cloud 1)", "https://rest.sandbox.na.zuora.com"),
    "us-sandbox-cloud2": ("US API Sandbox (Cloud 2)", "https://rest.apisandbox.zuora.com"),
    "us-dev-sandbox": ("US Developer & Central Sandbox", "https://rest.test.zuora.com"),
    "eu-prod": ("EU Production", "https://rest.eu.zuora.com"),
    "eu-sandbox": ("EU API Sandbox", "https://rest.sandbox.eu.zuora.com"),
    "eu-dev-sandbox": ("EU Developer & Central Sandbox", "https://rest.test.eu.zuora.com"),
    "ap-prod": ("APAC Production", "https://rest.ap.zuora.com"),
    "ap-dev-sandbox": ("APAC Developer & Central Sandbox", "https://rest.test.ap.zuora.com"),
}
ZUORA_HOSTS = frozenset(urlsplit(url).hostname for _, url in ENVIRONMENTS.values())

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
LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
MAX_NAME = 255  # Zuora allows 32 characters in a job name; longer ones are not Zuora's
MAX_MESSAGE = 4096  # Zuora's batch messages are at most 2048
MAX_JSON_BYTES = 5 * 1024 * 1024
MAX_RETRY_WAIT = 5.0  # seconds; a person is waiting for the page
MAX_RETRY_AFTER = 3600  # seconds; a longer Retry-After is taken as an hour
TOKEN_EARLY_EXPIRY = 60  # seconds before Zuora's expiry that we stop using a token
RETRIED_STATUSES = frozenset({429, 502, 503, 504})
NOT_FOUND_CODES = frozenset({"90001", "90002"})
AUTH_CODES = frozenset({"90009", "90000011"})


# --- Errors -------------------------------------------------------------------------------------


class ZuoraError(Exception):
    """A call to Zuora failed; `str()` is a message for the person looking at the page."""

    http_status = 502
    summary = "Zuora call failed"  # a few words, for lists and audit trails
    title = "Zuora's answer could not be used"  # the heading of the page that shows it
    # What that page offers: "retry", "home" (look up another job: asking again cannot help),
    # "job" (back to the job's page) or "admin" (for an admin to fix the tenant).
    next_step: Literal["retry", "home", "job", "admin"] = "retry"
    retry_after: int | None = None  # seconds until asking Zuora again makes sense, if known

    def __init__(self, message: str, *, track_id: str = "", process_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.track_id = track_id
        self.process_id = process_id


class InvalidId(ZuoraError):
    http_status = 400
    summary = "not a valid ID"
    title = "Not a job ID"
    next_step = "home"


class HostNotAllowed(ZuoraError):
    http_status = 502
    summary = "host not allowed"


class JobNotFound(ZuoraError):
    http_status = 404
    summary = "not found in Zuora"
    title = "No such job"
    next_step = "home"


class FileNotFound(ZuoraError):
    http_status = 404
    summary = "file deleted by Zuora"
    title = "Result file purged by Zuora"
    next_step = "job"


class FileTooLarge(ZuoraError):
    http_status = 502
    summary = "file over Zuora's size limit"
    title = "Result file too large for Zuora"
    next_step = "job"


class CredentialsRejected(ZuoraError):
    http_status = 502
    summary = "credentials rejected"
    title = "Zuora credentials problem"
    next_step = "admin"


class RequestRejected(ZuoraError):
    http_status = 502
    summary = "request refused by Zuora"


class RateLimited(ZuoraError):
    http_status = 503
    summary = "rate limited"
    title = "Zuora asks us to slow down"

    def __init__(self, message: str, *, retry_after: int | None = None, **kwargs: str) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ZuoraUnavailable(ZuoraError):
    http_status = 503
    summary = "Zuora unavailable"
    title = "Zuora is not answering"


class ZuoraTimeout(ZuoraUnavailable):
    http_status = 504
    summary = "Zuora timed out"


class UnreadableResponse(ZuoraError):
    http_status = 502
    summary = "unreadable answer"


class UnexpectedRedirect(UnreadableResponse):
    summary = "unexpected redirect"


# --- What goes in -------------------------------------------------------------------------------


class TokenCache(Protocol):
    """The part of Django's cache API the client uses; any Django cache fits."""

    def get(self, key: str, default: Any = None) -> Any: ...
    def set(self, key: str, value: Any, timeout: float | None = None) -> None: ...
    def add(self, key: str, value: Any, timeout: float | None = None) -> bool: ...
    def delete(self, key: str) -> Any: ...


@dataclass(frozen=True)
class Credentials:
    method: Literal["oauth", "basic"]
    identity: str  # OAuth client ID, or username for basic auth
    secret: str = field(repr=False)


class PrivateAddress(urllib3.exceptions.NewConnectionError):
    """A documented Zuora host name resolved to an address that is not on the internet."""


def public_address(host: str, port: int) -> str:
    """The address to connect to for one of Zuora's hosts, if every address DNS gives is public.

    Checked when connecting, and then connected to, so a name re-pointed at an internal
    address after the allow-list check (DNS rebinding) is still refused.
    """
    addresses = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(sockaddr[0])
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            raise OSError(f"{host} resolved to {address}, which is not a public address")
        addresses.append(sockaddr[0])
    return addresses[0]


class PublicOnlyConnection(urllib3.connection.HTTPSConnection):
    def must_be_public(self, host: str) -> bool:
        """Zuora's own hosts must resolve to public addresses; ZUORA_EXTRA_HOSTS are the
        operator's choice."""
        return host in ZUORA_HOSTS

    def _new_conn(self) -> socket.socket:
        if not self.must_be_public(self.host.lower()):
            return super()._new_conn()
        try:
            address = public_address(self.host, self.port)
        except OSError as exc:
            raise PrivateAddress(self, str(exc)) from exc
        try:  # TLS still verifies the certificate against self.host
            return urllib3.util.connection.create_connection(
                (address, self.port),
                self.timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except TimeoutError as exc:
            raise urllib3.exceptions.ConnectTimeoutError(self, f"{self.host} timed out") from exc
        except OSError as exc:
            raise urllib3.exceptions.NewConnectionError(self, str(exc)) from exc


class _PublicOnlyAdapter(requests.adapters.HTTPAdapter):
    def __init__(self, connection_class: type[PublicOnlyConnection]) -> None:
        self.pool_class = type("PublicOnlyPool", (urllib3.HTTPSConnectionPool,), {})
        self.pool_class.ConnectionCls = connection_class
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            **self.poolmanager.pool_classes_by_scheme,
            "https": self.pool_class,
        }


def new_session(
    connection_class: type[PublicOnlyConnection] = PublicOnlyConnection,
) -> requests.Session:
    """A session that ignores proxy variables and .netrc and connects to the hosts that
    `connection_class` names (by default Zuora's) only at public addresses; calls pass
    allow_redirects=False."""
    session = requests.Session()
    session.trust_env = False
    session.mount("https://", _PublicOnlyAdapter(connection_class))
    return session


SESSION = new_session()


@dataclass(frozen=True)
class Connection:
    """Everything needed to talk to one tenant's Zuora."""

    base_url: str
    credentials: Credentials
    tenant: str  # the tenant's name, for messages
    entity_id: str = ""
    extra_hosts: frozenset[tuple[str, int]] = frozenset()
    token_cache: TokenCache | None = field(default=None, repr=False)
    session: requests.Session = field(default=SESSION, repr=False)
    connect_timeout: float = 3.05
    read_timeout: float = 15.0
    total_timeout: float = 30.0
    max_attempts: int = 3
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)


# --- What comes out -----------------------------------------------------------------------------


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
    start_time: datetime | None = None  # naive: Zuora sends the tenant's local time, no zone
    incremental_time: datetime | None = None  # aware, UTC
    offset: int | None = None
    notify_url: str = ""
    error_code: str = ""
    message: str = ""
    raw: dict = field(default_factory=dict, repr=False, compare=False)
    track_id: str = field(default="", compare=False)

    @property
    def is_final(self) -> bool:
        """Nothing about the job will change. A cancelled or failed job can hold batches that
        never ran; a completed one is final once every batch is."""
        if self.status == "completed":
            return all(batch.is_final for batch in self.batches)
        return self.status in FINAL_JOB_STATUSES

    @property
    def is_stateful(self) -> bool:
        return bool(self.partner and self.project)


# --- Operations ---------------------------------------------------------------------------------


def get_job(conn: Connection, *, job_id: str) -> Job:
    job_id = check_id(job_id, what="job")
    data, track_id = _call_json(conn, "GET", f"/v1/batch-query/jobs/{job_id}")
    job = parse_job(data, tenant=conn.tenant, track_id=track_id)
    if job.id != job_id:
        raise _unreadable("the answer is about a different job", track_id)
    return job


def get_last_completed_job(conn: Connection, *, partner: str, project: str) -> Job:
    path = "/v1/batch-query/jobs/partner/{}/project/{}".format(
        _path_part(partner, "partner"), _path_part(project, "project")
    )
    data, track_id = _call_json(conn, "GET", path)
    return parse_job(data, tenant=conn.tenant, track_id=track_id)


def cancel_job(conn: Connection, *, job_id: str) -> Job:
    job_id = check_id(job_id, what="job")
    data, track_id = _call_json(conn, "DELETE", f"/v1/batch-query/jobs/{job_id}")
    return parse_job(data, tenant=conn.tenant, track_id=track_id)


@dataclass
class ResultFile:
    """An open result file; iterate `chunks()` and always `close()` (or use `with`)."""

    response: requests.Response
    track_id: str

    @property
    def content_type(self) -> str:
        return self.response.headers.get("Content-Type", "application/octet-stream")

    @property
    def length(self) -> int | None:
        """The file's size in bytes, when Zuora said it."""
        return _whole_number(self.response.headers.get("Content-Length", ""))

    def chunks(self, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
        # decode_content=False: a gzip result is passed through as the gzip file Zuora made.
        try:
            yield from self.response.raw.stream(chunk_size, decode_content=False)
        except (urllib3.exceptions.HTTPError, OSError):
            raise ZuoraUnavailable(
                "The download from Zuora broke off before the end of the file.",
                track_id=self.track_id,
            ) from None

    def close(self) -> None:
        self.response.close()

    def __enter__(self) -> "ResultFile":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_file(conn: Connection, *, file_id: str, retention_days: int = 3) -> ResultFile:
    """Start downloading a result file; Zuora purges them `retention_days` after completion."""
    file_id = check_id(file_id, what="file")
    deadline = _deadline(conn)
    response, track_id = _call(conn, "GET", f"/v1/files/{file_id}", deadline=deadline, accept="*/*")
    if response.status_code == 404:
        response.close()
        raise FileNotFound(
            f"Zuora no longer has this result file: Zuora purges result files {retention_days} "
            "days after the job completes. Rerun the query to get the data again.",
            track_id=track_id,
        )
    if response.status_code != 200:
        with response:
            body = _read_body(response, track_id, deadline)
        if response.status_code == 403 and b"max-object-size" in body:
            raise FileTooLarge(
                "Zuora refuses to serve this result file because it is larger than 2,047 MB, "
                "Zuora's limit for one file. Rerun the query split into smaller parts (by date "
                "range, say), or ask Zuora support to turn on file segmentation.",
                track_id=track_id,
            )
        _raise_for_response(conn, response, _parse_json(response, body, track_id), track_id)
    return ResultFile(response=response, track_id=track_id)


def check_credentials(conn: Connection) -> str:
    """Prove the stored credentials work; returns a short description of what was checked."""
    if conn.credentials.method == "oauth":
        _fetch_token(conn, track_id=new_track_id(), deadline=_deadline(conn))
        return "Zuora issued an OAuth token for these credentials."
    # Basic auth has no token call: an authenticated lookup of a job that cannot exist answers
    # "not found" only when the credentials were accepted.
    with contextlib.suppress(JobNotFound):
        get_job(conn, job_id="0" * 32)
    return "Zuora accepted the username and password."


# --- Validation ---------------------------------------------------------------------------------


def normalize_id(value: str) -> str:
    """What people paste: spaces, upper case, stray quotes. Returns the candidate ID."""
    return re.sub(r"[\s\"'`]", "", value or "").lower()


def check_id(value: str, *, what: str) -> str:
    if not isinstance(value, str) or not ZUORA_ID.fullmatch(value):
        raise InvalidId(f"A Zuora {what} ID is 32 hexadecimal characters (0-9, a-f).")
    return value


def _path_part(value: str, what: str) -> str:
    # "." and ".." would be resolved as path segments and send the request somewhere else.
    if not value or len(value) > 128 or not value.isprintable() or value in (".", ".."):
        raise InvalidId(f"The {what} must be 1 to 128 printable characters, not a path.")
    return quote(value, safe="")


def check_base_url(url: str, *, extra_hosts: frozenset[tuple[str, int]] = frozenset()) -> str:
    """Return the normalised base URL, or raise HostNotAllowed.

    Only Zuora's documented REST hosts over HTTPS on the default port are accepted, plus the
    exact host:port pairs configured in ZUORA_EXTRA_HOSTS (the simulator, tests). Matching is
    exact, so look-alike, numeric and user@ forms never pass.
    """
    refused = HostNotAllowed(
        "That base URL is not an allowed Zuora REST host. Choose a Zuora environment; other "
        "hosts must be listed in ZUORA_EXTRA_HOSTS by whoever runs aquadash."
    )
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except (ValueError, AttributeError):
        raise refused from None
    host = (parts.hostname or "").lower()
    if (
        parts.username is not None
        or parts.password is not None
        or parts.query
        or parts.fragment
        or parts.path not in ("", "/")
        or parts.scheme not in ("http", "https")
    ):
        raise refused
    if parts.scheme == "https" and host in ZUORA_HOSTS and port in (None, 443):
        return f"https://{host}"
    default_port = 443 if parts.scheme == "https" else 80
    if (host, port or default_port) in extra_hosts:
        netloc = f"[{host}]" if ":" in host else host
        return f"{parts.scheme}://{netloc}:{port or default_port}"
    raise refused


def new_track_id() -> str:
    """A Zuora-Track-Id: at most 64 US-ASCII characters, none of : ; " '."""
    return f"aquadash-{uuid.uuid4().hex}"


# --- Parsing ------------------------------------------------------------------------------------


def parse_job(data: Any, *, tenant: str = "", track_id: str = "") -> Job:
    """Turn a job object from Zuora into a Job, or raise the ZuoraError it stands for."""
    if not isinstance(data, dict):
        raise _unreadable("the job is not a JSON object", track_id)
    _raise_for_error_body(data, tenant=tenant, track_id=track_id, job_expected=True)
    batches = data.get("batches", [])
    if not isinstance(batches, list):
        raise _unreadable("'batches' is not a list", track_id)
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
            start_time=zuora_time(data.get("startTime")),
            incremental_time=_epoch_millis(data.get("incrementalTime")),
            offset=_integer(data.get("offset"), "offset"),
            notify_url=_text(data, "notifyUrl", limit=MAX_MESSAGE),
            error_code=_text(data, "errorCode"),
            message=_text(data, "message", limit=MAX_MESSAGE),
            raw=data,
            track_id=track_id,
        )
    except _ShapeError as exc:
        raise _unreadable(str(exc), track_id) from None


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


def _whole_number(text: str) -> int | None:
    """ASCII digits only: str.isdigit() also accepts '²', which int() refuses."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def _integer(value: Any, key: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and (number := _whole_number(value)) is not None:
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


def zuora_time(value: Any) -> datetime | None:
    """A startTime as Zuora writes it: the tenant's local time, no zone (naive)."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise _ShapeError("'startTime' is not a date and time")
    for layout in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(value.strip(), layout)
        except ValueError:
            continue
    raise _ShapeError("'startTime' is not a date and time")


def _epoch_millis(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    millis = _integer(value, "incrementalTime")
    try:
        return datetime.fromtimestamp(millis / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise _ShapeError("'incrementalTime' is not a time") from None


def _raise_for_error_body(data: dict, *, tenant: str, track_id: str, job_expected: bool) -> None:
    """Zuora reports some failures with HTTP 200 and an error body."""
    if _is_auth_failure(data):
        raise _credentials_rejected(tenant, track_id, str(data.get("processId", "")))
    if data.get("success") is False:
        reasons = data.get("reasons") if isinstance(data.get("reasons"), list) else []
        first = reasons[0] if reasons and isinstance(reasons[0], dict) else {}
        code, text = str(first.get("code", "")), str(first.get("message", ""))
        process_id = str(data.get("processId", ""))
        if code.endswith("40"):
            raise JobNotFound(_not_found_message(), track_id=track_id, process_id=process_id)
        raise RequestRejected(
            f"Zuora refused the request: {text or 'no reason given'} (code {code or 'none'}).",
            track_id=track_id,
            process_id=process_id,
        )
    code = str(data.get("errorCode") or "")
    if not code:
        return
    if code in NOT_FOUND_CODES:
        raise JobNotFound(_not_found_message(), track_id=track_id)
    # A real job that failed (status "error") carries errorCode too: that is a job to show.
    if job_expected and data.get("id") and data.get("status"):
        return
    message = data.get("message") if isinstance(data.get("message"), str) else ""
    raise RequestRejected(
        f"Zuora refused the request: {message or 'no reason given'} (AQuA error {code}).",
        track_id=track_id,
    )


def _not_found_message() -> str:
    return (
        "Zuora has no job with this ID for this tenant. Check the ID and the tenant; Zuora also "
        "deletes jobs 180 days after they were created."
    )


def _credentials_rejected(tenant: str, track_id: str, process_id: str = "") -> CredentialsRejected:
    return CredentialsRejected(
        f"Zuora rejected the stored credentials for tenant {tenant or 'this tenant'}. "
        "Ask an admin to update them.",
        track_id=track_id,
        process_id=process_id,
    )


def _unreadable(detail: str, track_id: str) -> UnreadableResponse:
    return UnreadableResponse(
        f"Zuora answered with something aquadash cannot read ({detail}). Try again in a minute; "
        "if it persists, quote the track ID to Zuora support.",
        track_id=track_id,
    )


# --- HTTP ---------------------------------------------------------------------------------------


def _call_json(
    conn: Connection, method: str, path: str, *, deadline: float | None = None, reauth: bool = True
) -> tuple[Any, str]:
    deadline = deadline or _deadline(conn)
    response, track_id = _call(conn, method, path, deadline=deadline)
    with response:
        data = _read_json_body(response, track_id, deadline)
    if response.status_code != 200:
        _raise_for_response(conn, response, data, track_id)
    if _is_auth_failure(data):
        # HTTP 200 with an auth failure in the body: the cached token is no good. Sign in once
        # more with the stored credentials before saying they were rejected.
        _forget_token(conn)
        if reauth and conn.credentials.method == "oauth":
            return _call_json(conn, method, path, deadline=deadline, reauth=False)
    return data, track_id


def _deadline(conn: Connection) -> float:
    """When one operation (token, request, retries and body together) must be over."""
    return time.monotonic() + conn.total_timeout


def _is_auth_failure(data: Any) -> bool:
    """An error body that says the credentials or token were refused."""
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
    return code in AUTH_CODES or code.endswith(("10", "11"))


@sensitive_variables()
def _call(
    conn: Connection, method: str, path: str, *, deadline: float, accept: str = "application/json"
) -> tuple[requests.Response, str]:
    """Send one request with auth, retries and the safety rules; returns (response, track ID)."""
    base_url = check_base_url(conn.base_url, extra_hosts=conn.extra_hosts)
    track_id = new_track_id()
    refreshed = False
    attempt = 0
    while True:
        attempt += 1
        headers = {"Accept": accept, "Zuora-Track-Id": track_id}
        if accept != "application/json":
            headers["Accept-Encoding"] = "identity"  # the file as Zuora made it, byte for byte
        headers.update(_auth_headers(conn, track_id, deadline))
        if conn.entity_id:
            headers["Zuora-Entity-Ids"] = conn.entity_id
        response = _send(conn, method, base_url + path, headers, deadline, track_id)
        status = response.status_code
        logger.info("Zuora %s %s -> %s (track %s)", method, path, status, track_id)
        if 300 <= status < 400:
            response.close()
            raise UnexpectedRedirect(
                "Zuora answered with a redirect aquadash does not follow. Check the tenant's "
                "environment; if it persists, quote the track ID to Zuora support.",
                track_id=track_id,
            )
        if status == 401 and conn.credentials.method == "oauth" and not refreshed:
            # A cached token may have been revoked early: get a fresh one, once.
            response.close()
            _forget_token(conn)
            refreshed = True
            continue
        if status in RETRIED_STATUSES and method == "GET" and attempt < conn.max_attempts:
            wait = _retry_wait(response, attempt)
            if wait is not None and time.monotonic() + wait < deadline:
                response.close()
                conn.sleep(wait)
                continue
        return response, track_id


@sensitive_variables()
def _send(
    conn: Connection,
    method: str,
    url: str,
    headers: dict,
    deadline: float,
    track_id: str,
    data: dict | None = None,
) -> requests.Response:
    read_timeout = min(conn.read_timeout, deadline - time.monotonic())
    if read_timeout <= 0:
        raise ZuoraTimeout(
            "Zuora took too long to answer. Try again in a minute.", track_id=track_id
        )
    try:
        return conn.session.request(
            method,
            url,
            headers=headers,
            data=data,
            timeout=(conn.connect_timeout, read_timeout),
            allow_redirects=False,
            stream=True,
        )
    except requests.Timeout:
        raise ZuoraTimeout(
            f"Zuora did not answer within {read_timeout:.0f} seconds. It may be busy; "
            "try again in a minute.",
            track_id=track_id,
        ) from None
    except requests.ConnectionError as exc:
        if isinstance(getattr(exc.args[0] if exc.args else None, "reason", None), PrivateAddress):
            logger.warning("Refused to connect: %s", exc.args[0].reason)
            raise HostNotAllowed(
                "Zuora's host name pointed at a private network address, so aquadash refused "
                "to connect. Tell whoever runs aquadash: their DNS may have been tampered with.",
                track_id=track_id,
            ) from None
        raise ZuoraUnavailable(
            "aquadash cannot reach Zuora right now (the connection failed). Try again in a "
            "minute; if it persists, check Zuora's status page.",
            track_id=track_id,
        ) from None
    except requests.RequestException:
        raise ZuoraUnavailable(
            "aquadash cannot reach Zuora right now (the connection failed). Try again in a "
            "minute; if it persists, check Zuora's status page.",
            track_id=track_id,
        ) from None


def _read_json_body(response: requests.Response, track_id: str, deadline: float) -> Any:
    """Read at most MAX_JSON_BYTES (after decompression) and parse it; None if not JSON."""
    return _parse_json(response, _read_body(response, track_id, deadline), track_id)


def _read_body(response: requests.Response, track_id: str, deadline: float) -> bytes:
    """Read at most MAX_JSON_BYTES, after decompression.

    read1 returns whatever has arrived, so the operation's deadline also stops a server that
    drips one byte at a time just inside the read timeout.
    """
    body = bytearray()
    try:
        while chunk := response.raw.read1(64 * 1024, decode_content=True):
            body += chunk
            if len(body) > MAX_JSON_BYTES:
                raise _unreadable("the answer is far larger than any job", track_id)
            if time.monotonic() > deadline:
                raise ZuoraTimeout(
                    "Zuora took too long to send its answer. Try again in a minute.",
                    track_id=track_id,
                )
    except (urllib3.exceptions.HTTPError, OSError):
        raise _unreadable("the answer broke off before its end", track_id) from None
    return bytes(body)


def _parse_json(response: requests.Response, body: bytes, track_id: str) -> Any:
    content_type = response.headers.get("Content-Type", "")
    if "json" not in content_type and response.status_code == 200:
        raise _unreadable("a web page instead of data", track_id)
    try:
        return _without_lone_surrogates(
            json.loads(body, parse_constant=_not_a_number, parse_float=_finite)
        )
    except (ValueError, RecursionError):
        if response.status_code == 200:
            raise _unreadable("the data is not valid JSON", track_id) from None
        return None


def _not_a_number(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400
        raise ValueError(f"{text} is too large a number")
    return value


def _without_lone_surrogates(value: Any) -> Any:
    """JSON may spell half a UTF-16 pair (\\ud800), which no database or page can hold."""
    if isinstance(value, str):
        if LONE_SURROGATE.search(value):
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {
            _without_lone_surrogates(key): _without_lone_surrogates(item)
            for key, item in value.items()
        }
    return value


def _raise_for_response(
    conn: Connection, response: requests.Response, data: Any, track_id: str
) -> None:
    status = response.status_code
    if isinstance(data, dict):
        process_id = str(data.get("processId", ""))
    else:
        process_id, data = "", {}
    if status in (401, 403):
        _forget_token(conn)
        raise _credentials_rejected(conn.tenant, track_id, process_id)
    if status == 404:
        raise JobNotFound(_not_found_message(), track_id=track_id, process_id=process_id)
    if status == 429:
        wait = _retry_after_seconds(response)
        when = f"in {wait} seconds" if wait is not None else "in a minute"
        raise RateLimited(
            f"Zuora is limiting requests for tenant {conn.tenant}. Try again {when}.",
            retry_after=wait,
            track_id=track_id,
            process_id=process_id,
        )
    if status == 504:
        raise ZuoraTimeout("Zuora timed out answering. Try again in a minute.", track_id=track_id)
    if status >= 500:
        raise ZuoraUnavailable(
            f"Zuora is having trouble (HTTP {status}). Try again in a minute; if it persists, "
            "check Zuora's status page.",
            track_id=track_id,
            process_id=process_id,
        )
    _raise_for_error_body(data, tenant=conn.tenant, track_id=track_id, job_expected=False)
    raise RequestRejected(
        f"Zuora refused the request (HTTP {status}).", track_id=track_id, process_id=process_id
    )


def _retry_after_seconds(response: requests.Response) -> int | None:
    """Zuora's Retry-After (or RateLimit-Reset) in seconds, between 0 and an hour; None when
    it is missing or makes no sense (negative, not a number, not a date)."""
    for header in ("Retry-After", "RateLimit-Reset"):
        value = response.headers.get(header, "").strip()
        if not value:
            continue
        if (seconds := _whole_number(value)) is not None:
            return min(seconds, MAX_RETRY_AFTER)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            continue
        if when.tzinfo is not None:
            seconds = int((when - datetime.now(UTC)).total_seconds())
            return min(max(0, seconds), MAX_RETRY_AFTER)
    return None


def _retry_wait(response: requests.Response, attempt: int) -> float | None:
    """Seconds to wait before the next attempt, or None when waiting is not worth it."""
    asked = _retry_after_seconds(response)
    if asked is not None:
        return float(asked) if asked <= MAX_RETRY_WAIT else None
    return min(MAX_RETRY_WAIT, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


# --- Auth ---------------------------------------------------------------------------------------


@sensitive_variables()
def _auth_headers(conn: Connection, track_id: str, deadline: float) -> dict[str, str]:
    credentials = conn.credentials
    if credentials.method == "basic":
        auth = requests.auth._basic_auth_str(credentials.identity, credentials.secret)
        return {"Authorization": auth}
    return {"Authorization": f"Bearer {_token(conn, track_id, deadline)}"}


@sensitive_variables()
def _token_key(conn: Connection) -> str:
    # The secret is part of the hash, so a changed secret never reuses an old token.
    material = "\0".join(
        (conn.base_url, conn.entity_id, conn.credentials.identity, conn.credentials.secret)
    )
    return "zuora-token:" + hashlib.sha256(material.encode()).hexdigest()


@sensitive_variables()
def _token(conn: Connection, track_id: str, deadline: float) -> str:
    if conn.token_cache is None:
        return _fetch_token(conn, track_id=track_id, deadline=deadline)[0]
    key = _token_key(conn)
    token = conn.token_cache.get(key)
    if token:
        return token
    # One caller fetches; the others wait briefly for its token instead of all asking Zuora.
    if not conn.token_cache.add(key + ":lock", 1, timeout=conn.read_timeout + 5):
        for _ in range(50):
            if time.monotonic() > deadline:
                break
            conn.sleep(0.1)
            if token := conn.token_cache.get(key):
                return token
    try:
        token, expires_in = _fetch_token(conn, track_id=track_id, deadline=deadline)
        conn.token_cache.set(key, token, timeout=max(1, expires_in - TOKEN_EARLY_EXPIRY))
    finally:
        conn.token_cache.delete(key + ":lock")
    return token


def _forget_token(conn: Connection) -> None:
    if conn.token_cache is not None and conn.credentials.method == "oauth":
        conn.token_cache.delete(_token_key(conn))


@sensitive_variables()
def _fetch_token(conn: Connection, *, track_id: str, deadline: float) -> tuple[str, int]:
    """POST /oauth/token; never retried, since a lost answer may still have issued a token."""
    base_url = check_base_url(conn.base_url, extra_hosts=conn.extra_hosts)
    form = {
        "client_id": conn.credentials.identity,
        "client_secret": conn.credentials.secret,
        "grant_type": "client_credentials",
    }
    headers = {"Accept": "application/json", "Zuora-Track-Id": track_id}
    if conn.entity_id:
        headers["Zuora-Entity-Ids"] = conn.entity_id
    response = _send(
        conn, "POST", base_url + "/oauth/token", headers, deadline, track_id, data=form
    )
    logger.info("Zuora POST /oauth/token -> %s (track %s)", response.status_code, track_id)
    with response:
        if 300 <= response.status_code < 400:
            raise UnexpectedRedirect(
                "Zuora answered the sign-in with a redirect aquadash does not follow. Check the "
                "tenant's environment.",
                track_id=track_id,
            )
        data = _read_json_body(response, track_id, deadline)
        if response.status_code in (400, 401, 403):
            raise _credentials_rejected(conn.tenant, track_id)
        if response.status_code != 200:
            _raise_for_response(conn, response, data, track_id)
    if not isinstance(data, dict):
        raise _unreadable("the sign-in answer is not a JSON object", track_id)
    _raise_for_error_body(data, tenant=conn.tenant, track_id=track_id, job_expected=False)
    token, expires_in = data.get("access_token"), data.get("expires_in", 3599)
    if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
        raise _unreadable("the sign-in answer has no usable token", track_id)
    return token, int(expires_in)
