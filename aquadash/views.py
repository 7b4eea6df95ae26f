import json
import re
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_not_required
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET

from aquadash import jobs, zuora
from aquadash.access import tenant_required
from aquadash.encryption import CredentialUnreadable
from aquadash.forms import JOB_LINK, ZUORA_JOB_URL, LastCompletedForm, LookupForm
from aquadash.models import JobSnapshot, Lookup, Tenant


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The lookup forms. Both are GETs that land on a permalink, so history and back work."""
    tenants = Tenant.objects.visible_to(request.user)
    initial = {"tenant": request.session.get("last_tenant")}
    lookup_form = LookupForm(
        request.GET if "job" in request.GET else None, tenants=tenants, initial=initial
    )
    last_completed_form = LastCompletedForm(
        request.GET if "partner" in request.GET else None, tenants=tenants, initial=initial
    )
    if lookup_form.is_valid():
        data = lookup_form.cleaned_data
        return redirect("job", tenant_slug=data["tenant_slug"], job_id=data["job_id"])
    if last_completed_form.is_valid():
        data = last_completed_form.cleaned_data
        url = reverse("last_completed", args=[data["tenant"].slug])
        return redirect(f"{url}?{urlencode({k: data[k] for k in ('partner', 'project')})}")
    context = {
        "tenants": tenants,
        "lookup_form": lookup_form,
        "last_completed_form": last_completed_form,
        "recent": Lookup.objects.recent_for(request.user, tenants),
    }
    bound = lookup_form.is_bound or last_completed_form.is_bound
    return render(request, "home.html", context, status=400 if bound else 200)


@require_GET
@tenant_required
def last_completed(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """Opens the last completed job of a stateful partner/project session."""
    partner, project = request.GET.get("partner", ""), request.GET.get("project", "")
    try:
        job = zuora.get_last_completed_job(
            tenant.zuora_connection(), partner=partner.strip(), project=project.strip()
        )
    except zuora.JobNotFound:
        exc = zuora.JobNotFound(
            f"Zuora has no completed job for partner “{partner}” and project “{project}” in this "
            "tenant. Check both values; they are case-sensitive."
        )
        return _error_page(request, tenant, exc, job_id="")
    except zuora.ZuoraError as exc:
        return _error_page(request, tenant, exc, job_id="")
    jobs.store_job(tenant, job, user=request.user)
    return redirect("job", tenant_slug=tenant.slug, job_id=job.id)


@require_GET
@tenant_required
def job_page(request: HttpRequest, tenant: Tenant, job_id: str) -> HttpResponse:
    """The job's permalink. htmx polls it for the `live` partial until the job is final."""
    polling = bool(request.htmx)
    try:
        state = jobs.fetch_job(tenant, job_id, user=request.user, refresh="refresh" in request.GET)
    except zuora.ZuoraError as exc:
        if not polling:
            Lookup.record(request.user, tenant, job_id, exc)
        return _error_page(request, tenant, exc, job_id=job_id, polling=polling)
    if not polling:
        Lookup.record(request.user, tenant, job_id, state)
        request.session["last_tenant"] = tenant.slug
    failures = _failures(request) + 1 if state.error else 0
    context = {
        "tenant": tenant,
        "state": state,
        "job": state.job,
        "facts": jobs.describe(state, tenant),
        "poll_seconds": jobs.poll_seconds(failures, state.error),
        "failures": failures,
        "curl": jobs.curl_command(tenant, state.job.id),
    }
    template = "job.html#live" if polling else "job.html"
    with timezone.override(tenant.zoneinfo):  # every time on the page in the tenant's zone
        response = render(request, template, context)
    add_never_cache_headers(response)
    return response


@require_GET
@tenant_required
def job_raw(request: HttpRequest, tenant: Tenant, job_id: str) -> HttpResponse:
    """Exactly what Zuora last returned for the job, pretty-printed."""
    snapshot = _snapshot_or_404(tenant, job_id)
    response = HttpResponse(
        json.dumps(snapshot.raw, indent=2, ensure_ascii=False),
        content_type="application/json; charset=utf-8",
    )
    if "download" in request.GET:
        response["Content-Disposition"] = f'attachment; filename="aqua-job-{snapshot.job_id}.json"'
    add_never_cache_headers(response)
    return response


@require_GET
@tenant_required
def batch_segments(
    request: HttpRequest, tenant: Tenant, job_id: str, batch_id: str
) -> HttpResponse:
    snapshot = _snapshot_or_404(tenant, job_id)
    job = snapshot.job()
    batch = next((b for b in job.batches if b.batch_id == batch_id), None)
    if batch is None:
        raise Http404("No such batch in this job.")
    page = Paginator(batch.segments, 500).get_page(request.GET.get("page"))
    context = {"tenant": tenant, "job": job, "batch": batch, "page": page}
    return render(request, "segments.html", context)


@require_GET
@tenant_required
def tenant_jobs(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """Every job anyone looked up in this tenant, newest first."""
    snapshots = (
        JobSnapshot.objects.filter(tenant=tenant)
        .select_related("last_fetched_by")
        .defer("raw")  # the list never shows it, and it is most of each row
    )
    query = request.GET.get("q", "").replace("\x00", "").strip()[:200]
    if query:
        snapshots = snapshots.filter(_search(query))
    status = request.GET.get("status", "")
    if status in zuora.JOB_STATUSES:
        snapshots = snapshots.filter(status=status)
    page = Paginator(snapshots.order_by("-last_fetched_at", "-pk"), 50).get_page(
        request.GET.get("page")
    )
    filters = urlencode({k: v for k, v in (("q", query), ("status", status)) if v})
    context = {
        "tenant": tenant,
        "page": page,
        "query": query,
        "status": status,
        "statuses": zuora.JOB_STATUSES,
        "filters": filters,
    }
    return render(request, "tenant_jobs.html", context)


@login_not_required
@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on pages that name no icon, such as the admin's."""
    return redirect(static("aquadash/favicon.svg"), permanent=True)


@login_not_required
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """For load balancers: 200 while the database answers, 503 otherwise."""
    try:
        connection.ensure_connection()
    except Exception:
        return JsonResponse({"status": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})


def _snapshot_or_404(tenant: Tenant, job_id: str) -> JobSnapshot:
    snapshot = JobSnapshot.objects.filter(tenant=tenant, job_id=job_id).first()
    if snapshot is None:
        raise Http404("aquadash has not stored this job yet; open its page first.")
    return snapshot


def _search(query: str) -> Q:
    """A pasted job address, the start of a job ID (8 or more hexadecimal characters), or words
    that all appear in the job's name.

    An ID prefix is matched as a range on the (tenant, job_id) index rather than with LIKE,
    which most database collations cannot answer from an index; "g" sorts after every hex digit.
    """
    if pasted := ZUORA_JOB_URL.search(query) or JOB_LINK.search(query):
        return Q(job_id=pasted["job_id"].lower())
    prefix = zuora.normalize_id(query)
    if re.fullmatch(r"[0-9a-f]{8,32}", prefix):
        return Q(job_id__gte=prefix, job_id__lt=prefix + "g")
    words = re.split(r"[\s\-_,.]+", query)
    return Q(*(Q(name__icontains=word) for word in words if word))


def _error_title(exc: zuora.ZuoraError, job_id: str) -> str:
    if isinstance(exc, zuora.JobNotFound):
        return "No such job" if job_id else "No completed job"
    if isinstance(exc, zuora.InvalidId):
        return "Not a job ID" if job_id else "Check the partner and project"
    if isinstance(exc, zuora.RateLimited):
        return "Zuora asks us to slow down"
    if isinstance(exc, zuora.ZuoraUnavailable):
        return "Zuora is not answering"
    if isinstance(exc, zuora.CredentialsRejected | CredentialUnreadable):
        return "Zuora credentials problem"
    return "Zuora's answer could not be used"


def _failures(request: HttpRequest) -> int:
    """How many polls in a row have failed, carried in the poll URL for back-off."""
    value = request.GET.get("failures", "0")
    return min(int(value), 10) if value.isascii() and value.isdigit() and len(value) < 4 else 0


def _error_page(
    request: HttpRequest,
    tenant: Tenant,
    exc: zuora.ZuoraError,
    *,
    job_id: str,
    polling: bool = False,
) -> HttpResponse:
    """A failure a person can act on, with the status code that names it."""
    context = {
        "tenant": tenant,
        "job_id": job_id,
        "error": exc,
        "title": _error_title(exc, job_id),
        "kind": type(exc).__name__,
        "final": isinstance(exc, zuora.JobNotFound | zuora.InvalidId),
        "poll_seconds": jobs.poll_seconds(_failures(request) + 1, exc),
        "failures": _failures(request) + 1,
        "admin_url": reverse("admin:aquadash_tenant_change", args=[tenant.pk])
        if request.user.has_perm("aquadash.change_tenant")
        else "",
    }
    if polling:
        # htmx swaps only 2xx answers; the fragment itself says what went wrong.
        return render(request, "job.html#live_error", context)
    response = render(request, "job_error.html", context, status=exc.http_status)
    if isinstance(exc, zuora.RateLimited) and exc.retry_after:
        response["Retry-After"] = str(exc.retry_after)
    add_never_cache_headers(response)
    return response
