"""aquadash's URLs, /bench/bare/, /bench/tenant/, /bench/floor/ and /bench/render/, for
bench/pages.py, and /bench/archived/, for bench/archive.py (see bench/settings.py)."""

from django.contrib.auth.decorators import login_required
from django.core.files.storage import storages
from django.http import FileResponse, HttpRequest, HttpResponse
from django.urls import include, path

from aquadash import jobs, views
from aquadash.access import tenant_required
from aquadash.models import JobSnapshot, Lookup, Tenant


@login_required
def bare(request: HttpRequest) -> HttpResponse:
    """As little as a signed-in Django view does: the middleware reads the session and the
    user, and the view answers a few bytes."""
    return HttpResponse("signed in\n", content_type="text/plain")


@tenant_required
def tenant(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """Bare and the one check every tenant's page makes: what a single query costs."""
    return HttpResponse(f"{tenant.slug}\n", content_type="text/plain")


@tenant_required
def floor(request: HttpRequest, tenant: Tenant, job_id: str) -> HttpResponse:
    """What the job page does before it renders anything: the tenant check, the stored job and
    the lookup row. The distance from here to the job page is the page itself."""
    state = jobs.fetch_job(tenant, job_id, user=request.user)
    Lookup.record(request.user, tenant, job_id, job=state.job, gone=state.gone)
    return HttpResponse(f"{state.job.status}\n", content_type="text/plain")


_read_once: dict[tuple[str, str], jobs.JobState] = {}


@login_required
def render(request: HttpRequest, tenant_slug: str, job_id: str) -> HttpResponse:
    """The job page as the job page renders it, from a stored job this process read once: the
    page without its queries. The distance from bare to here is the page's rendering."""
    if (tenant_slug, job_id) not in _read_once:
        snapshot = JobSnapshot.objects.select_related("tenant").get(
            tenant__slug=tenant_slug, job_id=job_id
        )
        _read_once[tenant_slug, job_id] = jobs.fetch_job(snapshot.tenant, job_id, user=None)
    state = _read_once[tenant_slug, job_id]
    return views.job_response(request, state.snapshot.tenant, state)


@login_required
def archived(request: HttpRequest, key: str) -> FileResponse:
    """A file of the archive's filesystem storage, straight from disk with Django's
    FileResponse: the baseline serving from the archive is measured against."""
    return FileResponse(open(storages["archive"].path(key), "rb"))  # noqa: SIM115


urlpatterns = [
    path("bench/bare/", bare),
    path("bench/tenant/<slug:tenant_slug>/", tenant),
    path("bench/floor/<slug:tenant_slug>/<str:job_id>/", floor),
    path("bench/render/<slug:tenant_slug>/<str:job_id>/", render),
    path("bench/archived/<path:key>", archived),
    path("", include("aquadash.urls")),
]
