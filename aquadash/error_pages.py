"""aquadash's own 400 and 404 pages under DEBUG too.

With DEBUG on (`make run`) Django answers these with its technical pages, which list every URL
pattern; the demo is what newcomers judge us by, so it shows what production shows. Server
errors keep Django's technical page under DEBUG: that one is for the developer.
"""

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponseBase
from django.views import defaults


class OwnErrorPages:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        # No resolver match: no view ran, so this is Django's page for an address that matches
        # no URL pattern (a view's own 400s and 404s, such as an unknown job, have a match).
        if settings.DEBUG and request.resolver_match is None and response.status_code == 404:
            return defaults.page_not_found(request, Http404())
        return response

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponseBase | None:
        if not settings.DEBUG:
            return None  # Django renders the same templates itself
        if isinstance(exception, Http404):
            return defaults.page_not_found(request, exception)
        if isinstance(exception, BadRequest | SuspiciousOperation):
            return defaults.bad_request(request, exception)
        return None
