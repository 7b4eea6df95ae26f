"""The simulator itself: a WSGI application that answers like Zuora's AQuA API.

It is written from Zuora's documentation, not from our client, and imports nothing else of
aquadash: two independent readings of the docs that agree are evidence, one reading used twice
is not. Besides the AQuA endpoints it has a control API under
/_simulator/ for faults, purges and request counts; that API has no authentication, so serve
the simulator on loopback only.
"""

import base64
import binascii
import hmac
import json
import re
import secrets
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from aquadash.simulator import budget, catalogue
from aquadash.simulator.faults import WRAPPING, Fault, dripped, replacement, truncated
from aquadash.simulator.files import ResultFile
from aquadash.simulator.jobs import (
    FINAL_STATUSES,
    Job,
    Rejected,
    refusal,
    submitted_job,
)
from aquadash.simulator.responses import (
    JSON,
    DropConnection,
    Response,
    authentication_error,
    json_response,
    missing_file,
    not_found,
    raw_response,
    v1_error,
)

DEMO_CLIENT_ID = "5d3c7f2a-9b41-4e6d-8a0f-1c2b3d4e5f60"
DEMO_CLIENT_SECRET = "aquadash-demo-secret-not-for-production"
DEMO_USERNAME = "demo@aquadash.example"
DEMO_PASSWORD = "demo-password"
# A client and a user that sign in, but whose Zuora role lacks AQuA: AQuA answers 90009, other
# v1 calls 403 with a category-10 (permission denied) code.
NO_AQUA_CLIENT_ID = "0b7e4d1c-2f3a-4c5d-9e8f-a1b2c3d4e5f6"
NO_AQUA_CLIENT_SECRET = "aquadash-demo-no-aqua-secret"
NO_AQUA_USERNAME = "no-aqua@aquadash.example"
NO_AQUA_PASSWORD = "no-aqua-password"

DAY = 24 * 3600.0
JOB_RETENTION = 180 * DAY  # Zuora deletes jobs created more than 180 days ago
FILE_RETENTION = 3 * DAY  # and result files after 3 days
MAX_FILE_BYTES = 2047 * 1024 * 1024  # Zuora refuses to serve larger result files
MAX_CONCURRENT_JOBS = 50  # per tenant, stateful and stateless counted apart (AQuA Limits page)
ACTIVE_STATUSES = frozenset({"submitted", "executing"})  # what counts towards that limit
DEMO_ENTITY_ID = "1a2b7a37-3e7d-4cb3-b0e2-883de9e766cc"  # from Zuora's createToken sample
CONTROL = "/_simulator/"

ENDPOINTS = [
    ("/oauth/token", re.compile(r"/oauth/token/?")),
    ("/v1/connections", re.compile(r"/v1/connections/?")),
    ("/v1/batch-query", re.compile(r"/v1/batch-query/?")),
    (
        "/v1/batch-query/jobs/partner/{partner}/project/{project}",
        re.compile(r"/v1/batch-query/jobs/partner/(?P<partner>[^/]+)/project/(?P<project>[^/]+)/?"),
    ),
    ("/v1/batch-query/jobs/{id}", re.compile(r"/v1/batch-query/jobs/(?P<job_id>[^/]+)/?")),
    ("/v1/files/{id}", re.compile(r"/v1/files/(?P<file_id>[^/]+)/?")),
    ("/v1/file/{id}", re.compile(r"/v1/file/(?P<file_id>[^/]+)/?")),
]


@dataclass
class RecordedRequest:
    method: str
    path: str
    endpoint: str  # e.g. "GET /v1/batch-query/jobs/{id}"
    job_id: str | None
    file_id: str | None
    headers: dict[str, str]
    fault: str | None = None
    status: int | None = None
    bytes_sent: int = 0
    finished: bool = False  # False: the body was cut short, by a fault or by the client leaving
    closed: bool = False  # the body is over, sent whole or not: nothing more will be sent


@dataclass
class _FileRef:
    job: Job
    batch: int
    segment: int | None


class Simulator:
    """Zuora's AQuA API in one WSGI callable; see SIMULATOR.md. Safe to serve from threads.

    `clock` drives job progress, token expiry and retention, so tests can move time; faults
    that sleep use real time.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        token_lifetime: int = 3599,
        batch_seconds: float = 8.0,
        max_concurrent_jobs: int = MAX_CONCURRENT_JOBS,
        unknown_job: str = "404",
        timezone: str = "America/Los_Angeles",
        clients: dict[str, str] | None = None,
        users: dict[str, str] | None = None,
        without_aqua: frozenset[str] = frozenset({NO_AQUA_CLIENT_ID, NO_AQUA_USERNAME}),
        entities: list[str] | None = None,
        tenant_type: str = "production",
        limits: dict[int, int] | None = None,
    ) -> None:
        if str(unknown_job) not in ("404", "200"):
            raise ValueError('unknown_job must be "404" or "200".')
        self.clock = clock
        self.token_lifetime = token_lifetime
        self.batch_seconds = batch_seconds
        # Zuora's cap is per tenant; a benchmark's one simulator stands in for many tenants.
        self.max_concurrent_jobs = max_concurrent_jobs
        # How an unknown or purged job is answered: "404" (v1 not-found error) or "200" (AQuA
        # errorCode 90002). Zuora's docs do not say, so tests may change it at any time.
        self.unknown_job = str(unknown_job)
        self.timezone = timezone
        if clients is None:
            clients = {DEMO_CLIENT_ID: DEMO_CLIENT_SECRET, NO_AQUA_CLIENT_ID: NO_AQUA_CLIENT_SECRET}
        if users is None:
            users = {DEMO_USERNAME: DEMO_PASSWORD, NO_AQUA_USERNAME: NO_AQUA_PASSWORD}
        self.clients, self.users = clients, users
        self.without_aqua = without_aqua  # client IDs and usernames whose role lacks AQuA
        # The entities every OAuth token covers; with several, each call must name one.
        self.entities = [DEMO_ENTITY_ID] if entities is None else entities
        self.url = ""  # set by serve()
        self._zone = ZoneInfo(timezone)
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._files: dict[str, _FileRef] = {}
        self._tokens: dict[str, float] = {}
        self._token_owners: dict[str, str] = {}  # token -> the client ID it was issued to
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self.set_budget(tenant_type, limits)
        for job in catalogue.seed(clock()):
            self._add(job)

    def __repr__(self) -> str:
        return f"<Simulator {self.url or 'not served'}>"

    def add_fault(
        self,
        kind: str,
        *,
        job_id: str | None = None,
        path: str | None = None,
        times: int | None = 1,
        **params: Any,
    ) -> Fault:
        """Fail the next `times` requests (None: all) whose path contains `job_id` and starts
        with `path`; SIMULATOR.md lists the kinds and their params."""
        fault = Fault(kind, job_id, path, times, params)
        with self._lock:
            self._faults.append(fault)
        return fault

    def add_job(
        self,
        *,
        records: int | None = None,
        size: int | None = None,
        query: str = catalogue.ACCOUNTS,
        name: str = "Sized export",
        file_format: str = "CSV",
        encrypted: str = "none",
        segments: int = 1,
        batches: int = 1,
    ) -> str:
        """A completed job of `batches` batches (more than Zuora's 50 if asked), each with
        `records` rows, or about `size` bytes of CSV, in `segments` files; its files are made
        while they stream, however big. Returns its ID."""
        now = self.clock()
        job_id = uuid.uuid4().hex
        if records is None:
            empty, ten = (catalogue.batch(job_id, 0, name, query, n) for n in (0, 10))
            header, ten_rows = (
                _result_file(b, b.file_ids[0], "CSV", "none", False, None).csv_length
                for b in (empty, ten)
            )
            records = max(0, int(size or 0) - header) * 10 // (ten_rows - header)
        records = max(0, int(records))
        per_segment = max(1, -(-records // max(1, int(segments))))
        count = max(1, int(batches))
        made = [
            catalogue.batch(
                job_id,
                n,
                name if count == 1 else f"{name} {n + 1}",
                query,
                records,
                segmented=segments > 1,
                rows_per_segment=per_segment,
            )
            for n in range(count)
        ]
        self._add(
            catalogue.job(
                job_id, name, now, made, file_format=file_format.upper(), encrypted=encrypted
            )
        )
        return job_id

    def forget_job(self, job_id: str) -> bool:
        """Purge a job as Zuora does after 180 days: from now on it is an unknown job."""
        with self._lock:
            job = self._jobs.pop(job_id, None)
            for batch in job.batches if job else []:
                for file_id in batch.file_ids:
                    self._files.pop(file_id, None)
        return job is not None

    def expire_tokens(self) -> None:
        """End every issued OAuth token now, as if each had reached its lifetime."""
        with self._lock:
            self._tokens.clear()

    def set_budget(self, tenant_type: str = "production", limits: dict | None = None) -> None:
        """Start counting afresh with the API limits of a tenant type ("production",
        "developer_sandbox", "api_sandbox"), with `limits` ({60: per minute, 3600: per hour,
        86400: per day}, any of them) put over them."""
        api = budget.Budget(budget.quotas(tenant_type, limits))
        sign_ins = budget.Budget(dict(zip(budget.WINDOWS, budget.SIGN_INS, strict=True)))
        with self._lock:
            self._budgets = {"api": api, "auth": sign_ins}

    def budget(self) -> list[dict[str, int]]:
        """Each window of the API limits: its seconds, its quota and the requests left."""
        return self._budgets["api"].describe(self.clock())

    def reset(self) -> None:
        """Clear faults and recorded requests; jobs and tokens stay."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def count(
        self, method: str | None = None, path_prefix: str | None = None, job_id: str | None = None
    ) -> int:
        return sum(
            1
            for request in self.requests
            if (method is None or request.method == method.upper())
            and (path_prefix is None or request.path.startswith(path_prefix))
            and (job_id is None or request.job_id == job_id)
        )

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"].upper()
        path = environ.get("PATH_INFO") or "/"
        # Read the whole body first: closing a socket with unread input resets the connection.
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        if path.startswith(CONTROL):
            response = self._control(method, path.removeprefix(CONTROL.rstrip("/")), body)
        else:
            response = self._serve(method, path, body, environ)
        response.headers.append(("Zuora-Request-Id", str(uuid.uuid4())))
        if track_id := environ.get("HTTP_ZUORA_TRACK_ID"):
            response.headers.append(("Zuora-Track-Id", track_id))
        start_response(response.status_line, response.headers)
        return response.body

    def _serve(self, method: str, path: str, body: bytes, environ: dict[str, Any]) -> Response:
        template, params = _endpoint(path)
        record = RecordedRequest(
            method=method,
            path=path,
            endpoint=f"{method} {template or path}",
            job_id=params.get("job_id"),
            file_id=params.get("file_id"),
            headers=_headers(environ),
        )
        with self._lock:
            self._requests.append(record)
            fault = next((fault for fault in self._faults if fault.matches(path)), None)
            if fault is not None and fault.times is not None:
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
        record.fault = fault.kind if fault else None
        spent = self._budgets["auth" if template == "/oauth/token" else "api"]
        allowed, limit_headers = spent.spend(self.clock())

        if not allowed:
            response = budget.refused(limit_headers)
        elif fault is not None and fault.kind not in WRAPPING:
            response = replacement(fault, record.job_id)
        else:
            if fault is not None and fault.kind == "slow":
                time.sleep(float(fault.params.get("seconds", 1)))
            response = self._answer(method, template, params, body, environ)
            if fault is not None and fault.kind == "drop":
                raise DropConnection  # after the work is done: the answer is what gets lost
            if fault is not None and fault.kind == "truncated":
                response = truncated(response, fault.params)
            if fault is not None and fault.kind == "drip":
                response = dripped(response, fault.params)

        if not any(name.lower().startswith("ratelimit-") for name, _ in response.headers):
            response.headers.extend(limit_headers)  # a rate_limited fault's own stand
        record.status = response.status
        response.body = _delivered(response.body, record)
        return response

    def _answer(
        self,
        method: str,
        template: str | None,
        params: dict[str, str],
        body: bytes,
        environ: dict[str, Any],
    ) -> Response:
        now = self.clock()
        if template == "/oauth/token" and method == "POST":
            return self._issue_token(body, now)
        identity = self._authenticated(environ, now)
        if not identity:
            return authentication_error()
        if refused := self._entity_refused(environ):
            return refused
        if identity in self.without_aqua and template and template != "/v1/connections":
            if template.startswith("/v1/batch-query"):
                denied = {"errorCode": "90009", "message": "User is not authorized."}
                return json_response(200, denied)
            return v1_error(403, 50000010, "You do not have permission to perform this action.")
        match method, template:
            case "POST", "/v1/connections":
                # Zuora's older reference: {"success": true}, and a session cookie for later calls.
                cookie = f"ZSession={secrets.token_hex(16)}; Path=/; Secure; HttpOnly"
                return json_response(200, {"success": True}, [("Set-Cookie", cookie)])
            case "POST", "/v1/batch-query":
                return self._submit(body, now)
            case "GET", "/v1/batch-query/jobs/{id}":
                return self._get_job(params["job_id"], now)
            case "DELETE", "/v1/batch-query/jobs/{id}":
                return self._cancel(params["job_id"], now)
            case "GET", "/v1/batch-query/jobs/partner/{partner}/project/{project}":
                return self._last_completed(params["partner"], params["project"], now)
            case "GET", "/v1/files/{id}" | "/v1/file/{id}":
                return self._file(params["file_id"], now)
        if template is not None:
            return v1_error(405, 50000045, "The HTTP method is not supported for this resource.")
        return not_found("The requested resource does not exist.")

    def _issue_token(self, body: bytes, now: float) -> Response:
        form = urllib.parse.parse_qs(body.decode("latin-1"))
        client_id = form.get("client_id", [""])[0]
        client_secret = form.get("client_secret", [""])[0]
        if form.get("grant_type", [""])[0] != "client_credentials":
            return v1_error(400, 50000020, "grant_type must be client_credentials.")
        expected = self.clients.get(client_id)
        if expected is None or not hmac.compare_digest(expected, client_secret):
            return v1_error(401, 90000011, "Invalid client_id or client_secret.")
        token = secrets.token_hex(16)
        with self._lock:
            self._tokens[token] = now + self.token_lifetime
            self._token_owners[token] = client_id
        return json_response(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.token_lifetime,
                "scope": "user.2c92c0f96d8a3b1e "
                + "".join(f"entity.{entity} " for entity in self.entities)
                + "service.echo.read tenant.19",
                "jti": secrets.token_hex(16),
            },
        )

    def _authenticated(self, environ: dict[str, Any], now: float) -> str:
        """Who signed the request (a client ID or username), or "" when nobody did."""
        scheme, _, credential = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() == "bearer":
            with self._lock:
                expires = self._tokens.get(credential.strip())
                owner = self._token_owners.get(credential.strip(), "")
            return owner if expires is not None and now < expires else ""
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credential.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return ""
            username, _, password = decoded.partition(":")
            return self._user_ok(username, password)
        username = environ.get("HTTP_APIACCESSKEYID")
        password = environ.get("HTTP_APISECRETACCESSKEY")
        if username is None or password is None:
            return ""
        return self._user_ok(username, password)

    def _entity_refused(self, environ: dict[str, Any]) -> Response | None:
        """A token valid for several entities "must" name one in Zuora-Entity-Ids (the v1
        reference on every AQuA operation); with one entity the header is optional. What Zuora
        answers without it is not documented: a v1 error of category 23 (missing parameter)."""
        scheme = environ.get("HTTP_AUTHORIZATION", "").partition(" ")[0]
        if len(self.entities) < 2 or scheme.lower() != "bearer":
            return None
        named = environ.get("HTTP_ZUORA_ENTITY_IDS", "").strip()
        if not named:
            return v1_error(
                400,
                50000023,
                "Zuora-Entity-Ids is required: the OAuth token is valid for more than one entity.",
            )
        # Zuora's own samples send the 32-hex form as well as the UUID.
        known = {entity.replace("-", "").lower() for entity in self.entities}
        if named.replace("-", "").lower() not in known:
            return v1_error(400, 50000020, "Zuora-Entity-Ids names no entity of this token.")
        return None

    def _user_ok(self, username: str, password: str) -> str:
        expected = self.users.get(username)
        ok = expected is not None and hmac.compare_digest(expected, password)
        return username if ok else ""

    def _add(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.job_id] = job
            for number, batch in enumerate(job.batches):
                for segment, file_id in enumerate(batch.file_ids):
                    self._files[file_id] = _FileRef(
                        job, number, segment if batch.segmented else None
                    )

    def _visible(self, job_id: str, now: float) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.created is None:
                # The demo's running job starts its clock when first looked at, one batch done.
                job.created = now - 2 * self.batch_seconds
            return job if now - job.created <= JOB_RETENTION else None

    def _status(self, job: Job, now: float) -> str:
        return job.statuses(now, self.batch_seconds)[0]

    def _job_response(self, job: Job, now: float) -> Response:
        if job.document is not None:
            return raw_response(200, JSON, job.document.encode())
        return json_response(200, job.render(now, self.batch_seconds, self._zone))

    def _unknown(self) -> Response:
        # UNCONFIRMED in Zuora's docs, so both plausible answers are available.
        if self.unknown_job == "200":
            return json_response(200, {"errorCode": "90002", "message": "Invalid Job Id."})
        return not_found("The requested job does not exist.")

    def _get_job(self, job_id: str, now: float) -> Response:
        with self._lock:
            job = self._visible(job_id, now)
            return self._job_response(job, now) if job else self._unknown()

    def _cancel(self, job_id: str, now: float) -> Response:
        with self._lock:
            job = self._visible(job_id, now)
            if job is None:
                return self._unknown()
            if self._status(job, now) in FINAL_STATUSES:
                message = "Invalid job id for cancellation: the job has already finished."
                return json_response(200, {"errorCode": "90003", "message": message})
            job.cancel(now, self.batch_seconds)
            return self._job_response(job, now)

    def _completed(self, partner: Any, project: Any, now: float) -> list[Job]:
        """The completed jobs of a stateful session, oldest first."""
        with self._lock:
            jobs = [
                job
                for job_id, job in self._jobs.items()
                if job.created is not None  # not yet looked at, so not completed either
                and job.partner_project == (partner, project)
                and self._visible(job_id, now)
                and self._status(job, now) == "completed"
            ]
        return sorted(jobs, key=lambda job: job.created or 0)

    def _last_completed(self, partner: str, project: str, now: float) -> Response:
        with self._lock:
            if not any(job.partner_project[0] == partner for job in self._jobs.values()):
                # HTTP 200, as tap-zuora's client.py notes for an unrecognised partner.
                message = "The partner ID is not recognized."
                return json_response(200, {"errorCode": "90019", "message": message})
            jobs = self._completed(partner, project, now)
            return self._job_response(jobs[-1], now) if jobs else self._unknown()

    def _submit(self, body: bytes, now: float) -> Response:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return v1_error(400, 50000090, "The request body is not a valid JSON object.")
        with self._lock:
            previous = self._completed(payload.get("partner"), payload.get("project"), now)
            loaded = {batch.query for job in previous for batch in job.batches}
            try:
                job = submitted_job(payload, now=now, zone=self._zone, loaded_queries=loaded)
                self._check_concurrency(job.stateful, now)
            except Rejected as rejected:
                return json_response(200, refusal(payload, rejected))
            self._add(job)
            rendered = job.render(now, self.batch_seconds, self._zone, just_submitted=True)
        return json_response(200, rendered)

    def _check_concurrency(self, stateful: bool, now: float) -> None:
        """Zuora refuses a job once 50 (`max_concurrent_jobs`) of its kind, stateful or
        stateless, are submitted or executing in the tenant."""
        with self._lock:
            active = sum(
                1
                for job in self._jobs.values()
                if job.created is not None  # never looked at, so never started
                and job.stateful == stateful
                and self._status(job, now) in ACTIVE_STATUSES
            )
        if active >= self.max_concurrent_jobs:
            raise Rejected(
                "90028",
                "The total number of concurrent jobs has exceeded the limit allowed by the system.",
            )

    def _file(self, file_id: str, now: float) -> Response:
        with self._lock:
            ref = self._files.get(file_id)
            job = self._visible(ref.job.job_id, now) if ref else None
            if ref is None or job is None:
                return missing_file()
            batch = job.batches[ref.batch]
            batch_status = job.statuses(now, self.batch_seconds)[1][ref.batch]
            if batch_status != "completed" or now - (job.created or now) > FILE_RETENTION:
                return missing_file()
            labels = job.use_query_labels
            result = _result_file(
                batch, file_id, job.format, job.encrypted, labels, ref.segment, job.utc_times
            )
        if result.csv_length > MAX_FILE_BYTES:
            body = b"<security:max-object-size>2047MB</security:max-object-size>"
            return raw_response(403, "application/xml", body)
        chunks, length = result.body()
        headers = [
            ("Content-Type", result.content_type),
            ("Content-Disposition", f'attachment; filename="{result.filename}"'),
        ]
        if length is not None:
            headers.append(("Content-Length", str(length)))
        return Response(200, headers, chunks)

    def _control(self, method: str, route: str, body: bytes) -> Response:
        """The Python control API over HTTP, for the demo and for tests in other processes."""
        if method == "POST" and route == "/faults":
            try:
                spec = json.loads(body)
                fault = self.add_fault(**spec)
            except (ValueError, TypeError) as error:
                return json_response(400, {"error": str(error)})
            return json_response(201, fault.describe() | {"params": fault.params})
        if method == "GET" and route == "/faults":
            with self._lock:
                return json_response(200, [fault.describe() for fault in self._faults])
        if method == "POST" and route == "/reset":
            self.reset()
            return json_response(200, {"reset": True})
        if method == "POST" and route == "/tokens/expire":
            self.expire_tokens()
            return json_response(200, {"expired": True})
        if method == "POST" and route == "/budget":
            try:
                self.set_budget(**json.loads(body or b"{}"))
            except (ValueError, TypeError) as error:
                return json_response(400, {"error": str(error)})
            return json_response(200, self.budget())
        if method == "GET" and route == "/budget":
            return json_response(200, self.budget())
        if method == "GET" and route == "/requests":
            return json_response(200, self._summary())
        if method == "GET" and route == "/catalogue":
            return json_response(200, catalogue.CATALOGUE)
        if method == "POST" and route == "/jobs":
            try:
                job_id = self.add_job(**json.loads(body or b"{}"))
            except (ValueError, TypeError) as error:
                return json_response(400, {"error": str(error)})
            return json_response(201, {"id": job_id})
        if method == "POST" and (match := re.fullmatch(r"/jobs/([^/]+)/forget", route)):
            return json_response(200, {"forgotten": self.forget_job(match[1])})
        return json_response(404, {"error": "No such control endpoint."})

    def _summary(self) -> dict[str, Any]:
        requests = self.requests
        return {
            "total": len(requests),
            "endpoints": Counter(request.endpoint for request in requests),
            "jobs": Counter(request.job_id for request in requests if request.job_id),
            "files": Counter(request.file_id for request in requests if request.file_id),
            "faults": Counter(request.fault for request in requests if request.fault),
        }


def _endpoint(path: str) -> tuple[str | None, dict[str, str]]:
    for template, pattern in ENDPOINTS:
        if match := pattern.fullmatch(path):
            return template, match.groupdict()
    return None, {}


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").title(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if environ.get("CONTENT_LENGTH"):  # wsgiref makes up a Content-Type when there is no body
        headers["Content-Type"] = environ.get("CONTENT_TYPE", "")
    return headers


def _delivered(body: Iterable[bytes], record: RecordedRequest) -> Iterator[bytes]:
    """Pass the body on, noting how much of it the client took."""
    try:
        for chunk in body:
            yield chunk
            record.bytes_sent += len(chunk)
        record.finished = True
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
        record.closed = True


def _result_file(
    batch: Any,
    file_id: str,
    file_format: str,
    encrypted: str,
    labels: bool,
    segment: int | None,
    utc_times: bool = False,
) -> ResultFile:
    start, stop = batch.segment_rows(segment)
    return ResultFile(
        file_id=file_id,
        seed=batch.batch_id,
        query=batch.query,
        deleted=batch.deleted,
        start=start,
        stop=stop,
        format=file_format,
        encrypted=encrypted,
        query_labels=labels,
        with_deleted_rows=batch.has_deleted_rows,
        utc_times=utc_times,
    )
