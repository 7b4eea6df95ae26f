"""aquadash's URLs, /bench/bare/ and /bench/floor/, for bench/pages.py only (see
bench/settings.py)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from aquadash import jobs
from aquadash.access import tenant_required
from aquadash.models import Lookup, Tenant


@login_required
def bare(request: HttpRequest) -> HttpResponse:
    """As little as a signed-in Django view does: the middleware reads the session and the
    user, and the view answers a few bytes."""
    return HttpResponse("signed in\n", content_type="text/plain")


@tenant_required
def floor(request: HttpRequest, tenant: Tenant, job_id: str) -> HttpResponse:
    """What the job page does before it renders anything: the tenant check, the stored job and
    the lookup row. The distance from here to the job page is the page itself."""
    state = jobs.fetch_job(tenant, job_id, user=request.user)
    Lookup.record(request.user, tenant, job_id, state)
    return HttpResponse(f"{state.job.status}\n", content_type="text/plain")


urlpatterns = [
    path("bench/bare/", bare),
    path("bench/floor/<slug:tenant_slug>/<str:job_id>/", floor),
    path("", include("aquadash.urls")),
]
