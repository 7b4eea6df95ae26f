"""Tenant secrets encrypted at rest: the keys setting, CredentialUnreadable and rotate_secrets."""

from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection
from pytest_django.fixtures import Settings

from aquadash import encryption, zuora
from aquadash.models import Tenant
from aquadash.settings import fernet_keys
from aquadash.simulator import DOC_FILEID_JOB_ID
from tests.conftest import CANARY_SECRET, start_django

K1, K2, K3 = (Fernet.generate_key().decode() for _ in range(3))


def stored_column(tenant: Tenant) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT encrypted_secret FROM aquadash_tenant WHERE id = %s", [tenant.pk])
        return cursor.fetchone()[0]


def read_secret(tenant: Tenant) -> str:
    return Tenant.objects.get(pk=tenant.pk).zuora_connection().credentials.secret


def test_secret_round_trips(tenant: Tenant) -> None:
    assert read_secret(tenant) == CANARY_SECRET


def test_database_column_holds_a_fernet_token_not_the_secret(tenant: Tenant) -> None:
    column = stored_column(tenant)
    assert CANARY_SECRET not in column
    assert column.startswith("gAAAAA")


def test_secret_stays_readable_after_a_new_key_is_put_first(
    make_tenant: Callable[..., Tenant], settings: Settings
) -> None:
    settings.AQUADASH_ENCRYPTION_KEYS = [K1]
    tenant = make_tenant()
    settings.AQUADASH_ENCRYPTION_KEYS = [K2, K1]
    assert read_secret(tenant) == CANARY_SECRET


def test_rotate_secrets_moves_every_secret_to_the_newest_key(
    make_tenant: Callable[..., Tenant], settings: Settings
) -> None:
    settings.AQUADASH_ENCRYPTION_KEYS = [K1]
    tenants = [make_tenant("acme"), make_tenant("globex", secret="globex-secret")]
    settings.AQUADASH_ENCRYPTION_KEYS = [K2, K1]
    call_command("rotate_secrets", stdout=StringIO())
    settings.AQUADASH_ENCRYPTION_KEYS = [K2]
    assert [read_secret(tenant) for tenant in tenants] == [CANARY_SECRET, "globex-secret"]


def test_rotate_secrets_moves_the_chat_webhook_too(
    make_tenant: Callable[..., Tenant], settings: Settings
) -> None:
    settings.AQUADASH_ENCRYPTION_KEYS = [K1]
    tenant = make_tenant()
    tenant.set_webhook_url("https://hooks.slack.com/services/T0/B0/secret-path")
    tenant.save()
    settings.AQUADASH_ENCRYPTION_KEYS = [K2, K1]
    call_command("rotate_secrets", stdout=StringIO())
    settings.AQUADASH_ENCRYPTION_KEYS = [K2]
    tenant.refresh_from_db()
    assert tenant.webhook_url() == "https://hooks.slack.com/services/T0/B0/secret-path"
    assert "secret-path" not in tenant.encrypted_webhook_url


def test_rotate_secrets_twice_is_harmless(
    make_tenant: Callable[..., Tenant], settings: Settings
) -> None:
    settings.AQUADASH_ENCRYPTION_KEYS = [K1]
    tenant = make_tenant()
    settings.AQUADASH_ENCRYPTION_KEYS = [K2, K1]
    call_command("rotate_secrets", stdout=StringIO())
    call_command("rotate_secrets", stdout=StringIO())
    settings.AQUADASH_ENCRYPTION_KEYS = [K2]
    assert read_secret(tenant) == CANARY_SECRET


def test_interrupted_rotation_leaves_every_secret_readable(
    make_tenant: Callable[..., Tenant], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.AQUADASH_ENCRYPTION_KEYS = [K1]
    tenants = [make_tenant("acme"), make_tenant("globex"), make_tenant("initech")]
    settings.AQUADASH_ENCRYPTION_KEYS = [K2, K1]
    rotate, calls = encryption.rotate, []

    def rotate_then_crash(token: str, *, tenant: str) -> str:
        calls.append(tenant)
        if len(calls) == 2:
            raise RuntimeError("the server went away")
        return rotate(token, tenant=tenant)

    monkeypatch.setattr(encryption, "rotate", rotate_then_crash)
    with pytest.raises(RuntimeError):
        call_command("rotate_secrets", stdout=StringIO())
    assert [read_secret(tenant) for tenant in tenants] == [CANARY_SECRET] * 3


def test_rotate_secrets_names_the_tenants_no_key_opens(
    make_tenant: Callable[..., Tenant], settings: Settings
) -> None:
    settings.AQUADASH_ENCRYPTION_KEYS = [K1]
    make_tenant("acme")
    settings.AQUADASH_ENCRYPTION_KEYS = [K2]
    with pytest.raises(CommandError, match="Acme"):
        call_command("rotate_secrets", stdout=StringIO())


def test_wrong_key_makes_credentials_unreadable(
    make_tenant: Callable[..., Tenant], settings: Settings
) -> None:
    settings.AQUADASH_ENCRYPTION_KEYS = [K1]
    tenant = make_tenant()
    settings.AQUADASH_ENCRYPTION_KEYS = [K3]
    with pytest.raises(encryption.CredentialUnreadable) as caught:
        tenant.zuora_connection()
    assert isinstance(caught.value, zuora.ZuoraError)
    assert caught.value.http_status == 503
    assert caught.value.message == (
        "The stored credentials for tenant Acme cannot be read (the encryption key changed?). "
        "Ask an admin to enter them again."
    )


def test_tampered_ciphertext_makes_credentials_unreadable(tenant: Tenant) -> None:
    column = stored_column(tenant)
    flipped = column[:40] + ("A" if column[40] != "A" else "B") + column[41:]
    Tenant.objects.filter(pk=tenant.pk).update(encrypted_secret=flipped)
    with pytest.raises(encryption.CredentialUnreadable):
        read_secret(tenant)


def test_plaintext_in_the_column_is_never_used_as_the_secret(tenant: Tenant) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(encrypted_secret=CANARY_SECRET)
    with pytest.raises(encryption.CredentialUnreadable):
        read_secret(tenant)


@pytest.mark.parametrize("value", [None, "", " , ", "not-a-key"])
def test_keys_are_required_when_debug_is_off(
    value: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if value is None:
        monkeypatch.delenv("AQUADASH_ENCRYPTION_KEYS", raising=False)
    else:
        monkeypatch.setenv("AQUADASH_ENCRYPTION_KEYS", value)
    with pytest.raises(ImproperlyConfigured, match="AQUADASH_ENCRYPTION_KEYS"):
        fernet_keys("AQUADASH_ENCRYPTION_KEYS", debug=False, development_key_file=tmp_path / "key")
    assert not (tmp_path / "key").exists()


def test_malformed_key_is_refused_in_development_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AQUADASH_ENCRYPTION_KEYS", f"{K1},not-a-key")
    with pytest.raises(ImproperlyConfigured, match="AQUADASH_ENCRYPTION_KEYS: key 2"):
        fernet_keys("AQUADASH_ENCRYPTION_KEYS", debug=True, development_key_file=tmp_path / "key")


def test_keys_are_read_newest_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AQUADASH_ENCRYPTION_KEYS", f" {K2} , {K1} ")
    keys = fernet_keys("AQUADASH_ENCRYPTION_KEYS", debug=False, development_key_file=tmp_path)
    assert keys == [K2, K1]


def test_development_key_is_generated_once_into_a_private_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AQUADASH_ENCRYPTION_KEYS", raising=False)
    key_file = tmp_path / "var" / "encryption.key"
    first = fernet_keys("AQUADASH_ENCRYPTION_KEYS", debug=True, development_key_file=key_file)
    second = fernet_keys("AQUADASH_ENCRYPTION_KEYS", debug=True, development_key_file=key_file)
    assert first == second
    Fernet(first[0])
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_start_up_fails_naming_the_variable_when_debug_is_off_without_keys() -> None:
    result = start_django(drop=("AQUADASH_ENCRYPTION_KEYS",), DEBUG="0", SECRET_KEY="x" * 50)

    assert result.returncode != 0
    assert "AQUADASH_ENCRYPTION_KEYS must be set when DEBUG is off" in result.stderr


def test_cached_bearer_tokens_are_stored_encrypted(simulator_tenant):
    conn = simulator_tenant.zuora_connection()
    zuora.get_job(conn, job_id=DOC_FILEID_JOB_ID)

    key = zuora.client._token_key(conn)
    stored = cache.get(key)
    assert stored.startswith("gAAAAA")
    token = conn.token_cache.get(key)
    assert len(token) >= 16
    assert token not in stored
