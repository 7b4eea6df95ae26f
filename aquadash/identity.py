"""Single sign-on with OpenID Connect (mozilla-django-oidc), and the switch for local passwords.

People are known by the provider's issuer and `sub`, never by e-mail: an address can be
reassigned, and two providers may each have someone at the same one. On every sign-in (and every
session refresh, which is a silent sign-in) the groups named in AQUADASH_OIDC_GROUPS are set from
the provider's group claim; groups the mapping does not name are an administrator's, left alone.
"""

import functools
import hashlib
import itertools
import logging
from typing import Any

import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import AbstractBaseUser, Group, User
from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError, models, transaction
from django.http import Http404, HttpRequest, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.deprecation import MiddlewareMixin
from django.views.generic import View
from django_htmx.http import HttpResponseClientRedirect
from mozilla_django_oidc import auth, middleware, views

log = logging.getLogger(__name__)

FAILED = "Single sign-on did not complete, so you are not signed in. Please try again."
UNREACHABLE = "The sign-in provider cannot be reached just now, so you are not signed in."
# mozilla-django-oidc's setting name → the provider's discovery document's key
ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


class Identity(models.Model):
    """A person at an OpenID provider, and the aquadash user they sign in as."""

    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="identities")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="one_user_per_identity")
        ]
        verbose_name_plural = "identities"

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"


class ProviderUnreachable(Exception):
    pass


@functools.cache
def _discovered(issuer: str) -> dict[str, str]:
    """The provider's discovery document, fetched once per process (a failure is not kept)."""
    try:
        response = requests.get(
            issuer.rstrip("/") + "/.well-known/openid-configuration",
            timeout=settings.OIDC_TIMEOUT,
        )
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        log.warning("OIDC discovery at %s failed: %s", issuer, type(exc).__name__)
        raise ProviderUnreachable from None
    if document.get("issuer") != issuer:
        # A document naming another issuer belongs to another provider (or a wrong OIDC_ISSUER).
        log.warning("OIDC discovery at %s names issuer %r", issuer, document.get("issuer"))
        raise ProviderUnreachable
    return document


def oidc_setting(name: str, *default: Any) -> Any:
    """A mozilla-django-oidc setting; an endpoint not set explicitly comes from discovery."""
    if name in ENDPOINTS and not getattr(settings, name, ""):
        value = _discovered(settings.OIDC_ISSUER).get(ENDPOINTS[name])
        if not value:
            raise ProviderUnreachable
        return value
    return getattr(settings, name, *default)


def set_mapped_groups(user: User, claimed: object) -> None:
    """Make the user a member of exactly the mapped groups the claim names, among those the
    mapping grants; other groups (set by hand) stay as they are."""
    mapping = settings.AQUADASH_OIDC_GROUPS  # the provider's group name → the Django group
    names = {str(name) for name in claimed} if isinstance(claimed, list) else set()
    wanted = {mapping[name] for name in names if name in mapping}
    managed = set(mapping.values())
    user.groups.remove(*Group.objects.filter(name__in=managed - wanted))
    user.groups.add(*(Group.objects.get_or_create(name=name)[0] for name in wanted))


class OIDCBackend(auth.OIDCAuthenticationBackend):
    """Checks the ID token's issuer and audience as well as its signature, expiry and nonce,
    and finds the user by (issuer, sub)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The endpoints are read when used (properties below): discovery must not run, and
        # fail, whenever Django loads the backend.
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.UserModel = User

    get_settings = staticmethod(oidc_setting)
    OIDC_OP_TOKEN_ENDPOINT = property(lambda self: oidc_setting("OIDC_OP_TOKEN_ENDPOINT"))
    OIDC_OP_USER_ENDPOINT = property(lambda self: oidc_setting("OIDC_OP_USER_ENDPOINT"))
    OIDC_OP_JWKS_ENDPOINT = property(lambda self: oidc_setting("OIDC_OP_JWKS_ENDPOINT"))

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> User | None:
        try:
            return super().authenticate(request, **kwargs)
        except (SuspiciousOperation, ProviderUnreachable, requests.RequestException) as exc:
            # The class and message only: an exception from the token endpoint may carry the
            # request, and the request carries the client secret.
            message = str(exc) if isinstance(exc, SuspiciousOperation) else type(exc).__name__
            log.warning("OIDC sign-in refused: %s", message)
            return None

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        payload = super().verify_token(token, **kwargs)
        if payload.get("iss") != settings.OIDC_ISSUER:
            raise SuspiciousOperation(f"ID token from issuer {payload.get('iss')!r}")
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation(f"ID token for audience {audience!r}")
        if len(audiences) > 1 and payload.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise SuspiciousOperation("ID token for several audiences, authorised for another")
        if not payload.get("sub") or "exp" not in payload:
            raise SuspiciousOperation("ID token without sub or exp")
        return payload

    def get_or_create_user(
        self, access_token: str, id_token: str, payload: dict[str, Any]
    ) -> User | None:
        claims = self.get_userinfo(access_token, id_token, payload)
        if claims.get("sub") != payload["sub"]:
            raise SuspiciousOperation("userinfo is about someone else than the ID token")
        # Who it is comes from the checked ID token only.
        claims = {**payload, **claims, "iss": payload["iss"], "sub": payload["sub"]}
        try:
            return self.user_for(claims)
        except IntegrityError:
            # Two first sign-ins at once (two tabs): the other one made the user, or took the
            # name; this time the identity is found, or another name chosen.
            return self.user_for(claims)

    def user_for(self, claims: dict[str, Any]) -> User:
        with transaction.atomic():
            identity = (
                Identity.objects.select_related("user")
                .filter(issuer=claims["iss"], subject=claims["sub"])
                .first()
            )
            if identity is None:
                user = self.create_user(claims)
                Identity.objects.create(issuer=claims["iss"], subject=claims["sub"], user=user)
            else:
                user = identity.user
            if claims.get("email") and user.email != claims["email"]:
                user.email = claims["email"]
                user.save(update_fields=["email"])
            set_mapped_groups(user, claims.get(settings.OIDC_GROUPS_CLAIM))
        return user

    def create_user(self, claims: dict[str, Any]) -> User:
        """A new user with no password, named after the provider's user name when that is free:
        an existing account of the same name or e-mail is never taken over."""
        wanted = str(claims.get("preferred_username") or claims.get("email") or "sso")[:120]
        tag = hashlib.sha256(f"{claims['iss']} {claims['sub']}".encode()).hexdigest()[:8]
        candidates = itertools.chain(
            [wanted, f"{wanted}-{tag}"], (f"{wanted}-{tag}-{n}" for n in itertools.count(2))
        )
        username = next(
            name for name in candidates if not User.objects.filter(username__iexact=name).exists()
        )
        return User.objects.create_user(username, email=claims.get("email", ""))


def not_a_password(request: HttpRequest, credentials: dict[str, Any] | None) -> bool:
    """For django-axes (AXES_WHITELIST_CALLABLE): it counts wrong passwords only. A sign-in
    refused at the provider's callback has no username to count against, and would otherwise
    lock everyone behind one address out of single sign-on together."""
    return request.path == reverse("oidc_authentication_callback")


class LocalBackend(ModelBackend):
    """Passwords when AQUADASH_LOCAL_LOGIN=0: only the break-glass superusers still have them
    (and only they keep a password session)."""

    def user_can_authenticate(self, user: AbstractBaseUser | None) -> bool:
        return (
            super().user_can_authenticate(user)
            and user.is_superuser
            and user.get_username() in settings.AQUADASH_BREAK_GLASS
        )


def failed(request: HttpRequest, message: str = FAILED) -> HttpResponseRedirect:
    messages.error(request, message)
    return redirect("login")


def require_oidc(view: type[View]) -> type[View]:
    """Answer 404 while single sign-on is off: its addresses then do not exist."""
    dispatch = view.dispatch

    def guarded(self: View, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not settings.AQUADASH_OIDC:
            raise Http404("Single sign-on is not configured.")
        return dispatch(self, request, *args, **kwargs)

    view.dispatch = guarded
    return view


@require_oidc
class SignInView(views.OIDCAuthenticationRequestView):
    get_settings = staticmethod(oidc_setting)

    def __init__(self, **kwargs: Any) -> None:
        View.__init__(self, **kwargs)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID

    def get(self, request: HttpRequest) -> HttpResponseBase:
        try:
            self.OIDC_OP_AUTH_ENDPOINT = oidc_setting("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except ProviderUnreachable:
            return failed(request, UNREACHABLE)
        return super().get(request)


@require_oidc
class CallbackView(views.OIDCAuthenticationCallbackView):
    """The provider's answer. Any refusal (an unknown state, a token that fails its checks, the
    provider's own error) ends on the sign-in page with a message, never signed in."""

    get_settings = staticmethod(oidc_setting)

    def get(self, request: HttpRequest) -> HttpResponseBase:
        try:
            return super().get(request)
        except SuspiciousOperation as exc:
            log.warning("OIDC sign-in refused: %s", exc)
            return self.login_failure()

    def login_failure(self) -> HttpResponseBase:
        # A session refresh the provider refused (say, signed out there) must not stay
        # signed in here.
        if self.request.user.is_authenticated:
            logout(self.request)
        return failed(self.request)


class SessionRefresh(middleware.SessionRefresh):
    """Sends a signed-in person back to the provider (silently, prompt=none) every
    OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS, so their groups are set again and a person the
    provider no longer knows is signed out."""

    get_settings = staticmethod(oidc_setting)

    def __init__(self, get_response: Any) -> None:
        # Not the library's __init__, which reads the endpoint (so discovers) at start-up.
        MiddlewareMixin.__init__(self, get_response)
        self.OIDC_EXEMPT_URLS = settings.OIDC_EXEMPT_URLS
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_STATE_SIZE = 32
        self.OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_authentication_callback"
        self.OIDC_RP_SCOPES = settings.OIDC_RP_SCOPES
        self.OIDC_USE_NONCE = True
        self.OIDC_NONCE_SIZE = 32

    OIDC_OP_AUTHORIZATION_ENDPOINT = property(
        lambda self: oidc_setting("OIDC_OP_AUTHORIZATION_ENDPOINT")
    )

    def process_request(self, request: HttpRequest) -> HttpResponseBase | None:
        try:
            response = super().process_request(request)
        except ProviderUnreachable:
            logout(request)
            return failed(request, UNREACHABLE)
        if response is not None and getattr(request, "htmx", False):
            # An htmx poll cannot follow a redirect to the provider: the whole page goes, and
            # comes back to that page rather than to the poll's address.
            request.session["oidc_login_next"] = request.htmx.current_url_abs_path or "/"
            return HttpResponseClientRedirect(response["Location"])
        return response


class LoginPage(auth_views.LoginView):
    """Django's sign-in page, with the provider's button when single sign-on is on, and the
    password form only while passwords are on (or at ?break-glass)."""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(
            oidc=settings.AQUADASH_OIDC,
            provider_name=settings.AQUADASH_OIDC_PROVIDER_NAME,
            passwords=settings.AQUADASH_LOCAL_LOGIN or "break-glass" in self.request.GET,
            **kwargs,
        )


urlpatterns = [
    path(
        "authenticate/", login_not_required(SignInView.as_view()), name="oidc_authentication_init"
    ),
    path(
        "callback/", login_not_required(CallbackView.as_view()), name="oidc_authentication_callback"
    ),
    # The library's refresh middleware wants this name; signing out is Django's, as without SSO.
    path("logout/", auth_views.LogoutView.as_view(), name="oidc_logout"),
]
