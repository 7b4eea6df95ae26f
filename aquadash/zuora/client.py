"""The calls to Zuora: a `Connection` in, a `Job`, a `ResultFile` or a `ZuoraError` out, with
authentication, retries, deadlines and the safety rules of every request."""

import contextlib
import email.utils
import functools
import hashlib
import json
import logging
import math
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal, Protocol
from urllib.parse import quote

import requests
import requests.adapters
import urllib3
import urllib3.util.connection
from django.views.decorators.debug import sensitive_variables

from aquadash.zuora.errors import (
    CredentialsRejected,
    FileNotFound,
    FileTooLarge,
    HostNotAllowed,
    InvalidId,
    JobNotFound,
    RateLimited,
    RequestRejected,
    UnexpectedRedirect,
    WrongEnvironment,
    ZuoraError,
    ZuoraTimeout,
    ZuoraUnavailable,
)
from aquadash.zuora.network import (
    SESSION,
    PrivateAddress,
    check_base_url,
    other_clouds,
)
from aquadash.zuora.shapes import (
    Job,
    check_id,
    credentials_rejected,
    is_auth_failure,
    not_found_message,
    parse_job,
    raise_for_error_body,
    unreadable,
    whole_number,
)

logger = logging.getLogger(__name__)

LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
MAX_JSON_BYTES = 5 * 1024 * 1024
MAX_RETRY_WAIT = 5.0  # seconds; a person is waiting for the page
MAX_RETRY_AFTER = 3600  # seconds; a longer Retry-After is taken as an hour
TOKEN_EARLY_EXPIRY = 60  # seconds before Zuora's expiry that we stop using a token
RETRIED_STATUSES = frozenset({429, 502, 503, 504})
# The paths' templates, as reported to Connection.on_call: the same few whatever the IDs.
JOB_ENDPOINT = "/v1/batch-query/jobs/{id}"
LAST_COMPLETED_ENDPOINT = "/v1/batch-query/jobs/partner/{partner}/project/{project}"
FILE_ENDPOINT = "/v1/files/{id}"


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


@dataclass(frozen=True)
class Allowance:
    """What one answer's RateLimit headers say of the tenant's allowance: the requests left
    in the window closest to running out (Zuora's "Rate limits" guide). Zuora counts them per
    tenant, for every integration the customer runs, and sign-ins apart from other requests."""

    limit: int
    remaining: int
    reset_seconds: int | None  # until the window starts afresh
    window_seconds: int | None  # 60, 3600 or 86400, when Zuora said which window it is
    sign_in: bool = False  # the token call's: counted against the AUTH limits, not the API's


@dataclass(frozen=True)
class Connection:
    """Everything needed to talk to one tenant's Zuora."""

    base_url: str
    credentials: Credentials
    tenant: str  # the tenant's name, for messages
    zone: tzinfo = UTC  # the tenant's time zone: Zuora's times without an offset are in it
    entity_id: str = ""  # 32 hex digits, as Zuora shows it; the token call gets it as a UUID
    org_ids: str = ""  # Multi-Org: comma-separated, sent as Zuora-Org-Ids
    extra_hosts: frozenset[tuple[str, int]] = frozenset()
    token_cache: TokenCache | None = field(default=None, repr=False)
    session: requests.Session = field(default=SESSION, repr=False)
    connect_timeout: float = 3.05
    read_timeout: float = 15.0
    total_timeout: float = 30.0
    max_attempts: int = 3
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    # Told the tenant's allowance after every answer that states it, so the app can keep it.
    on_allowance: Callable[[Allowance], None] | None = field(default=None, repr=False)
    # Told of every request sent, for the app's metrics: (method, endpoint, outcome). The
    # endpoint is the path's template ("/v1/batch-query/jobs/{id}"), never an ID; the outcome is
    # the HTTP status ("200", "429") or, when Zuora did not answer, "timeout" or "unreachable".
    on_call: Callable[[str, str, str], None] | None = field(default=None, repr=False)
    # Told how each job or file call ended (None when it worked), so the app can show when the
    # tenant last answered.
    on_answer: Callable[[ZuoraError | None], None] | None = field(default=None, repr=False)


def _telling[**P, R](operation: Callable[P, R]) -> Callable[P, R]:
    """The operation, telling its connection's `on_answer` how it ended."""

    @functools.wraps(operation)
    def told(*args: P.args, **kwargs: P.kwargs) -> R:
        conn = args[0]
        try:
            result = operation(*args, **kwargs)
        except ZuoraError as exc:
            if conn.on_answer is not None:
                conn.on_answer(exc)
            raise
        if conn.on_answer is not None:
            conn.on_answer(None)
        return result

    return told


@_telling
def get_job(conn: Connection, *, job_id: str) -> Job:
    job_id = check_id(job_id, what="job")
    job = _call_job(conn, "GET", f"/v1/batch-query/jobs/{job_id}", endpoint=JOB_ENDPOINT)
    if job.id != job_id:
        raise unreadable("the answer is about a different job", job.track_id)
    return job


@_telling
def get_last_completed_job(conn: Connection, *, partner: str, project: str) -> Job:
    path = "/v1/batch-query/jobs/partner/{}/project/{}".format(
        _path_part(partner, "partner"), _path_part(project, "project")
    )
    return _call_job(conn, "GET", path, endpoint=LAST_COMPLETED_ENDPOINT)


@_telling
def cancel_job(conn: Connection, *, job_id: str) -> Job:
    job_id = check_id(job_id, what="job")
    return _call_job(conn, "DELETE", f"/v1/batch-query/jobs/{job_id}", endpoint=JOB_ENDPOINT)


def _call_job(conn: Connection, method: str, path: str, *, endpoint: str) -> Job:
    data, track_id, request_id = _call_json(conn, method, path, endpoint=endpoint)
    try:
        return parse_job(
            data, zone=conn.zone, tenant=conn.tenant, track_id=track_id, request_id=request_id
        )
    except ZuoraError as exc:
        exc.request_id = request_id
        raise


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
        return whole_number(self.response.headers.get("Content-Length", ""))

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


@_telling
def open_file(conn: Connection, *, file_id: str, retention_days: int = 3) -> ResultFile:
    """Start downloading a result file; Zuora purges them `retention_days` after completion."""
    file_id = check_id(file_id, what="file")
    deadline = _deadline(conn)
    response, track_id = _call(
        conn, "GET", f"/v1/files/{file_id}", endpoint=FILE_ENDPOINT, deadline=deadline, accept="*/*"
    )
    if response.status_code == 404:
        response.close()
        raise FileNotFound(
            f"Zuora no longer has this result file: Zuora purges result files {retention_days} "
            "days after the job completes. Rerun the query to get the data again.",
            track_id=track_id,
        )
    if response.status_code != 200:
        with response, _quoting(response):
            body = _read_body(response, track_id, deadline)
            if response.status_code == 403 and b"max-object-size" in body:
                raise FileTooLarge(
                    "Zuora refuses to serve this result file because it is larger than 2,047 "
                    "MB, Zuora's limit for one file. Rerun the query split into smaller parts "
                    "(by date range, say), or ask Zuora support to turn on file segmentation.",
                    track_id=track_id,
                )
            _raise_for_response(conn, response, _parse_json(response, body, track_id), track_id)
    return ResultFile(response=response, track_id=track_id)


def check_credentials(conn: Connection) -> str:
    """Prove the stored credentials work; returns a short description of what was checked.

    Rejected credentials are tried at the environment's other cloud too: a tenant lives on one
    of the two, and the other answers its credentials 401, which is no reason to change them.
    """
    try:
        return _check_credentials(conn)
    except CredentialsRejected as rejected:
        base_url = check_base_url(conn.base_url, extra_hosts=conn.extra_hosts)
        for label, other_url in other_clouds(base_url):
            try:
                _check_credentials(replace(conn, base_url=other_url, token_cache=None))
            except ZuoraError:
                continue
            raise WrongEnvironment(
                f"Zuora at {base_url} rejected these credentials, but these credentials work "
                f"at {other_url} ({label}): change the tenant's environment to {label}. The "
                "secret is fine.",
                track_id=rejected.track_id,
                request_id=rejected.request_id,
            ) from None
        raise


def _check_credentials(conn: Connection) -> str:
    if conn.credentials.method == "oauth":
        _fetch_token(conn, track_id=new_track_id(), deadline=_deadline(conn))
        return "Zuora issued an OAuth token for these credentials."
    _open_connection(conn, track_id=new_track_id(), deadline=_deadline(conn))
    return "Zuora accepted the username and password."


@sensitive_variables()
def _open_connection(conn: Connection, *, track_id: str, deadline: float) -> None:
    """POST /v1/connections, Zuora's documented check of a username and password (older API
    reference, "Establish a connection to Zuora REST API"): `{"success": true}` when they work.
    Its session cookie is not kept: the session refuses cookies."""
    base_url = check_base_url(conn.base_url, extra_hosts=conn.extra_hosts)
    credentials = conn.credentials
    headers = _headers(conn, track_id) | {
        "apiAccessKeyId": credentials.identity,
        "apiSecretAccessKey": credentials.secret,
    }
    response = _send(
        conn,
        "POST",
        base_url + "/v1/connections",
        headers,
        deadline,
        track_id,
        endpoint="/v1/connections",
    )
    logger.debug("Zuora POST /v1/connections -> %s (track %s)", response.status_code, track_id)
    _refuse_redirect(response, track_id)
    with response, _quoting(response):
        data = _read_json_body(response, track_id, deadline)
        if response.status_code != 200:
            _raise_for_response(conn, response, data, track_id)
        if not isinstance(data, dict):
            raise unreadable("the answer to the sign-in check is not a JSON object", track_id)
        raise_for_error_body(data, tenant=conn.tenant, track_id=track_id, job_expected=False)
        if data.get("success") is not True:
            raise unreadable("the answer does not say whether the sign-in worked", track_id)


def _path_part(value: str, what: str) -> str:
    # "." and ".." would be resolved as path segments and send the request somewhere else.
    if not value or len(value) > 128 or not value.isprintable() or value in (".", ".."):
        raise InvalidId(f"The {what} must be 1 to 128 printable characters, not a path.")
    return quote(value, safe="")


def new_track_id() -> str:
    """A Zuora-Track-Id: at most 64 US-ASCII characters, none of : ; " '."""
    return f"aquadash-{uuid.uuid4().hex}"


def _call_json(
    conn: Connection,
    method: str,
    path: str,
    *,
    endpoint: str,
    deadline: float | None = None,
    reauth: bool = True,
) -> tuple[Any, str, str]:
    """(the answer's JSON, our track ID, Zuora's request ID)."""
    deadline = deadline or _deadline(conn)
    response, track_id = _call(conn, method, path, endpoint=endpoint, deadline=deadline)
    with response, _quoting(response):
        data = _read_json_body(response, track_id, deadline)
        if response.status_code != 200:
            _raise_for_response(conn, response, data, track_id)
    if is_auth_failure(data):
        # HTTP 200 with an auth failure in the body: the cached token is no good. Sign in once
        # more with the stored credentials before saying they were rejected.
        _forget_token(conn)
        if reauth and conn.credentials.method == "oauth":
            return _call_json(
                conn, method, path, endpoint=endpoint, deadline=deadline, reauth=False
            )
    return data, track_id, _request_id(response)


def _request_id(response: requests.Response) -> str:
    """Zuora's Zuora-Request-Id, which Zuora support asks for; shown on pages, so only a
    short printable one."""
    value = response.headers.get("Zuora-Request-Id", "")
    return value[:64] if value.isascii() and value.isprintable() else ""


@contextlib.contextmanager
def _quoting(response: requests.Response) -> Iterator[None]:
    """Whatever error this answer turns out to be carries Zuora's request ID."""
    try:
        yield
    except ZuoraError as exc:
        exc.request_id = exc.request_id or _request_id(response)
        raise


def _deadline(conn: Connection) -> float:
    """When one operation (token, request, retries and body together) must be over."""
    return time.monotonic() + conn.total_timeout


@sensitive_variables()
def _call(
    conn: Connection,
    method: str,
    path: str,
    *,
    endpoint: str,
    deadline: float,
    accept: str = "application/json",
) -> tuple[requests.Response, str]:
    """Send one request with auth, retries and the safety rules; returns (response, track ID)."""
    base_url = check_base_url(conn.base_url, extra_hosts=conn.extra_hosts)
    track_id = new_track_id()
    refreshed = False
    attempt = 0
    while True:
        attempt += 1
        headers = _headers(conn, track_id, accept) | _auth_headers(conn, track_id, deadline)
        response = _send(
            conn, method, base_url + path, headers, deadline, track_id, endpoint=endpoint
        )
        _tell_allowance(conn, response)
        status = response.status_code
        logger.debug("Zuora %s %s -> %s (track %s)", method, path, status, track_id)
        _refuse_redirect(response, track_id)
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


def _headers(
    conn: Connection, track_id: str, accept: str = "application/json", *, token_call: bool = False
) -> dict[str, str]:
    """What every request to Zuora carries, but the credentials."""
    headers = {"Accept": accept, "Zuora-Track-Id": track_id}
    if accept != "application/json":
        headers["Accept-Encoding"] = "identity"  # the file as Zuora made it, byte for byte
    if conn.entity_id:
        # The token call wants a UUID ("If your entity ID is not a valid UUID, convert it");
        # other calls get the ID as Zuora shows it, as in Zuora's own GET_FileStatus sample.
        headers["Zuora-Entity-Ids"] = _as_uuid(conn.entity_id) if token_call else conn.entity_id
    if conn.org_ids and not token_call:  # the token reference lists no Zuora-Org-Ids
        headers["Zuora-Org-Ids"] = conn.org_ids
    return headers


def _as_uuid(entity_id: str) -> str:
    try:
        return str(uuid.UUID(hex=entity_id))
    except ValueError:
        return entity_id


def _refuse_redirect(response: requests.Response, track_id: str) -> None:
    """Requests are sent with allow_redirects=False: a redirect is an answer we refuse, since
    following it could carry the credentials to another host."""
    if 300 <= response.status_code < 400:
        response.close()
        raise UnexpectedRedirect(
            "Zuora answered with a redirect aquadash does not follow. Check the tenant's "
            "environment; if it persists, quote the track ID to Zuora support.",
            track_id=track_id,
            request_id=_request_id(response),
        )


@sensitive_variables()
def _send(
    conn: Connection,
    method: str,
    url: str,
    headers: dict,
    deadline: float,
    track_id: str,
    data: dict | None = None,
    *,
    endpoint: str,
) -> requests.Response:
    """One request; each is reported to `conn.on_call`, answered or not."""
    read_timeout = min(conn.read_timeout, deadline - time.monotonic())
    if read_timeout <= 0:
        raise ZuoraTimeout(
            "Zuora took too long to answer. Try again in a minute.", track_id=track_id
        )
    outcome = "unreachable"
    try:
        response = _request(conn, method, url, headers, data, read_timeout, track_id)
        outcome = str(response.status_code)
        return response
    except ZuoraTimeout:
        outcome = "timeout"
        raise
    finally:
        if conn.on_call is not None:
            conn.on_call(method, endpoint, outcome)


@sensitive_variables()
def _request(
    conn: Connection,
    method: str,
    url: str,
    headers: dict,
    data: dict | None,
    read_timeout: float,
    track_id: str,
) -> requests.Response:
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
        # The requests that never left carry no track ID: Zuora has nothing to look up.
        reason = getattr(exc.args[0] if exc.args else None, "reason", None)
        if isinstance(reason, PrivateAddress):
            logger.warning("Refused to connect: %s", reason)
            raise HostNotAllowed(
                "Zuora's host name pointed at a private network address, so aquadash refused "
                "to connect. Tell whoever runs aquadash: their DNS may have been tampered with.",
            ) from None
        proxy = isinstance(exc, requests.exceptions.ProxyError)
        never_left = proxy or isinstance(reason, urllib3.exceptions.NewConnectionError)
        if proxy:
            message = (
                "aquadash cannot reach Zuora through its outbound proxy (ZUORA_PROXY): the proxy "
                "did not answer or would not connect to Zuora. Try again in a minute; if it "
                "persists, tell whoever runs aquadash."
            )
        elif isinstance(reason, urllib3.exceptions.NameResolutionError):
            message = (
                "aquadash cannot reach Zuora (the host name did not resolve). Try again in a "
                "minute; if it persists, whoever runs aquadash should check the server's DNS."
            )
        else:
            message = (
                "aquadash cannot reach Zuora right now (the connection failed). Try again in a "
                "minute; if it persists, check Zuora's status page."
            )
        raise ZuoraUnavailable(message, track_id="" if never_left else track_id) from None
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
                raise unreadable("the answer is far larger than any job", track_id)
            if time.monotonic() > deadline:
                raise ZuoraTimeout(
                    "Zuora took too long to send its answer. Try again in a minute.",
                    track_id=track_id,
                )
    except (urllib3.exceptions.HTTPError, OSError):
        raise unreadable("the answer broke off before its end", track_id) from None
    return bytes(body)


def _parse_json(response: requests.Response, body: bytes, track_id: str) -> Any:
    content_type = response.headers.get("Content-Type", "")
    if "json" not in content_type and response.status_code == 200:
        raise unreadable("a web page instead of data", track_id)
    try:
        return _without_lone_surrogates(
            json.loads(body, parse_constant=_not_a_number, parse_float=_finite)
        )
    except (ValueError, RecursionError):
        if response.status_code == 200:
            raise unreadable("the data is not valid JSON", track_id) from None
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
        # The body tells a missing permission (AQuA 90009, v1 category 10) from bad credentials.
        raise_for_error_body(data, tenant=conn.tenant, track_id=track_id, job_expected=False)
        _forget_token(conn)
        raise credentials_rejected(conn.tenant, track_id, process_id)
    if status == 404:
        raise JobNotFound(not_found_message(), track_id=track_id, process_id=process_id)
    if status == 429:
        wait = _retry_after_seconds(response)
        raise RateLimited(
            f"Zuora is limiting requests for tenant {conn.tenant}.",
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
    raise_for_error_body(data, tenant=conn.tenant, track_id=track_id, job_expected=False)
    raise RequestRejected(
        f"Zuora refused the request (HTTP {status}).", track_id=track_id, process_id=process_id
    )


def _retry_after_seconds(response: requests.Response) -> int | None:
    """Zuora's Retry-After (or RateLimit-Reset) in seconds, between 0 and an hour; None when
    it is missing or makes no sense (negative, not a number, not a date)."""
    # Zuora sends RateLimit-Reset on every answer: only on a 429 does it say when to return.
    headers = (
        ("Retry-After", "RateLimit-Reset") if response.status_code == 429 else ("Retry-After",)
    )
    for header in headers:
        value = response.headers.get(header, "").strip()
        if not value:
            continue
        if (seconds := whole_number(value)) is not None:
            return min(seconds, MAX_RETRY_AFTER)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            continue
        if when.tzinfo is not None:
            seconds = int((when - datetime.now(UTC)).total_seconds())
            return min(max(0, seconds), MAX_RETRY_AFTER)
    return None


def read_allowance(headers: Mapping[str, str], *, sign_in: bool = False) -> Allowance | None:
    """The allowance in RateLimit-Limit, -Remaining and -Reset (requests' headers ignore case,
    so Zuora's `ratelimit-limit` is found too), or None when they are missing or make no sense.

    Zuora sends `ratelimit-limit: 5000, 2500;w=60, 5000;w=3600, 10000;w=86400`: first the quota
    of the window closest to running out, then each window's quota and length in seconds.
    """
    policies = [item.strip() for item in headers.get("RateLimit-Limit", "").split(",")]
    quota, _, params = policies[0].partition(";")
    limit = whole_number(quota)
    remaining = whole_number(headers.get("RateLimit-Remaining", "").split(",")[0])
    if limit is None or remaining is None:
        return None
    window = _window(params)
    for policy in policies[1:] if window is None else []:
        quota, _, params = policy.partition(";")
        if whole_number(quota) == limit and (window := _window(params)) is not None:
            break
    return Allowance(
        limit=limit,
        remaining=min(remaining, limit),
        reset_seconds=whole_number(headers.get("RateLimit-Reset", "").split(",")[0]),
        window_seconds=window,
        sign_in=sign_in,
    )


def _window(params: str) -> int | None:
    """The `w=3600` among a policy's parameters (`;w=3600`), in seconds."""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "w":
            return whole_number(value)
    return None


def _tell_allowance(
    conn: Connection, response: requests.Response, *, sign_in: bool = False
) -> None:
    if conn.on_allowance is None:
        return
    if (allowance := read_allowance(response.headers, sign_in=sign_in)) is not None:
        conn.on_allowance(allowance)


def _retry_wait(response: requests.Response, attempt: int) -> float | None:
    """Seconds to wait before the next attempt, or None when waiting is not worth it."""
    asked = _retry_after_seconds(response)
    if asked is not None:
        return float(asked) if asked <= MAX_RETRY_WAIT else None
    return min(MAX_RETRY_WAIT, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


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
    headers = _headers(conn, track_id, token_call=True)
    response = _send(
        conn,
        "POST",
        base_url + "/oauth/token",
        headers,
        deadline,
        track_id,
        data=form,
        endpoint="/oauth/token",
    )
    _tell_allowance(conn, response, sign_in=True)
    logger.debug("Zuora POST /oauth/token -> %s (track %s)", response.status_code, track_id)
    _refuse_redirect(response, track_id)
    with response, _quoting(response):
        data = _read_json_body(response, track_id, deadline)
        if response.status_code in (400, 401, 403):
            raise credentials_rejected(conn.tenant, track_id)
        if response.status_code != 200:
            _raise_for_response(conn, response, data, track_id)
        if not isinstance(data, dict):
            raise unreadable("the sign-in answer is not a JSON object", track_id)
        raise_for_error_body(data, tenant=conn.tenant, track_id=track_id, job_expected=False)
    token, expires_in = data.get("access_token"), data.get("expires_in", 3599)
    if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
        raise unreadable("the sign-in answer has no usable token", track_id)
    return token, int(expires_in)
