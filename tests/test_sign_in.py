"""Sign-in: Django's own login, throttled against password guessing (SECURITY-TESTS case 51)."""

import pytest
from django.test import Client

LOGIN = "/accounts/login/"


def sign_in(client: Client, username: str, password: str, **headers: str):
    return client.post(LOGIN, {"username": username, "password": password}, **headers)


@pytest.fixture
def limit(settings) -> int:
    return settings.AXES_FAILURE_LIMIT


def test_the_right_password_signs_in(make_user):
    make_user("alice")

    response = sign_in(Client(), "alice", "password")

    assert response.status_code == 302 and response["Location"] == "/"


def test_too_many_wrong_passwords_lock_even_the_right_one_out(make_user, limit):
    make_user("alice")
    client = Client()
    for _ in range(limit):
        sign_in(client, "alice", "guess")

    response = sign_in(client, "alice", "password")

    assert response.status_code == 429
    assert "Too many wrong passwords" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_forged_forwarded_for_header_does_not_reset_the_count(make_user, limit):
    make_user("alice")
    client = Client()
    for attempt in range(limit):
        sign_in(client, "alice", "guess", HTTP_X_FORWARDED_FOR=f"203.0.113.{attempt}")

    response = sign_in(client, "alice", "password", HTTP_X_FORWARDED_FOR="198.51.100.7")

    assert response.status_code == 429


def test_a_locked_out_user_does_not_lock_out_colleagues_at_the_same_address(make_user, limit):
    make_user("alice")
    make_user("bob")
    client = Client()
    for _ in range(limit):
        sign_in(client, "alice", "guess")

    response = sign_in(Client(), "bob", "password")

    assert response.status_code == 302


def test_the_admin_sign_in_is_throttled_too(make_user, limit):
    make_user("root", superuser=True)
    client = Client()
    for _ in range(limit):
        client.post("/admin/login/", {"username": "root", "password": "guess"})

    response = client.post("/admin/login/", {"username": "root", "password": "password"})

    assert response.status_code == 429


def test_signing_in_again_changes_the_session_key(make_user):
    make_user("alice")
    client = Client()
    client.get(LOGIN)
    before = client.cookies.get("sessionid")

    sign_in(client, "alice", "password")

    assert client.cookies["sessionid"].value != (before.value if before else None)


@pytest.mark.parametrize("next_url", ["https://evil.test/", "//evil.test", "/\\evil.test"])
def test_sign_in_never_redirects_off_site(make_user, next_url):
    make_user("alice")

    response = Client().post(
        f"{LOGIN}?next={next_url}", {"username": "alice", "password": "password", "next": next_url}
    )

    assert response.status_code == 302 and response["Location"] == "/"
