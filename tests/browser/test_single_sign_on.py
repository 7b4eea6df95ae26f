"""Single sign-on in Chromium: aquadash and a real OpenID provider (django-oauth-toolkit, in a
process of its own), both on loopback."""

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from importlib import import_module
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.conf import settings as django_settings

from tests.browser.conftest import Looks, Page, expect
from tests.oidc import CLIENT_SECRET, Provider, aquadash_signing_in_with, provider_serving

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads what the test wrote
REFUSED = "Single sign-on did not complete, so you are not signed in."
SessionStore = import_module(django_settings.SESSION_ENGINE).SessionStore


@pytest.fixture
def single_sign_on(
    every_look: Looks, subtests, simulator_tenant, tmp_path: Path
) -> Iterator[Callable[..., tuple[Looks, Provider]]]:
    """start(audience="") -> (looks on aquadash signing in with a new provider, the provider),
    whose user "alice" is in the provider's group "finance" (granting aquadash's Sim)."""
    with ExitStack() as stack:

        def start(audience: str = "") -> tuple[Looks, Provider]:
            provider = stack.enter_context(provider_serving(tmp_path, audience=audience))
            provider.user("alice", "alice@example.com", "finance")
            log = stack.enter_context((tmp_path / "aquadash.log").open("w"))
            every_look.base_url = stack.enter_context(
                aquadash_signing_in_with(
                    provider, simulator_tenant, settings_module="tests.browser.settings", log=log
                )
            )
            every_look.subtests = subtests
            return every_look, provider

        yield start
        every_look.close_test_pages()
    assert CLIENT_SECRET not in (tmp_path / "aquadash.log").read_text()


def sign_in_at_provider(page: Page) -> None:
    page.goto("/")
    page.get_by_role("link", name="Sign in with Test provider").click()
    page.get_by_label("Provider username").fill("alice")
    page.get_by_label("Provider password").fill("password")
    page.get_by_role("button", name="Continue").click()


def test_sign_in_maps_groups_and_a_group_removed_takes_the_tenant_away(single_sign_on):
    looks, provider = single_sign_on()
    page = looks.new_page()
    page.goto("/")
    expect(page.get_by_role("link", name="Sign in with Test provider")).to_be_visible()
    looks.check(page, "sign-in page with single sign-on")

    sign_in_at_provider(page)

    expect(page.get_by_role("heading", name="Look up an AQuA job")).to_be_visible()
    assert page.goto("/t/sim/jobs/").status == 200

    provider.user("alice", "alice@example.com", "")
    cookie = next(c for c in page.context.cookies() if c["name"] == "sessionid")
    session = SessionStore(cookie["value"])
    session["oidc_id_token_expiration"] = 0  # the refresh interval has passed
    session.save()

    assert page.goto("/t/sim/jobs/").status == 404
    assert page.url.endswith("/t/sim/jobs/")


def test_a_token_for_another_audience_is_refused(single_sign_on):
    looks, _ = single_sign_on(audience="another-app")
    page = looks.new_page()

    sign_in_at_provider(page)

    expect(page.get_by_role("alert")).to_contain_text(REFUSED)
    assert urlsplit(page.url).path == "/accounts/login/"
    looks.check(page, "sign-in page, single sign-on refused")
    assert page.goto("/").url.endswith("/accounts/login/?next=/")


def changed(address: str, name: str) -> str:
    """`address` with its query's `name` changed, as an attacker would change it."""
    parts = urlsplit(address)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert name in query
    query[name] = "chosen-by-an-attacker"
    return parts._replace(query=urlencode(query)).geturl()


def test_a_tampered_state_or_nonce_is_refused(single_sign_on):
    looks, _ = single_sign_on()
    page = looks.new_page()
    page.goto("/")
    # The sign-in link's redirects, taken one at a time with the browser's own cookies.
    hop = page.context.request

    def to_provider() -> str:
        return hop.get(f"{looks.base_url}/oidc/authenticate/", max_redirects=0).headers["location"]

    page.goto(changed(to_provider(), "nonce"))
    page.get_by_label("Provider username").fill("alice")
    page.get_by_label("Provider password").fill("password")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_contain_text(REFUSED)
    assert page.goto("/").url.endswith("/accounts/login/?next=/")

    back = hop.get(to_provider(), max_redirects=0).headers["location"]  # signed in there now
    page.goto(changed(back, "state"))
    expect(page.get_by_role("alert")).to_contain_text(REFUSED)
    assert page.goto("/").url.endswith("/accounts/login/?next=/")

    page.goto(back)  # the same answer, untouched: taken
    expect(page.get_by_role("heading", name="Look up an AQuA job")).to_be_visible()
