"""`manage.py tenant`: the secret never on the command line, never printed."""

import io
import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from django.core.management import CommandError, call_command
from pytest_django.fixtures import Settings

from aquadash.models import Role, Tenant
from tests.conftest import CANARY_SECRET, DISALLOWED_BASE_URLS

ADD = ["tenant", "add", "globex", "--name", "Globex", "--auth", "oauth", "--client-id", "gx-id"]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def stored_secret(slug: str) -> str:
    return Tenant.objects.get(slug=slug).zuora_connection().credentials.secret


@pytest.fixture
def secret_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AQUADASH_TENANT_SECRET", CANARY_SECRET)


@pytest.fixture
def stdin(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    monkeypatch.delenv("AQUADASH_TENANT_SECRET", raising=False)
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdin", stream)
    return stream


@pytest.mark.django_db
def test_add_reads_the_secret_from_the_environment(secret_in_env: None) -> None:
    output = run(*ADD, "--environment", "eu-prod", "--group", "Globex staff")
    tenant = Tenant.objects.get(slug="globex")
    assert (tenant.name, tenant.environment, tenant.identity) == ("Globex", "eu-prod", "gx-id")
    assert [group.name for group in tenant.groups.all()] == ["Globex staff"]
    assert stored_secret("globex") == CANARY_SECRET
    assert CANARY_SECRET not in output


@pytest.mark.django_db
def test_add_reads_one_line_of_standard_input_when_the_variable_is_unset(
    stdin: io.StringIO,
) -> None:
    stdin.write(f"{CANARY_SECRET}\nnext line\n")
    stdin.seek(0)
    run(*ADD, "--environment", "eu-prod")
    assert stored_secret("globex") == CANARY_SECRET


@pytest.mark.django_db
def test_add_refuses_a_secret_argument(secret_in_env: None) -> None:
    with pytest.raises(CommandError, match="unrecognized arguments: --secret"):
        run(*ADD, "--environment", "eu-prod", "--secret", "on-the-command-line")
    assert not Tenant.objects.exists()


@pytest.mark.django_db
def test_add_refuses_an_empty_secret(stdin: io.StringIO) -> None:
    with pytest.raises(CommandError, match="No secret given"):
        run(*ADD, "--environment", "eu-prod")
    assert not Tenant.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("url", DISALLOWED_BASE_URLS)
def test_add_refuses_disallowed_base_urls(url: str, secret_in_env: None) -> None:
    with pytest.raises(CommandError, match="not an allowed Zuora REST host"):
        run(*ADD, "--base-url", url)
    assert not Tenant.objects.exists()


@pytest.mark.django_db
def test_add_checks_the_options_before_asking_for_the_secret(stdin: io.StringIO) -> None:
    with pytest.raises(CommandError, match="time_zone"):
        run(*ADD, "--environment", "eu-prod", "--time-zone", "Mars/Olympus")


@pytest.mark.django_db
def test_add_accepts_a_base_url_listed_in_zuora_extra_hosts(
    secret_in_env: None, settings: Settings
) -> None:
    settings.ZUORA_EXTRA_HOSTS = frozenset({("127.0.0.1", 8765)})
    run(*ADD, "--base-url", "http://127.0.0.1:8765")
    tenant = Tenant.objects.get(slug="globex")
    assert (tenant.environment, tenant.base_url_resolved) == ("custom", "http://127.0.0.1:8765")


def test_update_keeps_the_secret_without_new_secret(tenant: Tenant, stdin: io.StringIO) -> None:
    run("tenant", "update", "acme", "--name", "Acme Corp", "--no-active")
    tenant.refresh_from_db()
    assert (tenant.name, tenant.is_active) == ("Acme Corp", False)
    assert stored_secret("acme") == CANARY_SECRET


def test_update_with_new_secret_replaces_it(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AQUADASH_TENANT_SECRET", "a-new-secret")
    run("tenant", "update", "acme", "--new-secret")
    assert stored_secret("acme") == "a-new-secret"


@pytest.mark.parametrize(
    "change", [("--environment", "eu-prod"), ("--base-url", "http://127.0.0.1:8765")]
)
def test_update_of_where_the_secret_goes_needs_the_secret_again(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch, settings, change: tuple[str, str]
) -> None:
    settings.ZUORA_EXTRA_HOSTS = frozenset({("127.0.0.1", 8765)})
    with pytest.raises(CommandError, match="give the secret again"):
        run("tenant", "update", "acme", *change)
    assert Tenant.objects.get(slug="acme").environment == "us-prod-cloud2"

    monkeypatch.setenv("AQUADASH_TENANT_SECRET", "a-new-secret")
    run("tenant", "update", "acme", *change, "--new-secret")
    assert stored_secret("acme") == "a-new-secret"


def test_update_groups_replace_the_granted_ones(tenant: Tenant) -> None:
    output = run("tenant", "update", "acme", "--group", "Finance", "--group", "Ops")
    assert sorted(group.name for group in tenant.groups.all()) == ["Finance", "Ops"]
    assert "Created group Finance." in output


def test_groups_are_granted_in_the_role_of_their_option(tenant: Tenant) -> None:
    run("tenant", "update", "acme", "--viewer-group", "Ops", "--admin-group", "IT")
    run("tenant", "update", "acme", "--viewer-group", "Auditors", "--group", "Finance",
        "--admin-group", "Finance")  # fmt: skip

    grants = tenant.grants.values_list("group__name", "role").order_by("group__name")
    assert list(grants) == [("Auditors", Role.VIEWER), ("Finance", Role.ADMIN)]
    assert "Auditors (viewer), Finance (admin)" in run("tenant", "list")


def test_list_never_prints_secrets(tenant: Tenant) -> None:
    output = run("tenant", "list")
    assert (
        "acme\tAcme\tus-prod-cloud2\toauth\tactive\tAcme staff (downloader)\tnever tested" in output
    )
    assert CANARY_SECRET not in output
    assert tenant.encrypted_secret not in output


def test_test_fails_with_zuoras_reason_and_records_it(make_tenant: Callable[..., Tenant]) -> None:
    make_tenant("acme", environment="custom", base_url="http://127.0.0.1:1")
    with pytest.raises(CommandError, match="Acme: aquadash cannot reach Zuora"):
        run("tenant", "test", "acme")
    assert Tenant.objects.get(slug="acme").last_contact_ok is False


def test_remove_deletes_the_tenant(tenant: Tenant) -> None:
    assert run("tenant", "remove", "acme") == "Removed tenant Acme (acme).\n"
    assert not Tenant.objects.exists()


@pytest.mark.django_db
def test_unknown_slug_is_a_clear_error() -> None:
    with pytest.raises(CommandError, match="There is no tenant 'nope'"):
        run("tenant", "test", "nope")


def test_test_succeeds_against_the_simulator(simulator_tenant: Tenant) -> None:
    output = run("tenant", "test", "sim")
    assert output == (
        "Sim: Zuora issued an OAuth token for these credentials. Zuora's allowance of sign-ins: "
        "1,999 of 2,000 left this minute.\n"
    )
    assert Tenant.objects.get(slug="sim").last_contact_ok is True


def test_without_secret_key_in_production_mode_it_names_what_is_missing_in_one_line():
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DJANGO_SETTINGS_MODULE"}}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    done = subprocess.run(
        [sys.executable, os.path.join(root, "manage.py"), "tenant", "list"],
        env=env | {"DEBUG": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode != 0
    assert done.stderr == "aquadash is not configured: SECRET_KEY must be set when DEBUG is off.\n"
