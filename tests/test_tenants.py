"""The Tenant model: validation, the Zuora connection it builds, and last contact."""

from collections.abc import Callable

import pytest
from django.core.exceptions import ValidationError
from pytest_django.fixtures import Settings

from aquadash.encryption import EncryptedCache
from aquadash.models import Tenant
from aquadash.shared_cache import shared_cache
from tests.conftest import CANARY_SECRET, DISALLOWED_BASE_URLS


def test_str_is_the_name(tenant: Tenant) -> None:
    assert str(tenant) == "Acme"


@pytest.mark.parametrize("url", DISALLOWED_BASE_URLS)
def test_custom_base_url_must_be_an_allowed_host(url: str, tenant: Tenant) -> None:
    tenant.environment, tenant.base_url = "custom", url
    with pytest.raises(ValidationError) as caught:
        tenant.full_clean()
    assert "not an allowed Zuora REST host" in caught.value.message_dict["base_url"][0]


def test_custom_base_url_listed_in_zuora_extra_hosts_is_accepted(
    tenant: Tenant, settings: Settings
) -> None:
    settings.ZUORA_EXTRA_HOSTS = frozenset({("127.0.0.1", 8765)})
    tenant.environment, tenant.base_url = "custom", "http://127.0.0.1:8765/"
    tenant.full_clean()
    assert tenant.base_url_resolved == "http://127.0.0.1:8765"


def test_custom_environment_needs_a_base_url(tenant: Tenant) -> None:
    tenant.environment = "custom"
    with pytest.raises(ValidationError, match="needs a base URL"):
        tenant.full_clean()


def test_base_url_is_refused_with_a_zuora_environment(tenant: Tenant) -> None:
    tenant.base_url = "https://rest.zuora.com"
    with pytest.raises(ValidationError, match="only used with"):
        tenant.full_clean()


def test_zuora_environment_gives_its_documented_base_url(tenant: Tenant) -> None:
    tenant.environment = "eu-sandbox"
    assert tenant.base_url_resolved == "https://rest.sandbox.eu.zuora.com"


@pytest.mark.parametrize("zone", ["Pacific/Standard", "PST", "../etc/passwd", ""])
def test_time_zone_must_be_an_iana_name(zone: str, tenant: Tenant) -> None:
    tenant.time_zone = zone
    with pytest.raises(ValidationError) as caught:
        tenant.full_clean()
    assert "time_zone" in caught.value.message_dict


def test_time_zone_defaults_to_pacific(tenant: Tenant) -> None:
    assert tenant.zoneinfo.key == "America/Los_Angeles"


def test_entity_id_must_be_a_uuid(tenant: Tenant) -> None:
    tenant.entity_id = "not-an-entity"
    with pytest.raises(ValidationError) as caught:
        tenant.full_clean()
    assert "entity_id" in caught.value.message_dict


def test_zuora_connection_carries_the_tenants_settings(
    make_tenant: Callable[..., Tenant], settings: Settings
) -> None:
    settings.ZUORA_CONNECT_TIMEOUT, settings.ZUORA_READ_TIMEOUT = 1.5, 9.0
    tenant = make_tenant(
        auth_method="basic",
        identity="ops@acme.test",
        entity_id="8a8082c4-5a12-4c2e-b3c0-2d1b4f0d1a99",
    )
    conn = tenant.zuora_connection()
    assert (conn.base_url, conn.tenant, conn.entity_id) == (
        "https://rest.zuora.com",
        "Acme",
        "8a8082c45a124c2eb3c02d1b4f0d1a99",
    )
    assert (conn.credentials.method, conn.credentials.identity) == ("basic", "ops@acme.test")
    assert conn.credentials.secret == CANARY_SECRET
    assert conn.extra_hosts == settings.ZUORA_EXTRA_HOSTS
    assert (conn.connect_timeout, conn.read_timeout) == (1.5, 9.0)
    assert isinstance(conn.token_cache, EncryptedCache) and conn.token_cache.cache is shared_cache


def test_zuora_connection_repr_hides_the_secret(tenant: Tenant) -> None:
    assert CANARY_SECRET not in repr(tenant.zuora_connection())


def test_record_contact_keeps_when_outcome_and_message(tenant: Tenant) -> None:
    tenant.record_contact(False, "Zuora rejected the stored credentials.")
    tenant.refresh_from_db()
    assert tenant.last_contact_at is not None
    assert tenant.last_contact_ok is False
    assert tenant.last_contact_message == "Zuora rejected the stored credentials."


def test_record_contact_leaves_other_fields_alone(tenant: Tenant) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(name="Acme Renamed")
    tenant.record_contact(True, "ok")
    tenant.refresh_from_db()
    assert tenant.name == "Acme Renamed"


def test_check_connection_records_an_unreachable_zuora(make_tenant: Callable[..., Tenant]) -> None:
    # 127.0.0.1:1 is listed in the test settings' ZUORA_EXTRA_HOSTS and nothing listens there.
    tenant = make_tenant(environment="custom", base_url="http://127.0.0.1:1")
    ok, message = tenant.check_connection()
    tenant.refresh_from_db()
    assert not ok
    assert "cannot reach Zuora" in message
    assert (tenant.last_contact_ok, tenant.last_contact_message) == (False, message)


@pytest.mark.parametrize(
    "typed", ["8A8082C45A124C2EB3C02D1B4F0D1A99", "8a8082c4-5a12-4c2e-b3c0-2d1b4f0d1a99"]
)
def test_an_entity_id_is_stored_as_the_32_hex_digits_zuora_shows(
    tenant: Tenant, typed: str
) -> None:
    tenant.entity_id = typed
    tenant.full_clean()
    assert tenant.entity_id == "8a8082c45a124c2eb3c02d1b4f0d1a99"


def test_org_ids_are_stored_comma_separated_without_spaces(tenant: Tenant) -> None:
    tenant.org_ids = " org-1 , org-2 "
    tenant.full_clean()
    assert tenant.org_ids == "org-1,org-2"


@pytest.mark.parametrize("org_ids", ["org 1", "org-1;org-2", "org-1\r\nX-Evil: 1"])
def test_org_ids_that_are_not_ids_are_refused(tenant: Tenant, org_ids: str) -> None:
    tenant.org_ids = org_ids
    with pytest.raises(ValidationError) as caught:
        tenant.full_clean()
    assert "org_ids" in caught.value.message_dict
