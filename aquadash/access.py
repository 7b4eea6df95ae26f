"""Who may see which tenant: the one check every view that touches a tenant goes through."""

import functools
import inspect
import ipaddress
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponseBase
from django_htmx.http import HttpResponseClientRedirect

from aquadash.models import AuditEvent, Role, Tenant

NOT_FOUND = "No such tenant."


def tenant_required(
    view: Callable[..., Any] | None = None, *, role: Role = Role.VIEWER
) -> Callable[..., Any]:
    """Swap the `tenant_slug` URL argument for the `tenant` the user may see in at least `role`,
    or raise Http404. `@tenant_required` asks for a viewer, `@tenant_required(role=...)` more.

    A tenant the user may not see, or not in that role, is answered exactly like one that does
    not exist, so tenants cannot be discovered by trying names, nor a viewer learn which files
    exist. Works on sync and async views.
    """
    if view is None:
        return functools.partial(tenant_required, role=role)

    if inspect.iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapper(
            request: HttpRequest, *args: Any, tenant_slug: str, **kwargs: Any
        ) -> HttpResponseBase:
            user = await request.auser()
            tenants = Tenant.objects.visible_to(user, role=role)
            tenant = await tenants.filter(slug=tenant_slug).afirst()
            if tenant is None:
                await sync_to_async(note_refusal)(user, tenant_slug, request.path)
                raise Http404(NOT_FOUND)
            return await view(request, *args, tenant=tenant, **kwargs)

        return async_wrapper

    @functools.wraps(view)
    def wrapper(
        request: HttpRequest, *args: Any, tenant_slug: str, **kwargs: Any
    ) -> HttpResponseBase:
        tenant = Tenant.objects.visible_to(request.user, role=role).filter(slug=tenant_slug).first()
        if tenant is None:
            note_refusal(request.user, tenant_slug, request.path)
            raise Http404(NOT_FOUND)
        return view(request, *args, tenant=tenant, **kwargs)

    return wrapper


def note_refusal(user: AbstractBaseUser | AnonymousUser, slug: str, path: str) -> None:
    """Note a refusal of a tenant that exists (an unknown name is just a typo)."""
    if tenant := Tenant.objects.filter(slug=slug).first():
        AuditEvent.record(
            AuditEvent.Kind.ACCESS_DENIED, user=user, tenant=tenant, target=path, once_per=300
        )


def client_address(request: HttpRequest) -> str:
    """The address a request came from, for sign-in throttling.

    Each of our AQUADASH_TRUSTED_PROXIES appends the address it was reached from to
    X-Forwarded-For, so the client is that many entries from the end; anything before was
    written by the client and may be forged. With no trusted proxies the header is ignored.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = settings.AQUADASH_TRUSTED_PROXIES
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if proxies <= 0 or len(hops) < proxies:
        return remote
    try:
        return str(ipaddress.ip_address(hops[-proxies]))
    except ValueError:
        return remote


class LoginRequiredMiddleware(auth_middleware.LoginRequiredMiddleware):
    """Django's, except that an htmx poll from an expired session reloads the whole page.

    A plain redirect would be followed by htmx and the login form swapped into the job page.
    """

    def handle_no_permission(self, request: HttpRequest, view_func: Callable) -> HttpResponseBase:
        if not getattr(request, "htmx", False):
            return super().handle_no_permission(request, view_func)
        # After signing in, return to the page the poll came from, not to the poll's URL.
        page = request.htmx.current_url_abs_path or request.path
        login = redirect_to_login(
            page, self.get_login_url(view_func), self.get_redirect_field_name(view_func)
        )
        return HttpResponseClientRedirect(login["Location"])
