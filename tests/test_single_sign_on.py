"""Single sign-on, end to end: aquadash under gunicorn and a real OpenID provider
(django-oauth-toolkit, tests/oidc_provider) in another process, both on loopback; a requests
session is the browser, following every redirect between them."""

import re
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, User
from django.test import Client

from aquadash.checks import passwords_beside_single_sign_on
from aquadash.identity import Identity
from aquadash.models import Tenant
from tests.conftest import start_django
from tests.oidc import CLIENT_SECRET, Provider, aquadash_signing_in_with, provider_serving

pytestmark = pytest.mark.django_db(transaction=True)
REFUSED = "Single sign-on did not complete"
SessionStore = import_module(django_settings.SESSION_ENGINE).SessionStore


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[Provider]:
    with provider_serving(tmp_path) as serving:
        serving.user("alice", "alice@example.com", "finance")
        yield serving


@pytest.fixture
def aquadash(provider: Provider, simulator_tenant: Tenant, tmp_path: Path) -> Iterator[str]:
    with (
        (tmp_path / "aquadash.log").open("w") as log,
        aquadash_signing_in_with(provider, simulator_tenant, log=log) as base,
    ):
        yield base
    assert CLIENT_SECRET not in (tmp_path / "aquadash.log").read_text()


def through_provider_login(browser: requests.Session, response: requests.Response, name: str):
    """Sign in at the provider's own page if it asks, and follow on to aquadash."""
    if "Provider password" not in response.text:
        return response
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.text)[1]
    return browser.post(
        response.url,
        {"username": name, "password": "password", "csrfmiddlewaretoken": token},
        headers={"Referer": response.url},
    )


def sso_sign_in(browser: requests.Session, base: str, name: str = "alice") -> requests.Response:
    response = browser.get(f"{base}/accounts/login/")
    assert "Sign in with Test provider" in response.text
    return through_provider_login(browser, browser.get(f"{base}/oidc/authenticate/"), name)


def signed_in_as(browser: requests.Session, base: str) -> User | None:
    key = browser.cookies.get("sessionid", domain="127.0.0.1", path="/")
    user_id = SessionStore(key).get("_auth_user_id") if key else None
    return User.objects.filter(pk=user_id).first()


def test_sign_in_sets_the_mapped_groups_and_shows_their_tenant(aquadash, provider):
    browser = requests.Session()

    response = sso_sign_in(browser, aquadash)

    assert response.status_code == 200 and response.url == f"{aquadash}/"
    assert CLIENT_SECRET not in response.text
    user = signed_in_as(browser, aquadash)
    assert user.email == "alice@example.com" and not user.has_usable_password()
    assert browser.get(f"{aquadash}/t/sim/jobs/").status_code == 200


def test_a_group_removed_at_the_provider_takes_the_tenant_away(aquadash, provider):
    browser = requests.Session()
    sso_sign_in(browser, aquadash)
    user = signed_in_as(browser, aquadash)
    by_hand = Group.objects.create(name="Auditors")  # not in the mapping: an admin's
    user.groups.add(by_hand)
    assert browser.get(f"{aquadash}/t/sim/jobs/").status_code == 200

    provider.user("alice", "alice@example.com", "")

    # Still within the refresh interval: the session goes on as it was.
    assert browser.get(f"{aquadash}/t/sim/jobs/").status_code == 200
    # The interval has passed: the next page goes by the provider (silently) first.
    session = SessionStore(browser.cookies["sessionid"])
    session["oidc_id_token_expiration"] = 0
    session.save()
    response = browser.get(f"{aquadash}/t/sim/jobs/")
    assert response.status_code == 404
    assert response.history and any(
        "prompt=none" in r.headers["Location"] for r in response.history
    )
    assert signed_in_as(browser, aquadash) == user
    assert set(user.groups.values_list("name", flat=True)) == {"Auditors"}

    # And at the next sign-in, in a new browser.
    provider.user("alice", "alice@example.com", "ops")
    browser = requests.Session()
    sso_sign_in(browser, aquadash)
    assert browser.get(f"{aquadash}/t/sim/jobs/").status_code == 404
    assert set(user.groups.values_list("name", flat=True)) == {"Auditors", "Ops"}


def test_people_are_matched_on_issuer_and_subject_never_on_email(
    provider, simulator_tenant, tmp_path, make_user
):
    local = make_user("alice", email="alice@example.com")
    (tmp_path / "second").mkdir()
    with (
        provider_serving(tmp_path / "second") as other,
        aquadash_signing_in_with(provider, simulator_tenant) as base,
        aquadash_signing_in_with(other, simulator_tenant) as other_base,
    ):
        other.user("alice", "alice@example.com", "finance")
        first, second = requests.Session(), requests.Session()
        sso_sign_in(first, base)
        sso_sign_in(second, other_base)
        sso_sign_in(requests.Session(), base)  # again: the same person, not a third

        ours, theirs = signed_in_as(first, base), signed_in_as(second, other_base)
        assert len({local.pk, ours.pk, theirs.pk}) == 3
        assert local.groups.count() == 0 and local.has_usable_password()
        assert User.objects.filter(email="alice@example.com").count() == 3
        assert Identity.objects.get(user=ours).issuer == provider.issuer
        assert Identity.objects.get(user=theirs).issuer == other.issuer

        # An admin deletes the link (README): the next sign-in makes a new user.
        Identity.objects.filter(user=ours).delete()
        again = requests.Session()
        assert sso_sign_in(again, base).url == f"{base}/"
        assert signed_in_as(again, base) not in (local, ours, theirs)


def test_a_token_from_another_issuer_is_refused(provider, simulator_tenant):
    endpoints = {
        "OIDC_AUTHORIZATION_ENDPOINT": f"{provider.issuer}/authorize/",
        "OIDC_TOKEN_ENDPOINT": f"{provider.issuer}/token/",
        "OIDC_USERINFO_ENDPOINT": f"{provider.issuer}/userinfo/",
        "OIDC_JWKS_ENDPOINT": f"{provider.issuer}/.well-known/jwks.json",
    }
    expected = provider.base + "/elsewhere"
    with aquadash_signing_in_with(
        provider, simulator_tenant, OIDC_ISSUER=expected, **endpoints
    ) as base:
        browser = requests.Session()
        response = sso_sign_in(browser, base)

        assert response.url == f"{base}/accounts/login/" and REFUSED in response.text
        assert signed_in_as(browser, base) is None


def test_a_token_for_another_audience_is_refused(simulator_tenant, tmp_path):
    with (
        provider_serving(tmp_path, audience="another-app") as provider,
        aquadash_signing_in_with(provider, simulator_tenant) as base,
    ):
        provider.user("alice", "alice@example.com", "finance")
        browser = requests.Session()
        response = sso_sign_in(browser, base)

        assert response.url == f"{base}/accounts/login/" and REFUSED in response.text
        assert signed_in_as(browser, base) is None


def test_a_tampered_state_is_refused(aquadash, provider):
    browser = requests.Session()
    through_provider_login(browser, browser.get(f"{provider.base}/accounts/login/"), "alice")
    to_provider = browser.get(f"{aquadash}/oidc/authenticate/", allow_redirects=False)
    back = browser.get(to_provider.headers["Location"], allow_redirects=False)
    callback = back.headers["Location"]
    assert callback.startswith(f"{aquadash}/oidc/callback/?code=")

    response = browser.get(callback.replace("state=", "state=x"))

    assert response.url == f"{aquadash}/accounts/login/" and REFUSED in response.text
    assert signed_in_as(browser, aquadash) is None
    # The same answer with its own state is taken: only the state was wrong.
    assert browser.get(callback).url == f"{aquadash}/"
    assert signed_in_as(browser, aquadash) is not None


def test_a_tampered_nonce_is_refused(aquadash, provider):
    browser = requests.Session()
    to_provider = browser.get(f"{aquadash}/oidc/authenticate/", allow_redirects=False)
    address = urlsplit(to_provider.headers["Location"])
    query = {key: values[0] for key, values in parse_qs(address.query).items()}
    query["nonce"] = "chosen-by-an-attacker"

    response = browser.get(address._replace(query=urlencode(query)).geturl())
    response = through_provider_login(browser, response, "alice")

    assert response.url == f"{aquadash}/accounts/login/" and REFUSED in response.text
    assert signed_in_as(browser, aquadash) is None


# Without OIDC_ISSUER (`make run`, and every other test): no button, no single sign-on addresses.


def test_without_an_issuer_the_sign_in_page_is_as_it_was(db):
    page = Client().get("/accounts/login/").content.decode()

    assert "Sign in with" not in page and 'name="password"' in page
    assert Client().get("/oidc/authenticate/").status_code == 404


@pytest.fixture
def passwords_off(settings) -> None:
    settings.AQUADASH_LOCAL_LOGIN = False
    settings.AQUADASH_BREAK_GLASS = frozenset({"root", "bob"})
    settings.AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        "aquadash.identity.LocalBackend",
    ]


def test_with_local_login_off_only_listed_superusers_have_passwords(passwords_off, make_user):
    make_user("alice")
    make_user("admin", superuser=True)  # a superuser, but not on the break-glass list
    make_user("root", superuser=True)
    make_user("bob")  # listed, but not a superuser

    assert 'name="password"' not in Client().get("/accounts/login/").content.decode()
    page = Client().get("/accounts/login/?break-glass").content.decode()
    assert 'name="password"' in page
    for name in ("alice", "admin", "bob"):
        refused = Client().post(
            "/accounts/login/?break-glass", {"username": name, "password": "password"}
        )
        assert (
            refused.status_code == 200
            and "correct username and password" in refused.content.decode()
        )
    signed_in = Client().post(
        "/accounts/login/?break-glass", {"username": "root", "password": "password"}
    )
    assert signed_in.status_code == 302


def test_with_local_login_off_the_throttle_still_locks_out_break_glass_guessing(
    passwords_off, make_user
):
    make_user("root", superuser=True)
    client = Client()
    for _ in range(5):
        client.post("/accounts/login/?break-glass", {"username": "root", "password": "guess"})

    response = client.post(
        "/accounts/login/?break-glass", {"username": "root", "password": "password"}
    )

    assert response.status_code == 429


def test_check_deploy_warns_of_passwords_beside_single_sign_on(settings):
    settings.DEBUG = False
    settings.AQUADASH_OIDC = True

    settings.AQUADASH_LOCAL_LOGIN = True
    assert [w.id for w in passwords_beside_single_sign_on()] == ["aquadash.W003"]
    settings.AQUADASH_LOCAL_LOGIN = False
    assert passwords_beside_single_sign_on() == []


def test_refused_single_sign_ons_do_not_lock_an_address_out(settings, rf):
    """django-axes counts wrong passwords; a refused callback has no username, and counting it
    would lock everyone behind the address out of single sign-on."""
    from axes.models import AccessAttempt
    from django.contrib.auth import authenticate
    from django.contrib.sessions.backends.db import SessionStore as DatabaseSession

    settings.AUTHENTICATION_BACKENDS = [
        *settings.AUTHENTICATION_BACKENDS,
        "aquadash.identity.OIDCBackend",
    ]
    settings.OIDC_OP_TOKEN_ENDPOINT = "http://127.0.0.1:1/token/"  # nobody answers
    for path in ("/oidc/callback/", "/accounts/login/"):
        for _ in range(6):
            request = rf.get(f"{path}?code=stolen&state=any")
            request.session = DatabaseSession()
            assert authenticate(request, nonce="n", code_verifier="v") is None
        assert AccessAttempt.objects.exists() == (path == "/accounts/login/")


@pytest.fixture
def oidc_settings(settings) -> None:
    """Single sign-on on, in this process, at a provider nobody answers for."""
    settings.AQUADASH_OIDC = True
    settings.OIDC_ISSUER = "http://127.0.0.1:1/o"
    settings.AUTHENTICATION_BACKENDS = [
        *settings.AUTHENTICATION_BACKENDS,
        "aquadash.identity.OIDCBackend",
    ]


def test_a_provider_that_cannot_be_reached_is_said_so(oidc_settings):
    response = Client().get("/oidc/authenticate/", follow=True)

    assert response.redirect_chain[-1] == ("/accounts/login/", 302)
    assert "The sign-in provider cannot be reached just now" in response.content.decode()


def test_an_htmx_poll_due_for_refresh_reloads_the_page_through_the_provider(
    oidc_settings, settings, make_user
):
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = "http://127.0.0.1:1/o/authorize/"
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "aquadash.identity.SessionRefresh"]
    client = Client()
    client.force_login(make_user("alice"), backend="aquadash.identity.OIDCBackend")

    response = client.get(
        "/jobs/", headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/t/sim/"}
    )

    assert response.status_code == 200
    assert response["HX-Redirect"].startswith("http://127.0.0.1:1/o/authorize/?")
    assert "prompt=none" in response["HX-Redirect"]
    assert client.session["oidc_login_next"] == "/t/sim/"


def test_admins_see_who_signs_in_as_whom_and_cannot_make_it_up(make_user):
    admin = make_user("root", superuser=True)
    Identity.objects.create(issuer="https://id.example.com", subject="s-1", user=make_user("alice"))
    client = Client()
    client.force_login(admin)

    listing = client.get("/admin/aquadash/identity/")

    assert listing.status_code == 200 and "https://id.example.com" in listing.content.decode()
    assert client.get("/admin/aquadash/identity/add/").status_code == 403


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AQUADASH_OIDC_GROUPS", "finance"),
        ("AQUADASH_OIDC_GROUPS", "finance="),
        ("AQUADASH_LOCAL_LOGIN", "maybe"),
        ("OIDC_REFRESH_SECONDS", "15m"),
        ("OIDC_ISSUER", "https://id.example.com"),  # without a client ID and secret
    ],
)
def test_a_malformed_setting_stops_start_up_naming_it(variable, value):
    result = start_django(DEBUG="1", **{variable: value})

    assert result.returncode != 0
    assert f"ImproperlyConfigured: {variable}" in result.stderr
    assert CLIENT_SECRET not in result.stderr


def test_the_client_secret_never_shows_in_an_error_report(settings):
    from django.views.debug import ExceptionReporter

    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    report = ExceptionReporter(None, ValueError, ValueError("x"), None).get_traceback_text()

    assert "OIDC_RP_CLIENT_SECRET" in report and CLIENT_SECRET not in report
