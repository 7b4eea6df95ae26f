"""`manage.py setup_demo`: what `make run` needs, created once, development only."""

import io
import re
import subprocess
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from pytest_django.fixtures import Settings

from aquadash.models import Role, Tenant
from aquadash.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET


@pytest.fixture
def development(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.DEBUG = True
    settings.ZUORA_EXTRA_HOSTS = frozenset({("127.0.0.1", 8765)})
    monkeypatch.setenv("AQUADASH_SIMULATOR_URL", "http://127.0.0.1:8765")


def setup_demo(*args: str) -> str:
    out = io.StringIO()
    call_command("setup_demo", *args, stdout=out)
    return out.getvalue()


def printed_passwords(output: str) -> dict[str, str]:
    return dict(re.findall(r"(?:Created user|New password for) (\w+): password (\S+)", output))


@pytest.mark.django_db
def test_setup_demo_refuses_to_run_with_debug_off() -> None:
    with pytest.raises(CommandError, match="development only"):
        setup_demo()
    assert not Tenant.objects.exists()


@pytest.mark.django_db
def test_setup_demo_creates_the_simulated_tenant(development: None) -> None:
    setup_demo()
    tenant = Tenant.objects.get(slug="demo")
    assert tenant.name == "Demo (simulated Zuora)"
    assert tenant.base_url_resolved == "http://127.0.0.1:8765"
    credentials = tenant.zuora_connection().credentials
    assert (credentials.method, credentials.identity) == ("oauth", DEMO_CLIENT_ID)
    assert credentials.secret == DEMO_CLIENT_SECRET


@pytest.mark.django_db
def test_setup_demo_creates_users_and_prints_their_passwords_once(development: None) -> None:
    passwords = printed_passwords(setup_demo())
    demo, admin = User.objects.get(username="demo"), User.objects.get(username="admin")
    assert demo.check_password(passwords["demo"]) and not demo.is_staff
    assert admin.check_password(passwords["admin"]) and admin.is_superuser
    assert demo.email == "demo@aquadash.example"  # so a watch in the demo prints its e-mail
    assert list(Tenant.objects.visible_to(demo).values_list("slug", flat=True)) == ["demo"]
    viewer = User.objects.get(username="viewer")
    assert viewer.check_password(passwords["viewer"]) and not viewer.is_staff
    assert [(t.slug, t.user_role) for t in Tenant.objects.visible_to(viewer)] == [
        ("demo", Role.VIEWER)
    ]
    assert Tenant.objects.visible_to(demo).get().user_role == Role.DOWNLOADER
    again = setup_demo()
    assert printed_passwords(again) == {}
    assert "make demo-passwords" in again
    assert Tenant.objects.count() == 1


@pytest.mark.django_db
def test_setup_demo_new_passwords_replaces_them(development: None) -> None:
    first = printed_passwords(setup_demo())
    second = printed_passwords(setup_demo("--new-passwords"))
    assert second.keys() == {"demo", "viewer", "admin"}
    assert second["demo"] != first["demo"]
    assert User.objects.get(username="demo").check_password(second["demo"])


@pytest.mark.django_db
def test_setup_demo_explains_a_simulator_url_not_in_zuora_extra_hosts(
    development: None, settings: Settings
) -> None:
    settings.ZUORA_EXTRA_HOSTS = frozenset()
    with pytest.raises(CommandError, match="ZUORA_EXTRA_HOSTS"):
        setup_demo()


def test_make_run_prints_the_passwords_and_addresses_last_before_the_server() -> None:
    root = Path(__file__).resolve().parent.parent
    plan = subprocess.run(
        ["make", "-n", "run"], cwd=root, capture_output=True, text=True, check=True
    ).stdout

    def where(text: str) -> int:
        return plan.index(text)

    assert where("db_worker") < where('echo "$demo"') < where("aquadash:  ") < where("runserver")
    assert where("simulate_zuora") < where('echo "$demo"')
