"""The read-only JSON API (/api/v1/…) and the personal tokens that open it.

A person makes a token on their own page for some of the tenants they may see; it is shown
once and stored as a SHA-256. Each API request walks the same rooms as a page: the token (alive,
its owner active), a throttle per token, one tenant check (`Tenant.objects.visible_to` with the
endpoint's role, narrowed to the token's tenants, at use time), then the function the page uses:
`jobs.fetch_job` (single-flight, the API allowance) or a download from `downloads`. Failures are
JSON with the title and next step their page shows. Sessions do not open the API: a token is
never an ambient credential, so the API needs no CSRF protection.
"""

import functools
import hashlib
import json
import math
import secrets
import string
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST

from aquadash import access, downloads, job_facts, jobs, zuora
from aquadash.models import ApiToken, AuditEvent, Role, Tenant
from aquadash.shared_cache import shared_cache

VERSION = 1
PREFIX = "aqd_"  # so secret scanners (GitHub's, gitleaks) can be taught to recognise a token
ALPHABET = string.ascii_letters + string.digits
LENGTH = 40  # random characters after the prefix: about 238 bits
LIFETIMES = [(7, "7 days"), (30, "30 days"), (90, "90 days"), (365, "1 year")]
# A token's use is audited, and its last use noted, at most once a minute per address it asks
# for: a script polling a job every 5 seconds writes one event a minute, not twelve.
AUDIT_EVERY = 60
OPENAPI = Path(__file__).with_name("openapi.json")
NEXT_STEPS = {  # the words of the button each error page offers
    "retry": "Try again",
    "home": "Look up another job",
    "job": "Back to the job",
    "admin": "Ask an admin to update the tenant's credentials",
}


class Refusal(Exception):
    """An API request answered with an error before or instead of its data."""

    def __init__(
        self, status: int, title: str, message: str, *, next_step: str = "", **extra: Any
    ) -> None:
        # `extra` goes into the error's JSON: retry_after, Zuora's IDs.
        super().__init__(message)
        self.status, self.title, self.message = status, title, message
        self.next_step, self.extra = next_step, extra

    def body(self) -> dict:
        error = {"status": self.status, "title": self.title, "message": self.message}
        if self.next_step:
            error |= {"next_step": self.next_step, "next_step_text": NEXT_STEPS[self.next_step]}
        return error | {name: value for name, value in self.extra.items() if value is not None}

    def response(self) -> JsonResponse:
        response = JsonResponse({"version": VERSION, "error": self.body()})
        response.status_code = self.status
        if retry_after := self.extra.get("retry_after"):
            response["Retry-After"] = str(retry_after)
        if self.status == 405:
            response["Allow"] = "GET"
        if self.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="aquadash"'
        add_never_cache_headers(response)
        return response


def from_zuora_error(exc: zuora.ZuoraError) -> Refusal:
    """The ZuoraError a page would show, as the API says it: the same title and next step."""
    ids = {"track_id": exc.track_id, "request_id": exc.request_id, "process_id": exc.process_id}
    return Refusal(
        exc.http_status,
        exc.title,
        exc.message,
        next_step=exc.next_step,
        retry_after=exc.retry_after,
        **{name: value for name, value in ids.items() if value},
    )


NO_TOKEN = Refusal(
    401,
    "API token needed",
    "Send a personal API token as “Authorization: Bearer aqd_…”. Make one on your API tokens "
    "page in aquadash.",
)


class ApiRequest(HttpRequest):
    """A request the API let in: its user is the token's owner."""

    api_token: ApiToken


# --- Tokens ---------------------------------------------------------------------------------


def hashed(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@sensitive_variables("token")
def issue(
    user: AbstractBaseUser, *, name: str, tenants: list[Tenant], days: int
) -> tuple[ApiToken, str]:
    """A new token and its text, which is never stored and so can be shown only now."""
    token = PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    with transaction.atomic():
        made = ApiToken.objects.create(
            user=user,
            name=name,
            secret_hash=hashed(token),
            prefix=token[: len(PREFIX) + 6],
            expires_at=timezone.now() + timedelta(days=days),
        )
        made.tenants.set(tenants)
    AuditEvent.record(
        AuditEvent.Kind.API_TOKEN_CREATED,
        user=user,
        target=str(made),
        detail=f"for {', '.join(t.name for t in tenants)}, expires {made.expires_at:%Y-%m-%d}",
    )
    return made, token


def revoke(token: ApiToken, *, by: AbstractBaseUser) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        AuditEvent.record(AuditEvent.Kind.API_TOKEN_REVOKED, user=by, target=str(token))


@sensitive_variables("presented")
def authenticate(request: HttpRequest) -> ApiToken:
    """The live token the request presents, or a 401 Refusal saying what is wrong with it."""
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        raise NO_TOKEN
    token = (
        ApiToken.objects.select_related("user").filter(secret_hash=hashed(presented)).first()
        if presented.startswith(PREFIX)
        else None
    )
    if token is None:
        raise Refusal(401, "Unknown API token", "aquadash knows no such token; check it whole.")
    why = ""
    if token.revoked_at is not None:
        why = f"was revoked on {token.revoked_at:%Y-%m-%d}"
    elif token.is_expired:
        why = f"expired on {token.expires_at:%Y-%m-%d}"
    elif not token.user.is_active:
        why = "belongs to a disabled account"
    if why:
        _audit(token, None, request, f"refused: the token {why}")
        raise Refusal(
            401,
            "API token no longer valid",
            f"This token ({token.prefix}…) {why}. Make a new one on your API tokens page.",
        )
    return token


def throttle(token: ApiToken) -> None:
    """At most AQUADASH_API_RATE requests per token per window, across every app server."""
    limit, seconds = settings.AQUADASH_API_RATE
    now = time.time()
    window = int(now // seconds)
    used = shared_cache.count(f"api:rate:{token.pk}:{window}", seconds + 1)
    if used > limit:
        wait = max(1, math.ceil((window + 1) * seconds - now))
        raise Refusal(
            429,
            "Too many requests",
            f"This token may make {rate_text()}. Try again in {wait} seconds.",
            next_step="retry",
            retry_after=wait,
        )


def rate_text() -> str:
    limit, seconds = settings.AQUADASH_API_RATE
    return f"{limit} requests every {_period(seconds)}"


def _period(seconds: int) -> str:
    return {1: "second", 60: "minute", 3600: "hour", 86400: "day"}.get(seconds, f"{seconds} s")


def _audit(token: ApiToken, tenant: Tenant | None, request: HttpRequest, detail: str) -> None:
    """Record a use: once a minute per token and address (see AUDIT_EVERY)."""
    AuditEvent.record(
        AuditEvent.Kind.API_USE,
        user=token.user,
        tenant=tenant,
        target=f"{token.prefix}:{request.path}",  # no spaces: it is part of a cache key
        detail=f"token “{token.name}”: {detail}",
        once_per=AUDIT_EVERY,
    )
    if token.last_used_at is None or timezone.now() - token.last_used_at > timedelta(
        seconds=AUDIT_EVERY
    ):
        token.last_used_at = timezone.now()
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=token.last_used_at)


# --- The API's views ------------------------------------------------------------------------


def only_get(request: HttpRequest) -> None:
    if request.method != "GET":
        raise Refusal(405, "Method not allowed", "The API only reads: use GET.")


def endpoint(role: str) -> Callable:
    """An API view: GET only, a live token, its throttle, and with a `tenant_slug` the one
    tenant check (`role` the least the grant must allow, among the token's tenants); every
    failure as JSON. The view gets `tenant` and a request whose user is the token's owner."""

    def decorate(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            token = tenant = None
            try:
                only_get(request)
                token = authenticate(request)
                throttle(token)
                request.user = token.user  # whatever the session said: only the token counts
                request.api_token = token
                if "tenant_slug" in kwargs:
                    slug = kwargs.pop("tenant_slug")
                    tenant = (
                        Tenant.objects.visible_to(token.user, role=role)
                        .filter(slug=slug, api_tokens=token)
                        .first()
                    )
                    if tenant is None:
                        access.note_refusal(token.user, slug, request.path)
                        raise Http404(access.NOT_FOUND)
                    kwargs["tenant"] = tenant
                response = view(request, *args, **kwargs)
            except Refusal as refusal:
                response = refusal.response()
            except Http404 as exc:
                response = Refusal(404, "Not found", str(exc), next_step="home").response()
            except zuora.ZuoraError as exc:
                response = from_zuora_error(exc).response()
            if token is not None:
                _audit(token, tenant, request, f"{request.method} answered {response.status_code}")
            return response

        return login_not_required(csrf_exempt(wrapper))

    return decorate


@endpoint(role=Role.VIEWER)
def tenants(request: ApiRequest) -> JsonResponse:
    """The tenants this token may read (those its owner may still see)."""
    token_tenants = Tenant.objects.visible_to(request.user, role=Role.VIEWER).filter(
        api_tokens=request.api_token
    )
    return _json(
        {
            "version": VERSION,
            "tenants": [
                {"slug": t.slug, "name": t.name, "time_zone": t.time_zone} for t in token_tenants
            ],
        }
    )


@endpoint(role=Role.VIEWER)
def job(request: HttpRequest, tenant: Tenant, job_id: str) -> JsonResponse:
    """The job as its page shows it. Asked as a page's poll is (`paced`): however many scripts
    and pages ask, Zuora is asked at most once per the job's pace."""
    state = jobs.fetch_job(tenant, job_id, user=request.user, paced=True)
    return _json(job_document(request, tenant, state))


@endpoint(role=Role.DOWNLOADER)
def file(request: HttpRequest, tenant: Tenant, job_id: str, file_id: str) -> HttpResponseBase:
    job, part = downloads.job_and_part(tenant, job_id, file_id)
    return downloads.heavily(
        request,
        lambda: downloads.one_file(request, tenant, job, part, file_id),
        variants=downloads.HEAVY_FILE_VARIANTS,
    )


@endpoint(role=Role.DOWNLOADER)
def batch_download(
    request: HttpRequest, tenant: Tenant, job_id: str, batch_id: str
) -> HttpResponseBase:
    job, batch = downloads.job_and_batch(tenant, job_id, batch_id)
    return downloads.heavily(
        request, lambda: downloads.whole_batch(request, tenant, job, batch, ask=False)
    )


@endpoint(role=Role.DOWNLOADER)
def job_download(request: HttpRequest, tenant: Tenant, job_id: str) -> HttpResponseBase:
    job = jobs.stored_or_404(tenant, job_id).job()
    return downloads.heavily(request, lambda: downloads.whole_job(request, tenant, job, ask=False))


@login_not_required
@csrf_exempt
def openapi(request: HttpRequest) -> HttpResponseBase:
    """The API's description, for a signed-in person or any live token."""
    try:
        only_get(request)
        if not request.user.is_authenticated:
            authenticate(request)
    except Refusal as refusal:
        return refusal.response()
    document = json.loads(OPENAPI.read_text())
    document["servers"] = [{"url": request.build_absolute_uri("/api/v1")}]
    return JsonResponse(document)


@login_not_required
def not_found(request: HttpRequest, rest: str | None = None) -> JsonResponse:
    """Any other /api/ address: JSON, not the login page or an HTML 404."""
    return Refusal(
        404, "Not found", "No such API address; see /api/v1/openapi.json.", next_step="home"
    ).response()


def _json(document: dict) -> JsonResponse:
    response = JsonResponse(document, json_dumps_params={"ensure_ascii": False})
    add_never_cache_headers(response)
    return response


def _when(moment: datetime | None, tenant: Tenant) -> str | None:
    return moment.astimezone(tenant.zoneinfo).isoformat() if moment else None


def job_document(request: HttpRequest, tenant: Tenant, state: jobs.JobState) -> dict:
    """Version 1 of a job's JSON: the facts of its page (README, "API")."""
    job, snapshot = state.job, state.snapshot
    facts = job_facts.describe(state, tenant)

    def api_url(name: str, *args: str, query: str = "") -> str:
        return request.build_absolute_uri(reverse(name, args=[tenant.slug, job.id, *args]) + query)

    batches = []
    for batch in job.batches:
        count = snapshot.record_counts.get(batch.batch_id, {})
        parts = [(batch.file_id, 0)] if batch.file_id else []
        parts += [(segment, n) for n, segment in enumerate(batch.segments, start=1)]
        batches.append(
            {
                "id": batch.batch_id,
                "name": batch.name,
                "status": batch.status,
                "final": batch.is_final,
                "query": batch.query,
                "type": batch.batch_type,
                "api_version": batch.api_version,
                "full": batch.full,
                "record_count": batch.record_count,
                "records_counted": count.get("counted"),
                "message": batch.message,
                "seen": snapshot.timeline.get(batch.batch_id, {}),
                "files": [
                    {
                        "id": file_id,
                        "part": number,
                        "of": len(batch.segments),
                        "download": api_url("api_file", file_id),
                    }
                    for file_id, number in parts
                ],
                # Encrypted parts cannot be joined: each file is offered alone.
                "download": api_url("api_batch_download", batch.batch_id)
                if batch.file_ids and not job.is_pgp
                else None,
            }
        )
    return {
        "version": VERSION,
        "tenant": {"slug": tenant.slug, "name": tenant.name, "time_zone": tenant.time_zone},
        "job": {
            "id": job.id,
            "name": job.name,
            "status": job.status,
            "final": state.is_final,
            "version": job.version,
            "format": job.format,
            "encrypted": job.encrypted,
            "source_data": job.source_data,
            "partner": job.partner,
            "project": job.project,
            "start_time": _when(facts.started_at, tenant),
            "incremental_time": _when(facts.incremental_time, tenant),
            "run_seconds": snapshot.run_seconds,
            "error_code": job.error_code,
            "message": job.message,
            "track_id": job.track_id,
            "request_id": job.request_id,
            "page": request.build_absolute_uri(reverse("job", args=[tenant.slug, job.id])),
            "download": api_url("api_job_download") if job.has_files else None,
        },
        "totals": {
            "batches": facts.batches_total,
            "records": facts.total_records,
            "outcomes": dict(facts.batch_outcomes),
        },
        "retention": {
            "job_deleted_on": _when(facts.deleted_on, tenant),
            "days_until_deleted": facts.days_until_deleted,
            "files_expire_at": _when(facts.files_expire_at, tenant),
            "files_expired": facts.files_expired,
            "file_retention_days": facts.file_retention_days,
        },
        "batches": batches,
        "fetched": {
            "at": _when(state.fetched_at, tenant),
            "from_zuora": state.from_zuora,
            "refreshing": state.refreshing,
            "gone_from_zuora": state.gone,
            "ask_again_at": _when(state.ask_again_at, tenant),
            # The latest ask failed; what is above is the last good answer.
            "problem": from_zuora_error(state.error).body() if state.error else None,
        },
    }


# --- The token page -------------------------------------------------------------------------


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="What it is for, so you know which to revoke: “Power Query”."
    )
    tenants = forms.ModelMultipleChoiceField(
        queryset=Tenant.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        help_text="It reads only these, and only while you may see them.",
    )
    days = forms.TypedChoiceField(
        label="Expires in", choices=LIFETIMES, coerce=int, initial=90, widget=forms.RadioSelect
    )

    def __init__(self, *args: Any, user: AbstractBaseUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tenants"].queryset = Tenant.objects.visible_to(user, role=Role.VIEWER)


@require_http_methods(["GET", "POST"])
def tokens_page(request: HttpRequest) -> HttpResponse:
    """The person's own tokens, and the form that makes one; a new token is shown only in the
    answer to that form, never again."""
    form = TokenForm(request.POST or None, user=request.user)
    made = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        made = issue(
            request.user, name=data["name"], tenants=list(data["tenants"]), days=data["days"]
        )
        form = TokenForm(user=request.user)
    context = {
        "form": form,
        "new_token": made[1] if made else "",
        "tokens": ApiToken.objects.filter(user=request.user)
        .prefetch_related("tenants")
        .order_by("-created_at"),
        "rate": rate_text(),
    }
    status = 400 if form.is_bound and form.errors else 200
    response = render(request, "api_tokens.html", context, status=status)
    add_never_cache_headers(response)  # the new token must not stay in any cache
    return response


@require_POST
def revoke_token(request: HttpRequest, pk: int) -> HttpResponse:
    revoke(get_object_or_404(ApiToken, pk=pk, user=request.user), by=request.user)
    return redirect("api_tokens")
