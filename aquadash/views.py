import json
from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import caches
from django.core.cache.utils import make_template_fragment_key
from django.core.paginator import Paginator
from django.db import connection
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.middleware import HtmxDetails

from aquadash import (
    allowance,
    archive,
    breaker,
    compare,
    downloads,
    finding,
    job_facts,
    jobs,
    results,
    timeline,
    watching,
    zuora,
)
from aquadash.access import tenant_required
from aquadash.forms import LastCompletedForm, LookupForm
from aquadash.models import Download, JobSnapshot, Lookup, Role, Tenant, Watch

# The largest final job section each process keeps rendered. The fragment cache holds up to
# 1,000 entries and a page of 100 batches of 100 segments is 0.4 MB; 128 KB still keeps a job
# of Zuora's 50 queries (about 100 KB) and holds these entries under 128 MB at worst.
KEEP_LIVE_BYTES = 128 * 1024


class HtmxHttpRequest(HttpRequest):
    """A request through django-htmx's middleware, which tells whether htmx sent it."""

    htmx: HtmxDetails


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The lookup forms. Both are GETs that land on a permalink, so history and back work."""
    tenants = list(Tenant.objects.visible_to(request.user))
    initial = {"tenant": request.session.get("last_tenant")}
    lookup_form = LookupForm(
        request.GET if "job" in request.GET else None, tenants=tenants, initial=initial
    )
    last_completed_form = LastCompletedForm(
        request.GET if "partner" in request.GET else None, tenants=tenants, initial=initial
    )
    if lookup_form.is_valid():
        data = lookup_form.cleaned_data
        if "tenant_slug" not in data:
            return redirect("find_job", job_id=data["job_id"])
        return redirect("job", tenant_slug=data["tenant_slug"], job_id=data["job_id"])
    if last_completed_form.is_valid():
        data = last_completed_form.cleaned_data
        url = reverse("last_completed", args=[data["tenant"].slug])
        return redirect(f"{url}?{urlencode({k: data[k] for k in ('partner', 'project')})}")
    forms = {"lookup_form": lookup_form, "last_completed_form": last_completed_form}
    bound = lookup_form.is_bound or last_completed_form.is_bound
    context = {
        "tenants": tenants,
        "forms": _lookup_forms(request, forms, tenants, initial["tenant"], bound),
        "recent": Lookup.objects.recent_for(request.user, tenants),
    }
    return render(request, "home.html", context, status=400 if bound else 200)


def _lookup_forms(
    request: HttpRequest,
    forms: dict[str, LookupForm | LastCompletedForm],
    tenants: list[Tenant],
    last_tenant: str | None,
    bound: bool,
) -> str:
    """The home page's two forms, rendered: a fifth of its cost, in widget templates.

    Empty, they read the same for everyone offered the same tenants with the same one chosen,
    so each process keeps them rendered, keyed on exactly that. Filled in, they show what was
    typed and its errors: rendered each time, never kept.
    """
    if bound:
        return render_to_string("home.html#forms", forms, request)
    shows = [
        # The tenant choices: each one's value and label, in order; their number decides
        # whether "Any tenant I can see" is offered.
        *((tenant.slug, tenant.name) for tenant in tenants),
        last_tenant or "",  # chosen beforehand, the one last looked in ("", not "None": a slug)
    ]
    key = make_template_fragment_key("home-forms", shows)
    if (rendered := caches["template_fragments"].get(key)) is None:
        rendered = render_to_string("home.html#forms", forms, request)
        caches["template_fragments"].set(key, rendered, 3600)
    return rendered


@require_GET
def find_job(request: HttpRequest, job_id: str) -> HttpResponse:
    """The job in whichever tenants the user may see have it: one opens its page, several
    are offered, none shows what each tenant answered."""
    tenants = list(Tenant.objects.visible_to(request.user))
    search = finding.find(tenants, job_id, user=request.user)
    if len(search.matches) == 1:
        return redirect("job", tenant_slug=search.matches[0].tenant.slug, job_id=search.job_id)
    # Not found anywhere is a 404 when every tenant said so, a 503 when some could not say.
    status = 200 if search.matches else (404 if search.certain else 503)
    response = render(request, "find.html", {"search": search}, status=status)
    add_never_cache_headers(response)
    return response


@require_GET
@tenant_required
def last_completed(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """Opens the last completed job of a stateful partner/project session."""
    partner, project = request.GET.get("partner", ""), request.GET.get("project", "")
    try:
        with breaker.guarded(tenant):
            job = zuora.get_last_completed_job(
                tenant.zuora_connection(), partner=partner.strip(), project=project.strip()
            )
    except zuora.JobNotFound:
        exc = zuora.JobNotFound(
            f"Zuora has no completed job for partner “{partner}” and project “{project}” in this "
            "tenant. Check both values; they are case-sensitive."
        )
        return _error_page(request, tenant, exc, job_id="", title="No completed job")
    except zuora.InvalidId as exc:
        return _error_page(request, tenant, exc, job_id="", title="Check the partner and project")
    except zuora.UnknownPartner as exc:
        exc = zuora.UnknownPartner(
            f"Zuora does not recognise the partner “{partner}” in this tenant (AQuA error "
            "90019). Check its spelling: it is the partner name the integration submits its "
            "stateful jobs with.",
            track_id=exc.track_id,
            request_id=exc.request_id,
        )
        return _error_page(request, tenant, exc, job_id="", title="Unknown partner")
    except zuora.ZuoraError as exc:
        return _error_page(request, tenant, exc, job_id="")
    jobs.store_job(tenant, job, user=request.user)
    return redirect("job", tenant_slug=tenant.slug, job_id=job.id)


@require_http_methods(["GET", "POST"])
@tenant_required
def job_page(request: HtmxHttpRequest, tenant: Tenant, job_id: str) -> HttpResponse:
    """The job's permalink. htmx polls it for the `live` partial until the job is final.
    A POST is "Refresh from Zuora": it asks again and redirects back here, so no address that
    asks Zuora is left to be reloaded or shared."""
    polling = bool(request.htmx)
    refresh = request.method == "POST"
    try:
        state = jobs.fetch_job(tenant, job_id, user=request.user, refresh=refresh, paced=polling)
    except zuora.ZuoraError as exc:
        if not polling:
            Lookup.record(request.user, tenant, job_id, error=exc)
        return _error_page(request, tenant, exc, job_id=job_id, polling=polling)
    if not polling:
        Lookup.record(request.user, tenant, job_id, job=state.job, gone=state.gone)
        if request.session.get("last_tenant") != tenant.slug:  # a session write only on change
            request.session["last_tenant"] = tenant.slug
    if refresh and not state.error:  # a failed refresh is shown here: the next page would not
        return redirect("job", tenant_slug=tenant.slug, job_id=state.job.id)
    return job_response(request, tenant, state)


def job_response(request: HtmxHttpRequest, tenant: Tenant, state: jobs.JobState) -> HttpResponse:
    """The job page, or its `live` section alone for htmx's polls, showing `state`."""
    live = _live_section(request, tenant, state)
    if request.htmx:
        response = HttpResponse(live)
        add_never_cache_headers(response)
        return response
    context = {
        "tenant": tenant,
        "job": state.job,
        "live": live,
        # The same ID stored in another tenant the person may see (a sandbox copied from
        # production, say): one query, on the (tenant, job ID) unique index.
        "also_in": [
            snapshot.tenant
            for snapshot in JobSnapshot.objects.filter(
                job_id=state.job.id, tenant__in=Tenant.objects.visible_to(request.user)
            )
            .exclude(tenant=tenant)
            .select_related("tenant")
            .order_by("tenant__name")
        ],
    }
    return _in_tenant_zone(request, tenant, "job.html", context)


def _live_section(request: HtmxHttpRequest, tenant: Tenant, state: jobs.JobState) -> str:
    """The job page's `live` section, which polls replace.

    A final job's, served from storage, reads the same for everyone who may see the tenant
    until what we stored of it changes, so each process keeps it rendered for a minute, keyed
    on everything it shows: its relative times may be up to a minute behind, its facts never.
    Only once its newest time is a minute old, so those times already count in minutes
    ("3 minutes ago"), not seconds.
    """
    key = None
    snapshot, now = state.snapshot, timezone.now()
    # Only where Zuora has probably purged the files does it change what the page says.
    archived = archive.files_expired(state.job) and archive.serves(tenant, state.job.id)
    newest = max(filter(None, (state.fetched_at, snapshot.gone_at)))
    if (
        state.is_final
        and not (state.from_zuora or state.error or state.refreshing)
        and now - newest >= timedelta(minutes=1)
    ):
        shows = [
            *(tenant.pk, tenant.updated_at),  # its name, zone, base URL, entity and sign-in
            tenant.gives_files,  # download links and previews, or why there are none
            *(snapshot.job_id, snapshot.last_fetched_at, snapshot.gone_at, snapshot.record_counts),
            *(snapshot.sample_bytes, snapshot.sample_records),  # the size estimates
            archived,  # the batches' links say whether Zuora's purge matters
            *(request.GET.get("page"), bool(request.htmx), request.scheme, request.get_host()),
            int(now.timestamp() // 60),
        ]
        key = make_template_fragment_key("final-job", shows)
        if (live := caches["template_fragments"].get(key)) is not None:
            return live
    failures = _failures(request) + 1 if state.error else 0
    facts = job_facts.describe(state, tenant)
    context = {
        "tenant": tenant,
        "state": state,
        "job": state.job,
        "facts": facts,
        "timeline": timeline.for_job(state.job, state.snapshot.timeline, facts.started_at),
        # Zuora allows 50 queries a job; a page of 100 keeps any answer a readable page.
        "batches": Paginator(state.job.batches, 100).get_page(request.GET.get("page")),
        "poll_seconds": job_facts.poll_seconds(tenant, state.job, failures, state.error),
        "allowance_notice": "" if state.is_final else allowance.notice(tenant),
        "failures": failures,
        "curl": job_facts.curl_command(tenant, state.job.id),
        "pgp": state.job.is_pgp,
        "file_extension": downloads.extension(state.job),
        "xlsx_max_records": results.EXCEL_MAX_ROWS - 1,
        "counts": state.snapshot.record_counts,
        "sizes": downloads.page_estimates(state.job, state.snapshot),
        "confirm_gb": settings.AQUADASH_CONFIRM_GB,
        "archived": archived,
    }
    with timezone.override(tenant.zoneinfo):
        live = render_to_string("job.html#live", context, request)
    if key and len(live) <= KEEP_LIVE_BYTES:
        caches["template_fragments"].set(key, live, 60)
    return live


@require_GET
@tenant_required
def job_downloads(request: HtmxHttpRequest, tenant: Tenant, job_id: str) -> HttpResponse:
    """Who downloaded or previewed the job's results. The job page loads it after itself, so
    neither the page nor its polls read this trail."""
    context = {
        "tenant": tenant,
        "job_id": job_id,
        "downloads": Download.objects.filter(tenant=tenant, job_id=job_id).order_by("-started_at")[
            :20
        ],
    }
    return _in_tenant_zone(request, tenant, _page_or_card("job_downloads.html", request), context)


@require_http_methods(["GET", "POST"])
@tenant_required
def job_watch(request: HtmxHttpRequest, tenant: Tenant, job_id: str) -> HttpResponse:
    """Who is watching the job, and the button to watch it or stop. The job page loads it
    after itself, and again when the job ends; POST starts or stops the user's own watch."""
    snapshot = jobs.stored_or_404(tenant, job_id)
    can_watch = not (snapshot.is_final or snapshot.gone_at)
    if request.method == "POST":
        if request.POST.get("action") == "unwatch":
            watching.unwatch(tenant, job_id, request.user)
        elif can_watch:
            link = request.build_absolute_uri(reverse("job", args=[tenant.slug, job_id]))
            watching.watch(tenant, job_id, request.user, link=link)
        if not request.htmx:
            return redirect("job", tenant_slug=tenant.slug, job_id=job_id)
    watches = (
        Watch.objects.filter(tenant=tenant, job_id=job_id)
        .exclude(end__in=[Watch.End.UNWATCHED, Watch.End.REVOKED])
        .select_related("user")
        .prefetch_related("deliveries")
        .order_by("created_at")
    )
    watching.revive_if_stalled([each for each in watches if each.ended_at is None])
    context = {
        "tenant": tenant,
        "job_id": job_id,
        "snapshot": snapshot,
        "can_watch": can_watch,
        "open": [each for each in watches if each.ended_at is None],
        "ended": [each for each in watches if each.ended_at is not None],
        "mine": any(each.user_id == request.user.pk and not each.ended_at for each in watches),
        "watch_hours": settings.AQUADASH_WATCH_HOURS,
    }
    return _in_tenant_zone(request, tenant, _page_or_card("job_watch.html", request), context)


@require_GET
@tenant_required
def job_compare(request: HtmxHttpRequest, tenant: Tenant, job_id: str) -> HttpResponse:
    """A stateful job beside the previous run of its session. The job page loads it after
    itself: finding the previous run may ask Zuora."""
    snapshot = jobs.stored_or_404(tenant, job_id)
    if not snapshot.job().is_stateful:
        raise Http404("This job is not part of a stateful session (no partner and project).")
    context = {
        "tenant": tenant,
        "job_id": job_id,
        "comparison": compare.compare(tenant, snapshot),
        "threshold": settings.AQUADASH_COMPARE_THRESHOLD,
    }
    return _in_tenant_zone(request, tenant, _page_or_card("job_compare.html", request), context)


@require_GET
@tenant_required
def job_raw(request: HttpRequest, tenant: Tenant, job_id: str) -> HttpResponse:
    """Exactly what Zuora last returned for the job, pretty-printed."""
    snapshot = jobs.stored_or_404(tenant, job_id)
    response = HttpResponse(
        json.dumps(snapshot.raw, indent=2, ensure_ascii=False),
        content_type="application/json; charset=utf-8",
    )
    # The body is Zuora's answer, byte for byte; what Zuora support asks for rides beside it.
    response["Zuora-Track-Id"] = snapshot.track_id
    response["Zuora-Request-Id"] = snapshot.request_id
    if "download" in request.GET:
        downloads.as_attachment(response, f"aqua-job-{snapshot.job_id}.json")
    add_never_cache_headers(response)
    return response


@require_GET
@tenant_required
def batch_segments(
    request: HttpRequest, tenant: Tenant, job_id: str, batch_id: str
) -> HttpResponse:
    job, batch = downloads.job_and_batch(tenant, job_id, batch_id)
    page = Paginator(batch.segments, 500).get_page(request.GET.get("page"))
    context = {"tenant": tenant, "job": job, "batch": batch, "page": page}
    return render(request, "segments.html", context)


@require_GET
@tenant_required
def batch_query(request: HttpRequest, tenant: Tenant, job_id: str, batch_id: str) -> HttpResponse:
    """A batch's whole query, for queries too long to show on the job page."""
    _, batch = downloads.job_and_batch(tenant, job_id, batch_id)
    return HttpResponse(batch.query, content_type="text/plain; charset=utf-8")


@require_GET
@tenant_required
def segments_text(request: HttpRequest, tenant: Tenant, job_id: str, batch_id: str) -> HttpResponse:
    """Every segment ID of a batch, one per line, for other tools."""
    job, batch = downloads.job_and_batch(tenant, job_id, batch_id)
    response = HttpResponse(downloads.segment_list(batch), content_type="text/plain; charset=utf-8")
    return downloads.as_attachment(
        response, downloads.file_name(job, batch, suffix="-segments.txt")
    )


@require_GET
@tenant_required(role=Role.DOWNLOADER)
@downloads.heavy(variants=downloads.HEAVY_FILE_VARIANTS)
def file_download(request: HttpRequest, tenant: Tenant, job_id: str, file_id: str) -> HttpResponse:
    """One result file, streamed from Zuora as it comes: as Zuora made it, or ready for Excel."""
    job, part = downloads.job_and_part(tenant, job_id, file_id)
    try:
        return downloads.one_file(request, tenant, job, part, file_id)
    except zuora.ZuoraError as exc:
        return _error_page(request, tenant, exc, job_id=job.id)


@require_GET
@tenant_required(role=Role.DOWNLOADER)
@downloads.heavy()
def batch_download(
    request: HttpRequest, tenant: Tenant, job_id: str, batch_id: str
) -> HttpResponse:
    """All of a batch's segments, in order, as one CSV with one header row (or a portion)."""
    job, batch = downloads.job_and_batch(tenant, job_id, batch_id)
    try:
        return downloads.whole_batch(request, tenant, job, batch)
    except zuora.ZuoraError as exc:
        return _error_page(request, tenant, exc, job_id=job.id)


@require_GET
@tenant_required(role=Role.DOWNLOADER)
@downloads.heavy()
def job_download(request: HttpRequest, tenant: Tenant, job_id: str) -> HttpResponse:
    """The whole job as one zip, one CSV per batch (the encrypted parts as they are, for PGP)."""
    job = jobs.stored_or_404(tenant, job_id).job()
    try:
        return downloads.whole_job(request, tenant, job)
    except zuora.ZuoraError as exc:
        return _error_page(request, tenant, exc, job_id=job.id)


@require_GET
@tenant_required(role=Role.DOWNLOADER)
def file_preview(
    request: HtmxHttpRequest, tenant: Tenant, job_id: str, file_id: str
) -> HttpResponse:
    """The header and first rows of a result file; reads no more of it than that."""
    job, part = downloads.job_and_part(tenant, job_id, file_id)
    context = {"tenant": tenant, "job": job, "batch": part.batch, "part": part, "file_id": file_id}
    status = 200
    if not job.is_pgp:
        download = Download.start(
            request.user,
            tenant,
            job.id,
            kind=Download.Kind.PREVIEW,
            batch_id=part.batch.batch_id,
            file_id=file_id,
        )
        try:
            with downloads.open_file(tenant, file_id, download) as result:
                context["preview"] = results.preview(results.decoded(result.chunks(), job.format))
        except (zuora.ZuoraError, results.ResultUnreadable) as exc:
            context["error"] = exc
            status = getattr(exc, "http_status", 502)
            download.finish(Download.Outcome.FAILED, detail=str(exc))
        else:
            download.finish(Download.Outcome.COMPLETE, records=len(context["preview"].rows))
    if request.htmx:  # htmx swaps only 2xx answers; the fragment itself says what went wrong
        return render(request, "preview.html#preview", context)
    return render(request, "preview.html", context, status=status)


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


def _in_tenant_zone(
    request: HttpRequest, tenant: Tenant, template: str, context: dict
) -> HttpResponse:
    """A job's page or one of its cards, every time in the tenant's zone; never cached, as
    each shows the job as it is now."""
    with timezone.override(tenant.zoneinfo):
        response = render(request, template, context)
    add_never_cache_headers(response)
    return response


def _page_or_card(template: str, request: HtmxHttpRequest) -> str:
    """The card alone for htmx, which loads it into the job page; else its own page."""
    return f"{template}#card" if request.htmx else template


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
    title: str = "",
) -> HttpResponse:
    """A failure a person can act on, with the status code that names it; `title` when the
    error's own does not fit the page."""
    admin_url = (
        reverse("admin:aquadash_tenant_change", args=[tenant.pk])
        if request.user.has_perm("aquadash.change_tenant")
        or (request.user.is_staff and tenant.user_role == Role.ADMIN)
        else ""
    )
    message = exc.message
    if admin_url and exc.next_step == "admin":
        # The button below is how they fix it themselves: no "ask an admin" for an admin.
        message = message.partition(" Ask an admin")[0]
    context = {
        "tenant": tenant,
        "job_id": job_id,
        "error": exc,
        "message": message,
        "title": title or exc.title,
        "no_stored_copy": isinstance(exc, zuora.JobNotFound) and bool(job_id),
        "final": exc.next_step == "home",  # asking again cannot help: polling stops
        "poll_seconds": job_facts.poll_seconds(tenant, None, _failures(request) + 1, exc),
        "failures": _failures(request) + 1,
        "retry_at": exc.retry_after and timezone.now() + timedelta(seconds=exc.retry_after),
        "admin_url": admin_url,
        "other_tenants": Tenant.objects.visible_to(request.user).exclude(pk=tenant.pk)
        if exc.next_step == "admin" and not admin_url
        else (),
    }
    if polling:
        # htmx swaps only 2xx answers; the fragment itself says what went wrong.
        return render(request, "job.html#live_error", context)
    response = render(request, "job_error.html", context, status=exc.http_status)
    if exc.retry_after:
        response["Retry-After"] = str(exc.retry_after)
    add_never_cache_headers(response)
    return response
