"""aquadash's URLs and /bench/bare/, for bench/pages.py only (see bench/settings.py)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.urls import include, path


@login_required
def bare(request: HttpRequest) -> HttpResponse:
    """As little as a signed-in Django view does: the middleware reads the session and the
    user, and the view answers a few bytes."""
    return HttpResponse("signed in\n", content_type="text/plain")


urlpatterns = [path("bench/bare/", bare), path("", include("aquadash.urls"))]
